//! Random square patches of images (the classic "natural image patches" data of sparse coding and
//! early autoencoder work), as f32 in `[0, 1]`, CHW per patch, and the bridge back to the u8
//! [`Dataset`] the training pipeline keeps.
//!
//! Sampling: each patch picks one of the images that are at least `size x size` uniformly, then a
//! top-left corner uniformly among the positions where the patch fits. The generator is
//! Xoshiro256++ with integer ranges drawn by multiply-shift, so a seed gives the same patches on
//! every machine.
//!
//! u8 storage of float patches ([`U8Map`]): a dataset keeps bytes, so float values are stored as
//! `round(offset + scale * x)` clamped to 0..=255 and read back as `(b - offset) / scale`. Plain
//! patches use [`U8Map::UNIT`] (exact: `x = b / 255`, the pipeline's own scaling). Whitened patches
//! have zero mean, unit variance and long tails; [`U8Map::symmetric`] maps `[-r, r]` onto the byte
//! range with 0 at 127.5, `r` a high quantile of `|x|`, so a few extreme values clip while the
//! rest keep a step of `r / 127.5`. The map is kept so that outputs can be mapped back.

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

use super::split::below;
use super::{Dataset, ImageU8};
use crate::error::{Error, Result};

/// `n` patches of `channels x size x size` floats, one after another, each CHW.
#[derive(Clone, Debug, PartialEq)]
pub struct Patches {
    /// `[n, channels, size, size]` floats, in `[0, 1]` as cut (whitening changes that).
    pub data: Vec<f32>,
    /// Number of patches.
    pub n: usize,
    /// Channels per patch (those of the source images).
    pub channels: usize,
    /// Side of a patch, in pixels.
    pub size: usize,
    /// For each patch, the index of the image it was cut from.
    pub source: Vec<usize>,
}

impl Patches {
    /// Floats per patch: `channels * size * size`.
    pub fn dim(&self) -> usize {
        self.channels * self.size * self.size
    }

    /// Patch `i`.
    ///
    /// # Panics
    /// If `i >= n`, like slice indexing.
    pub fn patch(&self, i: usize) -> &[f32] {
        let d = self.dim();
        &self.data[i * d..(i + 1) * d]
    }

    /// The patches as a u8 dataset through `map` (labels all 0), for the training pipeline; keep
    /// `map` to turn the model's outputs back into these units with [`U8Map::decode`].
    pub fn to_dataset(&self, name: impl Into<String>, map: &U8Map) -> Result<Dataset> {
        let bytes = self.data.iter().map(|&x| map.encode(x)).collect();
        Dataset::from_chw(name, bytes, vec![0; self.n], self.channels, self.size, self.size)
    }
}

/// An affine map between floats and bytes: `b = clamp(round(offset + scale * x), 0, 255)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct U8Map {
    /// The byte that stands for 0 (0 for [`U8Map::UNIT`], 127.5 for a symmetric map).
    pub offset: f32,
    /// Bytes per unit of x (255 for [`U8Map::UNIT`]).
    pub scale: f32,
}

impl U8Map {
    /// `[0, 1]` onto 0..=255, the scaling of the rest of the crate.
    pub const UNIT: U8Map = U8Map { offset: 0.0, scale: 255.0 };

    /// `[-r, r]` onto 0..=255 with 0 at 127.5, where `r` is the `quantile` (in `(0, 1]`; 0.999
    /// clips one value in a thousand) of `|x|` over `values`. Errors on an empty or non-finite
    /// input or a quantile outside `(0, 1]`.
    pub fn symmetric(values: &[f32], quantile: f64) -> Result<U8Map> {
        if !(quantile > 0.0 && quantile <= 1.0) {
            return Err(Error::Config(format!("quantile {quantile} must lie in (0, 1]")));
        }
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return Err(Error::Config("a byte mapping needs finite values, and at least one".into()));
        }
        let mut abs: Vec<f32> = values.iter().map(|v| v.abs()).collect();
        let k = ((abs.len() as f64 * quantile).ceil() as usize).clamp(1, abs.len()) - 1;
        let (_, &mut r, _) = abs.select_nth_unstable_by(k, f32::total_cmp);
        let r = if r > 0.0 { r } else { 1.0 };
        Ok(U8Map { offset: 127.5, scale: 127.5 / r })
    }

    /// The byte for `x` (clamped; NaN gives 0).
    pub fn encode(&self, x: f32) -> u8 {
        (self.offset + self.scale * x).round().clamp(0.0, 255.0) as u8
    }

    /// The float a byte stands for.
    pub fn decode(&self, b: u8) -> f32 {
        (f32::from(b) - self.offset) / self.scale
    }

    /// The number of `values` outside the range the bytes can represent (they are clipped).
    pub fn clipped(&self, values: &[f32]) -> usize {
        let (lo, hi) = (self.decode(0) - 0.5 / self.scale, self.decode(255) + 0.5 / self.scale);
        values.iter().filter(|&&x| x < lo || x > hi).count()
    }
}

/// `n` random `size x size` patches of the images of `ds` (all channels), seeded by `seed`.
/// Errors if `n` or `size` is 0 or the images are smaller than `size`.
pub fn patches_from_dataset(ds: &Dataset, n: usize, size: usize, seed: u64) -> Result<Patches> {
    let sources: Vec<Source> = (0..ds.n).map(|i| (ds.image(i), ds.rows, ds.cols)).collect();
    sample(&sources, ds.channels, n, size, seed)
}

/// `n` random `size x size` patches of `images` (e.g. photographs from
/// [`load_images`](super::load_images)), which must share one channel count; images smaller than
/// `size` are passed over. Errors if `n` or `size` is 0 or no image is large enough.
pub fn patches_from_images(images: &[ImageU8], n: usize, size: usize, seed: u64) -> Result<Patches> {
    let Some(first) = images.first() else {
        return Err(Error::Config("no images to cut patches from".into()));
    };
    if let Some(other) = images.iter().find(|im| im.channels != first.channels) {
        return Err(Error::Shape(format!(
            "{} has {} channels but {} has {}; load them with one channel count",
            first.path.display(),
            first.channels,
            other.path.display(),
            other.channels
        )));
    }
    let sources: Vec<Source> = images.iter().map(|im| (im.pixels.as_slice(), im.rows, im.cols)).collect();
    sample(&sources, first.channels, n, size, seed)
}

/// An image to cut from: CHW pixels, rows, cols.
type Source<'a> = (&'a [u8], usize, usize);

fn sample(sources: &[Source], channels: usize, n: usize, size: usize, seed: u64) -> Result<Patches> {
    if n == 0 || size == 0 {
        return Err(Error::Config(format!("cannot sample {n} patches of {size}x{size}")));
    }
    let fits: Vec<usize> =
        (0..sources.len()).filter(|&i| sources[i].1 >= size && sources[i].2 >= size).collect();
    if fits.is_empty() {
        return Err(Error::Config(format!(
            "none of the {} images is at least {size}x{size}; choose a smaller patch size",
            sources.len()
        )));
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut data = Vec::with_capacity(n * channels * size * size);
    let mut source = Vec::with_capacity(n);
    for _ in 0..n {
        let k = fits[below(&mut rng, fits.len())];
        let (pixels, rows, cols) = sources[k];
        let y = below(&mut rng, rows - size + 1);
        let x = below(&mut rng, cols - size + 1);
        for c in 0..channels {
            let plane = &pixels[c * rows * cols..(c + 1) * rows * cols];
            for r in y..y + size {
                data.extend(plane[r * cols + x..r * cols + x + size].iter().map(|&p| f32::from(p) / 255.0));
            }
        }
        source.push(k);
    }
    Ok(Patches { data, n, channels, size, source })
}
