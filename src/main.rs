//! The `aegpu` command line: info, train, eval, bench.

use aegpu::checkpoint;
use aegpu::data::{self, DatasetName};
use aegpu::error::{Error, Result};
use aegpu::generate;
use aegpu::gpu::{Gpu, GpuOptions};
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::kernels::penalty::SparseNorm;
use aegpu::models::conv::ConvConfig;
use aegpu::models::dense::{DenseConfig, Noise, Regularizers, Sparse, Variational};
use aegpu::models::{Autoencoder, Init, ModelConfig};
use aegpu::train::{self, EvalOutput, Evaluator, GpuDataset, TrainConfig};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "aegpu",
    version,
    about = "Autoencoders on any GPU wgpu reaches, with hand-written WGSL kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the adapter, its backend, features and limits, and the kernel variants chosen for it.
    Info,
    /// Train an autoencoder; writes metrics.jsonl, model.safetensors, recon.png (latent.png and
    /// grid.png for a 2-D code, samples.png for a VAE).
    Train(Box<TrainArgs>),
    /// Recompute the test metrics of a checkpoint (and its pictures with --out).
    Eval(EvalArgs),
    /// Kernel GFLOP/s on this GPU vs the CPU baseline, and training-step throughput.
    Bench(aegpu::bench::BenchArgs),
    /// Decode random codes into new images: z ~ N(0, I) for a VAE; for a plain autoencoder, a
    /// Gaussian fitted to the test set's codes.
    Sample(SampleArgs),
    /// Decode a regular grid over a 2-D latent space (a VAE: its prior's 5-95% quantiles; a plain
    /// autoencoder: the test codes' 1-99th percentiles).
    Grid(GridArgs),
    /// Decode the straight line between the codes of test images I and J.
    Interpolate(InterpolateArgs),
    /// Corrupt test images, reconstruct them, and print the PSNR of the noisy and of the denoised
    /// images against the clean ones; writes noisy | denoised | clean rows.
    Denoise(DenoiseArgs),
}

#[derive(clap::Args)]
struct DenoiseArgs {
    #[command(flatten)]
    ckpt: CheckpointArgs,
    /// gaussian:SIGMA, masking:P or salt_pepper:P.
    #[arg(long, default_value = "gaussian:0.5")]
    noise: String,
    /// Test images shown in the picture (the PSNR uses the whole test set).
    #[arg(long, default_value_t = 12)]
    show: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = "denoise.png")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct CheckpointArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    /// Dataset for the codes a command needs (default: the one the checkpoint was trained on).
    #[arg(long)]
    dataset: Option<DatasetName>,
    #[arg(long)]
    data: Option<PathBuf>,
}

#[derive(clap::Args)]
struct SampleArgs {
    #[command(flatten)]
    ckpt: CheckpointArgs,
    #[arg(long, default_value_t = 64)]
    n: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = "samples.png")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct GridArgs {
    #[command(flatten)]
    ckpt: CheckpointArgs,
    /// Points per axis.
    #[arg(long, default_value_t = 15)]
    steps: usize,
    #[arg(long, default_value = "grid.png")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct InterpolateArgs {
    #[command(flatten)]
    ckpt: CheckpointArgs,
    /// Index of the first test image.
    #[arg(long)]
    from: usize,
    /// Index of the second test image.
    #[arg(long)]
    to: usize,
    #[arg(long, default_value_t = 10)]
    steps: usize,
    #[arg(long, default_value = "interp.png")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct DataArgs {
    /// Dataset: mnist or fashion-mnist.
    #[arg(long, default_value = "mnist")]
    dataset: DatasetName,
    /// Folder with the IDX files (or with mnist/ and fashion-mnist/ inside). Default: $AEGPU_DATA.
    #[arg(long)]
    data: Option<PathBuf>,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Model family: dense (autoencoder), vae (dense variational autoencoder), conv (convolutional
    /// autoencoder) or conv-vae (convolutional VAE).
    #[arg(long, default_value = "dense")]
    model: String,
    /// A known architecture. Dense: shallow (784-32-784, ReLU code), deep (784-512-256-64-2, linear
    /// code) or vae (784-400-20, the PyTorch example); they override --layers and the activations.
    /// Conv: keras (the Keras blog's 16-8-8 conv/max-pool model, the default) or strided (conv 32, 64
    /// with stride 2, transposed convs back); conv-vae has its own.
    #[arg(long)]
    preset: Option<String>,
    /// A network of your own, instead of a preset: layers separated by commas, e.g.
    /// "conv 32 k3 s2 relu, conv 64 k3 s2 relu, flatten, linear 16"; the decoder mirrors the encoder
    /// unless written after a '|' (see the README). With --model vae the code layer gives μ and log σ².
    #[arg(long, conflicts_with_all = ["preset", "arch_file"])]
    arch: Option<String>,
    /// A network of your own as JSON: the checkpoint's `aegpu.model` layout of a conv-kind model
    /// (input, layers, code_layer, loss, ...).
    #[arg(long, conflicts_with = "preset")]
    arch_file: Option<PathBuf>,
    /// Conv models: a dense bottleneck to a code of this many dimensions (strided; 2 gives a latent
    /// map), or the latent size of a conv-vae (default 20).
    #[arg(long)]
    code_dim: Option<usize>,
    /// VAE: weight of the KL term (1 = the ELBO).
    #[arg(long, default_value_t = 1.0)]
    beta: f32,
    /// Sparse autoencoder: l1:LAMBDA or l2:LAMBDA on the code, λ·Σ_j|h_j| per example, next to a
    /// per-pixel mean reconstruction loss (the Keras blog's sparse model uses l1:1e-4).
    #[arg(long)]
    sparse: Option<String>,
    /// Denoising autoencoder: corrupt inputs with gaussian:SIGMA (clipped to [0,1]), masking:P or
    /// salt_pepper:P, fresh on the GPU every step; the loss compares with the clean input.
    #[arg(long)]
    noise: Option<String>,
    /// Contractive autoencoder: λ·‖J_f(x)‖²_F per example for a one-layer sigmoid encoder (use
    /// --layers WIDTH --code-activation sigmoid), next to a per-pixel mean reconstruction loss:
    /// 1e-3 keeps the reconstruction near the plain model's, 1e-2 cut ‖J‖_F 3.3x at a similar
    /// reconstruction on MNIST 784-64-784 (docs/notes.md).
    #[arg(long)]
    contractive: Option<f32>,
    /// Inverted dropout with probability P on every hidden layer's output (the code included); off at
    /// evaluation.
    #[arg(long)]
    dropout: Option<f32>,
    /// Encoder widths down to the code; the decoder mirrors them. E.g. 512,256,64,2.
    #[arg(long, value_delimiter = ',', default_value = "32")]
    layers: Vec<usize>,
    /// Hidden activation: relu, leaky_relu[:slope], sigmoid, tanh, identity.
    #[arg(long, default_value = "relu")]
    activation: String,
    /// Activation of the code layer (linear by default: a ReLU code of 2 units tends to die).
    #[arg(long, default_value = "identity")]
    code_activation: String,
    /// Output activation: sigmoid or identity.
    #[arg(long, default_value = "sigmoid")]
    output: String,
    /// Reconstruction loss, a per-pixel mean: mse or bce (bce needs a sigmoid output).
    #[arg(long, default_value = "bce")]
    loss: String,
    #[command(flatten)]
    data: DataArgs,
    /// sgd (momentum 0.9), adam or adamw.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// L2 weight decay (decoupled for adamw).
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    #[arg(long, default_value_t = 256)]
    batch: usize,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Weight initialisation: glorot (uniform, zero biases) or torch (PyTorch's default for Linear
    /// and Conv layers, U(±1/√fan_in) for weights and biases). Default: torch for --preset vae (it
    /// reproduces the PyTorch example), glorot otherwise (a small ReLU code keeps all its units).
    #[arg(long)]
    init: Option<String>,
    /// Seeds the initialisation and the shuffling: the same seed on the same adapter gives the same losses.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first N training examples (quick experiments).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Evaluate on only the first N test examples (quick experiments, the golden-record test).
    #[arg(long)]
    test_limit: Option<usize>,
    /// Output folder.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct EvalArgs {
    #[command(flatten)]
    ckpt: CheckpointArgs,
    /// Also write recon.png (and latent.png, grid.png for a 2-D code; samples.png for a VAE) here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info(),
        Command::Train(args) => train_cmd(*args),
        Command::Eval(args) => eval_cmd(args),
        Command::Bench(args) => aegpu::bench::run(&args),
        Command::Sample(args) => sample_cmd(args),
        Command::Grid(args) => grid_cmd(args),
        Command::Interpolate(args) => interpolate_cmd(args),
        Command::Denoise(args) => denoise_cmd(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn info() -> Result<()> {
    let gpu = Gpu::new(&GpuOptions::default())?;
    println!("adapter:   {}", gpu.describe());
    println!("features:  {:?}", gpu.features);
    let l = &gpu.limits;
    println!(
        "limits:    max_buffer_size {} B, max_storage_buffer_binding_size {} B, storage offset alignment {} B",
        l.max_buffer_size, l.max_storage_buffer_binding_size, l.min_storage_buffer_offset_alignment
    );
    println!(
        "           workgroup storage {} B, invocations/workgroup {}, workgroups/dimension {}",
        l.max_compute_workgroup_storage_size,
        l.max_compute_invocations_per_workgroup,
        l.max_compute_workgroups_per_dimension
    );
    let t = gpu.tuning()?;
    let measured: Vec<String> = t.measured.iter().map(|(v, g)| format!("{v:?} {g:.2} GFLOP/s")).collect();
    println!(
        "matmul:    {:?} ({}; {}x{}x{}: {})",
        t.matmul,
        t.source,
        t.shape[0],
        t.shape[1],
        t.shape[2],
        if measured.is_empty() { "forced".to_string() } else { measured.join(", ") }
    );
    Ok(())
}

fn parse_act(s: &str, what: &str) -> Result<Activation> {
    Activation::parse(s).ok_or_else(|| {
        Error::Config(format!("--{what} '{s}': use identity, relu, leaky_relu[:slope], sigmoid or tanh"))
    })
}

fn load_split(args: &DataArgs) -> Result<data::Split> {
    let dir = data::resolve_data_dir(args.data.as_deref())?;
    data::load(args.dataset, &dir)
}

fn train_cmd(args: TrainArgs) -> Result<()> {
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
    let mut split = load_split(&args.data)?;
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
    let input = [1, split.train.rows, split.train.cols];
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
    let tc = TrainConfig { epochs: args.epochs, batch: args.batch, optimizer, seed: args.seed };
    train_model(&gpu, &model, &args, &split, &tc, init)
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

/// Trains `model`, writing metrics.jsonl and the checkpoint after every epoch and the pictures at the end.
fn train_model(
    gpu: &Gpu,
    model: &Autoencoder,
    args: &TrainArgs,
    split: &data::Split,
    tc: &TrainConfig,
    init: Init,
) -> Result<()> {
    let train_gpu = GpuDataset::upload(gpu, &split.train)?;
    let test_gpu = GpuDataset::upload(gpu, &split.test)?;
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let metrics_path = args.out.join("metrics.jsonl");
    let mut metrics = std::fs::File::create(&metrics_path).map_err(|e| Error::io(&metrics_path, e))?;
    let ckpt_path = args.out.join("model.safetensors");
    let meta = vec![
        ("aegpu.train", serde_json::to_string(tc).unwrap_or_default()),
        ("aegpu.init", format!("{init:?}").to_lowercase()),
        ("aegpu.dataset", args.data.dataset.to_string()),
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
        args.data.dataset
    );
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
    write_pictures(gpu, model, &args.out, &split.test, &out, args.data.dataset)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// recon.png; latent.png (and grid.png) for a 2-D code; samples.png for a VAE.
fn write_pictures(
    gpu: &Gpu,
    model: &Autoencoder,
    dir: &Path,
    test: &data::Dataset,
    out: &EvalOutput,
    name: DatasetName,
) -> Result<()> {
    let (h, w) = (test.rows, test.cols);
    let k = out.recon.len() / test.dim();
    let originals = test.images_f32(0..k);
    aegpu::viz::save_recon_png(&dir.join("recon.png"), &originals, &out.recon, k, h, w, 16)?;
    if model.code_dim() == 2 {
        let names = name.class_names();
        let title = format!("{} test codes, {}", name, model.describe());
        aegpu::viz::save_latent_png(&dir.join("latent.png"), &out.codes, &test.labels, &names, &title)?;
        let steps = 15;
        let codes = generate::grid_codes(model, &out.codes, steps)?;
        let images = generate::decode(gpu, model, &codes)?;
        aegpu::viz::save_image_grid(&dir.join("grid.png"), &images, steps * steps, h, w, steps, 1)?;
    }
    if model.variational().is_some() {
        let codes = generate::sample_codes(model, &out.codes, 64, 0);
        let images = generate::decode(gpu, model, &codes)?;
        aegpu::viz::save_image_grid(&dir.join("samples.png"), &images, 64, h, w, 8, 2)?;
    }
    Ok(())
}

/// A checkpoint's model on a fresh GPU, with the test split of its dataset.
fn open_checkpoint(args: &CheckpointArgs) -> Result<(Gpu, Autoencoder, data::Dataset, DatasetName)> {
    let ckpt = checkpoint::load(&args.checkpoint)?;
    let dataset = match args.dataset {
        Some(d) => d,
        None => ckpt.metadata.get("aegpu.dataset").and_then(|s| s.parse().ok()).unwrap_or(DatasetName::Mnist),
    };
    let split = load_split(&DataArgs { dataset, data: args.data.clone() })?;
    let gpu = Gpu::new(&GpuOptions::default())?;
    let model = checkpoint::restore(&gpu, &ckpt, &args.checkpoint)?;
    let input = model.input_dim();
    if split.test.dim() != input {
        return Err(Error::Shape(format!(
            "{dataset} images have {} pixels but the checkpoint's model takes {input}",
            split.test.dim(),
        )));
    }
    Ok((gpu, model, split.test, dataset))
}

/// The codes of every test image (a VAE's posterior means).
fn test_codes(gpu: &Gpu, model: &Autoencoder, test: &data::Dataset) -> Result<Vec<f32>> {
    let test_gpu = GpuDataset::upload(gpu, test)?;
    Ok(Evaluator::new(gpu, model, &test_gpu, 1000)?.run(0)?.codes)
}

fn sample_cmd(args: SampleArgs) -> Result<()> {
    if args.n == 0 {
        return Err(Error::Config("--n must be at least 1".into()));
    }
    let (gpu, model, test, _) = open_checkpoint(&args.ckpt)?;
    sample_with(&gpu, &model, &test, &args)
}

fn sample_with(gpu: &Gpu, model: &Autoencoder, test: &data::Dataset, args: &SampleArgs) -> Result<()> {
    // A plain autoencoder has no prior: fit one to its test codes.
    let data_codes = if model.variational().is_some() { Vec::new() } else { test_codes(gpu, model, test)? };
    let codes = generate::sample_codes(model, &data_codes, args.n, args.seed);
    let images = generate::decode(gpu, model, &codes)?;
    let cols = (args.n as f64).sqrt().ceil() as usize;
    aegpu::viz::save_image_grid(&args.out, &images, args.n, test.rows, test.cols, cols, 2)?;
    eprintln!("wrote {} ({} samples)", args.out.display(), args.n);
    Ok(())
}

fn grid_cmd(args: GridArgs) -> Result<()> {
    let (gpu, model, test, _) = open_checkpoint(&args.ckpt)?;
    grid_with(&gpu, &model, &test, &args)
}

fn grid_with(gpu: &Gpu, model: &Autoencoder, test: &data::Dataset, args: &GridArgs) -> Result<()> {
    if model.code_dim() != 2 {
        return Err(Error::Config(format!(
            "a latent grid needs a 2-D code; this model's code has {} dimensions",
            model.code_dim()
        )));
    }
    let data_codes = if model.variational().is_some() { Vec::new() } else { test_codes(gpu, model, test)? };
    let codes = generate::grid_codes(model, &data_codes, args.steps)?;
    let images = generate::decode(gpu, model, &codes)?;
    let n = args.steps * args.steps;
    aegpu::viz::save_image_grid(&args.out, &images, n, test.rows, test.cols, args.steps, 1)?;
    eprintln!("wrote {} ({}x{} decoded grid)", args.out.display(), args.steps, args.steps);
    Ok(())
}

fn interpolate_cmd(args: InterpolateArgs) -> Result<()> {
    let (gpu, model, test, _) = open_checkpoint(&args.ckpt)?;
    interpolate_with(&gpu, &model, &test, &args)
}

fn interpolate_with(
    gpu: &Gpu,
    model: &Autoencoder,
    test: &data::Dataset,
    args: &InterpolateArgs,
) -> Result<()> {
    for (flag, i) in [("--from", args.from), ("--to", args.to)] {
        if i >= test.n {
            return Err(Error::Config(format!(
                "{flag} {i}: the test set has {} images (0..{})",
                test.n, test.n
            )));
        }
    }
    if args.steps < 2 {
        return Err(Error::Config("--steps must be at least 2".into()));
    }
    let codes = test_codes(gpu, model, test)?;
    let d = model.code_dim();
    let line = generate::interpolate_codes(
        &codes[args.from * d..(args.from + 1) * d],
        &codes[args.to * d..(args.to + 1) * d],
        args.steps,
    );
    let images = generate::decode(gpu, model, &line)?;
    let dim = test.dim();
    // Row: the real first image, the decoded path, the real second image.
    let mut row = test.images_f32(args.from..args.from + 1);
    row.extend_from_slice(&images);
    row.extend(test.images_f32(args.to..args.to + 1));
    let n = row.len() / dim;
    aegpu::viz::save_image_grid(&args.out, &row, n, test.rows, test.cols, n, 2)?;
    eprintln!(
        "wrote {}: test image {} (label {}) to {} (label {}), {} steps between the real images",
        args.out.display(),
        args.from,
        test.labels[args.from],
        args.to,
        test.labels[args.to],
        args.steps
    );
    Ok(())
}

fn eval_cmd(args: EvalArgs) -> Result<()> {
    let (gpu, model, test, dataset) = open_checkpoint(&args.ckpt)?;
    eval_with(&gpu, &model, &test, dataset, &args)
}

fn eval_with(
    gpu: &Gpu,
    model: &Autoencoder,
    test: &data::Dataset,
    dataset: DatasetName,
    args: &EvalArgs,
) -> Result<()> {
    let test_gpu = GpuDataset::upload(gpu, test)?;
    let out = Evaluator::new(gpu, model, &test_gpu, 1000)?.run(16)?;
    let m = out.metrics;
    let mut json = serde_json::json!({
        "checkpoint": args.ckpt.checkpoint.display().to_string(),
        "dataset": dataset.to_string(),
        "model": model.describe(),
        "test_loss": m.loss,
        "test_mse_px": m.mse_px,
        "test_bce_px": m.bce_px,
    });
    if let Some((recon, kl, elbo)) = m.vae {
        json["test_recon_nats"] = recon.into();
        json["test_kl"] = kl.into();
        json["test_elbo_nats"] = elbo.into();
    }
    println!("{json}");
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        write_pictures(gpu, model, dir, test, &out, dataset)?;
    }
    Ok(())
}

fn denoise_cmd(args: DenoiseArgs) -> Result<()> {
    let noise = Noise::parse(&args.noise)?;
    let (gpu, model, test, _) = open_checkpoint(&args.ckpt)?;
    denoise_with(&gpu, &model, &test, noise, &args)
}

fn denoise_with(
    gpu: &Gpu,
    model: &Autoencoder,
    test: &data::Dataset,
    noise: Noise,
    args: &DenoiseArgs,
) -> Result<()> {
    let clean = test.images_f32(0..test.n);
    let out = generate::denoise(gpu, model, &clean, noise, args.seed)?;
    let dim = test.dim();
    let noisy_psnr = generate::mean_psnr(&out.noisy, &clean, dim);
    let denoised_psnr = generate::mean_psnr(&out.denoised, &clean, dim);
    println!(
        "{}",
        serde_json::json!({
            "checkpoint": args.ckpt.checkpoint.display().to_string(),
            "noise": args.noise,
            "images": test.n,
            "psnr_noisy_db": noisy_psnr,
            "psnr_denoised_db": denoised_psnr,
            "gain_db": denoised_psnr - noisy_psnr,
        })
    );
    let k = args.show.clamp(1, test.n);
    let rows = [
        ("noisy", &out.noisy[..k * dim]),
        ("denoised", &out.denoised[..k * dim]),
        ("clean", &clean[..k * dim]),
    ];
    aegpu::viz::save_labelled_rows(&args.out, &rows, test.rows, test.cols, 2)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
