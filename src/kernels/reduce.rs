//! Launcher for `shaders/reduce.wgsl`: deterministic column sums (bias gradients, loss totals).

use super::Launch;
use crate::gpu::View;
use crate::gpu::{PipelineKey, Shader};

/// `shaders/reduce.wgsl`.
pub const SHADER: Shader = Shader { name: "reduce", source: include_str!("../../shaders/reduce.wgsl") };

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    accumulate: u32,
    _pad: u32,
}

/// `out[j] (+)= Σ_i inp[i, j]` for `inp` of shape [rows, cols].
pub fn colsum(out: &View, inp: &View, rows: usize, cols: usize, accumulate: bool) -> Launch {
    let p = Params { rows: rows as u32, cols: cols as u32, accumulate: accumulate as u32, _pad: 0 };
    Launch {
        key: PipelineKey::new(SHADER, "colsum", &[]),
        uniform: bytemuck::bytes_of(&p).to_vec(),
        views: vec![inp.clone(), out.clone()],
        workgroups: [cols.div_ceil(32) as u32, 1, 1],
        label: "colsum",
        per_step: None,
    }
}

/// Backward of a bias: `dbias[OUT] = Σ_b dout[b, OUT]`.
pub fn bias_backward(dbias: &View, dout: &View, batch: usize, out_dim: usize) -> Launch {
    colsum(dbias, dout, batch, out_dim, false)
}
