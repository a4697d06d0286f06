//! Launcher for `shaders/recirculation.wgsl`: the visible units' regressed second state and the
//! scaled differences of activities that recirculation learns from.

use super::{Launch, grid_1d};
use crate::gpu::View;
use crate::gpu::{PipelineKey, Shader};

/// `shaders/recirculation.wgsl`.
pub const SHADER: Shader =
    Shader { name: "recirculation", source: include_str!("../../shaders/recirculation.wgsl") };

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    value: f32,
    _pad: [u32; 2],
}

fn launch(entry: &'static str, out: &View, a: &View, b: &View, n: usize, value: f32) -> Launch {
    let p = Params { n: n as u32, value, _pad: [0; 2] };
    Launch {
        key: PipelineKey::new(SHADER, entry, &[]),
        uniform: bytemuck::bytes_of(&p).to_vec(),
        views: vec![a.clone(), b.clone(), out.clone()],
        workgroups: grid_1d(n, 256),
        label: entry,
        per_step: None,
    }
}

/// `out = λ·x + (1 − λ)·σ(logits)` over `n` values.
pub fn recirc_mix(out: &View, x: &View, logits: &View, n: usize, lambda: f32) -> Launch {
    launch("recirc_mix", out, x, logits, n, lambda)
}

/// `out = scale·(a − b)` over `n` values.
pub fn recirc_diff(out: &View, a: &View, b: &View, n: usize, scale: f32) -> Launch {
    launch("recirc_diff", out, a, b, n, scale)
}
