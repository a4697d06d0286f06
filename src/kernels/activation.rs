//! Launcher for `shaders/activation.wgsl`: element-wise activation forward and backward, and the
//! backward fused with a layer's bias gradient.

use super::{Activation, Launch, grid_1d};
use crate::gpu::View;
use crate::gpu::{PipelineKey, Shader};

/// `shaders/activation.wgsl`, after the shared activation functions of `shaders/activation_fns.wgsl`,
/// reading the forward's output as f32.
pub const SHADER: Shader = Shader {
    name: "activation",
    source: concat!(
        include_str!("../../shaders/activation_fns.wgsl"),
        include_str!("../../shaders/activation.wgsl"),
        include_str!("../../shaders/activation_y_f32.wgsl")
    ),
};

/// The same, reading the forward's output as f16 (the opt-in f16 activation storage).
pub const HALF_Y_SHADER: Shader = Shader {
    name: "activation_half_y",
    source: concat!(
        "enable f16;\n",
        include_str!("../../shaders/activation_fns.wgsl"),
        include_str!("../../shaders/activation.wgsl"),
        include_str!("../../shaders/activation_y_half.wgsl")
    ),
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    act: u32,
    slope: f32,
    cols: u32,
}

fn params(n: usize, act: Activation) -> Vec<u8> {
    bytemuck::bytes_of(&Params { n: n as u32, act: act.id(), slope: act.slope(), cols: 0 }).to_vec()
}

/// `out[i] = act(inp[i])` for i < n. `out` may be `inp`.
pub fn activation_forward(out: &View, inp: &View, n: usize, act: Activation) -> Launch {
    Launch {
        key: PipelineKey::new(SHADER, "act_forward", &[]),
        uniform: params(n, act),
        // Binding 2 (the output y of the backward) is unused here; any view fills the slot.
        views: vec![inp.clone(), inp.clone(), out.clone()],
        workgroups: grid_1d(n, 256),
        label: "act_forward",
        per_step: None,
    }
}

/// `dinp[i] = dout[i] * act'(x_i)`, with the derivative taken from the forward output `out`.
/// `dinp` may be `dout` (in place).
pub fn activation_backward(dinp: &View, dout: &View, out: &View, n: usize, act: Activation) -> Launch {
    Launch {
        key: PipelineKey::new(SHADER, "act_backward", &[]),
        uniform: params(n, act),
        views: vec![dout.clone(), out.clone(), dinp.clone()],
        workgroups: grid_1d(n, 256),
        label: "act_backward",
        per_step: None,
    }
}

/// `dinp[i, j] = dout[i, j] * act'(out[i, j])` over `[rows, cols]` and, in the same pass, the bias
/// gradient `dbias[j] = Σ_i dinp[i, j]`: bit-identical to [`activation_backward`] followed by
/// [`super::reduce::bias_backward`] (same products, same summation order), one dispatch and one
/// pass over the matrix fewer. `dinp` may be `dout` (in place). `out_half`: `out` is stored as f16.
#[allow(clippy::too_many_arguments)]
pub fn activation_backward_bias(
    dinp: &View,
    dbias: &View,
    dout: &View,
    out: &View,
    rows: usize,
    cols: usize,
    act: Activation,
    out_half: bool,
) -> Launch {
    let p = Params { n: (rows * cols) as u32, act: act.id(), slope: act.slope(), cols: cols as u32 };
    let shader = if out_half { HALF_Y_SHADER } else { SHADER };
    Launch {
        key: PipelineKey::new(shader, "act_backward_colsum", &[]),
        uniform: bytemuck::bytes_of(&p).to_vec(),
        views: vec![dout.clone(), out.clone(), dinp.clone(), dbias.clone()],
        workgroups: [cols.div_ceil(32) as u32, 1, 1],
        label: "act_backward_colsum",
        per_step: None,
    }
}
