//! How close a linear autoencoder comes to PCA: the decoder's column space against the top-`k`
//! principal subspace, as principal angles (0° everywhere: the same subspace, which is what a
//! linear autoencoder trained with MSE converges to, Baldi & Hornik 1989).
//!
//! The decoder's columns are read off the model itself: for an affine decoder `g(z) = D z + b`,
//! `b = g(0)` and column `i` is `g(e_i) - b`, whatever the layers are (dense or conv, one or
//! several). Decoding random codes checks that `g` is affine before the angles mean anything, and
//! encoding random images and their midpoints checks the encoder (`f((x+y)/2) = (f(x)+f(y))/2`).

use nalgebra::DMatrix;

use crate::codec;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::models::Autoencoder;

/// A decoder counts as affine when `g(c)` differs from `D c + b` by less than this fraction of
/// `‖D c‖` at random codes (f32 rounding through a few layers is ~1e-6).
const AFFINE_TOLERANCE: f64 = 1e-3;

/// The columns `D` of an affine decoder as `k` rows of `input_dim` values (row `i` = `g(e_i) - g(0)`).
/// An error when the model is a VAE or its encoder or decoder is not affine (a hidden, code or
/// output activation other than identity).
pub fn decoder_columns(gpu: &Gpu, model: &Autoencoder) -> Result<Vec<f32>> {
    let not_linear = |why: String| {
        Error::Config(format!(
            "{why}: comparing with PCA needs a linear autoencoder (--activation identity --code-activation \
             identity --output identity --loss mse)"
        ))
    };
    if model.variational().is_some() {
        return Err(not_linear("the checkpoint holds a VAE".into()));
    }
    let (k, dim) = (model.code_dim(), model.input_dim());
    let rel = encoder_midpoint_error(gpu, model)?;
    if rel.is_nan() || rel >= AFFINE_TOLERANCE {
        return Err(not_linear(format!(
            "the encoder is not affine (off by {:.1}% at the midpoint of two random images)",
            100.0 * rel
        )));
    }
    // Rows: 0, e_1 .. e_k, then random codes of a few scales for the affinity check.
    let mut codes = vec![0.0f32; (1 + k) * k];
    for i in 0..k {
        codes[(1 + i) * k + i] = 1.0;
    }
    let probes = 4;
    let mut random = vec![0.0f32; probes * k];
    crate::cpu::random::random_normal(&mut random, 0x5eed, 0);
    for (p, row) in random.chunks_mut(k).enumerate() {
        row.iter_mut().for_each(|v| *v *= [0.5, 2.0, 8.0, 32.0][p]);
    }
    codes.extend_from_slice(&random);
    let out = codec::decode(gpu, model, &codes)?;
    let bias = &out[..dim];
    let columns: Vec<f32> =
        out[dim..(1 + k) * dim].iter().zip(bias.iter().cycle()).map(|(g, b)| g - b).collect();
    for (p, code) in random.chunks(k).enumerate() {
        let got = &out[(1 + k + p) * dim..(2 + k + p) * dim];
        let (mut err, mut norm) = (0.0f64, 0.0f64);
        for j in 0..dim {
            let linear: f64 = (0..k).map(|i| f64::from(code[i]) * f64::from(columns[i * dim + j])).sum();
            err += (f64::from(got[j] - bias[j]) - linear).powi(2);
            norm += linear.powi(2);
        }
        let rel = (err / norm.max(1e-30)).sqrt();
        if rel.is_nan() || rel >= AFFINE_TOLERANCE {
            return Err(not_linear(format!(
                "the decoder is not affine (off by {:.1}% of its linear part at a random code)",
                100.0 * rel
            )));
        }
    }
    Ok(columns)
}

/// `‖f((x+y)/2) - (f(x)+f(y))/2‖ / ‖f(x) - f(y)‖`, the worst over a few random image pairs in
/// [0, 1]: 0 (up to rounding) for an affine encoder `f`.
fn encoder_midpoint_error(gpu: &Gpu, model: &Autoencoder) -> Result<f64> {
    let (dim, pairs) = (model.input_dim(), 4);
    let mut u = vec![0.0f32; 2 * pairs * dim];
    crate::cpu::random::random_uniform(&mut u, 0x5eed, 1);
    let mut images = u.clone();
    for p in 0..pairs {
        let (x, y) = (&u[2 * p * dim..(2 * p + 1) * dim], &u[(2 * p + 1) * dim..(2 * p + 2) * dim]);
        images.extend(x.iter().zip(y).map(|(a, b)| 0.5 * (a + b)));
    }
    let codes = codec::encode(gpu, model, &images)?;
    let w = model.code_width();
    let mut worst = 0.0f64;
    for p in 0..pairs {
        let (fx, fy) = (&codes[2 * p * w..(2 * p + 1) * w], &codes[(2 * p + 1) * w..(2 * p + 2) * w]);
        let fm = &codes[(2 * pairs + p) * w..(2 * pairs + p + 1) * w];
        let (mut err, mut span) = (0.0f64, 0.0f64);
        for j in 0..w {
            err += (f64::from(fm[j]) - 0.5 * (f64::from(fx[j]) + f64::from(fy[j]))).powi(2);
            span += (f64::from(fx[j]) - f64::from(fy[j])).powi(2);
        }
        worst = worst.max((err / span.max(1e-30)).sqrt());
    }
    Ok(worst)
}

/// The principal angles, in degrees and increasing, between the spans of two sets of vectors
/// (`a`: rows of `dim` values, `b` likewise): `acos` of the singular values of `Q_aᵀ Q_b`, with
/// `Q` orthonormal bases of each span. There are as many as the smaller span's dimension; an error
/// when a set's vectors are linearly dependent (its span is smaller than its count).
pub fn principal_angles(a: &[f32], b: &[f32], dim: usize) -> Result<Vec<f64>> {
    let qa = orthonormal_basis(a, dim, "first")?;
    let qb = orthonormal_basis(b, dim, "second")?;
    let m = qa.tr_mul(&qb);
    let mut cos: Vec<f64> = m.singular_values().iter().map(|&s| s.clamp(0.0, 1.0)).collect();
    cos.sort_by(|x, y| y.total_cmp(x));
    Ok(cos.iter().map(|c| c.acos().to_degrees()).collect())
}

/// An orthonormal basis (`dim x k` columns) of the span of the `k` rows of `v`.
fn orthonormal_basis(v: &[f32], dim: usize, which: &str) -> Result<DMatrix<f64>> {
    if dim == 0 || v.is_empty() || !v.len().is_multiple_of(dim) {
        return Err(Error::Shape(format!("{} values are not vectors of {dim}", v.len())));
    }
    let k = v.len() / dim;
    if k > dim {
        return Err(Error::Shape(format!("{k} vectors of {dim} values cannot be independent")));
    }
    let m = DMatrix::from_fn(dim, k, |r, c| f64::from(v[c * dim + r]));
    let svd = m.svd(true, false);
    let s = &svd.singular_values;
    let top = s.iter().cloned().fold(0.0f64, f64::max);
    let rank = s.iter().filter(|&&x| x > top * 1e-6).count();
    if rank < k {
        return Err(Error::Config(format!(
            "the {which} set of {k} vectors spans only {rank} dimensions (linearly dependent columns)"
        )));
    }
    let u = svd.u.expect("asked for U");
    Ok(u.columns(0, k).into_owned())
}
