//! The compressed-image file (`.aegz`): a model's codes of a set of images, quantised, with the
//! hash of the model that made them so that only that model decodes them.
//!
//! Layout (little-endian):
//!
//! | bytes | field |
//! | --- | --- |
//! | 6 | magic `AEGPUZ` |
//! | 1 | version (1) |
//! | 1 | precision: 8 (u8 per value, with a per-dimension offset and step) or 16 (f16) |
//! | 8 | model hash ([`model_hash`]) |
//! | 3 x 2 | input shape c, h, w (u16) |
//! | 4 + 4 | code dimension d, image count n (u32) |
//! | 1 | 1 if file names follow, else 0 |
//! | ... | names: for each image a u16 byte length and UTF-8 bytes |
//! | 8·d | precision 8 only: for each dimension the f32 offset `lo` and step `s` |
//! | n·d or 2·n·d | codes, image after image: `q = round((x - lo) / s)` as u8, or f16 |
//!
//! Dequantised value: `lo + q·s`, within `s/2` of the code (`s = (max - min) / 255` over the set);
//! f16 keeps 11 significant bits (relative error ≤ 2⁻¹¹ for normal values).

use half::f16;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::models::Autoencoder;

const MAGIC: &[u8; 6] = b"AEGPUZ";
const VERSION: u8 = 1;

/// How the codes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// One byte per value, with a per-dimension offset and step (8 bytes per dimension per file).
    U8,
    /// IEEE half precision, two bytes per value.
    F16,
}

impl Precision {
    /// Parses `u8` (also `8`) or `f16` (also `16`), any case (the `--precision` flag).
    pub fn parse(s: &str) -> Result<Precision> {
        match s.to_ascii_lowercase().as_str() {
            "u8" | "8" => Ok(Precision::U8),
            "f16" | "16" => Ok(Precision::F16),
            other => Err(Error::Config(format!("--precision '{other}': use u8 or f16"))),
        }
    }

    fn tag(self) -> u8 {
        match self {
            Precision::U8 => 8,
            Precision::F16 => 16,
        }
    }
}

/// What a compressed file holds, codes dequantised.
#[derive(Clone, Debug, PartialEq)]
pub struct Compressed {
    /// How the codes were stored.
    pub precision: Precision,
    /// [`model_hash`] of the model that wrote them; only that model decodes them.
    pub model_hash: u64,
    /// The images' `[c, h, w]`.
    pub shape: [usize; 3],
    /// Code values per image.
    pub dim: usize,
    /// `[n, dim]`, after dequantisation.
    pub codes: Vec<f32>,
    /// One per image, or empty.
    pub names: Vec<String>,
    /// The u8 step of each dimension (the quantisation error is at most half of it); empty for f16.
    pub steps: Vec<f32>,
}

impl Compressed {
    /// Images in the file.
    pub fn len(&self) -> usize {
        self.codes.len() / self.dim.max(1)
    }

    /// Whether the file holds no code.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

/// FNV-1a (64-bit) of the model's configuration JSON and of every parameter tensor (name, shape,
/// little-endian f32 bytes) in the model's own order: the same weights and architecture give the
/// same hash whatever file they were loaded from; any changed byte changes it (each FNV step is a
/// bijection of the state). Not a defence against forgery: an identity check against mix-ups.
pub fn model_hash(gpu: &Gpu, model: &Autoencoder) -> Result<u64> {
    let mut h = Fnv::new();
    h.bytes(model.config_json()?.as_bytes());
    for (name, shape, values) in model.export(gpu)? {
        h.bytes(name.as_bytes());
        shape.iter().for_each(|&d| h.bytes(&(d as u64).to_le_bytes()));
        values.iter().for_each(|v| h.bytes(&v.to_le_bytes()));
    }
    Ok(h.0)
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Quantises `codes` (`[n, dim]`) and lays out the file. `names` is empty or one per image.
pub fn compress(
    codes: &[f32],
    dim: usize,
    precision: Precision,
    model_hash: u64,
    shape: [usize; 3],
    names: &[String],
) -> Result<Vec<u8>> {
    if dim == 0 || codes.is_empty() || !codes.len().is_multiple_of(dim) {
        return Err(Error::Shape(format!("{} code values are not rows of {dim}", codes.len())));
    }
    if let Some(v) = codes.iter().find(|v| !v.is_finite()) {
        return Err(Error::BadData { path: "codes".into(), reason: format!("a code value is {v}") });
    }
    // f16 would store a finite code beyond its range as infinity, which decodes to nothing useful.
    if precision == Precision::F16
        && let Some(v) = codes.iter().find(|v| v.abs() > f16::MAX.to_f32())
    {
        return Err(Error::BadData {
            path: "codes".into(),
            reason: format!("a code value is {v}, beyond f16's range (±65504): use the u8 precision"),
        });
    }
    let n = codes.len() / dim;
    if !names.is_empty() && names.len() != n {
        return Err(Error::Shape(format!("{} names for {n} images", names.len())));
    }
    let too_big = |what: &str| Error::Config(format!("{what} does not fit the file format's field"));
    let mut out = Vec::with_capacity(40 + n * dim * 2);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(precision.tag());
    out.extend_from_slice(&model_hash.to_le_bytes());
    for s in shape {
        out.extend_from_slice(&u16::try_from(s).map_err(|_| too_big("the image size"))?.to_le_bytes());
    }
    out.extend_from_slice(&u32::try_from(dim).map_err(|_| too_big("the code size"))?.to_le_bytes());
    out.extend_from_slice(&u32::try_from(n).map_err(|_| too_big("the image count"))?.to_le_bytes());
    out.push(u8::from(!names.is_empty()));
    for name in names {
        let len = u16::try_from(name.len()).map_err(|_| too_big("a file name"))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
    }
    match precision {
        Precision::F16 => codes.iter().for_each(|&v| out.extend_from_slice(&f16::from_f32(v).to_le_bytes())),
        Precision::U8 => {
            let (lo, step) = ranges(codes, dim);
            for j in 0..dim {
                out.extend_from_slice(&lo[j].to_le_bytes());
                out.extend_from_slice(&step[j].to_le_bytes());
            }
            for row in codes.chunks(dim) {
                for j in 0..dim {
                    let q = if step[j] > 0.0 { ((row[j] - lo[j]) / step[j]).round() } else { 0.0 };
                    out.push(q.clamp(0.0, 255.0) as u8);
                }
            }
        }
    }
    Ok(out)
}

/// Per dimension: the minimum and `(max - min) / 255`.
fn ranges(codes: &[f32], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let mut lo = vec![f32::INFINITY; dim];
    let mut hi = vec![f32::NEG_INFINITY; dim];
    for row in codes.chunks(dim) {
        for j in 0..dim {
            lo[j] = lo[j].min(row[j]);
            hi[j] = hi[j].max(row[j]);
        }
    }
    let step = lo.iter().zip(&hi).map(|(l, h)| (h - l) / 255.0).collect();
    (lo, step)
}

/// Parses a file written by [`compress`]; `what` names it in errors.
pub fn decompress(bytes: &[u8], what: &std::path::Path) -> Result<Compressed> {
    let bad = |reason: &str| Error::BadData { path: what.to_path_buf(), reason: reason.to_string() };
    let mut r = Reader { bytes, at: 0 };
    if r.take(6).ok() != Some(MAGIC.as_slice()) {
        return Err(bad("not an aegpu compressed file (no AEGPUZ header); make one with `aegpu compress`"));
    }
    let truncated = |_| bad("the file is truncated");
    let version = r.u8().map_err(truncated)?;
    if version != VERSION {
        return Err(bad(&format!("format version {version}; this aegpu reads version {VERSION}")));
    }
    let precision = match r.u8().map_err(truncated)? {
        8 => Precision::U8,
        16 => Precision::F16,
        p => return Err(bad(&format!("unknown precision tag {p}"))),
    };
    let model_hash = u64::from_le_bytes(r.take(8).map_err(truncated)?.try_into().expect("8 bytes"));
    let mut shape = [0usize; 3];
    for s in &mut shape {
        *s = usize::from(r.u16().map_err(truncated)?);
    }
    let dim = r.u32().map_err(truncated)? as usize;
    let n = r.u32().map_err(truncated)? as usize;
    if dim == 0 || n == 0 {
        return Err(bad("holds no codes"));
    }
    let mut names = Vec::new();
    if r.u8().map_err(truncated)? == 1 {
        for _ in 0..n {
            let len = usize::from(r.u16().map_err(truncated)?);
            let name = std::str::from_utf8(r.take(len).map_err(truncated)?)
                .map_err(|_| bad("a name is not UTF-8"))?;
            names.push(name.to_string());
        }
    }
    let (codes, steps) = match precision {
        Precision::F16 => {
            let raw = r.take(2 * n * dim).map_err(truncated)?;
            (raw.chunks(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(), Vec::new())
        }
        Precision::U8 => {
            let table = r.take(8 * dim).map_err(truncated)?;
            let f = |b: &[u8]| f32::from_le_bytes(b.try_into().expect("4 bytes"));
            let (lo, step): (Vec<f32>, Vec<f32>) = table.chunks(8).map(|c| (f(&c[..4]), f(&c[4..]))).unzip();
            let raw = r.take(n * dim).map_err(truncated)?;
            (raw.iter().enumerate().map(|(i, &q)| lo[i % dim] + f32::from(q) * step[i % dim]).collect(), step)
        }
    };
    if r.at != bytes.len() {
        return Err(bad(&format!("{} bytes after the codes; the file is damaged", bytes.len() - r.at)));
    }
    Ok(Compressed { precision, model_hash, shape, dim, codes, names, steps })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], ()> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or(())?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> std::result::Result<u8, ()> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> std::result::Result<u16, ()> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self) -> std::result::Result<u32, ()> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
}
