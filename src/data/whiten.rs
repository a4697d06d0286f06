//! PCA and ZCA whitening of [`Patches`]: decorrelate the pixels and give every direction unit
//! variance, as in sparse-coding and early autoencoder work on natural images.
//!
//! Steps (in f64): optionally remove each patch's own mean (its brightness); subtract the mean
//! patch `m`; covariance `C = X^T X / n`; eigendecomposition `C = U diag(l) U^T` (nalgebra's
//! `SymmetricEigen`, eigenvalues sorted in decreasing order). With `e` the regulariser,
//! - PCA: `W = diag(1 / sqrt(l + e)) U^T` (outputs are the principal components, largest first),
//! - ZCA: `W = U diag(1 / sqrt(l + e)) U^T` (the whitened patch closest to the original),
//!
//! and `z = W (x - m)`. `W` is invertible for `e > 0`: `x = W^-1 z + m`, with
//! `W^-1 = U diag(sqrt(l + e))` (PCA) or `U diag(sqrt(l + e)) U^T` (ZCA). Removed patch means
//! are not restored. `e` is given relative to the mean eigenvalue (the average pixel variance),
//! so the same setting suits any pixel scale; directions with variance far below `e` (noise, or
//! the constant direction after patch-mean removal) are damped instead of amplified.

#[cfg(feature = "pca")]
use nalgebra::{DMatrix, SymmetricEigen};

use super::Patches;
use crate::error::{Error, Result};

/// The largest patch dimension whitened (the covariance is `dim x dim`).
#[cfg(feature = "pca")]
const MAX_DIM: usize = 4096;

/// Which whitening.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhitenKind {
    /// Zero-phase: `W = U D^-1/2 U^T`, outputs stay image-like.
    #[default]
    Zca,
    /// Principal components scaled to unit variance, largest first.
    Pca,
}

/// Options of [`whiten`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WhitenOptions {
    /// ZCA or PCA.
    pub kind: WhitenKind,
    /// Regulariser added to every eigenvalue, as a fraction of the mean eigenvalue (> 0).
    pub epsilon: f64,
    /// Subtract each patch's own mean before everything else.
    pub remove_patch_mean: bool,
}

impl Default for WhitenOptions {
    /// ZCA, `epsilon = 0.01`, patch means removed.
    fn default() -> Self {
        WhitenOptions { kind: WhitenKind::Zca, epsilon: 0.01, remove_patch_mean: true }
    }
}

/// A fitted whitening map (see the module docs for the formulas).
#[derive(Clone, Debug, PartialEq)]
pub struct Whitening {
    /// ZCA or PCA: which `W` (and `W^-1`) was built.
    pub kind: WhitenKind,
    /// Fitted on patches with their own means removed: `apply` removes them too, `invert` does not
    /// restore them.
    pub remove_patch_mean: bool,
    /// Floats per patch.
    pub dim: usize,
    /// The mean patch `m` (after patch-mean removal), subtracted before `W`.
    pub mean: Vec<f32>,
    /// `W`, `dim x dim`, row-major.
    pub matrix: Vec<f32>,
    /// `W^-1`, `dim x dim`, row-major.
    pub inverse: Vec<f32>,
    /// Eigenvalues of the covariance, decreasing.
    pub eigenvalues: Vec<f32>,
    /// The regulariser actually added to the eigenvalues (`epsilon * mean eigenvalue`).
    pub epsilon: f32,
}

/// Fits a whitening map to `patches` and returns the whitened patches with it. Errors with fewer
/// than 2 patches, a patch dimension above 4096, a non-positive `epsilon` or non-finite data;
/// without the `pca` feature (the eigendecomposition), [`Error::FeatureDisabled`].
#[cfg(not(feature = "pca"))]
pub fn whiten(_patches: &Patches, _opts: &WhitenOptions) -> Result<(Patches, Whitening)> {
    Err(disabled("fitting a whitening"))
}

#[cfg(not(feature = "pca"))]
fn disabled(what: &str) -> Error {
    Error::FeatureDisabled { feature: "pca", what: what.into() }
}

#[cfg(not(feature = "pca"))]
impl Whitening {
    /// Without the `pca` feature: [`Error::FeatureDisabled`].
    pub fn apply(&self, _patches: &Patches) -> Result<Patches> {
        Err(disabled("whitening patches"))
    }

    /// Without the `pca` feature: [`Error::FeatureDisabled`].
    pub fn invert(&self, _whitened: &Patches) -> Result<Patches> {
        Err(disabled("un-whitening patches"))
    }
}

/// Fits a whitening map to `patches` and returns the whitened patches with it. Errors with fewer
/// than 2 patches, a patch dimension above 4096, a non-positive `epsilon` or non-finite data.
#[cfg(feature = "pca")]
pub fn whiten(patches: &Patches, opts: &WhitenOptions) -> Result<(Patches, Whitening)> {
    let (n, d) = (patches.n, patches.dim());
    if n < 2 {
        return Err(Error::Config(format!("whitening needs at least 2 patches, got {n}")));
    }
    if d > MAX_DIM {
        return Err(Error::Config(format!(
            "patches of {d} values are too large to whiten (at most {MAX_DIM}); use smaller patches"
        )));
    }
    if !(opts.epsilon > 0.0 && opts.epsilon.is_finite()) {
        return Err(Error::Config(format!("whitening epsilon {} must be positive", opts.epsilon)));
    }
    if patches.data.iter().any(|x| !x.is_finite()) {
        return Err(Error::Config("patches hold NaN or infinite values".into()));
    }
    let mut x = centred_rows(patches, opts.remove_patch_mean);
    let mean: Vec<f64> = (0..d).map(|j| x.column(j).mean()).collect();
    for (j, m) in mean.iter().enumerate() {
        x.column_mut(j).add_scalar_mut(-m);
    }
    let cov = x.tr_mul(&x) / n as f64;
    let eigen = SymmetricEigen::new(cov);
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
    let values: Vec<f64> = order.iter().map(|&i| eigen.eigenvalues[i].max(0.0)).collect();
    let u = DMatrix::from_fn(d, d, |r, c| eigen.eigenvectors[(r, order[c])]);
    let eps = opts.epsilon * values.iter().sum::<f64>() / d as f64;
    let eps = if eps > 0.0 { eps } else { opts.epsilon };
    let shrink =
        DMatrix::from_diagonal(&values.iter().map(|l| 1.0 / (l + eps).sqrt()).collect::<Vec<_>>().into());
    let grow = DMatrix::from_diagonal(&values.iter().map(|l| (l + eps).sqrt()).collect::<Vec<_>>().into());
    let (w, w_inv) = match opts.kind {
        WhitenKind::Pca => (&shrink * u.transpose(), &u * &grow),
        WhitenKind::Zca => (&u * &shrink * u.transpose(), &u * &grow * u.transpose()),
    };
    let z = &x * w.transpose();
    let whitened = Patches { data: to_rows_f32(&z), ..patches.clone() };
    let map = Whitening {
        kind: opts.kind,
        remove_patch_mean: opts.remove_patch_mean,
        dim: d,
        mean: mean.iter().map(|&m| m as f32).collect(),
        matrix: to_rows_f32(&w),
        inverse: to_rows_f32(&w_inv),
        eigenvalues: values.iter().map(|&l| l as f32).collect(),
        epsilon: eps as f32,
    };
    Ok((whitened, map))
}

#[cfg(feature = "pca")]
impl Whitening {
    /// Whitens other patches (a test set) with this map: patch-mean removal if it was fitted with
    /// it, then `W (x - m)`.
    pub fn apply(&self, patches: &Patches) -> Result<Patches> {
        self.check(patches)?;
        let mut x = centred_rows(patches, self.remove_patch_mean);
        for j in 0..self.dim {
            x.column_mut(j).add_scalar_mut(-f64::from(self.mean[j]));
        }
        let z = x * self.matrix_f64(&self.matrix).transpose();
        Ok(Patches { data: to_rows_f32(&z), ..patches.clone() })
    }

    /// Maps whitened patches back: `W^-1 z + m` (each patch's own mean, if it was removed, is not
    /// restored).
    pub fn invert(&self, whitened: &Patches) -> Result<Patches> {
        self.check(whitened)?;
        let z = DMatrix::from_row_slice(whitened.n, self.dim, &to_f64(&whitened.data));
        let mut x = z * self.matrix_f64(&self.inverse).transpose();
        for j in 0..self.dim {
            x.column_mut(j).add_scalar_mut(f64::from(self.mean[j]));
        }
        Ok(Patches { data: to_rows_f32(&x), ..whitened.clone() })
    }

    fn check(&self, patches: &Patches) -> Result<()> {
        if patches.dim() != self.dim {
            return Err(Error::Shape(format!(
                "patches of {} values, but the whitening was fitted to {}",
                patches.dim(),
                self.dim
            )));
        }
        Ok(())
    }

    fn matrix_f64(&self, m: &[f32]) -> DMatrix<f64> {
        DMatrix::from_row_slice(self.dim, self.dim, &to_f64(m))
    }
}

#[cfg(feature = "pca")]
/// The patches as an `n x dim` f64 matrix, each row minus its own mean if `remove_patch_mean`.
fn centred_rows(patches: &Patches, remove_patch_mean: bool) -> DMatrix<f64> {
    let mut x = DMatrix::from_row_slice(patches.n, patches.dim(), &to_f64(&patches.data));
    if remove_patch_mean {
        for mut row in x.row_iter_mut() {
            let m = row.mean();
            row.add_scalar_mut(-m);
        }
    }
    x
}

#[cfg(feature = "pca")]
fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// A matrix's entries row by row, as f32.
#[cfg(feature = "pca")]
fn to_rows_f32(m: &DMatrix<f64>) -> Vec<f32> {
    let mut out = Vec::with_capacity(m.len());
    for row in m.row_iter() {
        out.extend(row.iter().map(|&v| v as f32));
    }
    out
}
