//! Launcher for `shaders/gather.wgsl`: f32 batches from the u8 dataset resident on the GPU, whole
//! or one chunk of examples per launch.

use super::{Launch, grid_1d};
use crate::gpu::View;
use crate::gpu::{PerStep, PipelineKey, Shader, StepState};
use std::ops::Range;

/// `shaders/gather.wgsl`.
pub const SHADER: Shader = Shader { name: "gather", source: include_str!("../../shaders/gather.wgsl") };

/// The uniform of `gather_u8` (layout of gather.wgsl's `Params`, 32 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GatherParams {
    /// Rows of the output batch `[batch, dim]`.
    pub batch: u32,
    /// Bytes per example in the data, f32 values per row of the output.
    pub dim: u32,
    /// Position of the batch's first example in the index buffer; rewritten every step.
    pub offset: u32,
    /// The chunk's first example and number of examples.
    pub first: u32,
    /// Examples the bound chunk holds, from `first`; rows whose example is outside are not written.
    pub count: u32,
    /// A byte `v` becomes `(v - zero) / scale`.
    pub zero: f32,
    /// Divisor of the map above: 255 for pixels in [0, 1].
    pub scale: f32,
    /// Padding to a 16-byte multiple; 0.
    pub _pad: u32,
}

/// `out[b, j] = data[index[offset + b] * dim + j] / 255`: the whole dataset in one buffer.
pub fn gather_u8(out: &View, data: &View, index: &View, batch: usize, dim: usize, offset: usize) -> Launch {
    // Every example index is below u32::MAX, so one chunk from 0 of u32::MAX examples holds them all.
    gather_u8_chunk(out, data, index, batch, dim, offset, 0..u32::MAX as usize)
}

/// The rows of the batch whose example is in `examples` (the chunk `chunk` holds, from its start):
/// `out[b, j] = chunk[(index[offset + b] - examples.start) * dim + j] / 255`; other rows untouched.
pub fn gather_u8_chunk(
    out: &View,
    chunk: &View,
    index: &View,
    batch: usize,
    dim: usize,
    offset: usize,
    examples: Range<usize>,
) -> Launch {
    gather_u8_chunk_mapped(out, chunk, index, batch, dim, offset, examples, (0.0, 255.0))
}

/// [`gather_u8_chunk`] with another meaning of the bytes: `out[b, j] = (byte - zero) / scale` for
/// `(zero, scale) = bytes` (whitened patches are stored around 127.5).
#[allow(clippy::too_many_arguments)]
pub fn gather_u8_chunk_mapped(
    out: &View,
    chunk: &View,
    index: &View,
    batch: usize,
    dim: usize,
    offset: usize,
    examples: Range<usize>,
    (zero, scale): (f32, f32),
) -> Launch {
    let p = GatherParams {
        batch: batch as u32,
        dim: dim as u32,
        offset: offset as u32,
        first: examples.start as u32,
        count: examples.len() as u32,
        zero,
        scale,
        _pad: 0,
    };
    Launch {
        key: PipelineKey::new(SHADER, "gather_u8", &[]),
        uniform: bytemuck::bytes_of(&p).to_vec(),
        views: vec![chunk.clone(), index.clone(), out.clone()],
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
