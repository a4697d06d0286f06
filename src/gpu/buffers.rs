//! Storage buffers and readback: the only places where bytes cross between host and GPU.

use super::Gpu;
use crate::error::{Error, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// A storage buffer of `len` 32-bit words (f32 or u32).
#[derive(Clone, Debug)]
pub struct StorageBuffer {
    /// The buffer (`STORAGE | COPY_SRC | COPY_DST`): a host may bind it or copy from it.
    pub buffer: wgpu::Buffer,
    /// Its length in 32-bit words.
    pub len: usize,
}

impl StorageBuffer {
    /// A zeroed buffer of `len` words, checked against the adapter's limits.
    pub fn zeroed(gpu: &Gpu, label: &str, len: usize) -> Result<StorageBuffer> {
        let bytes = (len.max(1) * 4) as u64;
        if bytes > gpu.max_binding() {
            return Err(Error::LimitExceeded {
                what: label.to_string(),
                needed: bytes,
                limit: gpu.max_binding(),
            });
        }
        let buffer = gpu.scoped(&format!("creating buffer '{label}'"), || {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        })?;
        Ok(StorageBuffer { buffer, len })
    }

    /// A buffer holding `data` (any plain 32-bit type).
    pub fn from_slice<T: bytemuck::Pod>(gpu: &Gpu, label: &str, data: &[T]) -> Result<StorageBuffer> {
        let words = std::mem::size_of_val(data).div_ceil(4);
        let b = StorageBuffer::zeroed(gpu, label, words)?;
        b.write(gpu, 0, data);
        Ok(b)
    }

    /// A buffer holding `data` rounded to f16, two values per word (value 2i in the low half of
    /// word i, as WGSL's `array<f16>` reads it): the f16 activation storage's layout.
    pub fn from_f32_as_f16(gpu: &Gpu, label: &str, data: &[f32]) -> Result<StorageBuffer> {
        let halves: Vec<u16> = data.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
        StorageBuffer::from_slice(gpu, label, &halves)
    }

    /// Blocking read of the first `len` values of a buffer of f16 pairs, as f32.
    pub fn read_f16(&self, gpu: &Gpu, len: usize) -> Result<Vec<f32>> {
        let words: Vec<u32> = read_words(gpu, &self.buffer, 0..len.div_ceil(2))?;
        Ok((0..len).map(|i| half::f16::from_bits((words[i / 2] >> (16 * (i % 2))) as u16).to_f32()).collect())
    }

    /// Queues a write of `data` at word offset `at` (ordered before the next submit).
    pub fn write<T: bytemuck::Pod>(&self, gpu: &Gpu, at: usize, data: &[T]) {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        if bytes.is_empty() {
            return;
        }
        // write_buffer needs a multiple of 4 bytes; pad the tail (u8 datasets).
        if bytes.len().is_multiple_of(4) {
            gpu.queue.write_buffer(&self.buffer, (at * 4) as u64, bytes);
        } else {
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len().next_multiple_of(4), 0);
            gpu.queue.write_buffer(&self.buffer, (at * 4) as u64, &padded);
        }
    }

    /// Blocking read of words `range` as f32. For tests, evaluation and checkpoints, not the hot path.
    pub fn read_f32(&self, gpu: &Gpu, range: std::ops::Range<usize>) -> Result<Vec<f32>> {
        read_words(gpu, &self.buffer, range)
    }

    /// Blocking read of words `range` as u32.
    pub fn read_u32(&self, gpu: &Gpu, range: std::ops::Range<usize>) -> Result<Vec<u32>> {
        read_words(gpu, &self.buffer, range)
    }

    /// Blocking read of the whole buffer as f32.
    pub fn read_all_f32(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        self.read_f32(gpu, 0..self.len)
    }
}

pub(crate) fn read_words<T: bytemuck::Pod>(
    gpu: &Gpu,
    src: &wgpu::Buffer,
    range: std::ops::Range<usize>,
) -> Result<Vec<T>> {
    let n = range.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: (n * 4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(src, (range.start * 4) as u64, &staging, 0, (n * 4) as u64);
    gpu.queue.submit([enc.finish()]);
    let slice = staging.slice(..);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    gpu.wait()?;
    let mapped =
        rx.recv().map_err(|e| Error::Readback { context: "readback".into(), message: e.to_string() })?;
    mapped.map_err(|e| Error::Readback { context: "readback".into(), message: e.to_string() })?;
    let out = {
        let view = slice
            .get_mapped_range()
            .map_err(|e| Error::Readback { context: "readback".into(), message: e.to_string() })?;
        bytemuck::pod_collect_to_vec::<u8, T>(&view)
    };
    staging.unmap();
    gpu.check_uncaptured("readback")?;
    Ok(out)
}

const IDLE: u8 = 0;
const PENDING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

/// A non-blocking readback slot: copy into it after some submit, then `poll` later. The training
/// loop uses it to show the running loss without ever waiting on the GPU.
pub struct Readback {
    staging: wgpu::Buffer,
    words: usize,
    state: Arc<AtomicU8>,
}

impl Readback {
    /// A slot of `words` words (a staging buffer with `MAP_READ`).
    pub fn new(gpu: &Gpu, words: usize) -> Readback {
        let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("async readback"),
            size: (words.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Readback { staging, words, state: Arc::new(AtomicU8::new(IDLE)) }
    }

    /// True when a copy may be recorded (nothing in flight).
    pub fn is_idle(&self) -> bool {
        self.state.load(Ordering::Acquire) == IDLE
    }

    /// Records a copy of `words` words from `src` at word `at`; call [`Readback::request`] after the submit.
    pub fn record_copy(&self, enc: &mut wgpu::CommandEncoder, src: &wgpu::Buffer, at: usize) {
        enc.copy_buffer_to_buffer(src, (at * 4) as u64, &self.staging, 0, (self.words * 4) as u64);
    }

    /// Asks for the mapping once the copy's submission is done.
    pub fn request(&self) {
        self.state.store(PENDING, Ordering::Release);
        let state = self.state.clone();
        self.staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            state.store(if r.is_ok() { READY } else { FAILED }, Ordering::Release);
        });
    }

    /// Returns the data if the mapping has completed (after some `device.poll`), and frees the slot.
    pub fn try_take(&self) -> Option<Vec<f32>> {
        match self.state.load(Ordering::Acquire) {
            READY => {
                let v = self
                    .staging
                    .slice(..)
                    .get_mapped_range()
                    .map(|view| bytemuck::pod_collect_to_vec::<u8, f32>(&view))
                    .ok();
                self.staging.unmap();
                self.state.store(IDLE, Ordering::Release);
                v
            }
            FAILED => {
                self.state.store(IDLE, Ordering::Release);
                None
            }
            _ => None,
        }
    }
}
