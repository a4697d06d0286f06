//! Arenas of named views, and plans: a list of launches turned once into pipelines, bind groups and
//! one uniform buffer, then recorded into a single compute pass as often as needed.

use crate::error::{Error, Result};
use crate::gpu::{CachedPipeline, Gpu, StorageBuffer};
use crate::kernels::Launch;
use crate::kernels::random::{RandomParams, stream_for};
use std::sync::Arc;

/// A window of 32-bit words in a storage buffer.
#[derive(Clone, Debug)]
pub struct View {
    pub buffer: wgpu::Buffer,
    /// In words. Views bound to a shader start at a multiple of the adapter's storage alignment.
    pub offset: usize,
    pub len: usize,
}

impl View {
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

/// Offsets of named tensors inside one buffer, each aligned for binding.
#[derive(Clone, Debug)]
pub struct ArenaLayout {
    align_words: usize,
    pub entries: Vec<(String, usize, usize)>,
    pub total: usize,
}

impl ArenaLayout {
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
    pub buffer: StorageBuffer,
    pub layout: ArenaLayout,
}

impl Arena {
    pub fn new(gpu: &Gpu, label: &str, layout: &ArenaLayout) -> Result<Arena> {
        Ok(Arena { buffer: StorageBuffer::zeroed(gpu, label, layout.total)?, layout: layout.clone() })
    }

    pub fn view(&self, index: usize) -> View {
        let (_, offset, len) = self.layout.entries[index];
        View { buffer: self.buffer.buffer.clone(), offset, len }
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

/// A fixed sequence of dispatches. Built once; per-step values (batch offset, optimiser step) are
/// changed by rewriting a launch's uniform with [`Plan::set_uniform`].
pub struct Plan {
    dispatches: Vec<Dispatch>,
    uniforms: wgpu::Buffer,
    slot_bytes: u64,
    pub labels: Vec<&'static str>,
    /// Launches that draw random numbers (every random.wgsl entry but the plain `multiply`):
    /// (index, original uniform). Their streams change per step.
    random: Vec<(usize, Vec<u8>)>,
}

impl Plan {
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
        let random = launches
            .iter()
            .enumerate()
            .filter(|(_, l)| l.key.shader == "random" && l.key.entry != "multiply")
            .map(|(i, l)| (i, l.uniform.clone()))
            .collect();
        Ok(Plan {
            dispatches,
            uniforms,
            slot_bytes,
            labels: launches.iter().map(|l| l.label).collect(),
            random,
        })
    }

    pub fn len(&self) -> usize {
        self.dispatches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
    }

    /// Replaces launch `index`'s uniform bytes; takes effect at the next submit.
    pub fn set_uniform(&self, gpu: &Gpu, index: usize, bytes: &[u8]) {
        gpu.queue.write_buffer(&self.uniforms, index as u64 * self.slot_bytes, bytes);
    }

    /// Gives every random launch of the plan a fresh stream for `step` (the k-th random launch gets
    /// `stream_for(step, k)`), so each step draws new numbers and the same step redraws the same ones.
    pub fn set_stream(&self, gpu: &Gpu, step: u64) {
        for (k, (index, bytes)) in self.random.iter().enumerate() {
            let p: RandomParams = bytemuck::pod_read_unaligned(bytes);
            self.set_uniform(gpu, *index, &p.with_stream(stream_for(step, k as u16)).bytes());
        }
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
}
