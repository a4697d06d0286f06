//! Pictures of learned weights: each row of a dense layer's weight matrix drawn as an image of the
//! input's shape, so that what a unit responds to can be seen (edge detectors, strokes, blobs), and
//! a convolution's kernels.

use std::path::Path;

use super::save_image_grid;
use crate::error::{Error, Result};

/// Draws `weights` (`k` rows of `c * h * w` values, PyTorch's `[out, in]` layout of a Linear layer
/// reading images of `shape`) as a grid of `k` tiles. Each filter is scaled on its own so that 0 is
/// mid-grey and its largest |w| is black or white (per channel for RGB: a colour filter shows its
/// hue), the usual way to show learned filters.
pub fn save_filters_png(path: &Path, weights: &[f32], k: usize, shape: [usize; 3]) -> Result<()> {
    save_filters_png_scaled(path, weights, k, shape, (48 / shape[1].max(shape[2]).max(1)).clamp(1, 6))
}

/// [`save_filters_png`] with each weight drawn as `scale x scale` pixels.
pub fn save_filters_png_scaled(
    path: &Path,
    weights: &[f32],
    k: usize,
    shape: [usize; 3],
    scale: usize,
) -> Result<()> {
    let dim: usize = shape.iter().product();
    if k == 0 || dim == 0 || weights.len() != k * dim {
        return Err(Error::Shape(format!(
            "{} weights are not {k} filters of {}x{}x{}",
            weights.len(),
            shape[0],
            shape[1],
            shape[2]
        )));
    }
    let tiles = normalised_filters(weights, dim);
    let cols = (k as f64).sqrt().ceil() as usize;
    save_image_grid(path, &tiles, k, shape, cols, scale)
}

/// Each `dim`-value filter mapped to `[0, 1]` by `0.5 + 0.5 * w / max|w|` (a zero filter stays grey).
pub fn normalised_filters(weights: &[f32], dim: usize) -> Vec<f32> {
    weights
        .chunks(dim)
        .flat_map(|f| {
            let m = f.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let s = if m > 0.0 && m.is_finite() { 0.5 / m } else { 0.0 };
            f.iter().map(move |&v| 0.5 + s * v)
        })
        .collect()
}

/// Draws convolution kernels (`weights` in PyTorch's `[out, in, kh, kw]` layout, `shape` those four
/// sizes). A layer reading grey or RGB images (`in` = 1 or 3) gives one tile per output channel,
/// in colour for RGB; deeper layers give one row per output channel with a grey tile per input
/// channel. Each output channel's kernels are scaled together (0 mid-grey, largest |w| black or
/// white), so a row shows which input channels it weighs most. Small kernels are enlarged to
/// about 24 px.
pub fn save_conv_filters_png(path: &Path, weights: &[f32], shape: [usize; 4]) -> Result<()> {
    let [out, inp, kh, kw] = shape;
    let per_out = inp * kh * kw;
    if out == 0 || per_out == 0 || weights.len() != out * per_out {
        return Err(Error::Shape(format!(
            "{} weights are not conv kernels of shape {out}x{inp}x{kh}x{kw}",
            weights.len()
        )));
    }
    let tiles = normalised_filters(weights, per_out);
    let scale = (24 / kh.max(kw)).clamp(2, 12);
    if inp == 1 || inp == 3 {
        let cols = (out as f64).sqrt().ceil() as usize;
        save_image_grid(path, &tiles, out, [inp, kh, kw], cols, scale)
    } else {
        save_image_grid(path, &tiles, out * inp, [1, kh, kw], inp, scale)
    }
}
