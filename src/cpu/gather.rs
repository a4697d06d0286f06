//! Reference for `shaders/gather.wgsl`.

use std::ops::Range;

/// `out[b, j] = data[index[offset + b] * dim + j] / 255`.
pub fn gather_u8(out: &mut [f32], data: &[u8], index: &[u32], batch: usize, dim: usize, offset: usize) {
    gather_u8_chunk(out, data, index, batch, dim, offset, 0..u32::MAX as usize);
}

/// One chunk's dispatch: `chunk` holds the examples `examples` (from `examples.start`), and only the
/// rows whose example is among them are written,
/// `out[b, j] = chunk[(index[offset + b] - examples.start) * dim + j] / 255`.
pub fn gather_u8_chunk(
    out: &mut [f32],
    chunk: &[u8],
    index: &[u32],
    batch: usize,
    dim: usize,
    offset: usize,
    examples: Range<usize>,
) {
    gather_u8_chunk_mapped(out, chunk, index, batch, dim, offset, examples, (0.0, 255.0));
}

/// [`gather_u8_chunk`] with bytes meaning `(byte - zero) / scale`.
#[allow(clippy::too_many_arguments)]
pub fn gather_u8_chunk_mapped(
    out: &mut [f32],
    chunk: &[u8],
    index: &[u32],
    batch: usize,
    dim: usize,
    offset: usize,
    examples: Range<usize>,
    (zero, scale): (f32, f32),
) {
    for b in 0..batch {
        let e = index[offset + b] as usize;
        if !examples.contains(&e) {
            continue;
        }
        let src = (e - examples.start) * dim;
        for j in 0..dim {
            out[b * dim + j] = (chunk[src + j] as f32 - zero) / scale;
        }
    }
}
