//! The model a `train` command's flags describe: a dense preset or layer list, a conv preset, or a
//! network of the user's own (`--arch`, `--arch-file`), with its regularisers. An option that does
//! not apply to the chosen model is an error that says so, never silently ignored.

use super::{TrainArgs, parse_act};
use aegpu::error::{Error, Result};
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::penalty::SparseNorm;
use aegpu::models::ModelConfig;
use aegpu::models::conv::ConvConfig;
use aegpu::models::dense::{DenseConfig, Noise, Regularizers, Sparse, Variational};

/// The model of `args` for data of shape `input` (`[channels, rows, cols]`).
pub(super) fn model_config(args: &TrainArgs, input: [usize; 3], loss: LossKind) -> Result<ModelConfig> {
    check_flags_apply(args)?;
    Ok(match args.model.as_str() {
        _ if args.arch.is_some() || args.arch_file.is_some() => {
            ModelConfig::Conv(arch_config(args, input, loss)?)
        }
        "dense" | "vae" => ModelConfig::Dense(dense_config(args, input.iter().product(), loss)?),
        "conv" | "conv-vae" => ModelConfig::Conv(conv_config(args, input, loss)?),
        other => {
            return Err(Error::Config(format!("--model '{other}': use dense, vae, conv or conv-vae")));
        }
    })
}

/// Refuses options given on the command line that the chosen model would ignore.
fn check_flags_apply(args: &TrainArgs) -> Result<()> {
    let given = |flag: &str| args.given.iter().any(|g| g == flag);
    let own = args.arch.is_some() || args.arch_file.is_some();
    let conv = matches!(args.model.as_str(), "conv" | "conv-vae");
    let dense_preset = !own && !conv && args.preset.is_some();
    let variational =
        matches!(args.model.as_str(), "vae" | "conv-vae") || args.preset.as_deref() == Some("vae");
    let what = if own {
        "a network of your own (--arch/--arch-file) states its own layers and activations".to_string()
    } else if conv {
        format!("--model {} builds its layers from the preset", args.model)
    } else {
        format!("--preset {} fixes the layers and activations", args.preset.as_deref().unwrap_or(""))
    };
    for flag in ["layers", "activation", "code_activation"] {
        if given(flag) && (own || conv || dense_preset) {
            return Err(not_applicable(
                flag,
                &format!("{what}; it applies to --model dense|vae with --layers"),
            ));
        }
    }
    if given("output") && dense_preset {
        return Err(not_applicable("output", &what));
    }
    if given("loss") && args.preset.as_deref() == Some("vae") && !own && !conv && args.loss != "bce" {
        return Err(not_applicable("loss", "--preset vae is the PyTorch example, trained on BCE"));
    }
    if given("beta") && !variational {
        return Err(not_applicable("beta", "it weights a VAE's KL term: use --model vae or conv-vae"));
    }
    if given("code_dim") && own {
        return Err(not_applicable("code_dim", "your network's last encoder layer sets the code size"));
    }
    Ok(())
}

fn not_applicable(flag: &str, why: &str) -> Error {
    Error::Config(format!("--{} does not apply here: {why}", flag.replace('_', "-")))
}

/// The dense model `--model dense|vae` with `--preset` or `--layers` and the regularisers describe.
fn dense_config(args: &TrainArgs, input: usize, loss: LossKind) -> Result<DenseConfig> {
    if args.code_dim.is_some() {
        return Err(Error::Config(
            "--code-dim is for conv models; a dense model's code is the last of --layers".into(),
        ));
    }
    let config = match &args.preset {
        Some(p) => DenseConfig::preset(p, input, loss)?,
        None => DenseConfig::symmetric(
            input,
            &args.layers,
            parse_act(&args.activation, "activation")?,
            parse_act(&args.code_activation, "code-activation")?,
            parse_act(&args.output, "output")?,
            loss,
        )?,
    };
    // The vae preset is variational whatever --model says; --beta applies to every VAE.
    let variational = match (config.variational, args.model.as_str()) {
        (Some(_), _) | (None, "vae") => Some(Variational { beta: args.beta }),
        _ => None,
    };
    let config = config.with_variational(variational)?;
    let sparse = parse_sparse(&args.sparse)?;
    let regularize = Regularizers {
        sparse,
        contractive: args.contractive,
        dropout: args.dropout,
        noise: args.noise.as_deref().map(Noise::parse).transpose()?,
    };
    config.with_regularizers(regularize)
}

/// `--sparse l1:LAMBDA|l2:LAMBDA`.
fn parse_sparse(arg: &Option<String>) -> Result<Option<Sparse>> {
    let Some(s) = arg else { return Ok(None) };
    let bad = || Error::Config(format!("--sparse '{s}': use l1:LAMBDA or l2:LAMBDA"));
    let (norm, lambda) = s.split_once(':').ok_or_else(bad)?;
    let norm = match norm.to_lowercase().as_str() {
        "l1" => SparseNorm::L1,
        "l2" => SparseNorm::L2,
        _ => return Err(bad()),
    };
    Ok(Some(Sparse { norm, lambda: lambda.parse().map_err(|_| bad())? }))
}

/// The regularisers of a layer-list model (`--noise`, `--sparse`, `--dropout`; VAE with --model vae).
fn layer_list_regularizers(args: &TrainArgs, config: ConvConfig) -> Result<ConvConfig> {
    if args.contractive.is_some() {
        return Err(Error::Config(
            "--contractive has a closed form only for a one-layer sigmoid dense encoder: use --model dense \
             --layers WIDTH --code-activation sigmoid"
                .into(),
        ));
    }
    config
        .with_noise(args.noise.as_deref().map(Noise::parse).transpose()?)?
        .with_regularizers(parse_sparse(&args.sparse)?, args.dropout)
}

/// A user-written network (`--arch TEXT` or `--arch-file JSON`).
fn arch_config(args: &TrainArgs, input: [usize; 3], loss: LossKind) -> Result<ConvConfig> {
    let config = match (&args.arch, &args.arch_file) {
        (Some(text), _) => aegpu::models::arch::parse(text, input, loss, parse_act(&args.output, "output")?)?,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            let config: ConvConfig = serde_json::from_str(&text)
                .map_err(|e| Error::Config(format!("{}: not an architecture file: {e}", path.display())))?;
            config.validate().map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            config
        }
        (None, None) => unreachable!("called with --arch or --arch-file"),
    };
    let variational =
        matches!(args.model.as_str(), "vae" | "conv-vae").then_some(Variational { beta: args.beta });
    let config = if variational.is_some() { config.with_variational(variational)? } else { config };
    layer_list_regularizers(args, config)
}

/// The conv model `--model conv|conv-vae` with `--preset` (keras by default), `--code-dim` and the
/// regularisers.
fn conv_config(args: &TrainArgs, input: [usize; 3], loss: LossKind) -> Result<ConvConfig> {
    let preset = match (args.model.as_str(), args.preset.as_deref()) {
        ("conv-vae", None | Some("conv-vae")) => "conv-vae",
        ("conv-vae", Some(p)) => {
            return Err(Error::Config(format!("--model conv-vae has one architecture; drop --preset {p}")));
        }
        (_, p) => p.unwrap_or("keras"),
    };
    let config = ConvConfig::preset(preset, input, args.code_dim, loss)?;
    let config = config.with_output(parse_act(&args.output, "output")?)?;
    let variational = config.variational.map(|_| Variational { beta: args.beta });
    layer_list_regularizers(args, config.with_variational(variational)?)
}
