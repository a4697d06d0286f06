//! Launcher for `shaders/gather.wgsl`: f32 batches from the u8 dataset resident on the GPU.

use super::{Launch, grid_1d};
use crate::gpu::View;
use crate::gpu::{PerStep, PipelineKey, Shader, StepState};

/// `shaders/gather.wgsl`.
pub const SHADER: Shader = Shader { name: "gather", source: include_str!("../../shaders/gather.wgsl") };

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GatherParams {
    pub batch: u32,
    pub dim: u32,
    /// Position of the batch's first example in the index buffer; rewritten every step.
    pub offset: u32,
    pub _pad: u32,
}

/// `out[b, j] = data[index[offset + b] * dim + j] / 255`.
pub fn gather_u8(out: &View, data: &View, index: &View, batch: usize, dim: usize, offset: usize) -> Launch {
    let p = GatherParams { batch: batch as u32, dim: dim as u32, offset: offset as u32, _pad: 0 };
    Launch {
        key: PipelineKey::new(SHADER, "gather_u8", &[]),
        uniform: bytemuck::bytes_of(&p).to_vec(),
        views: vec![data.clone(), index.clone(), out.clone()],
        workgroups: grid_1d(batch * dim, 256),
        label: "gather",
        per_step: Some(PerStep { draws_random: false, rewrite: at_batch_offset }),
    }
}

/// Every step, the gather reads the batch that starts at the step's position in the shuffled index.
fn at_batch_offset(uniform: &[u8], step: &StepState) -> Vec<u8> {
    let p: GatherParams = bytemuck::pod_read_unaligned(uniform);
    bytemuck::bytes_of(&GatherParams { offset: step.batch_offset as u32, ..p }).to_vec()
}
