//! The commands that use a checkpoint: eval, sample, grid, interpolate, denoise.

use super::data::{for_display, load_source, upload};
use super::train::write_pictures;
use super::{CheckpointArgs, DataArgs, DenoiseArgs, EvalArgs, GridArgs, InterpolateArgs, SampleArgs};
use aegpu::checkpoint;
use aegpu::data::{self, U8Map};
use aegpu::error::{Error, Result};
use aegpu::generate;
use aegpu::gpu::{Gpu, GpuOptions};
use aegpu::models::dense::Noise;
use aegpu::models::{Autoencoder, Pass};
use aegpu::train::{Evaluator, Residency};

/// A checkpoint's model on a fresh GPU, with the test split of its data: the source the checkpoint
/// records (`aegpu.data`), or MNIST / Fashion-MNIST when `--dataset` or `--data` is given (and for
/// checkpoints from before sources were recorded). With the byte map of whitened patches (their
/// values are not pixels).
struct Opened {
    gpu: Gpu,
    model: Autoencoder,
    test: data::Dataset,
    map: Option<U8Map>,
    /// The checkpoint's metadata (its tensors are in the model).
    ckpt: checkpoint::Checkpoint,
}

/// Loads and checks the checkpoint (strictly: its tensors fit its model, its weights are finite)
/// before anything else is read.
fn open_checkpoint(args: &CheckpointArgs) -> Result<Opened> {
    let mut ckpt = checkpoint::load(&args.checkpoint)?;
    let source = match (ckpt.data_source()?, &args.dataset, &args.data) {
        (Some(source), None, None) => source,
        (_, dataset, dir) => {
            let name = dataset.clone().or_else(|| ckpt.metadata.get(checkpoint::keys::DATASET).cloned());
            DataArgs::idx(name.as_deref().unwrap_or("mnist"), dir.clone()).source()?
        }
    };
    let (split, map) = load_source(&source)?;
    let gpu = Gpu::new(&GpuOptions::default())?;
    let model = checkpoint::restore(&gpu, &ckpt, &args.checkpoint)?;
    ckpt.tensors = Vec::new();
    let input = model.input_dim();
    if split.test.dim() != input {
        return Err(Error::Shape(format!(
            "{} images have {} values ({}x{}x{}) but the checkpoint's model takes {input}",
            source.name(),
            split.test.dim(),
            split.test.channels,
            split.test.rows,
            split.test.cols
        )));
    }
    Ok(Opened { gpu, model, test: split.test, map, ckpt })
}

/// Refuses outputs with a NaN or an infinity: finite weights can still overflow, and a picture or a
/// metric of NaN must not pass for a result.
fn finite(args: &CheckpointArgs, what: &str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::NonFiniteOutput {
            path: args.checkpoint.clone(),
            what: format!("{what} (value {i} is {})", values[i]),
        }),
    }
}

/// The codes of every test image (a VAE's posterior means), finite.
fn test_codes(o: &Opened, args: &CheckpointArgs) -> Result<Vec<f32>> {
    let test_gpu = upload(&o.gpu, &o.test, o.map, Residency::Auto)?;
    let codes = Evaluator::new(&o.gpu, &o.model, &test_gpu, 1000)?.run(0)?.codes;
    finite(args, "test codes", &codes)?;
    Ok(codes)
}

/// Decodes `codes`, refusing non-finite images.
fn decode(o: &Opened, args: &CheckpointArgs, codes: &[f32]) -> Result<Vec<f32>> {
    let images = generate::decode(&o.gpu, &o.model, codes)?;
    finite(args, "decoded images", &images)?;
    Ok(for_display(&images, o.map))
}

pub(super) fn sample_cmd(args: SampleArgs) -> Result<()> {
    if args.n == 0 {
        return Err(Error::Config("--n must be at least 1".into()));
    }
    let o = open_checkpoint(&args.ckpt)?;
    // A plain autoencoder has no prior: fit one to its test codes.
    let data_codes = if o.model.variational().is_some() { Vec::new() } else { test_codes(&o, &args.ckpt)? };
    let codes = generate::sample_codes(&o.model, &data_codes, args.n, args.seed);
    let images = decode(&o, &args.ckpt, &codes)?;
    let cols = (args.n as f64).sqrt().ceil() as usize;
    aegpu::viz::save_image_grid(&args.out, &images, args.n, o.test.shape(), cols, 2)?;
    note!("wrote {} ({} samples)", args.out.display(), args.n);
    Ok(())
}

pub(super) fn grid_cmd(args: GridArgs) -> Result<()> {
    let o = open_checkpoint(&args.ckpt)?;
    if o.model.code_dim() != 2 {
        return Err(Error::Config(format!(
            "a latent grid needs a 2-D code; this model's code has {} dimensions",
            o.model.code_dim()
        )));
    }
    let data_codes = if o.model.variational().is_some() { Vec::new() } else { test_codes(&o, &args.ckpt)? };
    let codes = generate::grid_codes(&o.model, &data_codes, args.steps)?;
    let images = decode(&o, &args.ckpt, &codes)?;
    let n = args.steps * args.steps;
    aegpu::viz::save_image_grid(&args.out, &images, n, o.test.shape(), args.steps, 1)?;
    note!("wrote {} ({}x{} decoded grid)", args.out.display(), args.steps, args.steps);
    Ok(())
}

pub(super) fn interpolate_cmd(args: InterpolateArgs) -> Result<()> {
    let o = open_checkpoint(&args.ckpt)?;
    let test = &o.test;
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
    let codes = test_codes(&o, &args.ckpt)?;
    let d = o.model.code_dim();
    let line = generate::interpolate_codes(
        &codes[args.from * d..(args.from + 1) * d],
        &codes[args.to * d..(args.to + 1) * d],
        args.steps,
    );
    let images = decode(&o, &args.ckpt, &line)?;
    let dim = test.dim();
    // Row: the real first image, the decoded path, the real second image.
    let mut row = test.images_f32(args.from..args.from + 1);
    row.extend_from_slice(&images);
    row.extend(test.images_f32(args.to..args.to + 1));
    let n = row.len() / dim;
    aegpu::viz::save_image_grid(&args.out, &row, n, test.shape(), n, 2)?;
    note!(
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

pub(super) fn eval_cmd(args: EvalArgs) -> Result<()> {
    let o = open_checkpoint(&args.ckpt)?;
    let (gpu, model, test) = (&o.gpu, &o.model, &o.test);
    let (epoch, step) = (o.ckpt.epoch()?, o.ckpt.step()?);
    match (epoch, step) {
        (Some(e), Some(s)) => note!("checkpoint: epoch {e} (step {s})"),
        (Some(e), None) => note!("checkpoint: epoch {e}"),
        (None, _) => note!("checkpoint: epoch unknown (checkpoint from before epochs were recorded)"),
    }
    let test_gpu = upload(gpu, test, o.map, Residency::Auto)?;
    let out = Evaluator::new(gpu, model, &test_gpu, 1000)?.run(16)?;
    let m = out.metrics;
    let mut metrics = vec![
        ("test_loss", m.loss),
        ("test_mse_px", m.mse_px),
        ("test_bce_px", m.bce_px),
        ("test_psnr_db", super::train::psnr_db(m.mse_px)),
    ];
    if let Some((recon, kl, elbo)) = m.vae {
        metrics.extend([("test_recon_nats", recon), ("test_kl", kl), ("test_elbo_nats", elbo)]);
        // The same test set decoded from z = μ: the reconstruction without the sampling noise.
        let at_mu = Evaluator::with_pass(gpu, model, &test_gpu, 1000, Pass::EVAL_MEAN)?.run(0)?.metrics;
        metrics.extend([
            ("test_recon_nats_at_mu", at_mu.vae.map_or(f64::NAN, |v| v.0)),
            ("test_mse_px_at_mu", at_mu.mse_px),
            ("test_bce_px_at_mu", at_mu.bce_px),
            ("test_psnr_db_at_mu", super::train::psnr_db(at_mu.mse_px)),
        ]);
    }
    if model.corrupts_input() {
        // A denoising model's test metrics above reconstruct corrupted inputs; these are the same
        // test images given clean, the figure to compare with a plain autoencoder's.
        let clean = Evaluator::with_pass(gpu, model, &test_gpu, 1000, Pass::INFER)?.run(0)?.metrics;
        metrics.extend([
            ("test_loss_clean", clean.loss),
            ("test_mse_px_clean", clean.mse_px),
            ("test_bce_px_clean", clean.bce_px),
            ("test_psnr_db_clean", super::train::psnr_db(clean.mse_px)),
        ]);
    }
    if let Some((name, value)) = metrics.iter().find(|(_, v)| !v.is_finite()) {
        let what = format!("test metrics ({name} = {value})");
        return Err(Error::NonFiniteOutput { path: args.ckpt.checkpoint.clone(), what });
    }
    finite(&args.ckpt, "test codes", &out.codes)?;
    finite(&args.ckpt, "reconstructions", &out.recon)?;
    let mut json = serde_json::json!({
        "checkpoint": args.ckpt.checkpoint.display().to_string(),
        "dataset": test.name,
        "model": model.describe(),
        "epoch": epoch,
        "step": step,
    });
    for (name, value) in metrics {
        json[name] = value.into();
    }
    say!("{json}");
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        write_pictures(gpu, model, dir, test, o.map, &out)?;
    }
    Ok(())
}

pub(super) fn denoise_cmd(args: DenoiseArgs) -> Result<()> {
    let noise = Noise::parse(&args.noise)?;
    let o = open_checkpoint(&args.ckpt)?;
    if o.map.is_some() {
        return Err(Error::Config(
            "denoise corrupts pixels in [0, 1]; this model was trained on whitened patches".into(),
        ));
    }
    let test = &o.test;
    let clean = test.images_f32(0..test.n);
    let out = generate::denoise(&o.gpu, &o.model, &clean, noise, args.seed)?;
    finite(&args.ckpt, "denoised images", &out.denoised)?;
    let dim = test.dim();
    let noisy_psnr = generate::mean_psnr(&out.noisy, &clean, dim);
    let denoised_psnr = generate::mean_psnr(&out.denoised, &clean, dim);
    say!(
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
    aegpu::viz::save_labelled_rows(&args.out, &rows, test.shape(), 2)?;
    note!("wrote {}", args.out.display());
    Ok(())
}
