//! The standard codecs a learned compressor is measured against, through the `image` crate: JPEG
//! at a quality (lossy) and PNG (lossless), per image file or for a mosaic of many images in one
//! file (which spreads JPEG's ~600 bytes of headers and tables over all of them).

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder, ImageFormat};

use crate::error::{Error, Result};

/// One image (`[c, h, w]`, CHW bytes) encoded: the file's size and the pixels it decodes to (CHW).
pub struct Coded {
    /// Size of the encoded file, in bytes.
    pub bytes: usize,
    /// The decoded pixels, CHW, `c·h·w` bytes.
    pub decoded: Vec<u8>,
}

fn colour(c: usize) -> Result<ExtendedColorType> {
    match c {
        1 => Ok(ExtendedColorType::L8),
        3 => Ok(ExtendedColorType::Rgb8),
        _ => Err(Error::Shape(format!("{c}-channel images: JPEG and PNG take 1 or 3"))),
    }
}

fn chw_to_hwc(chw: &[u8], c: usize) -> Vec<u8> {
    let plane = chw.len() / c;
    (0..plane).flat_map(|i| (0..c).map(move |ch| chw[ch * plane + i])).collect()
}

fn hwc_to_chw(hwc: &[u8], c: usize) -> Vec<u8> {
    (0..c).flat_map(|ch| hwc.iter().skip(ch).step_by(c).copied()).collect()
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Image { path: what.into(), reason: e.to_string() }
}

/// JPEG at `quality` (1-100, the `image` crate's encoder, 4:2:0 for colour), decoded back.
pub fn jpeg(image: &[u8], [c, h, w]: [usize; 3], quality: u8) -> Result<Coded> {
    if !(1..=100).contains(&quality) {
        return Err(Error::Config(format!("JPEG quality {quality}: use 1 to 100")));
    }
    let mut buf = Vec::new();
    JpegEncoder::new_with_quality(&mut buf, quality)
        .write_image(&chw_to_hwc(image, c), w as u32, h as u32, colour(c)?)
        .map_err(|e| failed("JPEG encoding", e))?;
    let img = image::load_from_memory_with_format(&buf, ImageFormat::Jpeg)
        .map_err(|e| failed("JPEG decoding", e))?;
    let hwc = if c == 1 { img.to_luma8().into_raw() } else { img.to_rgb8().into_raw() };
    Ok(Coded { bytes: buf.len(), decoded: hwc_to_chw(&hwc, c) })
}

/// PNG at the best compression with adaptive filtering: lossless, so only its size matters.
pub fn png_bytes(image: &[u8], [c, h, w]: [usize; 3]) -> Result<usize> {
    let mut buf = Vec::new();
    PngEncoder::new_with_quality(Cursor::new(&mut buf), CompressionType::Best, FilterType::Adaptive)
        .write_image(&chw_to_hwc(image, c), w as u32, h as u32, colour(c)?)
        .map_err(|e| failed("PNG encoding", e))?;
    Ok(buf.len())
}

/// `n` images (`[n, c, h, w]` bytes) tiled `cols` across into one picture (rows of `cols`, the
/// last row padded with black), and its tiles cut back out.
pub fn mosaic(images: &[u8], n: usize, [c, h, w]: [usize; 3], cols: usize) -> (Vec<u8>, [usize; 3]) {
    let rows = n.div_ceil(cols);
    let (mh, mw) = (rows * h, cols * w);
    let mut out = vec![0u8; c * mh * mw];
    for (k, img) in images.chunks(c * h * w).enumerate().take(n) {
        let (r0, c0) = ((k / cols) * h, (k % cols) * w);
        for ch in 0..c {
            for y in 0..h {
                let src = &img[ch * h * w + y * w..][..w];
                out[ch * mh * mw + (r0 + y) * mw + c0..][..w].copy_from_slice(src);
            }
        }
    }
    (out, [c, mh, mw])
}

/// The `n` tiles of a mosaic made by [`mosaic`], as `[n, c, h, w]` bytes.
pub fn unmosaic(m: &[u8], n: usize, [c, h, w]: [usize; 3], cols: usize) -> Vec<u8> {
    let (mh, mw) = (n.div_ceil(cols) * h, cols * w);
    let mut out = Vec::with_capacity(n * c * h * w);
    for k in 0..n {
        let (r0, c0) = ((k / cols) * h, (k % cols) * w);
        for ch in 0..c {
            for y in 0..h {
                out.extend_from_slice(&m[ch * mh * mw + (r0 + y) * mw + c0..][..w]);
            }
        }
    }
    out
}
