//! Helpers shared by the integration tests: a GPU (lavapipe in CI), seeded data, and a comparison
//! that explains itself when it fails.
#![allow(dead_code)]

pub mod cli;
pub mod guard;

use aegpu::gpu::{Gpu, GpuOptions};
use aegpu::kernels::conv::{Conv2dShape, ConvTranspose2dShape};
use rand::{RngExt, SeedableRng};
use std::path::{Path, PathBuf};

/// The test GPU. Fails the test (does not skip it) when there is none: CI installs lavapipe.
pub fn gpu() -> Gpu {
    match Gpu::new(&GpuOptions::default()) {
        Ok(g) => g,
        Err(e) => panic!("{e}"),
    }
}

pub fn rng(seed: u64) -> rand::rngs::Xoshiro256PlusPlus {
    rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// Uniform values in [-1, 1).
pub fn random_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n).map(|_| r.random::<f32>() * 2.0 - 1.0).collect()
}

/// Asserts |got - want| <= atol + rtol*|want| element-wise; on failure prints the max absolute and
/// relative errors and the first mismatching indices.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length {} vs reference {}", got.len(), want.len());
    let mut max_abs = 0.0f32;
    let mut max_rel = 0.0f32;
    let mut bad = Vec::new();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        max_abs = max_abs.max(err);
        max_rel = max_rel.max(err / w.abs().max(1e-12));
        // Written as a negation so that NaN fails.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if !(err <= atol + rtol * w.abs()) {
            bad.push(i);
        }
    }
    if !bad.is_empty() {
        let first: Vec<String> =
            bad.iter().take(8).map(|&i| format!("[{i}] gpu {} ref {}", got[i], want[i])).collect();
        panic!(
            "{what}: {} of {} elements differ (atol {atol}, rtol {rtol}); max abs err {max_abs:e}, max rel err {max_rel:e}; first: {}",
            bad.len(),
            got.len(),
            first.join(", ")
        );
    }
}

/// The real datasets: `$AEGPU_DATA`, else `../shared/data` beside the clone. `None` (the test is
/// skipped, with a note) when neither exists, except in CI, which always has the data.
pub fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("AEGPU_DATA")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(std::env::var_os("CI").is_none(), "no data directory at {} in CI", dir.display());
    eprintln!("note: no data directory at {} (set AEGPU_DATA); test skipped", dir.display());
    None
}

/// Central differences `(f(x + eps·e_i) − f(x − eps·e_i)) / 2·eps` for every coordinate i of `x`.
pub fn central_differences(x: &[f32], eps: f32, f: impl Fn(&[f32]) -> f64) -> Vec<f32> {
    (0..x.len())
        .map(|i| {
            let (mut up, mut down) = (x.to_vec(), x.to_vec());
            up[i] += eps;
            down[i] -= eps;
            ((f(&up) - f(&down)) / (2.0 * eps as f64)) as f32
        })
        .collect()
}

/// A conv2d shape from (batch, in channels, (H, W), out channels, (KH, KW), stride, padding).
#[allow(clippy::too_many_arguments)]
pub const fn conv_shape(
    n: usize,
    c_in: usize,
    (h, w): (usize, usize),
    c_out: usize,
    (kh, kw): (usize, usize),
    stride: usize,
    padding: usize,
) -> Conv2dShape {
    Conv2dShape { n, c_in, h, w, c_out, kh, kw, stride, padding }
}

/// A transposed-convolution shape: [`conv_shape`]'s arguments plus the output padding.
#[allow(clippy::too_many_arguments)]
pub const fn transpose_shape(
    n: usize,
    c_in: usize,
    (h, w): (usize, usize),
    c_out: usize,
    (kh, kw): (usize, usize),
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> ConvTranspose2dShape {
    ConvTranspose2dShape { n, c_in, h, w, c_out, kh, kw, stride, padding, output_padding }
}

/// The one launch of a launcher that splits long work into several (small test shapes never do).
pub fn one(mut launches: Vec<aegpu::kernels::Launch>) -> aegpu::kernels::Launch {
    assert_eq!(launches.len(), 1, "expected a single launch for a small shape");
    launches.remove(0)
}

/// A 64-16-64 dense autoencoder (ReLU code, BCE) to put a classifier on.
pub fn small_ae(gpu: &Gpu) -> aegpu::models::Autoencoder {
    use aegpu::kernels::Activation;
    use aegpu::kernels::loss::LossKind;
    use aegpu::models::dense::DenseConfig;
    use aegpu::models::{Autoencoder, Init};
    let c = DenseConfig::symmetric(
        64,
        &[16],
        Activation::Relu,
        Activation::Relu,
        Activation::Sigmoid,
        LossKind::Bce,
    )
    .unwrap();
    Autoencoder::new(gpu, c, 1, Init::Glorot).unwrap()
}
