//! A model's encoder and decoder over many images, in batches that fit the adapter: the codes
//! that `aegpu encode`, `compress` and `pca --checkpoint` read, and the images they decode to.
//!
//! Encoding runs the layers up to the code with no corruption and no dropout; a VAE's code row is
//! `[μ, log σ²]` ([`means`] keeps μ). Decoding a VAE decodes μ itself, not a sample around it, so
//! encode -> decode is deterministic for every model.

use crate::error::{Error, Result};
use crate::generate;
use crate::gpu::Gpu;
use crate::models::{Autoencoder, activations_fitting};
use crate::runner::Plan;

/// Images per batch at most (a conv model's activations may need fewer: see `activations_fitting`).
const BATCH: usize = 1000;

/// The code layer's output for every row of `images` (`[n, input_dim]`): `[n, code_width]`
/// (a VAE's rows are `[μ, log σ²]`).
pub fn encode(gpu: &Gpu, model: &Autoencoder, images: &[f32]) -> Result<Vec<f32>> {
    let dim = model.input_dim();
    let n = rows(images, dim, "image")?;
    let variant = model.matmul_policy(gpu)?;
    let width = model.code_width();
    let (full, acts) = activations_fitting(model, gpu, n.min(BATCH))?;
    let mut plans = vec![(full, Plan::new(gpu, "encode", &model.encoder(&acts, variant))?, acts)];
    let mut codes = Vec::with_capacity(n * width);
    for chunk in images.chunks(full * dim) {
        let batch = chunk.len() / dim;
        if !plans.iter().any(|(b, _, _)| *b == batch) {
            let acts = model.activations(gpu, batch)?;
            plans.push((batch, Plan::new(gpu, "encode", &model.encoder(&acts, variant))?, acts));
        }
        let (_, plan, acts) = plans.iter().find(|(b, _, _)| *b == batch).expect("built above");
        acts.input().write(gpu, chunk)?;
        plan.run(gpu)?;
        codes.extend(acts.code().read(gpu)?);
    }
    Ok(codes)
}

/// The codes the decoder reads: every row of `codes` (`[n, code_width]`) cut to its first
/// `code_dim` values (a VAE's μ; a plain autoencoder's code unchanged).
pub fn means(model: &Autoencoder, codes: &[f32]) -> Vec<f32> {
    let (width, d) = (model.code_width(), model.code_dim());
    codes.chunks(width).flat_map(|row| row[..d].iter().copied()).collect()
}

/// Decodes `codes` (`[n, code_dim]`) to images (`[n, input_dim]`, after the output activation), in
/// batches that fit the adapter.
pub fn decode(gpu: &Gpu, model: &Autoencoder, codes: &[f32]) -> Result<Vec<f32>> {
    let d = model.code_dim();
    let n = rows(codes, d, "code")?;
    let (batch, _) = activations_fitting(model, gpu, n.min(BATCH))?;
    let mut images = Vec::with_capacity(n * model.input_dim());
    for chunk in codes.chunks(batch * d) {
        images.extend(generate::decode(gpu, model, chunk)?);
    }
    Ok(images)
}

/// Encode then decode (a VAE through μ): the model's deterministic reconstruction of `images`.
pub fn reconstruct(gpu: &Gpu, model: &Autoencoder, images: &[f32]) -> Result<Vec<f32>> {
    decode(gpu, model, &means(model, &encode(gpu, model, images)?))
}

fn rows(values: &[f32], width: usize, what: &str) -> Result<usize> {
    if values.is_empty() || width == 0 || !values.len().is_multiple_of(width) {
        return Err(Error::Shape(format!(
            "{} values are not a whole number of {width}-value {what}s",
            values.len()
        )));
    }
    Ok(values.len() / width)
}
