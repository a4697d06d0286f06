//! Arenas of named views, and plans: a list of launches turned once into pipelines, bind groups and
//! one uniform buffer, then recorded into a single compute pass as often as needed; and the
//! per-step uniform slots that let several steps of a plan share one command buffer.

use crate::error::{Error, Result};
pub use crate::gpu::View;
use crate::gpu::{CachedPipeline, Gpu, Launch, PerStep, StepState, StorageBuffer};
use std::sync::Arc;

/// Offsets of named tensors inside one buffer, each aligned for binding.
#[derive(Clone, Debug)]
pub struct ArenaLayout {
    align_words: usize,
    /// (name, offset, length) of each tensor, in words (f32, or two f16), in the order added.
    pub entries: Vec<(String, usize, usize)>,
    /// Words the buffer needs: the end of the last entry.
    pub total: usize,
}

impl ArenaLayout {
    /// An empty layout whose offsets are aligned to `gpu`'s `min_storage_buffer_offset_alignment`.
    pub fn new(gpu: &Gpu) -> ArenaLayout {
        ArenaLayout {
            align_words: (gpu.storage_alignment() as usize / 4).max(1),
            entries: Vec::new(),
            total: 0,
        }
    }

    /// Reserves `len` words under `name`; returns its index.
    pub fn add(&mut self, name: impl Into<String>, len: usize) -> usize {
        let offset = self.total.next_multiple_of(self.align_words);
        self.entries.push((name.into(), offset, len));
        self.total = offset + len;
        self.entries.len() - 1
    }
}

/// One buffer holding every tensor of a layout.
pub struct Arena {
    /// The buffer, `layout.total` words, zeroed at creation.
    pub buffer: StorageBuffer,
    /// Where each tensor lies in it.
    pub layout: ArenaLayout,
}

impl Arena {
    /// A zeroed buffer for `layout`, named `label`; checked against the adapter's binding limit.
    pub fn new(gpu: &Gpu, label: &str, layout: &ArenaLayout) -> Result<Arena> {
        Ok(Arena { buffer: StorageBuffer::zeroed(gpu, label, layout.total)?, layout: layout.clone() })
    }

    /// Entry `index` of the layout (as [`ArenaLayout::add`] returned it).
    pub fn view(&self, index: usize) -> View {
        let (_, offset, len) = self.layout.entries[index];
        View { buffer: self.buffer.buffer.clone(), offset, len }
    }

    /// The tensor called `name`, if the layout has one.
    pub fn named(&self, name: &str) -> Option<View> {
        self.layout.entries.iter().position(|(n, _, _)| n == name).map(|i| self.view(i))
    }

    /// The whole arena as one view (the optimiser updates it in one dispatch).
    pub fn all(&self) -> View {
        View::whole(&self.buffer)
    }
}

struct Dispatch {
    pipeline: Arc<CachedPipeline>,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

/// A fixed sequence of dispatches. Built once; the values that change per step (batch offset,
/// optimiser step, random streams) are declared by the launches themselves and rewritten by
/// [`Plan::advance`].
pub struct Plan {
    dispatches: Vec<Dispatch>,
    uniforms: wgpu::Buffer,
    slot_bytes: u64,
    /// Each dispatch's launch label, in order.
    pub labels: Vec<&'static str>,
    /// Launches whose uniform changes per step: (index, uniform as built, how it changes, random slot).
    per_step: Vec<(usize, Vec<u8>, PerStep, u16)>,
}

impl Plan {
    /// Builds `launches` (pipelines, bind groups, their uniforms in one buffer), checking every view's
    /// alignment and size and every grid against the adapter's limits; `label` names it in errors.
    pub fn new(gpu: &Gpu, label: &str, launches: &[Launch]) -> Result<Plan> {
        let align = gpu.limits.min_uniform_buffer_offset_alignment as u64;
        let max_uniform = launches.iter().map(|l| l.uniform.len() as u64).max().unwrap_or(16);
        let slot_bytes = max_uniform.next_multiple_of(align);
        let storage_align = gpu.storage_alignment();
        let max_binding = gpu.max_binding();
        for l in launches {
            for v in &l.views {
                let offset = v.offset as u64 * 4;
                if !offset.is_multiple_of(storage_align) {
                    return Err(Error::Shape(format!(
                        "{label}/{}: a view starts at byte {offset}, not a multiple of {storage_align}",
                        l.label
                    )));
                }
                if v.len as u64 * 4 > max_binding {
                    return Err(Error::LimitExceeded {
                        what: format!("{label}/{} binding", l.label),
                        needed: v.len as u64 * 4,
                        limit: max_binding,
                    });
                }
            }
            if l.workgroups.iter().any(|&w| w > gpu.limits.max_compute_workgroups_per_dimension) {
                return Err(Error::Shape(format!(
                    "{label}/{}: dispatch {:?} too large",
                    l.label, l.workgroups
                )));
            }
        }
        let uniforms = gpu.scoped(&format!("plan '{label}' uniforms"), || {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: slot_bytes * launches.len().max(1) as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let mut dispatches = Vec::with_capacity(launches.len());
        for (i, l) in launches.iter().enumerate() {
            let pipeline = gpu.pipeline(&l.key, l.views.len() as u32)?;
            gpu.queue.write_buffer(&uniforms, i as u64 * slot_bytes, &l.uniform);
            let bind_group = gpu.scoped(&format!("plan '{label}' bind group {} ({})", i, l.label), || {
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &uniforms,
                        offset: i as u64 * slot_bytes,
                        size: wgpu::BufferSize::new(l.uniform.len() as u64),
                    }),
                }];
                for (j, v) in l.views.iter().enumerate() {
                    entries.push(wgpu::BindGroupEntry {
                        binding: j as u32 + 1,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &v.buffer,
                            offset: v.offset as u64 * 4,
                            size: wgpu::BufferSize::new(v.len.max(1) as u64 * 4),
                        }),
                    });
                }
                gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(l.label),
                    layout: &pipeline.layout,
                    entries: &entries,
                })
            })?;
            dispatches.push(Dispatch { pipeline, bind_group, workgroups: l.workgroups });
        }
        let mut slots = 0u16;
        let mut per_step = Vec::new();
        for (i, l) in launches.iter().enumerate() {
            if let Some(p) = l.per_step {
                per_step.push((i, l.uniform.clone(), p, slots));
                slots += p.draws_random as u16;
            }
        }
        Ok(Plan {
            dispatches,
            uniforms,
            slot_bytes,
            labels: launches.iter().map(|l| l.label).collect(),
            per_step,
        })
    }

    /// Dispatches in the plan.
    pub fn len(&self) -> usize {
        self.dispatches.len()
    }

    /// Whether the plan has no dispatch.
    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
    }

    /// Replaces launch `index`'s uniform bytes; takes effect at the next submit.
    pub fn set_uniform(&self, gpu: &Gpu, index: usize, bytes: &[u8]) {
        gpu.queue.write_buffer(&self.uniforms, index as u64 * self.slot_bytes, bytes);
    }

    /// Rewrites every per-step uniform for `step` (its batch offset, optimiser step and random
    /// streams: the k-th drawing launch gets stream (step, k), so each step draws new numbers and
    /// the same step redraws the same ones); takes effect at the next submit.
    pub fn advance(&self, gpu: &Gpu, step: u64, batch_offset: usize) {
        for (at, bytes) in self.step_uniforms(step, batch_offset) {
            gpu.queue.write_buffer(&self.uniforms, at, &bytes);
        }
    }

    /// The uniforms [`Plan::advance`] writes for `step`, as (byte offset in [`Plan::uniform_buffer`],
    /// bytes), in launch order. Recording several steps into one encoder copies these into place
    /// between the steps instead (the `embed` module's sessions).
    pub fn step_uniforms(&self, step: u64, batch_offset: usize) -> Vec<(u64, Vec<u8>)> {
        self.per_step
            .iter()
            .map(|(index, bytes, p, slot)| {
                let state = StepState { step, batch_offset, random_slot: *slot };
                (*index as u64 * self.slot_bytes, (p.rewrite)(bytes, &state))
            })
            .collect()
    }

    /// The buffer holding every launch's uniform block, one aligned slot per launch.
    pub fn uniform_buffer(&self) -> &wgpu::Buffer {
        &self.uniforms
    }

    /// Records every dispatch, in order, into `pass`. wgpu inserts the barriers between them.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            pass.set_pipeline(&d.pipeline.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            let [x, y, z] = d.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
    }

    /// Records every dispatch in a compute pass of its own that writes timestamps at its start and
    /// end into queries `2i` and `2i + 1` of `queries` (for profiles: the pass boundaries cost a
    /// little, so the training loop records one pass).
    pub fn record_timed(&self, encoder: &mut wgpu::CommandEncoder, queries: &wgpu::QuerySet) {
        for (i, d) in self.dispatches.iter().enumerate() {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(self.labels[i]),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: queries,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            pass.set_pipeline(&d.pipeline.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            let [x, y, z] = d.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
    }

    /// Records the plan into a fresh encoder as one compute pass.
    pub fn record_into(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass =
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
        self.record(&mut pass);
    }

    /// Records, submits and waits: for tests, evaluation and one-off work.
    pub fn run(&self, gpu: &Gpu) -> Result<()> {
        gpu.scoped("running a plan", || {
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            self.record_into(&mut enc);
            gpu.queue.submit([enc.finish()]);
        })?;
        gpu.wait()
    }

    /// Records the plan `times` times into one command buffer, submits it once and waits: for
    /// timing the GPU's work without a submit-and-wait round trip per run.
    pub fn run_repeated(&self, gpu: &Gpu, times: usize) -> Result<()> {
        gpu.scoped("running a plan repeatedly", || {
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            for _ in 0..times {
                self.record_into(&mut enc);
            }
            gpu.queue.submit([enc.finish()]);
        })?;
        gpu.wait()
    }
}

/// Per-step uniform slots: how several steps of one plan share one encoder.
///
/// A plan's per-step values (the batch offset, the optimiser's step, the random streams) live in its
/// uniform buffer, and [`Plan::advance`] rewrites them with `queue.write_buffer`, which takes effect
/// at the *next submit*, before every command buffer of that submit. Two steps recorded into one
/// encoder would therefore both see the values written last. Instead, each step recorded since the
/// last submit gets its own slot in a staging buffer: the step's values are written into slot `j`
/// (one `write_buffer` per step, all landing before the host's submit), and the encoder gets a
/// `copy_buffer_to_buffer` from slot `j` into the plan's uniform buffer right before that step's
/// compute pass. Inside one encoder, commands run in order, so step `j` reads exactly its values.
/// After the submit the slots are free again: a later `write_buffer` lands before the next submit,
/// after everything already submitted. Used by the training loop (several steps per submit) and by
/// the `embed` module's recorders.
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

    /// Bytes one step's slot holds: what [`UniformRing::write`] queues per step.
    pub(crate) fn slot_bytes(&self) -> u64 {
        self.stride
    }

    /// Buffer copies [`UniformRing::record_load`] records per step (one per per-step launch).
    pub(crate) fn copies_per_step(&self) -> usize {
        self.entries.len()
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
