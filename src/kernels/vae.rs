//! Launcher for `shaders/vae.wgsl`: the VAE's reparameterisation (forward, and backward with the KL
//! gradient fused in) and the KL divergence, reduced deterministically. CPU reference:
//! `src/cpu/vae.rs`.
//!
//! `h` is the encoder's last layer, [batch, 2d]: columns 0..d are μ, d..2d are log σ².

use super::{Launch, grid_1d, reduce};
use crate::gpu::View;
use crate::gpu::{PipelineKey, Shader};

/// `shaders/vae.wgsl`.
pub const SHADER: Shader = Shader { name: "vae", source: include_str!("../../shaders/vae.wgsl") };

/// The uniform block of every entry point of `vae.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct VaeParams {
    /// Rows (examples) of `h`, `z` and `eps`.
    pub batch: u32,
    /// Latent dimension: `z` is `[batch, d]`, `h` is `[batch, 2d]`.
    pub d: u32,
    /// Weight β of the KL term in the gradient.
    pub beta: f32,
    /// Factor on the KL sum over the batch (1/batch for a per-image mean).
    pub kl_scale: f32,
}

fn params(batch: usize, d: usize, beta: f32, kl_scale: f32) -> VaeParams {
    VaeParams { batch: batch as u32, d: d as u32, beta, kl_scale }
}

/// `z[b, j] = μ[b, j] + exp(½ log σ²[b, j]) · eps[b, j]`; z and eps are [batch, d].
pub fn reparam_forward(z: &View, h: &View, eps: &View, batch: usize, d: usize) -> Launch {
    Launch {
        key: PipelineKey::new(SHADER, "reparam_forward", &[]),
        uniform: bytemuck::bytes_of(&params(batch, d, 0.0, 0.0)).to_vec(),
        views: vec![z.clone(), h.clone(), eps.clone()],
        workgroups: grid_1d(batch * d, 256),
        label: "reparam_forward",
        per_step: None,
    }
}

/// `z[b, j] = μ[b, j]`: the code without its noise (a VAE evaluated at z = μ); z is [batch, d].
pub fn reparam_mean(z: &View, h: &View, batch: usize, d: usize) -> Launch {
    Launch {
        key: PipelineKey::new(SHADER, "reparam_mean", &[]),
        uniform: bytemuck::bytes_of(&params(batch, d, 0.0, 0.0)).to_vec(),
        views: vec![z.clone(), h.clone()],
        workgroups: grid_1d(batch * d, 256),
        label: "reparam_mean",
        per_step: None,
    }
}

/// Writes all of `dh` [batch, 2d] from `dz` [batch, d], adding the gradient of
/// `beta · kl_scale · KL` (use `kl_scale = 1/batch` when the loss is a per-image mean):
/// `dμ = dz + β·s·μ`, `dlogσ² = dz·½·exp(½ logσ²)·ε + β·s·½(exp(logσ²) − 1)`.
#[allow(clippy::too_many_arguments)]
pub fn reparam_backward(
    dh: &View,
    dz: &View,
    h: &View,
    eps: &View,
    batch: usize,
    d: usize,
    beta: f32,
    kl_scale: f32,
) -> Launch {
    Launch {
        key: PipelineKey::new(SHADER, "reparam_backward", &[]),
        uniform: bytemuck::bytes_of(&params(batch, d, beta, kl_scale)).to_vec(),
        views: vec![dh.clone(), h.clone(), eps.clone(), dz.clone()],
        workgroups: grid_1d(batch * d, 256),
        label: "reparam_backward",
        per_step: None,
    }
}

/// Number of partial sums `kl_forward` writes for `n = batch · d` latent elements.
pub fn kl_partial_rows(n: usize) -> usize {
    let g = grid_1d(n, 1024);
    (g[0] * g[1]) as usize
}

/// The KL pass then its reduction: `total[0] = KL = −½ Σ_{b,j} (1 + log σ² − μ² − σ²)`, summed over
/// the batch (not divided by it, not scaled by β). `partials` needs `kl_partial_rows(batch·d)` words.
pub fn kl_forward(total: &View, partials: &View, h: &View, batch: usize, d: usize) -> [Launch; 2] {
    let n = batch * d;
    let pass = Launch {
        key: PipelineKey::new(SHADER, "kl_partials", &[]),
        uniform: bytemuck::bytes_of(&params(batch, d, 0.0, 0.0)).to_vec(),
        views: vec![partials.clone(), h.clone()],
        workgroups: grid_1d(n, 1024),
        label: "kl_partials",
        per_step: None,
    };
    [pass, reduce::colsum(total, partials, kl_partial_rows(n), 1, false)]
}
