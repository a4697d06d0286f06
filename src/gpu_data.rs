//! A dataset as the GPU reads it: resident as u8 in as many storage buffers ("chunks") as the
//! adapter's binding limit needs, or kept in host memory and streamed one batch per step.
//!
//! Either way a plan begins with the gather launches of a [`BatchFeed`] and reads the same bytes in
//! the same order, so training is bit-identical whatever the residency.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Launch, StorageBuffer, View};
use crate::kernels::gather::gather_u8_chunk_mapped;
use std::ops::Range;

/// Where a dataset's images live while a model trains on them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Residency {
    /// On the GPU in chunks; in host memory if the GPU runs out of memory.
    #[default]
    Auto,
    /// On the GPU, in chunks of at most the adapter's binding size or `max_chunk_bytes`.
    Gpu {
        /// A smaller cap on each chunk's size in bytes (tests, limits); `None`: the binding size.
        max_chunk_bytes: Option<u64>,
    },
    /// In host memory; each step's examples are written into a batch-sized GPU buffer.
    Host,
}

/// A dataset the training loop and the evaluator read batches from (u8 pixels, 4 per word on the GPU).
pub struct GpuDataset {
    /// Examples.
    pub n: usize,
    /// Bytes per example (c·h·w), f32 values per gathered row.
    pub dim: usize,
    /// Each example's label, kept in host memory (a classifier uploads labels as their own dataset).
    pub labels: Vec<u8>,
    /// What a byte stands for, `(byte - zero) / scale`: `(0, 255)` (pixels in [0, 1]) unless set
    /// with [`GpuDataset::with_byte_map`].
    bytes: (f32, f32),
    store: Store,
}

enum Store {
    /// Whole examples per buffer, and the epoch's order of all examples.
    Resident { chunks: Vec<Chunk>, index: StorageBuffer },
    /// The images, `n * dim` bytes, copied from the host dataset.
    Host(Vec<u8>),
}

struct Chunk {
    data: StorageBuffer,
    examples: Range<usize>,
}

impl GpuDataset {
    /// Uploads `ds` with [`Residency::Auto`].
    pub fn upload(gpu: &Gpu, ds: &Dataset) -> Result<GpuDataset> {
        GpuDataset::upload_with(gpu, ds, Residency::Auto)
    }

    /// Uploads `ds` as `residency` asks.
    pub fn upload_with(gpu: &Gpu, ds: &Dataset, residency: Residency) -> Result<GpuDataset> {
        let store = match residency {
            Residency::Gpu { max_chunk_bytes } => resident(gpu, ds, max_chunk_bytes)?,
            Residency::Host => Store::Host(ds.images.clone()),
            Residency::Auto => match resident(gpu, ds, None) {
                Err(Error::GpuOutOfMemory { .. }) => {
                    log::warn!(
                        "{} ({}) does not fit in GPU memory: streaming its batches from host memory",
                        ds.name,
                        bytes_text(ds.images.len() as u64)
                    );
                    Store::Host(ds.images.clone())
                }
                store => store?,
            },
        };
        Ok(GpuDataset { n: ds.n, dim: ds.dim(), labels: ds.labels.clone(), bytes: (0.0, 255.0), store })
    }

    /// The same data with bytes read through `map` (whitened patches: `(byte - 127.5) / scale`).
    pub fn with_byte_map(self, map: crate::data::U8Map) -> GpuDataset {
        GpuDataset { bytes: (map.offset, map.scale), ..self }
    }

    /// GPU buffers holding the images; 0 when they are streamed from the host.
    pub fn chunks(&self) -> usize {
        match &self.store {
            Store::Resident { chunks, .. } => chunks.len(),
            Store::Host(_) => 0,
        }
    }

    /// Whether the images stay in host memory and are written to the GPU one batch per step.
    pub fn is_streamed(&self) -> bool {
        matches!(self.store, Store::Host(_))
    }

    /// Where the images are, for a log line: "1 buffer of 47.0 MB", "7 chunks of ≤ 9.4 kB",
    /// "streamed from host (188.2 MB)".
    pub fn describe(&self) -> String {
        match &self.store {
            Store::Resident { chunks, .. } => {
                let largest = chunks.iter().map(|c| c.data.len as u64 * 4).max().unwrap_or(0);
                match chunks.len() {
                    1 => format!("1 buffer of {}", bytes_text(largest)),
                    k => format!("{k} chunks of ≤ {}", bytes_text(largest)),
                }
            }
            Store::Host(images) => format!("streamed from host ({})", bytes_text(images.len() as u64)),
        }
    }

    /// The gather launches that fill `out` (`[batch, dim]` f32) at the start of a plan, and the
    /// per-step work they need.
    pub fn feed(&self, gpu: &Gpu, out: &View, batch: usize) -> Result<BatchFeed<'_>> {
        let (launches, source) = match &self.store {
            Store::Resident { chunks, index } => {
                let order = View::whole(index);
                let launches = chunks
                    .iter()
                    .map(|c| {
                        let data = View::whole(&c.data);
                        let examples = c.examples.clone();
                        gather_u8_chunk_mapped(out, &data, &order, batch, self.dim, 0, examples, self.bytes)
                    })
                    .collect();
                (launches, Source::Index(index.clone()))
            }
            Store::Host(images) => {
                let buffer = StorageBuffer::zeroed(gpu, "streamed batch", (batch * self.dim).div_ceil(4))?;
                let identity: Vec<u32> = (0..batch as u32).collect();
                let order = StorageBuffer::from_slice(gpu, "streamed batch order", &identity)?;
                // The host writes the batch in order: the gather's offset stays 0.
                let (data, all) = (View::whole(&buffer), 0..u32::MAX as usize);
                let mut launch = gather_u8_chunk_mapped(
                    out,
                    &data,
                    &View::whole(&order),
                    batch,
                    self.dim,
                    0,
                    all,
                    self.bytes,
                );
                launch.per_step = None;
                (vec![launch], Source::Stream { images, buffer, order: Vec::new(), slots: None })
            }
        };
        Ok(BatchFeed { n: self.n, dim: self.dim, batch, launches, source })
    }
}

/// How one plan reads a dataset's batches: its gather launches (one per chunk, or one of the
/// streamed batch), the order of the examples, and the copy streamed data needs before each submit.
pub struct BatchFeed<'d> {
    n: usize,
    dim: usize,
    batch: usize,
    launches: Vec<Launch>,
    source: Source<'d>,
}

enum Source<'d> {
    /// The dataset's index buffer, which the resident gathers read the order from.
    Index(StorageBuffer),
    /// The host's images, the GPU's batch buffer, the epoch's order (empty: the identity), and
    /// the staging slots of several steps per submit ([`BatchFeed::set_slots`]).
    Stream { images: &'d [u8], buffer: StorageBuffer, order: Vec<u32>, slots: Option<StorageBuffer> },
}

impl BatchFeed<'_> {
    /// The launches that begin the plan; their offset is the step's batch offset (`Plan::advance`).
    pub fn launches(&self) -> &[Launch] {
        &self.launches
    }

    /// Reads the examples in `order` (a permutation of 0..n) from now on. Resident data keeps the
    /// order in the dataset's index buffer, shared by every feed of that dataset.
    pub fn set_order(&mut self, gpu: &Gpu, order: Vec<u32>) {
        match &mut self.source {
            Source::Index(index) => index.write(gpu, 0, &order),
            Source::Stream { order: kept, .. } => *kept = order,
        }
    }

    /// Whether the batches are copied from host memory before each step.
    pub fn is_streamed(&self) -> bool {
        matches!(self.source, Source::Stream { .. })
    }

    /// Bytes [`BatchFeed::stage_slot`] queues per step: a streamed batch, padded to whole words
    /// (0 for resident data).
    pub fn bytes_per_step(&self) -> u64 {
        if self.is_streamed() { (self.batch_words() * 4) as u64 } else { 0 }
    }

    /// The index buffer the resident gathers read the order from; `None` for streamed data, whose
    /// order is applied on the host by [`BatchFeed::stage`].
    pub fn order_buffer(&self) -> Option<&StorageBuffer> {
        match &self.source {
            Source::Index(index) => Some(index),
            Source::Stream { .. } => None,
        }
    }

    /// Before the submit of the step whose batch starts at position `offset` of the order: streamed
    /// data writes the batch's examples into the GPU buffer (queued, so ordered after the previous
    /// submits and before the next). Resident data needs nothing.
    pub fn stage(&self, gpu: &Gpu, offset: usize) {
        let Source::Stream { buffer, .. } = &self.source else { return };
        buffer.write(gpu, 0, &self.batch_bytes(offset));
    }

    /// Room for `k` streamed batches, one per step of a submit (resident data needs none).
    pub fn set_slots(&mut self, gpu: &Gpu, k: usize) -> Result<()> {
        let words = self.batch_words();
        if let Source::Stream { slots, .. } = &mut self.source {
            *slots = match k {
                0 | 1 => None,
                _ => Some(StorageBuffer::zeroed(gpu, "streamed batches", k * words)?),
            };
        }
        Ok(())
    }

    /// [`BatchFeed::stage`] for step `slot` of a submit: the batch is written (queued) into its own
    /// slot and copied into the batch buffer inside `enc`, right before the step's pass, so several
    /// steps of one submit each read their own batch. Without slots, the same as `stage`.
    pub fn stage_slot(&self, gpu: &Gpu, offset: usize, slot: usize, enc: &mut wgpu::CommandEncoder) {
        let Source::Stream { buffer, slots: Some(slots), .. } = &self.source else {
            return self.stage(gpu, offset);
        };
        let words = self.batch_words();
        slots.write(gpu, slot * words, &self.batch_bytes(offset));
        enc.copy_buffer_to_buffer(
            &slots.buffer,
            (slot * words * 4) as u64,
            &buffer.buffer,
            0,
            (words * 4) as u64,
        );
    }

    /// 32-bit words of one streamed batch of bytes.
    fn batch_words(&self) -> usize {
        (self.batch * self.dim).div_ceil(4)
    }

    /// The bytes of the streamed batch starting at position `offset` of the order.
    fn batch_bytes(&self, offset: usize) -> Vec<u8> {
        let Source::Stream { images, order, .. } = &self.source else { return Vec::new() };
        let dim = self.dim;
        let end = (offset + self.batch).min(self.n);
        if order.is_empty() {
            return images[offset.min(end) * dim..end * dim].to_vec();
        }
        let mut bytes = Vec::with_capacity(self.batch * dim);
        for &e in &order[offset.min(end)..end] {
            let e = e as usize;
            bytes.extend_from_slice(&images[e * dim..(e + 1) * dim]);
        }
        bytes
    }
}

/// Uploads the images in chunks of whole examples, each within the adapter's binding and buffer
/// limits (and `max_chunk_bytes`), plus the identity order.
fn resident(gpu: &Gpu, ds: &Dataset, max_chunk_bytes: Option<u64>) -> Result<Store> {
    let dim = ds.dim();
    let per_chunk = examples_per_chunk(gpu, dim, max_chunk_bytes)?;
    let count = ds.n.div_ceil(per_chunk).max(1);
    let mut chunks = Vec::with_capacity(count);
    for c in 0..count {
        let examples = c * per_chunk..((c + 1) * per_chunk).min(ds.n);
        let label = match count {
            1 => format!("{} images", ds.name),
            _ => format!("{} images, chunk {}/{count}", ds.name, c + 1),
        };
        let bytes = &ds.images[examples.start * dim..examples.end * dim];
        let data = StorageBuffer::zeroed(gpu, &label, bytes.len().div_ceil(4))?;
        // Scoped too: the write's staging memory can run out as well.
        gpu.scoped(&format!("uploading '{label}'"), || data.write(gpu, 0, bytes))?;
        chunks.push(Chunk { data, examples });
    }
    let identity: Vec<u32> = (0..ds.n as u32).collect();
    let index = StorageBuffer::from_slice(gpu, &format!("{} index", ds.name), &identity)?;
    Ok(Store::Resident { chunks, index })
}

/// Whole examples per chunk: its bytes, padded to whole words, stay within the binding and buffer
/// limits, the shader's u32 byte addresses, and `forced`.
fn examples_per_chunk(gpu: &Gpu, dim: usize, forced: Option<u64>) -> Result<usize> {
    let adapter = gpu.max_binding().min(u32::MAX as u64);
    let limit = forced.map_or(adapter, |f| f.min(adapter));
    // A buffer is a whole number of words: a limit of 4k+r bytes holds only 4k.
    let usable = limit / 4 * 4;
    if dim == 0 {
        return Ok(usize::MAX);
    }
    let per_chunk = usable / dim as u64;
    if per_chunk > 0 {
        return Ok(per_chunk.min(usize::MAX as u64) as usize);
    }
    let needed = (dim as u64).next_multiple_of(4);
    Err(match forced {
        Some(f) if f < adapter => Error::Config(format!(
            "max_chunk_bytes {f} is smaller than one example ({dim} bytes, {needed} as whole words)"
        )),
        _ => Error::LimitExceeded { what: "one example of the dataset".into(), needed, limit },
    })
}

/// `1234567` -> "1.2 MB".
fn bytes_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.1} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}
