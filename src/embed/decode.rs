//! Decoding codes into images inside the host's encoder: [`Decoder`].

use super::readback::PendingReads;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer, View};
use crate::kernels::activation::activation_forward;
use crate::models::{Activations, Autoencoder};
use crate::runner::Plan;

/// Decodes up to `capacity` codes into images (after the output activation) in a GPU buffer the host
/// can bind, copy, draw into a texture ([`super::TextureDecode`]) or read back without waiting.
///
/// The codes come from [`Decoder::write_codes`] (a queue write: it takes effect at the next submit,
/// so write once per submit) or from a buffer of the host's, copied inside the encoder by
/// [`Decoder::record_codes_from`] (as often as wanted). [`Decoder::record`] runs the decoder on the
/// current codes; it uses the weights as they are when the GPU gets there, so a decode recorded after
/// [`super::TrainSession::record_steps`] shows the model after those steps.
///
/// ```no_run
/// # fn frame(gpu: &aegpu::gpu::Gpu, model: &aegpu::models::Autoencoder) -> aegpu::Result<()> {
/// let mut decoder = aegpu::embed::Decoder::new(gpu, model, 4)?;
/// decoder.write_codes(&[0.0, 0.0, 1.0, 0.0, 0.0, 1.0, -1.0, -1.0])?; // four 2-D codes
/// let mut encoder = gpu.device.create_command_encoder(&Default::default());
/// decoder.record(&mut encoder);
/// decoder.record_read(&mut encoder);
/// gpu.queue.submit([encoder.finish()]);
/// decoder.submitted();
/// // later frames:
/// if let Some(images) = decoder.poll() {
///     assert_eq!(images.len(), 4 * model.input_dim());
/// }
/// # Ok(()) }
/// ```
pub struct Decoder<'a> {
    gpu: &'a Gpu,
    model: &'a Autoencoder,
    capacity: usize,
    acts: Activations,
    plan: Plan,
    images: StorageBuffer,
    reads: PendingReads<()>,
}

impl<'a> Decoder<'a> {
    /// A decoder for batches of up to `capacity` codes.
    pub fn new(gpu: &'a Gpu, model: &'a Autoencoder, capacity: usize) -> Result<Decoder<'a>> {
        if capacity == 0 {
            return Err(Error::Config("a decoder needs room for at least one code".into()));
        }
        let acts = model.activations(gpu, capacity)?;
        let dim = model.input_dim();
        let images = StorageBuffer::zeroed(gpu, "decoded images", capacity * dim)?;
        let mut launches = model.decoder(&acts, model.matmul_policy(gpu)?);
        launches.push(activation_forward(
            &View::whole(&images),
            &acts.logits(),
            capacity * dim,
            model.output_activation(),
        ));
        let plan = Plan::new(gpu, "decode", &launches)?;
        let reads = PendingReads::new(gpu, 2, capacity * dim);
        Ok(Decoder { gpu, model, capacity, acts, plan, images, reads })
    }

    /// Codes it decodes at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The model it decodes with.
    pub fn model(&self) -> &Autoencoder {
        self.model
    }

    /// Queues `codes` (`[n, code_dim]`, n ≤ capacity) as the decoder's input from the next submit on.
    pub fn write_codes(&self, codes: &[f32]) -> Result<()> {
        let d = self.model.code_dim();
        if codes.is_empty() || !codes.len().is_multiple_of(d) || codes.len() / d > self.capacity {
            return Err(Error::Shape(format!(
                "{} values are not 1..={} whole {d}-D codes",
                codes.len(),
                self.capacity
            )));
        }
        self.model.code_input(&self.acts).write(self.gpu, codes)
    }

    /// Records a copy of `count` codes from the host's `buffer` at byte `offset` (f32 `[count,
    /// code_dim]`) into the decoder's input; `buffer` needs `COPY_SRC`.
    pub fn record_codes_from(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        buffer: &wgpu::Buffer,
        offset: u64,
        count: usize,
    ) -> Result<()> {
        self.check_count(count)?;
        let input = self.model.code_input(&self.acts);
        let bytes = (count * self.model.code_dim() * 4) as u64;
        if !offset.is_multiple_of(4) || offset + bytes > buffer.size() {
            return Err(Error::Shape(format!(
                "{count} codes at byte {offset} do not fit a buffer of {} bytes (or the offset is not a \
                 multiple of 4)",
                buffer.size()
            )));
        }
        encoder.copy_buffer_to_buffer(buffer, offset, &input.buffer, (input.offset * 4) as u64, bytes);
        Ok(())
    }

    fn check_count(&self, count: usize) -> Result<()> {
        if count == 0 || count > self.capacity {
            return Err(Error::Shape(format!("{count} codes: this decoder takes 1 to {}", self.capacity)));
        }
        Ok(())
    }

    /// Records the decoder on the current codes: every row of [`Decoder::images`] is rewritten.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        self.plan.record_into(encoder);
    }

    /// The decoded images, `[capacity, C·H·W]` f32 after the output activation (channel planes).
    pub fn images(&self) -> View {
        View::whole(&self.images)
    }

    /// The code input (`[capacity, code_dim]`), for hosts that write codes there themselves.
    pub fn codes(&self) -> View {
        self.model.code_input(&self.acts)
    }

    /// Records a copy of the images for [`Decoder::poll`]; false when two earlier reads are still
    /// waiting to be taken (nothing recorded).
    pub fn record_read(&mut self, encoder: &mut wgpu::CommandEncoder) -> bool {
        self.reads.record(encoder, &self.images.buffer, 0, ())
    }

    /// Call right after the submit that carried [`Decoder::record_read`].
    pub fn submitted(&mut self) {
        self.reads.submitted();
    }

    /// The oldest finished read, `[capacity, C·H·W]`, if any; polls the device without blocking.
    pub fn poll(&mut self) -> Option<Vec<f32>> {
        let _ = self.gpu.device.poll(wgpu::PollType::Poll);
        self.reads.take().map(|(_, v)| v)
    }

    /// Every GPU buffer this decoder created, as (what, bytes).
    pub fn allocations(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("activations", self.acts.tensors.arena.buffer.buffer.size()),
            ("plan uniforms", self.plan.uniform_buffer().size()),
            ("decoded images", self.images.buffer.size()),
            ("image readbacks", self.reads.bytes()),
        ]
    }
}
