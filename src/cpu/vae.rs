//! Reference for `shaders/vae.wgsl`. `h` is [batch, 2d]: columns 0..d are μ, d..2d are log σ².
//! Computed in f64 and rounded once.

/// `z[b, j] = μ + exp(½ log σ²) · eps[b, j]`.
pub fn reparam_forward(z: &mut [f32], h: &[f32], eps: &[f32], batch: usize, d: usize) {
    for b in 0..batch {
        for j in 0..d {
            let mu = h[b * 2 * d + j] as f64;
            let lv = h[b * 2 * d + d + j] as f64;
            z[b * d + j] = (mu + (0.5 * lv).exp() * eps[b * d + j] as f64) as f32;
        }
    }
}

/// `z[b, j] = μ[b, j]`: the code at its mean.
pub fn reparam_mean(z: &mut [f32], h: &[f32], batch: usize, d: usize) {
    for b in 0..batch {
        z[b * d..(b + 1) * d].copy_from_slice(&h[b * 2 * d..b * 2 * d + d]);
    }
}

/// `dh` from `dz`, plus the gradient of `beta · kl_scale · KL`.
#[allow(clippy::too_many_arguments)]
pub fn reparam_backward(
    dh: &mut [f32],
    dz: &[f32],
    h: &[f32],
    eps: &[f32],
    batch: usize,
    d: usize,
    beta: f32,
    kl_scale: f32,
) {
    let k = beta as f64 * kl_scale as f64;
    for b in 0..batch {
        for j in 0..d {
            let mu = h[b * 2 * d + j] as f64;
            let lv = h[b * 2 * d + d + j] as f64;
            let g = dz[b * d + j] as f64;
            let e = eps[b * d + j] as f64;
            dh[b * 2 * d + j] = (g + k * mu) as f32;
            dh[b * 2 * d + d + j] = (g * 0.5 * (0.5 * lv).exp() * e + k * 0.5 * (lv.exp() - 1.0)) as f32;
        }
    }
}

/// `KL = −½ Σ_{b,j} (1 + log σ² − μ² − σ²)`, summed over the batch, in f64.
pub fn kl(h: &[f32], batch: usize, d: usize) -> f64 {
    let mut s = 0.0;
    for b in 0..batch {
        for j in 0..d {
            let mu = h[b * 2 * d + j] as f64;
            let lv = h[b * 2 * d + d + j] as f64;
            s += -0.5 * (1.0 + lv - mu * mu - lv.exp());
        }
    }
    s
}
