//! Launcher for `shaders/penalty.wgsl`: sparse (L1/L2 activity) and contractive penalties, their
//! values and their gradients added into the backward pass's buffers.

use super::{Launch, grid_1d, reduce};
use crate::gpu::View;
use crate::gpu::{PipelineKey, Shader};

/// `shaders/penalty.wgsl`.
pub const SHADER: Shader = Shader { name: "penalty", source: include_str!("../../shaders/penalty.wgsl") };

/// Which norm a sparse autoencoder puts on the activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SparseNorm {
    /// λ·Σ_j |h_j|: gradient λ·sign(h_j).
    L1,
    /// λ·Σ_j h_j²: gradient 2λ·h_j.
    L2,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    width: u32,
    inputs: u32,
    l2: u32,
    scale: f32,
    write_grad: u32,
    _pad: [u32; 2],
}

fn params(batch: usize, width: usize, inputs: usize, l2: bool, scale: f32, write_grad: bool) -> Vec<u8> {
    let p = Params {
        batch: batch as u32,
        width: width as u32,
        inputs: inputs as u32,
        l2: l2 as u32,
        scale,
        write_grad: write_grad as u32,
        _pad: [0; 2],
    };
    bytemuck::bytes_of(&p).to_vec()
}

/// Partial sums written by [`activity_penalty`] for `n` activations.
pub fn activity_partial_rows(n: usize) -> usize {
    let g = grid_1d(n, 1024);
    (g[0] * g[1]) as usize
}

/// Sparse penalty on `h` [batch, width]: `total[0] = Σ|h|` (L1) or `Σh²` (L2), unscaled; with `dh`,
/// adds `scale · ∂/∂h` to it (`scale = λ / batch` for a per-example penalty).
#[allow(clippy::too_many_arguments)]
pub fn activity_penalty(
    total: &View,
    partials: &View,
    dh: Option<&View>,
    h: &View,
    batch: usize,
    width: usize,
    norm: SparseNorm,
    scale: f32,
) -> [Launch; 2] {
    let n = batch * width;
    let pass = Launch {
        key: PipelineKey::new(SHADER, "activity_penalty", &[]),
        uniform: params(batch, width, 0, norm == SparseNorm::L2, scale, dh.is_some()),
        views: vec![
            h.clone(),
            dh.cloned().unwrap_or_else(|| partials.clone()),
            partials.clone(),
            partials.clone(),
        ],
        workgroups: grid_1d(n, 1024),
        label: "activity_penalty",
        per_step: None,
    };
    [pass, reduce::colsum(total, partials, activity_partial_rows(n), 1, false)]
}

/// `s[j] = Σ_i W[j,i]²` for W [width, inputs].
pub fn contractive_rows(s: &View, w: &View, width: usize, inputs: usize) -> Launch {
    Launch {
        key: PipelineKey::new(SHADER, "contractive_rows", &[]),
        uniform: params(0, width, inputs, false, 0.0, false),
        views: vec![w.clone(), s.clone(), s.clone(), s.clone()],
        workgroups: [width.div_ceil(64) as u32, 1, 1],
        label: "contractive_rows",
        per_step: None,
    }
}

/// For a sigmoid layer h = σ(Wx + b) [batch, width] with row norms `s`: `jf2[b] = ‖J_b‖²_F`, and with
/// `dh`, `dh += scale · ∂(Σ_b ‖J_b‖²_F)/∂h`.
pub fn contractive_h(
    jf2: &View,
    dh: Option<&View>,
    h: &View,
    s: &View,
    batch: usize,
    width: usize,
    scale: f32,
) -> Launch {
    Launch {
        key: PipelineKey::new(SHADER, "contractive_h", &[]),
        uniform: params(batch, width, 0, false, scale, dh.is_some()),
        views: vec![h.clone(), dh.cloned().unwrap_or_else(|| jf2.clone()), s.clone(), jf2.clone()],
        workgroups: [batch.div_ceil(64) as u32, 1, 1],
        label: "contractive_h",
        per_step: None,
    }
}

/// `dW[j,i] += scale · 2 (Σ_b g_bj²) W[j,i]` with `g = h(1-h)`: the penalty's path through the row norms.
pub fn contractive_weight(
    dw: &View,
    h: &View,
    w: &View,
    batch: usize,
    width: usize,
    inputs: usize,
    scale: f32,
) -> Launch {
    Launch {
        key: PipelineKey::new(SHADER, "contractive_weight", &[]),
        uniform: params(batch, width, inputs, false, scale, true),
        views: vec![h.clone(), w.clone(), dw.clone(), dw.clone()],
        workgroups: [width.div_ceil(64) as u32, 1, 1],
        label: "contractive_weight",
        per_step: None,
    }
}
