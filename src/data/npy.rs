//! Images from NumPy `.npy` files (what `np.save` writes), with optional integer labels from a
//! second `.npy` file.
//!
//! Element types: uint8 (pixels 0-255, kept as they are) and float32/float64 holding values in
//! `[0, 1]`, turned into bytes by `round(x * 255)` clamped to 0..=255 (NaN is an error, and so is
//! a maximum above 2, which means 0-255 floats that clamping would turn white). Shapes: `[N, H, W]`
//! (grey), `[N, H, W, C]` (NHWC, the NumPy/TensorFlow habit) or `[N, C, H, W]` (NCHW, PyTorch's),
//! with C = 1 or 3; [`NpyLayout::Auto`] tells the two apart by which axis is 1 or 3 and asks for
//! the layout when both are. Fortran-ordered arrays are reordered. Parsing the header (v1-v3),
//! byte order and element decoding are left to the `npyz` crate.

#[cfg(not(feature = "npy"))]
use {super::Dataset, crate::error::Result, std::path::Path};

// Parsing needs the `npyz` crate (the `npy` feature); without it `load_npy` returns
// Error::FeatureDisabled and NpyLayout still describes the source (checkpoints record it).
#[cfg(feature = "npy")]
mod read;
#[cfg(feature = "npy")]
pub use read::load_npy;

/// Where the channel axis of a 4-D image array is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NpyLayout {
    /// NHWC if only the last axis is 1 or 3, NCHW if only the second is; an error if both are.
    #[default]
    Auto,
    /// `[N, H, W, C]`.
    Nhwc,
    /// `[N, C, H, W]`.
    Nchw,
}

/// Without the `npy` feature: [`Error::FeatureDisabled`](crate::error::Error::FeatureDisabled).
#[cfg(not(feature = "npy"))]
pub fn load_npy(images: &Path, _labels: Option<&Path>, _layout: NpyLayout) -> Result<Dataset> {
    Err(crate::error::Error::FeatureDisabled {
        feature: "npy",
        what: format!("reading {}", images.display()),
    })
}
