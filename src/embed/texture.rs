//! Decoded images straight into a host's texture, and codes straight from one.

use super::Decoder;
use super::readback::PendingReads;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer, View};
use crate::kernels::texture::TexturePipeline;
pub use crate::kernels::texture::{AtlasLayout, ValueMap};
use crate::models::{Activations, Autoencoder, Pass};
use crate::nn::Ctx;
use crate::runner::Plan;

/// The picture shape `[channels, height, width]` of a model's input when it can be told from the
/// model: a conv model's input shape, or a dense model whose input is a square grey image (784 ->
/// `[1, 28, 28]`). `None` otherwise: pass the shape explicitly.
pub fn image_shape(model: &Autoencoder) -> Option<[usize; 3]> {
    let [c, h, w] = model.net.input;
    if h > 1 || w > 1 {
        return Some([c, h, w]);
    }
    let side = (c as f64).sqrt().round() as usize;
    (side * side == c).then_some([1, side, side])
}

fn check_shape(model: &Autoencoder, shape: [usize; 3]) -> Result<()> {
    if shape.iter().product::<usize>() != model.input_dim() {
        return Err(Error::Shape(format!(
            "images of {}x{}x{} do not hold the model's {} input values",
            shape[0],
            shape[1],
            shape[2],
            model.input_dim()
        )));
    }
    Ok(())
}

/// Draws a [`Decoder`]'s images into a host texture (`Rgba8Unorm`, `STORAGE_BINDING`) as an atlas,
/// for the host to sample in its own render passes: no CPU round trip. Built once per (decoder,
/// texture, layout); [`TextureDecode::record`] is one dispatch.
///
/// ```no_run
/// # fn frame(gpu: &aegpu::gpu::Gpu, decoder: &aegpu::embed::Decoder, texture: &wgpu::Texture)
/// #          -> aegpu::Result<()> {
/// use aegpu::embed::{AtlasLayout, TextureDecode, ValueMap};
/// // a 10x10 grid of 28x28 MNIST digits, each drawn 2x: a 560x560 texture
/// let layout = AtlasLayout::grid(10, [56, 56]);
/// let draw = TextureDecode::new(gpu, decoder, texture, 100, [1, 28, 28], layout, ValueMap::UNIT)?;
/// let mut encoder = gpu.device.create_command_encoder(&Default::default());
/// decoder.record(&mut encoder);
/// draw.record(&mut encoder);
/// // ... a render pass that samples `texture` ...
/// gpu.queue.submit([encoder.finish()]);
/// # Ok(()) }
/// ```
pub struct TextureDecode {
    kernel: TexturePipeline,
}

impl TextureDecode {
    /// Draws the first `n` images of `decoder` (each of `shape` = `[channels, height, width]`,
    /// channels 1 or 3) into `target` at `layout`, brightness mapped by `map`.
    pub fn new(
        gpu: &Gpu,
        decoder: &Decoder,
        target: &wgpu::Texture,
        n: usize,
        shape: [usize; 3],
        layout: AtlasLayout,
        map: ValueMap,
    ) -> Result<TextureDecode> {
        check_shape(decoder.model(), shape)?;
        if n == 0 || n > decoder.capacity() {
            return Err(Error::Shape(format!("{n} images: the decoder holds 1 to {}", decoder.capacity())));
        }
        let kernel = TexturePipeline::decode(gpu, &decoder.images(), n, shape, target, &layout, map)?;
        Ok(TextureDecode { kernel })
    }

    /// Records the drawing as one compute pass (after [`Decoder::record`] in the same encoder).
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        self.kernel.record(&mut pass);
    }

    /// Records the drawing into a compute pass of the host's.
    pub fn record_in(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.kernel.record(pass);
    }

    /// Bytes this object allocated on the GPU (its uniform block).
    pub fn allocated_bytes(&self) -> u64 {
        self.kernel.uniform_bytes()
    }
}

/// Encodes tiles of a host texture (a rendered frame, a sprite sheet) into codes: each tile is
/// resampled to the model's input (area average when shrinking, nearest when growing; grey models
/// take the luma), then the encoder runs. The codes stay on the GPU ([`TextureEncoder::codes`]) and
/// can be read back without waiting.
///
/// ```no_run
/// # fn frame(gpu: &aegpu::gpu::Gpu, model: &aegpu::models::Autoencoder, frame: &wgpu::Texture)
/// #          -> aegpu::Result<()> {
/// use aegpu::embed::{AtlasLayout, TextureEncoder};
/// // the whole 256x256 frame as one 28x28 grey input
/// let layout = AtlasLayout::single([256, 256], [0, 0]);
/// let mut enc = TextureEncoder::new(gpu, model, frame, 1, [1, 28, 28], layout)?;
/// let mut encoder = gpu.device.create_command_encoder(&Default::default());
/// enc.record(&mut encoder);
/// enc.record_read(&mut encoder);
/// gpu.queue.submit([encoder.finish()]);
/// enc.submitted();
/// if let Some(codes) = enc.poll() { /* [1, code width] */ }
/// # Ok(()) }
/// ```
pub struct TextureEncoder<'a> {
    gpu: &'a Gpu,
    model: &'a Autoencoder,
    n: usize,
    acts: Activations,
    kernel: TexturePipeline,
    plan: Plan,
    codes: StorageBuffer,
    reads: PendingReads<()>,
}

impl<'a> TextureEncoder<'a> {
    /// Encodes `n` tiles of `source` at `layout`, each resampled to `shape` (`[channels, height,
    /// width]`, the model's input).
    pub fn new(
        gpu: &'a Gpu,
        model: &'a Autoencoder,
        source: &wgpu::Texture,
        n: usize,
        shape: [usize; 3],
        layout: AtlasLayout,
    ) -> Result<TextureEncoder<'a>> {
        check_shape(model, shape)?;
        if n == 0 {
            return Err(Error::Shape("encoding needs at least one tile".into()));
        }
        let acts = model.activations(gpu, n)?;
        let kernel = TexturePipeline::encode(gpu, &acts.input(), n, shape, source, &layout)?;
        let ctx = Ctx {
            acts: &acts.tensors,
            params: &model.params,
            grads: &model.grads,
            matmul: model.matmul_policy(gpu)?,
            seed: model.seed,
        };
        let launches = model.net.forward(&ctx, 0..model.code_node + 1, acts.input(), Pass::INFER);
        let plan = Plan::new(gpu, "encode", &launches)?;
        let codes = StorageBuffer::zeroed(gpu, "encoded codes", n * model.code_width())?;
        let reads = PendingReads::new(gpu, 2, n * model.code_width());
        Ok(TextureEncoder { gpu, model, n, acts, kernel, plan, codes, reads })
    }

    /// Records the resampling, the encoder and the copy of the codes into [`TextureEncoder::codes`].
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.kernel.record(&mut pass);
            self.plan.record(&mut pass);
        }
        self.record_copy(encoder);
    }

    /// Records the encoder on whatever [`TextureEncoder::inputs`] holds (the host wrote it, or an
    /// earlier resampling), and the copy of the codes.
    pub fn record_from_inputs(&self, encoder: &mut wgpu::CommandEncoder) {
        self.plan.record_into(encoder);
        self.record_copy(encoder);
    }

    fn record_copy(&self, encoder: &mut wgpu::CommandEncoder) {
        let code = self.acts.code();
        let bytes = (self.n * self.model.code_width() * 4) as u64;
        encoder.copy_buffer_to_buffer(&code.buffer, (code.offset * 4) as u64, &self.codes.buffer, 0, bytes);
    }

    /// The resampled inputs, `[n, C·H·W]` in [0, 1].
    pub fn inputs(&self) -> View {
        self.acts.input()
    }

    /// The codes, `[n, code width]` (a VAE's rows are `[μ, log σ²]`).
    pub fn codes(&self) -> View {
        View::whole(&self.codes)
    }

    /// Records a copy of the codes for [`TextureEncoder::poll`]; false when two earlier reads are
    /// still waiting to be taken (nothing recorded).
    pub fn record_read(&mut self, encoder: &mut wgpu::CommandEncoder) -> bool {
        self.reads.record(encoder, &self.codes.buffer, 0, ())
    }

    /// Call right after the submit that carried [`TextureEncoder::record_read`].
    pub fn submitted(&mut self) {
        self.reads.submitted();
    }

    /// The oldest finished read of the codes, if any; polls the device without blocking.
    pub fn poll(&mut self) -> Option<Vec<f32>> {
        let _ = self.gpu.device.poll(wgpu::PollType::Poll);
        self.reads.take().map(|(_, v)| v)
    }

    /// Every GPU buffer this encoder created, as (what, bytes).
    pub fn allocations(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("activations", self.acts.tensors.arena.buffer.buffer.size()),
            ("plan uniforms", self.plan.uniform_buffer().size()),
            ("resampling uniforms", self.kernel.uniform_bytes()),
            ("codes", self.codes.buffer.size()),
            ("code readbacks", self.reads.bytes()),
        ]
    }
}
