//! The covariance of a data set through the engine's GPU matmul: `C = Xcᵀ Xc / n` with `Xc` the
//! rows minus their mean, as `Tn` products (`Aᵀ·B` with A = B = a chunk of centred rows) that
//! accumulate into one `dim x dim` buffer, chunk after chunk, so a set larger than one storage
//! binding (MNIST's 60,000 x 784 floats are 188 MB, lavapipe binds 128 MiB) still fits.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer, View};
use crate::kernels::Activation;
use crate::kernels::matmul::{Half, Matmul, Transpose};
use crate::runner::Plan;

/// Rows per product: 8,192 rows of 784 floats are 26 MB, well inside every adapter's binding.
const CHUNK_BYTES: usize = 32 << 20;

/// The mean row (f64) and the covariance `[dim, dim]` (row-major, f64) of the `data.len() / dim`
/// rows of `data`. The mean is taken on the host in f64; the centred products are f32 sums on the
/// GPU (relative error ~1e-6 against the f64 reference, checked in `kernels-tests/tools_pca.rs`).
pub fn covariance_gpu(gpu: &Gpu, data: &[f32], dim: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    covariance_gpu_chunked(gpu, data, dim, (CHUNK_BYTES / (4 * dim.max(1))).max(1))
}

/// [`covariance_gpu`] with at most `chunk_rows` rows per product (tests force awkward chunks).
pub fn covariance_gpu_chunked(
    gpu: &Gpu,
    data: &[f32],
    dim: usize,
    chunk_rows: usize,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = rows(data, dim)?;
    if chunk_rows == 0 {
        return Err(Error::Config("a covariance chunk needs at least one row".into()));
    }
    let mean = mean_rows(data, dim);
    let mean32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    let max_rows = chunk_rows.min(n);
    let cov = StorageBuffer::zeroed(gpu, "covariance", dim * dim)?;
    let chunk = StorageBuffer::zeroed(gpu, "centred rows", max_rows * dim)?;
    let policy = gpu.matmul_policy()?;
    // One plan per distinct chunk length (the last one is usually shorter).
    let mut plans: Vec<(usize, Plan)> = Vec::new();
    for block in data.chunks(max_rows * dim) {
        let r = block.len() / dim;
        let centred: Vec<f32> =
            block.chunks(dim).flat_map(|row| row.iter().zip(&mean32).map(|(&x, &m)| x - m)).collect();
        chunk.write(gpu, 0, &centred);
        if !plans.iter().any(|(len, _)| *len == r) {
            let a = View { buffer: chunk.buffer.clone(), offset: 0, len: r * dim };
            let product = Matmul {
                c: View::whole(&cov),
                a: a.clone(),
                b: a,
                bias: None,
                m: dim,
                n: dim,
                k: r,
                trans: Transpose::Tn,
                act: Activation::Identity,
                accumulate: true,
                variant: policy.pick(dim, dim),
                splits: 1,
                half: Half::NONE,
            };
            plans.push((r, Plan::new(gpu, "covariance", &product.launches())?));
        }
        let (_, plan) = plans.iter().find(|(len, _)| *len == r).expect("built above");
        // Every product adds to the buffer, zeroed at creation; the write above is ordered before it.
        plan.run(gpu)?;
    }
    let sums = cov.read_all_f32(gpu)?;
    let cov = sums.iter().map(|&s| f64::from(s) / n as f64).collect();
    Ok((mean, cov))
}

/// The same in f64 on the host: the reference the GPU path is tested against.
pub fn covariance_cpu(data: &[f32], dim: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = rows(data, dim)?;
    let mean = mean_rows(data, dim);
    let x = nalgebra::DMatrix::from_fn(n, dim, |r, c| f64::from(data[r * dim + c]) - mean[c]);
    let cov = x.tr_mul(&x) / n as f64;
    // nalgebra is column-major; the matrix is symmetric, so its storage is also the row-major one.
    Ok((mean, cov.as_slice().to_vec()))
}

fn rows(data: &[f32], dim: usize) -> Result<usize> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return Err(Error::Shape(format!("{} values are not rows of {dim}", data.len())));
    }
    let n = data.len() / dim;
    if n < 2 {
        return Err(Error::Config(format!("PCA needs at least 2 examples, got {n}")));
    }
    Ok(n)
}

fn mean_rows(data: &[f32], dim: usize) -> Vec<f64> {
    let mut mean = vec![0.0f64; dim];
    for row in data.chunks(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v);
        }
    }
    let n = (data.len() / dim) as f64;
    mean.iter_mut().for_each(|m| *m /= n);
    mean
}
