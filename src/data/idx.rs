//! The IDX file format of MNIST and Fashion-MNIST: a big-endian header (magic `00 00 08 DD`, then
//! DD 32-bit sizes) followed by unsigned bytes in row-major order. Files may be gzip-compressed.

use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// One IDX file, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// The sizes from the header, outermost first (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// The elements in row-major order; `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

/// The element type code for unsigned bytes, the only one MNIST-style files use.
const TYPE_U8: u8 = 0x08;

/// Reads an IDX file, gzip-compressed (detected by the `1f 8b` magic, not by the name) or raw.
///
/// Checks the magic (`00 00 08 DD`: only unsigned-byte data) and that the data length is exactly
/// the product of the dimensions; a truncated file, trailing bytes or a corrupt gzip stream give
/// [`Error::BadData`].
pub fn read_idx(path: &Path) -> Result<Idx> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) { gunzip(&raw, path)? } else { raw };
    parse_idx(bytes, path)
}

/// Decompresses a whole gzip file (all members, as `gzip -d` does).
fn gunzip(compressed: &[u8], path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(size_hint(compressed));
    MultiGzDecoder::new(compressed).read_to_end(&mut out).map_err(|e| Error::BadData {
        path: path.to_path_buf(),
        reason: format!("corrupt gzip stream: {e}"),
    })?;
    Ok(out)
}

/// The unpacked size the gzip trailer announces (modulo 2^32), bounded by what deflate can expand
/// to, so a damaged trailer cannot make us allocate gigabytes up front. Only a capacity hint.
fn size_hint(compressed: &[u8]) -> usize {
    let Some(tail) = compressed.last_chunk::<4>() else {
        return 0;
    };
    let announced = u32::from_le_bytes(*tail) as usize;
    announced.min(compressed.len().saturating_mul(1032))
}

/// Checks the header of an unpacked IDX image and strips it, keeping the data in place.
fn parse_idx(mut bytes: Vec<u8>, path: &Path) -> Result<Idx> {
    let bad = |reason: String| Error::BadData { path: path.to_path_buf(), reason };
    let Some(&[z0, z1, elem, ndims]) = bytes.first_chunk::<4>() else {
        return Err(bad(format!("only {} bytes, too short for the 4-byte IDX magic", bytes.len())));
    };
    if z0 != 0 || z1 != 0 {
        return Err(bad(format!("not an IDX file: magic starts {z0:02x} {z1:02x}, expected 00 00")));
    }
    if elem != TYPE_U8 {
        return Err(bad(format!(
            "element type 0x{elem:02x} is not supported; only unsigned bytes (0x08) are"
        )));
    }
    if ndims == 0 {
        return Err(bad("the header declares 0 dimensions".into()));
    }

    let header_len = 4 + 4 * usize::from(ndims);
    if bytes.len() < header_len {
        return Err(bad(format!(
            "truncated header: {ndims} dimensions need {header_len} header bytes, found {}",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow the address space")))?;

    let found = bytes.len() - header_len;
    if found < expected {
        return Err(bad(format!("truncated: dimensions {dims:?} need {expected} data bytes, found {found}")));
    }
    if found > expected {
        return Err(bad(format!(
            "{} unexpected trailing bytes after the {expected} data bytes of dimensions {dims:?}",
            found - expected
        )));
    }
    bytes.drain(..header_len);
    Ok(Idx { dims, data: bytes })
}
