//! Using a trained model's decoder: samples, a decoded grid over a 2-D latent space, and
//! interpolation between the codes of two images.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::models::dense::Noise;
use crate::models::{Activations, Autoencoder, Pass, activations_fitting};
use crate::runner::Plan;

/// Decodes `codes` (`[n, code_dim]`, row-major) into images (`[n, input]`, after the output activation).
pub fn decode(gpu: &Gpu, model: &Autoencoder, codes: &[f32]) -> Result<Vec<f32>> {
    let d = model.code_dim();
    if codes.is_empty() || !codes.len().is_multiple_of(d) {
        return Err(Error::Shape(format!(
            "{} code values are not a whole number of {d}-D codes",
            codes.len()
        )));
    }
    let n = codes.len() / d;
    let acts = model.activations(gpu, n)?;
    model.code_input(&acts).write(gpu, codes)?;
    Plan::new(gpu, "decode", &model.decoder(&acts, model.matmul_policy(gpu)?))?.run(gpu)?;
    let act = model.output_activation();
    Ok(acts.logits().read(gpu)?.iter().map(|&z| crate::cpu::activation::activate(z, act)).collect())
}

/// `n` codes to sample from: N(0, I) for a VAE (its prior); for a plain autoencoder, which has no
/// prior, a diagonal Gaussian fitted to `data_codes` (the codes of real data).
pub fn sample_codes(model: &Autoencoder, data_codes: &[f32], n: usize, seed: u64) -> Vec<f32> {
    let d = model.code_dim();
    // The same Philox stream as the GPU generator, drawn on the host (a handful of numbers).
    let mut normals = vec![0.0f32; n * d];
    crate::cpu::random::random_normal(&mut normals, seed, 0);
    if model.variational().is_some() || data_codes.is_empty() {
        return normals;
    }
    let m = data_codes.len() / d;
    let mut mean = vec![0.0f64; d];
    let mut var = vec![0.0f64; d];
    for row in data_codes.chunks(d) {
        for j in 0..d {
            mean[j] += row[j] as f64 / m as f64;
        }
    }
    for row in data_codes.chunks(d) {
        for j in 0..d {
            var[j] += (row[j] as f64 - mean[j]).powi(2) / m as f64;
        }
    }
    normals.iter().enumerate().map(|(i, &e)| (mean[i % d] + var[i % d].sqrt() * e as f64) as f32).collect()
}

/// A `steps x steps` grid of 2-D codes, row-major with the second coordinate decreasing down the rows
/// (so the picture reads like a plot). A VAE spans its prior's quantiles 5%..95%; a plain autoencoder
/// spans the 1st..99th percentiles of `data_codes`.
pub fn grid_codes(model: &Autoencoder, data_codes: &[f32], steps: usize) -> Result<Vec<f32>> {
    if model.code_dim() != 2 {
        return Err(Error::Config(format!(
            "a latent grid needs a 2-D code; this model's code has {} dimensions",
            model.code_dim()
        )));
    }
    if steps < 2 {
        return Err(Error::Config("--steps must be at least 2".into()));
    }
    let axis = |j: usize| -> Vec<f32> {
        let t = |i: usize| i as f64 / (steps - 1) as f64;
        if model.variational().is_some() || data_codes.is_empty() {
            (0..steps).map(|i| inverse_normal_cdf(0.05 + 0.9 * t(i)) as f32).collect()
        } else {
            let mut v: Vec<f32> = data_codes.chunks(2).map(|c| c[j]).collect();
            v.sort_by(f32::total_cmp);
            let (lo, hi) = (v[v.len() / 100], v[v.len() * 99 / 100]);
            (0..steps).map(|i| lo + (hi - lo) * t(i) as f32).collect()
        }
    };
    let (xs, ys) = (axis(0), axis(1));
    let mut codes = Vec::with_capacity(steps * steps * 2);
    for y in ys.iter().rev() {
        for x in &xs {
            codes.extend([*x, *y]);
        }
    }
    Ok(codes)
}

/// `steps` codes on the straight line from `a` to `b`, both ends included.
pub fn interpolate_codes(a: &[f32], b: &[f32], steps: usize) -> Vec<f32> {
    let steps = steps.max(2);
    (0..steps)
        .flat_map(|i| {
            let t = i as f32 / (steps - 1) as f32;
            a.iter().zip(b).map(move |(x, y)| x + t * (y - x))
        })
        .collect()
}

/// Φ⁻¹(p) for p in (0, 1): Acklam's rational approximation (relative error < 1.2e-9).
#[allow(clippy::excessive_precision)] // the published coefficients, verbatim
pub fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Result of [`denoise`]: the corrupted inputs and the model's reconstructions of them.
pub struct Denoised {
    /// The corrupted inputs, `[n, input]`, as the model read them.
    pub noisy: Vec<f32>,
    /// The reconstructions of `noisy`, after the output activation, `[n, input]`.
    pub denoised: Vec<f32>,
}

/// Corrupts `clean` (`[n, input]`) on the GPU with `noise` (a fresh stream per batch of up to 1000,
/// repeatable for a given `seed`) and reconstructs the corrupted images.
pub fn denoise(gpu: &Gpu, model: &Autoencoder, clean: &[f32], noise: Noise, seed: u64) -> Result<Denoised> {
    let dim = model.input_dim();
    if clean.is_empty() || !clean.len().is_multiple_of(dim) {
        return Err(Error::Shape(format!(
            "{} values are not a whole number of {dim}-pixel images",
            clean.len()
        )));
    }
    noise.validate()?;
    let n = clean.len() / dim;
    let variant = model.matmul_policy(gpu)?;
    let act = model.output_activation();
    let mut out =
        Denoised { noisy: Vec::with_capacity(clean.len()), denoised: Vec::with_capacity(clean.len()) };
    let mut plans: Vec<(usize, Activations, Plan)> = Vec::new();
    let (full, acts) = activations_fitting(model, gpu, n.min(1000))?;
    let mut first = Some(acts);
    for (k, chunk) in clean.chunks(full * dim).enumerate() {
        let batch = chunk.len() / dim;
        if !plans.iter().any(|(b, _, _)| *b == batch) {
            let acts = match first.take() {
                Some(acts) => acts,
                None => model.activations(gpu, batch)?,
            };
            // Corrupt in place, then the evaluation forward (no dropout) on the corrupted input.
            let mut launches = vec![noise.launch(&acts.input(), &acts.input(), batch * dim, seed)];
            launches.extend(model.forward(&acts, variant, Pass::INFER));
            let plan = Plan::new(gpu, "denoise", &launches)?;
            plans.push((batch, acts, plan));
        }
        let (_, acts, plan) = plans.iter().find(|(b, _, _)| *b == batch).expect("plan built above");
        acts.input().write(gpu, chunk)?;
        plan.advance(gpu, k as u64, 0);
        plan.run(gpu)?;
        out.noisy.extend(acts.input().read(gpu)?);
        out.denoised
            .extend(acts.logits().read(gpu)?.iter().map(|&z| crate::cpu::activation::activate(z, act)));
    }
    debug_assert_eq!(out.noisy.len(), n * dim);
    Ok(out)
}

/// Mean over images of the peak signal-to-noise ratio (peak 1) of `x` against `reference`, in dB.
/// A perfect image counts as 100 dB; a NaN anywhere gives NaN (not a perfect score).
pub fn mean_psnr(x: &[f32], reference: &[f32], dim: usize) -> f64 {
    let images = x.len() / dim;
    let total: f64 = x
        .chunks(dim)
        .zip(reference.chunks(dim))
        .map(|(a, b)| {
            let mse = a.iter().zip(b).map(|(p, q)| (*p as f64 - *q as f64).powi(2)).sum::<f64>() / dim as f64;
            match mse {
                m if m.is_nan() => f64::NAN,
                m if m > 0.0 => (10.0 * (1.0 / m).log10()).min(100.0),
                _ => 100.0,
            }
        })
        .sum();
    total / images.max(1) as f64
}
