//! The `aegpu` command line: argument definitions and one function per command. `src/main.rs` only
//! parses the arguments and calls [`run`]; everything a command does is library code.

/// `println!` that never panics: a closed or full stdout (`aegpu train | head -1`, a full disk)
/// must not stop a run; the line is lost, training goes on.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that never panics (see `say!`).
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod classify;
mod codec;
mod data;
mod epoch_writer;
mod model_flags;
mod model_io;
mod pca;
mod plots;
mod pretrain;
mod profile;
mod progress;
mod pseudo_flags;
mod rate;
mod recirculation;
mod run_dir;
mod tools;
mod train;
mod train_log;

pub use data::{DataArgs, ExportArgs};

use aegpu::error::{Error, Result};
use aegpu::gpu::{Gpu, GpuOptions};
use aegpu::kernels::Activation;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "aegpu",
    version,
    about = "Autoencoders on any GPU wgpu reaches, with hand-written WGSL kernels"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Show the adapter, its backend, features and limits, and the kernel variants chosen for it.
    Info,
    /// Train an autoencoder; writes metrics.jsonl, model.safetensors, recon.png (latent.png and
    /// grid.png for a 2-D code, samples.png for a VAE).
    Train(Box<TrainArgs>),
    /// Recompute the test metrics of a checkpoint (a denoising model's also on clean inputs) and, with --out, its pictures.
    Eval(EvalArgs),
    /// Kernel GFLOP/s on this GPU vs the CPU baseline, and training-step throughput.
    Bench(aegpu::bench::BenchArgs),
    /// A training step's dispatches timed on the GPU (timestamp queries): the kernels by share of
    /// the step, and a Chrome trace.
    Profile(profile::ProfileArgs),
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
    /// Write a dataset (any source the train command reads) as PNG folders, one sub-folder per
    /// class: OUT/train/<class>/00042.png and OUT/test/...; `--data-folder OUT` reads them back.
    ExportImages(ExportArgs),
    /// The linear baseline: fit principal components on the training data (the same data flags as
    /// train), print the test reconstruction error and PSNR for each K, and compare a linear
    /// autoencoder (--checkpoint) with PCA.
    Pca(pca::PcaArgs),
    /// Codes of a dataset split or of image files (a VAE's μ, optionally log σ²), with labels, as
    /// .npy or .safetensors that NumPy and PyTorch read.
    Encode(codec::EncodeArgs),
    /// Decode a code file (.npy or .safetensors) back to images: PNG files or one grid.
    Decode(codec::DecodeArgs),
    /// Image files to one compact file: the model's codes, quantised (u8 or f16), with the model's
    /// hash so that only the same checkpoint decompresses it.
    Compress(codec::CompressArgs),
    /// A compressed file back to PNG images, with the checkpoint that compressed it.
    Decompress(codec::DecompressArgs),
    /// The autoencoder as a compressor against JPEG and PNG on test images: bytes per image and
    /// PSNR (JSON lines), and a rate-distortion picture.
    CompressBench(rate::RateArgs),
    /// Draw a checkpoint's first-layer weights: one input-shaped tile per unit (dense) or the
    /// kernels (conv).
    Filters(plots::FiltersArgs),
    /// Overlay the training curves of runs (each RUN folder's metrics.jsonl) in one picture.
    Plot(plots::PlotArgs),
    /// A classifier from a trained encoder + a softmax layer, trained on N labels per class
    /// (fine-tuned, --freeze for a linear probe, --from-scratch for the baseline); test error,
    /// confusion.png, metrics.jsonl.
    Classify(Box<classify::ClassifyArgs>),
}

#[derive(clap::Args)]
pub struct DenoiseArgs {
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
pub struct CheckpointArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    /// Dataset for the codes a command needs: mnist or fashion-mnist (default: the data the
    /// checkpoint was trained on, as it records it).
    #[arg(long)]
    dataset: Option<String>,
    #[arg(long)]
    data: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct SampleArgs {
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
pub struct GridArgs {
    #[command(flatten)]
    ckpt: CheckpointArgs,
    /// Points per axis.
    #[arg(long, default_value_t = 15)]
    steps: usize,
    #[arg(long, default_value = "grid.png")]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct InterpolateArgs {
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
pub struct TrainArgs {
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
    /// Start from the weights of this safetensors file: an aegpu checkpoint (its model is used
    /// unless model options are given) or a PyTorch state_dict with the README's names (the model
    /// from the options). The optimiser starts fresh.
    #[arg(long, value_name = "FILE")]
    init_from: Option<PathBuf>,
    /// Seeds the initialisation and the shuffling: the same seed on the same adapter gives the same losses.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first N training examples (quick experiments).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Evaluate on only the first N test examples (quick experiments, the golden-record test).
    #[arg(long)]
    test_limit: Option<usize>,
    /// Keep the data in host memory and copy each step's batch to the GPU (for data larger than
    /// GPU memory; the default keeps it on the GPU and falls back to this when it does not fit).
    #[arg(long)]
    stream_data: bool,
    /// Split the data on the GPU into buffers of at most this many MiB (default: the adapter's
    /// storage binding limit).
    #[arg(long, conflicts_with = "stream_data")]
    chunk_mb: Option<u64>,
    #[command(flatten)]
    submit: SubmitArgs,
    /// How the training step stores hidden activations: f32, or f16 (opt-in; needs shader-f16, see
    /// `aegpu info`): the outputs of dense layers that feed dense layers are stored as f16 and read
    /// by the SGEMM with f32 arithmetic; gradients, weights, the code and the output stay f32.
    #[arg(long, default_value = "f32", value_name = "f32|f16")]
    activations: String,
    /// Stochastic weight averaging (Izmailov et al. 2018): from the end of epoch EPOCH on, keep the
    /// mean of the weights at each epoch's end; model.safetensors holds the mean and the log gives
    /// its test figures (avg_test_*) next to the last weights'. Use a constant learning rate that
    /// keeps the weights moving, e.g. `--init-from` a trained model at a third of its rate.
    #[arg(long, value_name = "EPOCH")]
    average_from: Option<usize>,
    /// Output folder. A folder that holds another run is refused (see --overwrite and --resume).
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Replace the run the output folder holds.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Continue the run saved in this folder (after Ctrl-C, a crash, or to train more epochs with
    /// --epochs TOTAL), exactly as if it had not stopped. Takes its settings from the folder.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// How to train: backprop, or recirculation (Hinton & McClelland 1988: one sigmoid hidden layer,
    /// --layers H, weight changes from differences of activities, no back-propagated error).
    #[arg(long, default_value = "backprop")]
    method: String,
    /// Recirculation: the visible units' regression λ, v = λ·x + (1 − λ)·σ(W_d h + b_d) (default 0.75).
    #[arg(long)]
    regression: Option<f32>,
    /// Greedy layer-wise pre-training before the end-to-end training: layerwise[:EPOCHS] trains each
    /// encoder layer and its mirror as a one-hidden-layer autoencoder on the codes of the layers
    /// below (EPOCHS per layer, default 1); dense models.
    #[arg(long)]
    pretrain: Option<String>,
    /// Masking noise on each layer's input during --pretrain layerwise (stacked denoising
    /// autoencoders): masking:P.
    #[arg(long)]
    pretrain_noise: Option<String>,
    /// The options given on the command line (clap ids), to refuse those that do not apply.
    #[arg(skip)]
    given: Vec<String>,
}

/// `--steps-per-submit K`, shared by the commands that train (`train`, also with `--method
/// recirculation` and `--pretrain layerwise`, and `classify`).
// `group(skip)`: no argument group named after the struct, whose id would show up among the
// given flags `train --resume` checks.
#[derive(clap::Args, Clone, Copy, Debug)]
#[group(skip)]
pub struct SubmitArgs {
    /// Training steps recorded into one command buffer and submitted together. Every value gives
    /// bit-identical results; more saves the per-submit cost, and Ctrl-C stops after the current
    /// group. Streamed data (--stream-data, or data too large for the GPU) always runs one step
    /// per submit.
    #[arg(long, value_name = "K", default_value_t = aegpu::train::DEFAULT_STEPS_PER_SUBMIT)]
    pub steps_per_submit: usize,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    ckpt: CheckpointArgs,
    /// Also write recon.png (and latent.png, grid.png for a 2-D code; samples.png for a VAE) here.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Cli {
    /// Parses the process's arguments (exiting with clap's message on a bad one), noting which
    /// options of `train` were given explicitly rather than defaulted.
    pub fn parse_args() -> Cli {
        use clap::{CommandFactory, FromArgMatches, parser::ValueSource};
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if let (Command::Train(args), Some(("train", sub))) = (&mut cli.command, matches.subcommand()) {
            args.given = sub
                .ids()
                .filter(|id| sub.value_source(id.as_str()) == Some(ValueSource::CommandLine))
                .map(|id| id.to_string())
                .collect();
        }
        cli
    }
}

/// Runs one command of the command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info => info(),
        Command::Train(args) => train::train_cmd(*args),
        Command::Eval(args) => tools::eval_cmd(args),
        Command::Bench(args) => aegpu::bench::run(&args).map(|report| say!("{}", report.trim_end())),
        Command::Profile(args) => profile::profile_cmd(args),
        Command::Sample(args) => tools::sample_cmd(args),
        Command::Grid(args) => tools::grid_cmd(args),
        Command::Interpolate(args) => tools::interpolate_cmd(args),
        Command::Denoise(args) => tools::denoise_cmd(args),
        Command::ExportImages(args) => data::export_cmd(args),
        Command::Pca(args) => pca::pca_cmd(args),
        Command::Encode(args) => codec::encode_cmd(args),
        Command::Decode(args) => codec::decode_cmd(args),
        Command::Compress(args) => codec::compress_cmd(args),
        Command::Decompress(args) => codec::decompress_cmd(args),
        Command::CompressBench(args) => rate::rate_cmd(args),
        Command::Filters(args) => plots::filters_cmd(args),
        Command::Plot(args) => plots::plot_cmd(args),
        Command::Classify(args) => classify::classify_cmd(*args),
    }
}

fn info() -> Result<()> {
    let gpu = Gpu::new(&GpuOptions::default())?;
    say!("adapter:   {}", gpu.describe());
    say!("features:  {:?}", gpu.features);
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let coop = match (
        gpu.offers_cooperative_matrix(),
        gpu.features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
    ) {
        (false, _) => "no".to_string(),
        (true, on) => format!(
            "yes ({}){}",
            aegpu::kernels::matmul_coop::describe(&gpu.cooperative_matrices),
            if on { "" } else { "; AEGPU_COOPERATIVE_MATRIX=1 uses them" }
        ),
    };
    say!("precision: f16 storage (shader-f16) {}; cooperative matrices {coop}", yes_no(gpu.has_f16()));
    let l = &gpu.limits;
    say!(
        "limits:    max_buffer_size {} B, max_storage_buffer_binding_size {} B, storage offset alignment {} B",
        l.max_buffer_size,
        l.max_storage_buffer_binding_size,
        l.min_storage_buffer_offset_alignment
    );
    say!(
        "           workgroup storage {} B, invocations/workgroup {}, workgroups/dimension {}",
        l.max_compute_workgroup_storage_size,
        l.max_compute_invocations_per_workgroup,
        l.max_compute_workgroups_per_dimension
    );
    say!(
        "subgroups: {}-{} lanes; timestamp period {} ns{}",
        gpu.info.subgroup_min_size,
        gpu.info.subgroup_max_size,
        gpu.queue.get_timestamp_period(),
        if gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY) { "" } else { " (no timestamp queries)" }
    );
    let t = gpu.tuning()?;
    say!("matmul:    {} ({})", t.policy.name(), t.source);
    for c in &t.classes {
        let measured: Vec<String> = c.measured.iter().map(|(v, g)| format!("{v:?} {g:.2}")).collect();
        let [m, n, k] = c.shape;
        say!("           {:<6} {m}x{n}x{k}, GFLOP/s: {}", c.class, measured.join(", "));
    }
    for (name, why) in &t.failed {
        say!("           {name}: wrong on this adapter, not used ({why})");
    }
    Ok(())
}

pub(crate) fn parse_act(s: &str, what: &str) -> Result<Activation> {
    Activation::parse(s).ok_or_else(|| {
        Error::Config(format!("--{what} '{s}': use identity, relu, leaky_relu[:slope], sigmoid or tanh"))
    })
}
