//! The commands that use a checkpoint: eval, sample, grid, interpolate, denoise.

use super::data::{for_display, load_source, upload};
use super::train::write_pictures;
use super::{CheckpointArgs, DataArgs, DenoiseArgs, EvalArgs, GridArgs, InterpolateArgs, SampleArgs};
use crate::checkpoint;
use crate::data::U8Map;
use crate::data::{self, DataSource};
use crate::error::{Error, Result};
use crate::generate;
use crate::gpu::{Gpu, GpuOptions};
use crate::models::Autoencoder;
use crate::models::dense::Noise;
use crate::train::{Evaluator, Residency};

/// A checkpoint's model on a fresh GPU, with the test split of its data: the source the checkpoint
/// records (`aegpu.data`), or MNIST / Fashion-MNIST when `--dataset` or `--data` is given (and for
/// checkpoints from before sources were recorded).
/// With the byte map of whitened patches (their values are not pixels).
type Opened = (Gpu, Autoencoder, data::Dataset, Option<U8Map>);

fn open_checkpoint(args: &CheckpointArgs) -> Result<Opened> {
    let ckpt = checkpoint::load(&args.checkpoint)?;
    let recorded = ckpt.metadata.get("aegpu.data").map(|json| {
        serde_json::from_str::<DataSource>(json).map_err(|e| Error::BadCheckpoint {
            path: args.checkpoint.clone(),
            reason: format!("its 'aegpu.data' entry is not a data source: {e}"),
        })
    });
    let source = match (recorded, &args.dataset, &args.data) {
        (Some(source), None, None) => source?,
        (_, dataset, dir) => {
            let name = dataset.clone().or_else(|| ckpt.metadata.get("aegpu.dataset").cloned());
            DataArgs::idx(name.as_deref().unwrap_or("mnist"), dir.clone()).source()?
        }
    };
    let (split, map) = load_source(&source)?;
    let gpu = Gpu::new(&GpuOptions::default())?;
    let model = checkpoint::restore(&gpu, &ckpt, &args.checkpoint)?;
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
    Ok((gpu, model, split.test, map))
}

/// The codes of every test image (a VAE's posterior means).
fn test_codes(gpu: &Gpu, model: &Autoencoder, test: &data::Dataset, map: Option<U8Map>) -> Result<Vec<f32>> {
    let test_gpu = upload(gpu, test, map, Residency::Auto)?;
    Ok(Evaluator::new(gpu, model, &test_gpu, 1000)?.run(0)?.codes)
}

pub(super) fn sample_cmd(args: SampleArgs) -> Result<()> {
    if args.n == 0 {
        return Err(Error::Config("--n must be at least 1".into()));
    }
    let (gpu, model, test, map) = open_checkpoint(&args.ckpt)?;
    sample_with(&gpu, &model, &test, map, &args)
}

fn sample_with(
    gpu: &Gpu,
    model: &Autoencoder,
    test: &data::Dataset,
    map: Option<U8Map>,
    args: &SampleArgs,
) -> Result<()> {
    // A plain autoencoder has no prior: fit one to its test codes.
    let data_codes =
        if model.variational().is_some() { Vec::new() } else { test_codes(gpu, model, test, map)? };
    let codes = generate::sample_codes(model, &data_codes, args.n, args.seed);
    let images = for_display(&generate::decode(gpu, model, &codes)?, map);
    let cols = (args.n as f64).sqrt().ceil() as usize;
    crate::viz::save_image_grid(&args.out, &images, args.n, test.shape(), cols, 2)?;
    eprintln!("wrote {} ({} samples)", args.out.display(), args.n);
    Ok(())
}

pub(super) fn grid_cmd(args: GridArgs) -> Result<()> {
    let (gpu, model, test, map) = open_checkpoint(&args.ckpt)?;
    grid_with(&gpu, &model, &test, map, &args)
}

fn grid_with(
    gpu: &Gpu,
    model: &Autoencoder,
    test: &data::Dataset,
    map: Option<U8Map>,
    args: &GridArgs,
) -> Result<()> {
    if model.code_dim() != 2 {
        return Err(Error::Config(format!(
            "a latent grid needs a 2-D code; this model's code has {} dimensions",
            model.code_dim()
        )));
    }
    let data_codes =
        if model.variational().is_some() { Vec::new() } else { test_codes(gpu, model, test, map)? };
    let codes = generate::grid_codes(model, &data_codes, args.steps)?;
    let images = for_display(&generate::decode(gpu, model, &codes)?, map);
    let n = args.steps * args.steps;
    crate::viz::save_image_grid(&args.out, &images, n, test.shape(), args.steps, 1)?;
    eprintln!("wrote {} ({}x{} decoded grid)", args.out.display(), args.steps, args.steps);
    Ok(())
}

pub(super) fn interpolate_cmd(args: InterpolateArgs) -> Result<()> {
    let (gpu, model, test, map) = open_checkpoint(&args.ckpt)?;
    interpolate_with(&gpu, &model, &test, map, &args)
}

fn interpolate_with(
    gpu: &Gpu,
    model: &Autoencoder,
    test: &data::Dataset,
    map: Option<U8Map>,
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
    let codes = test_codes(gpu, model, test, map)?;
    let d = model.code_dim();
    let line = generate::interpolate_codes(
        &codes[args.from * d..(args.from + 1) * d],
        &codes[args.to * d..(args.to + 1) * d],
        args.steps,
    );
    let images = for_display(&generate::decode(gpu, model, &line)?, map);
    let dim = test.dim();
    // Row: the real first image, the decoded path, the real second image.
    let mut row = test.images_f32(args.from..args.from + 1);
    row.extend_from_slice(&images);
    row.extend(test.images_f32(args.to..args.to + 1));
    let n = row.len() / dim;
    crate::viz::save_image_grid(&args.out, &row, n, test.shape(), n, 2)?;
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

pub(super) fn eval_cmd(args: EvalArgs) -> Result<()> {
    let (gpu, model, test, map) = open_checkpoint(&args.ckpt)?;
    eval_with(&gpu, &model, &test, map, &args)
}

fn eval_with(
    gpu: &Gpu,
    model: &Autoencoder,
    test: &data::Dataset,
    map: Option<U8Map>,
    args: &EvalArgs,
) -> Result<()> {
    let test_gpu = upload(gpu, test, map, Residency::Auto)?;
    let out = Evaluator::new(gpu, model, &test_gpu, 1000)?.run(16)?;
    let m = out.metrics;
    let mut json = serde_json::json!({
        "checkpoint": args.ckpt.checkpoint.display().to_string(),
        "dataset": test.name,
        "model": model.describe(),
        "test_loss": m.loss,
        "test_mse_px": m.mse_px,
        "test_bce_px": m.bce_px,
        "test_psnr_db": super::train::psnr_db(m.mse_px),
    });
    if let Some((recon, kl, elbo)) = m.vae {
        json["test_recon_nats"] = recon.into();
        json["test_kl"] = kl.into();
        json["test_elbo_nats"] = elbo.into();
    }
    println!("{json}");
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        write_pictures(gpu, model, dir, test, map, &out)?;
    }
    Ok(())
}

pub(super) fn denoise_cmd(args: DenoiseArgs) -> Result<()> {
    let noise = Noise::parse(&args.noise)?;
    let (gpu, model, test, map) = open_checkpoint(&args.ckpt)?;
    if map.is_some() {
        return Err(Error::Config(
            "denoise corrupts pixels in [0, 1]; this model was trained on whitened patches".into(),
        ));
    }
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
    crate::viz::save_labelled_rows(&args.out, &rows, test.shape(), 2)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
