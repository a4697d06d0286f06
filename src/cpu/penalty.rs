//! Reference for `shaders/penalty.wgsl`.

use crate::kernels::penalty::SparseNorm;

/// Returns Σ|h| or Σh²; adds `scale · ∂/∂h` to `dh` when given.
pub fn activity_penalty(dh: Option<&mut [f32]>, h: &[f32], norm: SparseNorm, scale: f32) -> f64 {
    let total = h
        .iter()
        .map(|&v| match norm {
            SparseNorm::L1 => v.abs() as f64,
            SparseNorm::L2 => (v as f64) * (v as f64),
        })
        .sum();
    if let Some(dh) = dh {
        for (d, &v) in dh.iter_mut().zip(h) {
            *d += scale
                * match norm {
                    SparseNorm::L1 => v.signum() * (v != 0.0) as u8 as f32,
                    SparseNorm::L2 => 2.0 * v,
                };
        }
    }
    total
}

/// Squared row norms of W [width, inputs].
pub fn contractive_rows(w: &[f32], width: usize, inputs: usize) -> Vec<f32> {
    (0..width)
        .map(|j| w[j * inputs..(j + 1) * inputs].iter().map(|&x| (x as f64).powi(2)).sum::<f64>() as f32)
        .collect()
}

/// ‖J_b‖²_F per example for a sigmoid layer; adds `scale · ∂(Σ_b ‖J_b‖²)/∂h` to `dh` when given.
pub fn contractive_h(
    dh: Option<&mut [f32]>,
    h: &[f32],
    s: &[f32],
    batch: usize,
    width: usize,
    scale: f32,
) -> Vec<f64> {
    let jf2 = (0..batch)
        .map(|b| {
            (0..width)
                .map(|j| {
                    let v = h[b * width + j] as f64;
                    (v * (1.0 - v)).powi(2) * s[j] as f64
                })
                .sum()
        })
        .collect();
    if let Some(dh) = dh {
        for b in 0..batch {
            for j in 0..width {
                let v = h[b * width + j];
                let g = v * (1.0 - v);
                dh[b * width + j] += scale * 2.0 * g * (1.0 - 2.0 * v) * s[j];
            }
        }
    }
    jf2
}

/// `dW += scale · 2 (Σ_b g²) W`.
pub fn contractive_weight(
    dw: &mut [f32],
    h: &[f32],
    w: &[f32],
    batch: usize,
    width: usize,
    inputs: usize,
    scale: f32,
) {
    for j in 0..width {
        let g2: f64 = (0..batch)
            .map(|b| {
                let v = h[b * width + j] as f64;
                (v * (1.0 - v)).powi(2)
            })
            .sum();
        for i in 0..inputs {
            dw[j * inputs + i] += scale * 2.0 * g2 as f32 * w[j * inputs + i];
        }
    }
}
