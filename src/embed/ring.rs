//! Per-step uniform slots: how several steps of one plan share one encoder.
//!
//! A plan's per-step values (the batch offset, the optimiser's step, the random streams) live in its
//! uniform buffer, and [`Plan::advance`] rewrites them with `queue.write_buffer`, which takes effect
//! at the *next submit*, before every command buffer of that submit. Two steps recorded into one
//! encoder would therefore both see the values written last. Instead, each step recorded since the
//! last submit gets its own slot in a staging buffer: the step's values are written into slot `j`
//! (one `write_buffer` per step, all landing before the host's submit), and the encoder gets a
//! `copy_buffer_to_buffer` from slot `j` into the plan's uniform buffer right before that step's
//! compute pass. Inside one encoder, commands run in order, so step `j` reads exactly its values.
//! After the submit the slots are free again: a later `write_buffer` lands before the next submit,
//! after everything already submitted.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::runner::Plan;

/// Staging slots for the per-step uniforms of up to `capacity` steps of one plan.
pub(crate) struct UniformRing {
    buffer: wgpu::Buffer,
    /// (offset in a slot, offset in the plan's uniform buffer, bytes) per per-step launch.
    entries: Vec<(u64, u64, u64)>,
    stride: u64,
    capacity: usize,
}

impl UniformRing {
    pub(crate) fn new(gpu: &Gpu, plan: &Plan, capacity: usize, label: &str) -> Result<UniformRing> {
        let mut entries = Vec::new();
        let mut at = 0u64;
        for (dst, bytes) in plan.step_uniforms(0, 0) {
            let len = (bytes.len() as u64).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
            entries.push((at, dst, len));
            at += len;
        }
        let stride = at.max(wgpu::COPY_BUFFER_ALIGNMENT);
        let buffer = gpu.scoped(&format!("creating '{label}'"), || {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: stride * capacity.max(1) as u64,
                usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        Ok(UniformRing { buffer, entries, stride, capacity })
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Writes the values of `step` (batch at `batch_offset`) into slot `slot`, queued before the next
    /// submit.
    pub(crate) fn write(
        &self,
        gpu: &Gpu,
        plan: &Plan,
        slot: usize,
        step: u64,
        batch_offset: usize,
    ) -> Result<()> {
        if slot >= self.capacity {
            return Err(Error::Config(format!("uniform slot {slot} of {}", self.capacity)));
        }
        let mut image = vec![0u8; self.stride as usize];
        for ((at, _, _), (_, bytes)) in self.entries.iter().zip(plan.step_uniforms(step, batch_offset)) {
            image[*at as usize..*at as usize + bytes.len()].copy_from_slice(&bytes);
        }
        gpu.queue.write_buffer(&self.buffer, slot as u64 * self.stride, &image);
        Ok(())
    }

    /// Records the copies that put slot `slot`'s values into the plan's uniform buffer.
    pub(crate) fn record_load(&self, enc: &mut wgpu::CommandEncoder, plan: &Plan, slot: usize) {
        let base = slot as u64 * self.stride;
        for &(at, dst, len) in &self.entries {
            enc.copy_buffer_to_buffer(&self.buffer, base + at, plan.uniform_buffer(), dst, len);
        }
    }
}
