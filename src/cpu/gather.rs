//! Reference for `shaders/gather.wgsl`.

/// `out[b, j] = data[index[offset + b] * dim + j] / 255`.
pub fn gather_u8(out: &mut [f32], data: &[u8], index: &[u32], batch: usize, dim: usize, offset: usize) {
    for b in 0..batch {
        let src = index[offset + b] as usize * dim;
        for j in 0..dim {
            out[b * dim + j] = data[src + j] as f32 / 255.0;
        }
    }
}
