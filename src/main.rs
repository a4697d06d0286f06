//! The `aegpu` command line: info, train, eval, bench.

use aegpu::checkpoint;
use aegpu::data::{self, DatasetName};
use aegpu::error::{Error, Result};
use aegpu::gpu::{Gpu, GpuOptions};
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::models::dense::{DenseAutoencoder, DenseConfig};
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
    /// Train an autoencoder; writes metrics.jsonl, model.safetensors, recon.png (and latent.png for a 2-D code).
    Train(TrainArgs),
    /// Recompute the test metrics of a checkpoint (and its pictures with --out).
    Eval(EvalArgs),
    /// Kernel GFLOP/s on this GPU vs the CPU baseline, and training-step throughput.
    Bench(aegpu::bench::BenchArgs),
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
    /// Model family (dense for now).
    #[arg(long, default_value = "dense")]
    model: String,
    /// A known architecture: shallow (784-32-784, ReLU code) or deep (784-512-256-64-2, linear code).
    /// Overrides --layers and the activations.
    #[arg(long)]
    preset: Option<String>,
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
    /// Seeds the initialisation and the shuffling: the same seed on the same adapter gives the same losses.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first N training examples (quick experiments).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Output folder.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct EvalArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    /// Dataset to evaluate on (default: the one the checkpoint was trained on).
    #[arg(long)]
    dataset: Option<DatasetName>,
    #[arg(long)]
    data: Option<PathBuf>,
    /// Also write recon.png (and latent.png for a 2-D code) here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info(),
        Command::Train(args) => train_cmd(args),
        Command::Eval(args) => eval_cmd(args),
        Command::Bench(args) => aegpu::bench::run(&args),
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
    let measured: Vec<String> = t
        .measured
        .iter()
        .map(|(v, g)| format!("{v:?} {g:.2} GFLOP/s"))
        .collect();
    println!(
        "matmul:    {:?} ({}; {}x{}x{}: {})",
        t.matmul,
        t.source,
        t.shape[0],
        t.shape[1],
        t.shape[2],
        if measured.is_empty() {
            "forced".to_string()
        } else {
            measured.join(", ")
        }
    );
    Ok(())
}

fn parse_act(s: &str, what: &str) -> Result<Activation> {
    Activation::parse(s).ok_or_else(|| {
        Error::Config(format!(
            "--{what} '{s}': use identity, relu, leaky_relu[:slope], sigmoid or tanh"
        ))
    })
}

fn load_split(args: &DataArgs) -> Result<data::Split> {
    let dir = data::resolve_data_dir(args.data.as_deref())?;
    data::load(args.dataset, &dir)
}

fn train_cmd(args: TrainArgs) -> Result<()> {
    if args.model != "dense" {
        return Err(Error::Config(format!(
            "--model '{}': only 'dense' is available in this version",
            args.model
        )));
    }
    if args.epochs == 0 {
        return Err(Error::Config("--epochs must be at least 1".into()));
    }
    let loss = LossKind::parse(&args.loss)
        .ok_or_else(|| Error::Config(format!("--loss '{}': use mse or bce", args.loss)))?;
    let optimizer = Optimizer::parse(&args.optimizer, args.lr, args.weight_decay)?;
    let mut split = load_split(&args.data)?;
    if let Some(n) = args.train_limit {
        if n == 0 {
            return Err(Error::Config("--train-limit must be at least 1".into()));
        }
        split.train = split.train.subset(0..n.min(split.train.n));
    }
    let input = split.train.dim();
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
    let gpu = Gpu::new(&GpuOptions::default())?;
    let model = DenseAutoencoder::new(&gpu, config.clone(), args.seed)?;
    let train_gpu = GpuDataset::upload(&gpu, &split.train)?;
    let test_gpu = GpuDataset::upload(&gpu, &split.test)?;
    let tc = TrainConfig {
        epochs: args.epochs,
        batch: args.batch,
        optimizer,
        seed: args.seed,
    };

    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let metrics_path = args.out.join("metrics.jsonl");
    let mut metrics =
        std::fs::File::create(&metrics_path).map_err(|e| Error::io(&metrics_path, e))?;
    let ckpt_path = args.out.join("model.safetensors");
    let meta = vec![
        (
            "aegpu.train",
            serde_json::to_string(&tc).unwrap_or_default(),
        ),
        ("aegpu.dataset", args.data.dataset.to_string()),
        ("aegpu.adapter", gpu.describe()),
    ];
    eprintln!("adapter: {}", gpu.describe());
    eprintln!(
        "model:   dense {} ({} parameters), loss {:?}, {:?}, batch {}, {} train / {} test examples of {}",
        config.describe(),
        config.parameter_count(),
        loss,
        optimizer,
        args.batch,
        split.train.n,
        split.test.n,
        args.data.dataset
    );
    train::train(
        &gpu,
        &model,
        &train_gpu,
        &test_gpu,
        &tc,
        !args.quiet,
        |m, _| {
            println!(
                "epoch {:>3}/{}  train_loss {:.5}  test_loss {:.5}  test_mse_px {:.5}  test_bce_px {:.5}  {:.1} s  {:.0} samples/s",
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
            writeln!(metrics, "{line}")
                .and_then(|_| metrics.flush())
                .map_err(|e| Error::io(&metrics_path, e))?;
            checkpoint::save(&gpu, &model, &meta, &ckpt_path)
        },
    )?;
    let evaluator = Evaluator::new(&gpu, &model, &test_gpu, 1000)?;
    let out = evaluator.run(16)?;
    write_pictures(&args.out, &split.test, &config, &out, args.data.dataset)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn write_pictures(
    dir: &Path,
    test: &data::Dataset,
    config: &DenseConfig,
    out: &EvalOutput,
    name: DatasetName,
) -> Result<()> {
    let k = out.recon.len() / test.dim();
    let originals = test.images_f32(0..k);
    aegpu::viz::save_recon_png(
        &dir.join("recon.png"),
        &originals,
        &out.recon,
        k,
        test.rows,
        test.cols,
        16,
    )?;
    if config.code_dim() == 2 {
        let names = name.class_names();
        let title = format!("{} test codes, dense {}", name, config.describe());
        aegpu::viz::save_latent_png(
            &dir.join("latent.png"),
            &out.codes,
            &test.labels,
            &names,
            &title,
        )?;
    }
    Ok(())
}

fn eval_cmd(args: EvalArgs) -> Result<()> {
    let ckpt = checkpoint::load(&args.checkpoint)?;
    let dataset = match args.dataset {
        Some(d) => d,
        None => ckpt
            .metadata
            .get("aegpu.dataset")
            .and_then(|s| s.parse().ok())
            .unwrap_or(DatasetName::Mnist),
    };
    let split = load_split(&DataArgs {
        dataset,
        data: args.data.clone(),
    })?;
    let gpu = Gpu::new(&GpuOptions::default())?;
    let model = checkpoint::restore(&gpu, &ckpt, &args.checkpoint)?;
    let test_gpu = GpuDataset::upload(&gpu, &split.test)?;
    let evaluator = Evaluator::new(&gpu, &model, &test_gpu, 1000)?;
    let out = evaluator.run(16)?;
    let m = out.metrics;
    println!(
        "{}",
        serde_json::json!({
            "checkpoint": args.checkpoint.display().to_string(),
            "dataset": dataset.to_string(),
            "test_loss": m.loss,
            "test_mse_px": m.mse_px,
            "test_bce_px": m.bce_px,
        })
    );
    if let Some(dir) = args.out {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        write_pictures(&dir, &split.test, &model.config, &out, dataset)?;
    }
    Ok(())
}
