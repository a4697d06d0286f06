//! Launcher for `shaders/gather.wgsl`: f32 batches from the u8 dataset resident on the GPU.

use super::{Launch, grid_1d};
use crate::gpu::PipelineKey;
use crate::runner::View;

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
        key: PipelineKey::new("gather", "gather_u8", &[]),
        uniform: bytemuck::bytes_of(&p).to_vec(),
        views: vec![data.clone(), index.clone(), out.clone()],
        workgroups: grid_1d(batch * dim, 256),
        label: "gather",
    }
}
