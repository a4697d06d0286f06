//! Principal component analysis: the linear baseline every autoencoder is measured against (a
//! linear autoencoder trained with MSE spans the same subspace as the top `k` components).
//!
//! Fit: the mean `m` of the rows and the covariance `C = (X - m)ᵀ(X - m) / n`, through the engine's
//! GPU matmul ([`covariance_gpu`]) or in f64 on the host ([`covariance_cpu`], the reference), then
//! its eigenvectors (nalgebra's `SymmetricEigen`) sorted by decreasing eigenvalue. Code of `x`:
//! `U_kᵀ (x - m)`; reconstruction: `m + U_k U_kᵀ (x - m)`, the best rank-`k` affine approximation
//! in squared error. [`angles`] compares a linear autoencoder's decoder with that subspace.

pub mod angles;
mod covariance;

pub use covariance::{covariance_cpu, covariance_gpu, covariance_gpu_chunked};

use nalgebra::{DMatrix, SymmetricEigen};

use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// The largest dimension fitted (the covariance is `dim x dim`, its eigendecomposition O(dim³)).
pub const MAX_DIM: usize = 4096;

/// A fitted PCA with `k` components.
#[derive(Clone, Debug)]
pub struct Pca {
    /// Values per example (the data's width), at most [`MAX_DIM`].
    pub dim: usize,
    /// The mean row.
    pub mean: Vec<f32>,
    /// `k` unit-length components, `[k, dim]` row-major, largest variance first.
    pub components: Vec<f32>,
    /// Variance along every direction (all `dim`, decreasing), for "variance explained".
    pub eigenvalues: Vec<f64>,
}

impl Pca {
    /// Fits `k` components to the `n = data.len() / dim` rows of `data`, the covariance in f64 on
    /// the host.
    pub fn fit(data: &[f32], dim: usize, k: usize) -> Result<Pca> {
        check(dim, k)?;
        let (mean, cov) = covariance_cpu(data, dim)?;
        Pca::from_covariance(&mean, &cov, dim, k)
    }

    /// Fits `k` components with the covariance computed by the GPU's matmul.
    pub fn fit_gpu(gpu: &Gpu, data: &[f32], dim: usize, k: usize) -> Result<Pca> {
        check(dim, k)?;
        let (mean, cov) = covariance_gpu(gpu, data, dim)?;
        Pca::from_covariance(&mean, &cov, dim, k)
    }

    /// The top `k` eigenvectors of the symmetric `cov` (`[dim, dim]`, row-major).
    pub fn from_covariance(mean: &[f64], cov: &[f64], dim: usize, k: usize) -> Result<Pca> {
        check(dim, k)?;
        if mean.len() != dim || cov.len() != dim * dim {
            return Err(Error::Shape(format!(
                "a mean of {} and a covariance of {} values do not describe {dim}-D data",
                mean.len(),
                cov.len()
            )));
        }
        let eigen = SymmetricEigen::new(DMatrix::from_row_slice(dim, dim, cov));
        let mut order: Vec<usize> = (0..dim).collect();
        order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
        let mut components = Vec::with_capacity(k * dim);
        for &i in &order[..k] {
            components.extend(eigen.eigenvectors.column(i).iter().map(|&v| v as f32));
        }
        Ok(Pca {
            dim,
            mean: mean.iter().map(|&m| m as f32).collect(),
            components,
            eigenvalues: order.iter().map(|&i| eigen.eigenvalues[i].max(0.0)).collect(),
        })
    }

    /// Number of components kept.
    pub fn k(&self) -> usize {
        self.components.len() / self.dim
    }

    /// The same fit keeping only the first `k` components (`k` at most [`Pca::k`]).
    pub fn truncated(&self, k: usize) -> Result<Pca> {
        if k == 0 || k > self.k() {
            return Err(Error::Config(format!("{k} components: this fit has 1 to {}", self.k())));
        }
        Ok(Pca { components: self.components[..k * self.dim].to_vec(), ..self.clone() })
    }

    /// The fraction of the training variance the kept components explain.
    pub fn explained(&self) -> f64 {
        let total: f64 = self.eigenvalues.iter().sum();
        if total > 0.0 { self.eigenvalues[..self.k()].iter().sum::<f64>() / total } else { 1.0 }
    }

    /// Codes `[n, k]` of the rows of `data`.
    pub fn encode(&self, data: &[f32]) -> Vec<f32> {
        let k = self.k();
        let mut codes = Vec::with_capacity(data.len() / self.dim * k);
        for row in data.chunks(self.dim) {
            for comp in self.components.chunks(self.dim) {
                let dot: f64 = comp
                    .iter()
                    .zip(row)
                    .zip(&self.mean)
                    .map(|((&u, &x), &m)| f64::from(u) * f64::from(x - m))
                    .sum();
                codes.push(dot as f32);
            }
        }
        codes
    }

    /// Rows `m + U_k c` for the codes `[n, k]`.
    pub fn decode(&self, codes: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(codes.len() / self.k().max(1) * self.dim);
        for code in codes.chunks(self.k()) {
            let mut row: Vec<f64> = self.mean.iter().map(|&m| f64::from(m)).collect();
            for (&c, comp) in code.iter().zip(self.components.chunks(self.dim)) {
                for (r, &u) in row.iter_mut().zip(comp) {
                    *r += f64::from(c) * f64::from(u);
                }
            }
            out.extend(row.iter().map(|&v| v as f32));
        }
        out
    }

    /// The best rank-`k` reconstruction of the rows of `data`.
    pub fn reconstruct(&self, data: &[f32]) -> Vec<f32> {
        self.decode(&self.encode(data))
    }
}

/// `k` components of `dim`-value rows must be 1..=dim, and the covariance must fit on the host.
fn check(dim: usize, k: usize) -> Result<()> {
    if dim > MAX_DIM {
        return Err(Error::Config(format!(
            "PCA of {dim}-value examples is too large for the CPU eigendecomposition (at most {MAX_DIM}); use smaller images"
        )));
    }
    if k == 0 || k > dim {
        return Err(Error::Config(format!(
            "{k} components for {dim}-value examples: use 1 to {dim} (at most the input dimension)"
        )));
    }
    Ok(())
}

/// Mean squared error per value between two equally long slices.
pub fn mse(a: &[f32], b: &[f32]) -> f64 {
    let sum: f64 = a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum();
    sum / a.len().max(1) as f64
}
