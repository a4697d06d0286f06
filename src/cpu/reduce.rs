//! Reference for `shaders/reduce.wgsl`.

/// `out[j] (+)= Σ_i inp[i, j]`, accumulated in f64.
pub fn colsum(out: &mut [f32], inp: &[f32], rows: usize, cols: usize, accumulate: bool) {
    for j in 0..cols {
        let s: f64 = (0..rows).map(|i| inp[i * cols + j] as f64).sum();
        out[j] = if accumulate { out[j] + s as f32 } else { s as f32 };
    }
}
