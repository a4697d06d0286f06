//! Parsing `.npy` image and label arrays with `npyz` (the `npy` feature; see the parent module for
//! the element types, shapes and layouts accepted).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use npyz::{DType, NpyFile, Order, TypeChar};

use super::super::Dataset;
use super::NpyLayout;
use crate::error::{Error, Result};

/// Loads the images in `images` (and the labels in `labels`, if given: an integer array of N
/// values in 0..=255, shape `[N]` or `[N, 1]`; all labels 0 without it) as a CHW dataset named
/// after the file. Unsupported element types or shapes, an ambiguous layout, NaN and truncated
/// files are [`Error::BadData`] naming the file.
pub fn load_npy(images: &Path, labels: Option<&Path>, layout: NpyLayout) -> Result<Dataset> {
    let npy = open(images)?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let (n, c, h, w, nhwc) = image_shape(images, &shape, layout)?;
    let strides: Vec<usize> = npy.strides().iter().map(|&s| s as usize).collect();
    let fortran = npy.order() == Order::Fortran && shape.len() > 1;
    let (type_char, size) = plain_type(images, &npy.dtype())?;
    let bytes: Vec<u8> = match (type_char, size) {
        (TypeChar::Uint, 1) => read_u8(images, npy, n * c * h * w)?,
        (TypeChar::Float, 4) => {
            let v: Vec<f32> = npy.into_vec().map_err(|e| read_error(images, e))?;
            floats_to_u8(images, v.into_iter().map(f64::from))?
        }
        (TypeChar::Float, 8) => {
            let v: Vec<f64> = npy.into_vec().map_err(|e| read_error(images, e))?;
            floats_to_u8(images, v.into_iter())?
        }
        _ => {
            return Err(bad(
                images,
                "elements are not uint8, float32 or float64; convert the array first".into(),
            ));
        }
    };
    let bytes = if fortran { to_c_order(&bytes, &shape, &strides) } else { bytes };
    let chw = if nhwc && c > 1 { nhwc_to_nchw(&bytes, c, h * w) } else { bytes };
    let labels = match labels {
        Some(path) => read_labels(path, n)?,
        None => vec![0; n],
    };
    let name = images.file_stem().map_or_else(|| "npy".into(), |s| s.to_string_lossy().into_owned());
    Dataset::from_chw(name, chw, labels, c, h, w)
}

/// `(n, channels, rows, cols, is_nhwc)` of an image array.
fn image_shape(
    path: &Path,
    shape: &[usize],
    layout: NpyLayout,
) -> Result<(usize, usize, usize, usize, bool)> {
    let ok_c = |c: usize| c == 1 || c == 3;
    let (n, c, h, w, nhwc) = match *shape {
        [n, h, w] => (n, 1, h, w, false),
        [n, a, b, d] => {
            let nhwc = match layout {
                NpyLayout::Nhwc => true,
                NpyLayout::Nchw => false,
                NpyLayout::Auto => match (ok_c(d), ok_c(a)) {
                    (true, false) => true,
                    (false, true) => false,
                    (true, true) => {
                        return Err(bad(
                            path,
                            format!(
                                "shape {shape:?} is ambiguous: either NHWC (channels last, {d}) or NCHW \
                                 (channels second, {a}); give the layout (--layout nhwc or nchw)"
                            ),
                        ));
                    }
                    (false, false) => {
                        return Err(bad(
                            path,
                            format!("shape {shape:?} has no channel axis of size 1 or 3, last or second"),
                        ));
                    }
                },
            };
            if nhwc { (n, d, a, b, true) } else { (n, a, b, d, false) }
        }
        _ => {
            return Err(bad(
                path,
                format!("shape {shape:?}: expected [N, H, W], [N, H, W, C] or [N, C, H, W]"),
            ));
        }
    };
    if !ok_c(c) {
        let order = if nhwc { "NHWC" } else { "NCHW" };
        return Err(bad(
            path,
            format!("shape {shape:?} read as {order} has {c} channels; 1 or 3 are supported"),
        ));
    }
    if n == 0 || h == 0 || w == 0 {
        return Err(bad(path, format!("shape {shape:?} holds no pixels")));
    }
    if n.checked_mul(c).and_then(|v| v.checked_mul(h)).and_then(|v| v.checked_mul(w)).is_none() {
        return Err(bad(path, format!("shape {shape:?} has more elements than memory can address")));
    }
    Ok((n, c, h, w, nhwc))
}

/// Opens a `.npy` file and parses its header.
fn open(path: &Path) -> Result<NpyFile<BufReader<File>>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    NpyFile::new(BufReader::new(file)).map_err(|e| bad(path, format!("not a readable .npy file: {e}")))
}

/// The scalar type of a plain (non-structured) dtype.
fn plain_type(path: &Path, dtype: &DType) -> Result<(TypeChar, u64)> {
    match dtype {
        DType::Plain(t) => Ok((t.type_char(), t.size_field())),
        other => Err(bad(path, format!("structured dtype {} is not supported", other.descr()))),
    }
}

/// The raw bytes of a uint8 array, which must hold exactly `count` of them.
fn read_u8(path: &Path, npy: NpyFile<BufReader<File>>, count: usize) -> Result<Vec<u8>> {
    // The count comes from the header: a damaged one must not reserve more than the file can hold.
    let mut bytes = Vec::with_capacity(count.min(1 << 26));
    npy.into_inner().read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() != count {
        return Err(bad(
            path,
            format!("the shape needs {count} bytes of data, the file holds {}", bytes.len()),
        ));
    }
    Ok(bytes)
}

/// `round(x * 255)` clamped to a byte, for values meant to lie in `[0, 1]`.
fn floats_to_u8(path: &Path, values: impl Iterator<Item = f64>) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(values.size_hint().0);
    for (i, x) in values.enumerate() {
        if x.is_nan() {
            return Err(bad(path, format!("element {i} is NaN")));
        }
        if x > 2.0 {
            return Err(bad(
                path,
                format!("element {i} is {x}: float pixels must lie in [0, 1] (divide 0-255 data by 255)"),
            ));
        }
        out.push((x * 255.0).round().clamp(0.0, 255.0) as u8);
    }
    Ok(out)
}

/// Reads labels: integers of any width and byte order, `[n]` or `[n, 1]`, each in 0..=255.
fn read_labels(path: &Path, n: usize) -> Result<Vec<u8>> {
    let npy = open(path)?;
    let shape = npy.shape().to_vec();
    if !(shape == [n as u64] || shape == [n as u64, 1]) {
        return Err(bad(path, format!("labels have shape {shape:?}; expected [{n}] to match the images")));
    }
    let values: Vec<i128> = match plain_type(path, &npy.dtype())? {
        (TypeChar::Int, 1) => widen::<i8>(path, npy)?,
        (TypeChar::Int, 2) => widen::<i16>(path, npy)?,
        (TypeChar::Int, 4) => widen::<i32>(path, npy)?,
        (TypeChar::Int, 8) => widen::<i64>(path, npy)?,
        (TypeChar::Uint, 1) => widen::<u8>(path, npy)?,
        (TypeChar::Uint, 2) => widen::<u16>(path, npy)?,
        (TypeChar::Uint, 4) => widen::<u32>(path, npy)?,
        (TypeChar::Uint, 8) => widen::<u64>(path, npy)?,
        _ => return Err(bad(path, "labels must be an integer array".into())),
    };
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            u8::try_from(v).map_err(|_| bad(path, format!("label {v} at index {i} is outside 0..=255")))
        })
        .collect()
}

/// All elements of an integer array as i128.
fn widen<T: npyz::Deserialize + Into<i128>>(path: &Path, npy: NpyFile<BufReader<File>>) -> Result<Vec<i128>> {
    let v: Vec<T> = npy.into_vec().map_err(|e| read_error(path, e))?;
    Ok(v.into_iter().map(Into::into).collect())
}

/// Elements stored with `strides` (in elements, per axis of `shape`) gathered into C order.
fn to_c_order(data: &[u8], shape: &[usize], strides: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut index = vec![0usize; shape.len()];
    for _ in 0..data.len() {
        out.push(data[index.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>()]);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

/// `[N, H, W, C]` to `[N, C, H, W]` for images of `hw` pixels.
fn nhwc_to_nchw(data: &[u8], c: usize, hw: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    for (src, dst) in data.chunks_exact(c * hw).zip(out.chunks_exact_mut(c * hw)) {
        for (p, px) in src.chunks_exact(c).enumerate() {
            for (ch, &v) in px.iter().enumerate() {
                dst[ch * hw + p] = v;
            }
        }
    }
    out
}

fn read_error(path: &Path, e: std::io::Error) -> Error {
    bad(path, format!("cannot read the data (truncated file?): {e}"))
}

fn bad(path: &Path, reason: String) -> Error {
    Error::BadData { path: path.to_path_buf(), reason }
}
