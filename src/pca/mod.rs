//! Principal component analysis on the CPU: the linear baseline every autoencoder is measured
//! against (a linear autoencoder with MSE spans the same subspace as the top `k` components).
//!
//! Fit: the mean `m` of the rows, the covariance `C = (X - m)ᵀ(X - m) / n` in f64, and its
//! eigenvectors (nalgebra's `SymmetricEigen`), sorted by decreasing eigenvalue. Code of `x`:
//! `U_kᵀ (x - m)`; reconstruction: `m + U_k U_kᵀ (x - m)`, the best rank-`k` affine approximation
//! in squared error.

use nalgebra::{DMatrix, SymmetricEigen};

use crate::error::{Error, Result};

/// The largest dimension fitted (the covariance is `dim x dim`, its eigendecomposition O(dim³)).
pub const MAX_DIM: usize = 4096;

/// A fitted PCA with `k` components.
#[derive(Clone, Debug)]
pub struct Pca {
    pub dim: usize,
    /// The mean row.
    pub mean: Vec<f32>,
    /// `k` unit-length components, `[k, dim]` row-major, largest variance first.
    pub components: Vec<f32>,
    /// Variance along every direction (all `dim`, decreasing), for "variance explained".
    pub eigenvalues: Vec<f64>,
}

impl Pca {
    /// Fits `k` components to the `n = data.len() / dim` rows of `data`.
    pub fn fit(data: &[f32], dim: usize, k: usize) -> Result<Pca> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(Error::Shape(format!("{} values are not rows of {dim}", data.len())));
        }
        let n = data.len() / dim;
        if n < 2 {
            return Err(Error::Config(format!("PCA needs at least 2 examples, got {n}")));
        }
        if dim > MAX_DIM {
            return Err(Error::Config(format!(
                "PCA of {dim}-value examples is too large for the CPU (at most {MAX_DIM}); use smaller images"
            )));
        }
        if k == 0 || k > dim {
            return Err(Error::Config(format!("{k} components: use 1 to {dim}")));
        }
        let mut mean = vec![0.0f64; dim];
        for row in data.chunks(dim) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let x = DMatrix::from_fn(n, dim, |r, c| f64::from(data[r * dim + c]) - mean[c]);
        let cov = x.tr_mul(&x) / n as f64;
        let eigen = SymmetricEigen::new(cov);
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

/// Mean squared error per value between two equally long slices.
pub fn mse(a: &[f32], b: &[f32]) -> f64 {
    let sum: f64 = a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum();
    sum / a.len().max(1) as f64
}
