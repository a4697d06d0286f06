//! What a kernel launch is, at the bottom of the crate: views of storage buffers, the shader a
//! pipeline is built from, and a [`Launch`] (pipeline key, uniform bytes, views, workgroups, and how
//! its uniform changes from one training step to the next). Launchers in `kernels` build these;
//! the runner's plans record them. Nothing here imports from above `gpu`.

use super::{Gpu, StorageBuffer};
use crate::error::{Error, Result};

/// A window of 32-bit words in a storage buffer.
#[derive(Clone, Debug)]
pub struct View {
    /// The buffer the view is a window of.
    pub buffer: wgpu::Buffer,
    /// In words. Views bound to a shader start at a multiple of the adapter's storage alignment.
    pub offset: usize,
    /// In words.
    pub len: usize,
}

impl View {
    /// All of `b`.
    pub fn whole(b: &StorageBuffer) -> View {
        View { buffer: b.buffer.clone(), offset: 0, len: b.len }
    }

    /// Blocking read as f32 (tests, evaluation, checkpoints; never the training step).
    pub fn read(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        let sb = StorageBuffer { buffer: self.buffer.clone(), len: self.offset + self.len };
        sb.read_f32(gpu, self.offset..self.offset + self.len)
    }

    /// Queues a write of `data` (at most `len` words) at the start of the view.
    pub fn write(&self, gpu: &Gpu, data: &[f32]) -> Result<()> {
        if data.len() > self.len {
            return Err(Error::Shape(format!("writing {} values into a view of {}", data.len(), self.len)));
        }
        gpu.queue.write_buffer(&self.buffer, (self.offset * 4) as u64, bytemuck::cast_slice(data));
        Ok(())
    }
}

/// A WGSL shader: its name (the file stem in `shaders/`) and its full source. Each launcher owns
/// the shaders it dispatches as constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shader {
    /// The file stem in `shaders/`.
    pub name: &'static str,
    /// The WGSL the pipeline compiles (after any shared prelude).
    pub source: &'static str,
}

/// The values a step of a plan may change: the step count (1-based in training; it seeds random
/// streams and is the optimiser's t) and the batch's first position in the shuffled index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepState {
    /// The step count (1-based in training).
    pub step: u64,
    /// The batch's first position in the epoch's order.
    pub batch_offset: usize,
    /// For a launch that draws random numbers: its ordinal among the plan's drawing launches
    /// (filled in by the plan), so each gets its own stream.
    pub random_slot: u16,
}

/// How a launch's uniform changes per step: a function of its uniform as built and the step.
#[derive(Clone, Copy, Debug)]
pub struct PerStep {
    /// The launch draws random numbers (the plan numbers these launches 0, 1, ... in order).
    pub draws_random: bool,
    /// The launch's uniform for a step, from its uniform as built.
    pub rewrite: fn(&[u8], &StepState) -> Vec<u8>,
}

/// Everything a plan needs to record one dispatch.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Which pipeline runs.
    pub key: super::PipelineKey,
    /// The uniform block at binding 0, as built (per-step launches rewrite it each step).
    pub uniform: Vec<u8>,
    /// Storage bindings 1.. in order.
    pub views: Vec<View>,
    /// Workgroups dispatched (x, y, z).
    pub workgroups: [u32; 3],
    /// A short name for profiles and error messages.
    pub label: &'static str,
    /// `None`: the uniform is the same every step.
    pub per_step: Option<PerStep>,
}

/// Workgroups for a 1-D dispatch of `n` items, `per_group` each, folded into y past the 65535 limit.
/// Shaders recover the flat index as `gid.x + gid.y * num_workgroups.x * per_group`.
pub fn grid_1d(n: usize, per_group: usize) -> [u32; 3] {
    let groups = n.div_ceil(per_group).max(1);
    if groups <= 65535 {
        [groups as u32, 1, 1]
    } else {
        let y = groups.div_ceil(65535);
        [groups.div_ceil(y) as u32, y as u32, 1]
    }
}
