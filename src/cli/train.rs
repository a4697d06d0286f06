//! `aegpu train`: the model from the flags (a preset, --layers, --arch or --arch-file, and the
//! regularisers), the training run, its metrics, checkpoint and pictures.

use super::data::{for_display, load_source, upload};
use super::{TrainArgs, parse_act};
use crate::checkpoint;
use crate::data;
use crate::error::{Error, Result};
use crate::generate;
use crate::gpu::{Gpu, GpuOptions};
use crate::kernels::loss::LossKind;
use crate::kernels::optimizer::Optimizer;
use crate::kernels::penalty::SparseNorm;
use crate::models::conv::ConvConfig;
use crate::models::dense::{DenseConfig, Noise, Regularizers, Sparse, Variational};
use crate::models::{Autoencoder, Init, ModelConfig};
use crate::train::{self, EvalOutput, Evaluator, Residency, TrainConfig};
use std::io::Write;
use std::path::Path;

pub(super) fn train_cmd(args: TrainArgs) -> Result<()> {
    if args.epochs == 0 {
        return Err(Error::Config("--epochs must be at least 1".into()));
    }
    let loss = LossKind::parse(&args.loss)
        .ok_or_else(|| Error::Config(format!("--loss '{}': use mse or bce", args.loss)))?;
    let optimizer = Optimizer::parse(&args.optimizer, args.lr, args.weight_decay)?;
    let init = match (&args.init, args.preset.as_deref()) {
        (Some(i), _) => {
            Init::parse(i).ok_or_else(|| Error::Config(format!("--init '{i}': use glorot or torch")))?
        }
        (None, Some("vae")) => Init::Torch,
        (None, _) => Init::Glorot,
    };
    let source = args.data.source()?;
    let (mut split, map) = load_source(&source)?;

    if let Some(n) = args.train_limit {
        if n == 0 {
            return Err(Error::Config("--train-limit must be at least 1".into()));
        }
        split.train = split.train.subset(0..n.min(split.train.n));
    }
    if let Some(n) = args.test_limit {
        if n == 0 {
            return Err(Error::Config("--test-limit must be at least 1".into()));
        }
        split.test = split.test.subset(0..n.min(split.test.n));
    }
    let input = split.train.shape();
    let config = match args.model.as_str() {
        _ if args.arch.is_some() || args.arch_file.is_some() => {
            ModelConfig::Conv(arch_config(&args, input, loss)?)
        }
        "dense" | "vae" => ModelConfig::Dense(dense_config(&args, split.train.dim(), loss)?),
        "conv" | "conv-vae" => ModelConfig::Conv(conv_config(&args, input, loss)?),
        other => {
            return Err(Error::Config(format!("--model '{other}': use dense, vae, conv or conv-vae")));
        }
    };
    let gpu = Gpu::new(&GpuOptions::default())?;
    let model = Autoencoder::new(&gpu, config, args.seed, init)?;
    let identity = model.output_activation() == crate::kernels::Activation::Identity;
    if map.is_some() && (model.loss_kind() == LossKind::Bce || !identity) {
        return Err(Error::Config(
            "whitened patches are zero-mean values, not pixels in [0, 1]: use --loss mse --output identity"
                .into(),
        ));
    }
    let tc = TrainConfig { epochs: args.epochs, batch: args.batch, optimizer, seed: args.seed };
    train_model(&gpu, &model, &args, &source, (&split, map), &tc, init)
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
        (Some(text), _) => crate::models::arch::parse(text, input, loss, parse_act(&args.output, "output")?)?,
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

/// Trains `model`, writing metrics.jsonl and the checkpoint after every epoch and the pictures at the end.
fn train_model(
    gpu: &Gpu,
    model: &Autoencoder,
    args: &TrainArgs,
    source: &data::DataSource,
    (split, map): (&data::Split, Option<data::U8Map>),
    tc: &TrainConfig,
    init: Init,
) -> Result<()> {
    let residency = match (args.stream_data, args.chunk_mb) {
        (true, _) => Residency::Host,
        (false, Some(mb)) => Residency::Gpu { max_chunk_bytes: Some(mb.saturating_mul(1 << 20)) },
        (false, None) => Residency::Auto,
    };
    let train_gpu = upload(gpu, &split.train, map, residency)?;
    let test_gpu = upload(gpu, &split.test, map, residency)?;
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let metrics_path = args.out.join("metrics.jsonl");
    let mut metrics = std::fs::File::create(&metrics_path).map_err(|e| Error::io(&metrics_path, e))?;
    let ckpt_path = args.out.join("model.safetensors");
    let meta = vec![
        ("aegpu.train", serde_json::to_string(tc).unwrap_or_default()),
        ("aegpu.init", format!("{init:?}").to_lowercase()),
        ("aegpu.dataset", source.name()),
        ("aegpu.data", serde_json::to_string(source).unwrap_or_default()),
        ("aegpu.input", serde_json::to_string(&split.train.shape()).unwrap_or_default()),
        ("aegpu.adapter", gpu.describe()),
    ];
    eprintln!("adapter: {}", gpu.describe());
    eprintln!(
        "model:   {} {} ({} parameters, {init:?} init), loss {:?}, {:?}, batch {}, {} train / {} test examples of {}",
        model.kind(),
        model.describe(),
        model.parameter_count(),
        model.loss_kind(),
        tc.optimizer,
        tc.batch,
        split.train.n,
        split.test.n,
        source.name()
    );
    eprintln!("data:    train set {}, test set {}", train_gpu.describe(), test_gpu.describe());
    let choices = model.kernel_choices();
    if !choices.is_empty() {
        eprintln!("kernels: {choices}");
    }
    train::train(gpu, model, &train_gpu, &test_gpu, tc, !args.quiet, |m, _| {
        let vae = match (m.test_recon_nats, m.test_kl, m.test_elbo_nats) {
            (Some(r), Some(kl), Some(elbo)) => {
                format!("  test_recon_nats {r:.2}  test_kl {kl:.2}  test_elbo_nats {elbo:.2}")
            }
            _ => String::new(),
        };
        let jac = m.test_jacobian_fro.map(|j| format!("  test_jacobian_fro {j:.4}")).unwrap_or_default();
        let code = format!("  code_mean {:.4} near_zero {:.3}{jac}", m.test_code_mean, m.test_code_near_zero);
        println!(
            "epoch {:>3}/{}  train_loss {:.5}  test_loss {:.5}  test_mse_px {:.5}  test_bce_px {:.5}{vae}{code}  {:.1} s  {:.0} samples/s",
            m.epoch,
            args.epochs,
            m.train_loss,
            m.test_loss,
            m.test_mse_px,
            m.test_bce_px,
            m.epoch_s,
            m.samples_per_s
        );
        let line = serde_json::to_string(m).map_err(|e| Error::Config(e.to_string()))?;
        writeln!(metrics, "{line}").and_then(|_| metrics.flush()).map_err(|e| Error::io(&metrics_path, e))?;
        checkpoint::save(gpu, model, &meta, &ckpt_path)
    })?;
    let evaluator = Evaluator::new(gpu, model, &test_gpu, 1000)?;
    let out = evaluator.run(16)?;
    write_pictures(gpu, model, &args.out, &split.test, map, &out)?;
    match map {
        None => eprintln!(
            "test PSNR {:.2} dB (10·log10(1/MSE) over pixels in [0, 1]); wrote {}",
            psnr_db(out.metrics.mse_px),
            args.out.display()
        ),
        Some(_) => eprintln!(
            "test MSE {:.5} per value in whitened units (unit variance); wrote {}",
            out.metrics.mse_px,
            args.out.display()
        ),
    }
    Ok(())
}

/// Peak signal-to-noise ratio of a per-pixel MSE over values in `[0, 1]`.
pub(super) fn psnr_db(mse: f64) -> f64 {
    10.0 * (1.0 / mse.max(1e-12)).log10()
}

/// recon.png; filters.png when the first layer is a Linear reading the image; latent.png (and
/// grid.png) for a 2-D code; samples.png for a VAE.
pub(super) fn write_pictures(
    gpu: &Gpu,
    model: &Autoencoder,
    dir: &Path,
    test: &data::Dataset,
    map: Option<data::U8Map>,
    out: &EvalOutput,
) -> Result<()> {
    let shape = test.shape();
    let k = out.recon.len() / test.dim();
    let originals = test.images_f32(0..k);
    let recon = for_display(&out.recon, map);
    crate::viz::save_recon_png(&dir.join("recon.png"), &originals, &recon, k, shape, 16)?;
    if let Some((_, dims, weights)) = model.export(gpu)?.into_iter().next()
        && let [units, inputs] = dims[..]
        && inputs == test.dim()
    {
        let show = units.min(400);
        crate::viz::save_filters_png(&dir.join("filters.png"), &weights[..show * inputs], show, shape)?;
    }
    if model.code_dim() == 2 {
        let names: Vec<String> = if test.class_names.is_empty() {
            (0..=test.labels.iter().copied().max().unwrap_or(0)).map(|l| l.to_string()).collect()
        } else {
            test.class_names.clone()
        };
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let title = format!("{} test codes, {}", test.name, model.describe());
        crate::viz::save_latent_png(&dir.join("latent.png"), &out.codes, &test.labels, &names, &title)?;
        let steps = 15;
        let codes = generate::grid_codes(model, &out.codes, steps)?;
        let images = for_display(&generate::decode(gpu, model, &codes)?, map);
        crate::viz::save_image_grid(&dir.join("grid.png"), &images, steps * steps, shape, steps, 1)?;
    }
    if model.variational().is_some() {
        let codes = generate::sample_codes(model, &out.codes, 64, 0);
        let images = for_display(&generate::decode(gpu, model, &codes)?, map);
        crate::viz::save_image_grid(&dir.join("samples.png"), &images, 64, shape, 8, 2)?;
    }
    Ok(())
}
