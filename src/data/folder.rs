//! A folder of the user's own images (PNG or JPEG, found recursively) as a [dataset](super::Dataset).
//!
//! Labels come from the first-level sub-folders (`DIR/cat/*.png`, `DIR/dog/*.png`: sorted folder
//! names give labels 0, 1, ...), or, when every image lies directly in `DIR`, there are none (all
//! labels 0). A `classes.txt` in `DIR` (one class name per line, in label order, as
//! [`export_png_folder`](super::export_png_folder) writes it) overrides the sorted order, so that
//! exported datasets keep their label ids.
//!
//! Files are read in sorted path order, except when every file name is a distinct integer
//! (`00042.png`), as export writes them: then they are ordered by that integer across classes,
//! which restores the order of the dataset that was exported. Loading reads each file's header
//! first (size, colour type), then decodes, converts and resizes one image at a time.

use std::path::PathBuf;
#[cfg(not(feature = "images"))]
use {super::Dataset, crate::error::Result, std::path::Path};

// The decoding half needs the `image` crate; without the `images` feature the two loaders return
// Error::FeatureDisabled and the option types below still describe a folder (checkpoints record them).
#[cfg(feature = "images")]
mod read;
#[cfg(feature = "images")]
pub use read::{load_folder, load_images};

/// The optional manifest that fixes the label of each class folder.
pub const CLASSES_FILE: &str = "classes.txt";

/// How images whose size differs from the target size are brought to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResizeMode {
    /// Scale the whole image to the target size (Catmull-Rom bicubic, antialiased when shrinking);
    /// the aspect ratio changes if it differs.
    #[default]
    Resize,
    /// Cut the largest centred region with the target's aspect ratio, then scale it (no distortion,
    /// the borders of the longer side are lost).
    CentreCrop,
}

/// Options of [`load_folder`] and [`load_images`].
#[derive(Clone, Debug, Default)]
pub struct FolderOptions {
    /// 1 (grey) or 3 (RGB); `None`: 3 if any file is colour, else 1. Alpha is dropped; colour is
    /// turned grey with the Rec. 709 luma weights.
    pub channels: Option<usize>,
    /// Target `(rows, cols)`; `None`: all images must already share one size.
    pub size: Option<(usize, usize)>,
    /// How images of another size reach `size`.
    pub resize: ResizeMode,
    /// Skip unreadable or corrupt files (listed in the report) instead of failing on the first.
    pub skip_bad: bool,
}

/// What a folder load did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderReport {
    /// Images decoded and kept.
    pub read: usize,
    /// Files skipped under `skip_bad`, each with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Images scaled (or cropped and scaled) to the target size.
    pub resized: usize,
    /// Images whose pixel format was converted (colour to grey, grey to colour, alpha or 16-bit).
    pub converted: usize,
}

/// One image at its own size, u8 CHW planar, as [`load_images`] gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageU8 {
    /// The file it was read from (under the folder given to the loader).
    pub path: PathBuf,
    /// Colour planes: 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Height, in pixels.
    pub rows: usize,
    /// Width, in pixels.
    pub cols: usize,
    /// `channels * rows * cols` bytes, channel after channel, each row-major.
    pub pixels: Vec<u8>,
}

/// Without the `images` feature: [`Error::FeatureDisabled`](crate::error::Error::FeatureDisabled).
#[cfg(not(feature = "images"))]
pub fn load_folder(dir: &Path, _opts: &FolderOptions) -> Result<(Dataset, FolderReport)> {
    Err(disabled(dir))
}

/// Without the `images` feature: [`Error::FeatureDisabled`](crate::error::Error::FeatureDisabled).
#[cfg(not(feature = "images"))]
pub fn load_images(dir: &Path, _opts: &FolderOptions) -> Result<(Vec<ImageU8>, FolderReport)> {
    Err(disabled(dir))
}

#[cfg(not(feature = "images"))]
fn disabled(dir: &Path) -> crate::error::Error {
    crate::error::Error::FeatureDisabled {
        feature: "images",
        what: format!("reading the image folder {}", dir.display()),
    }
}
