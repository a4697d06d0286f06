//! The engine inside a graphics application that owns the device, the frame loop and the submits.
//!
//! The host lends its device with [`crate::gpu::Gpu::from_device`] (no callbacks installed, its
//! limits and features as they are) and then, each frame, records the engine's work into its own
//! `wgpu::CommandEncoder`:
//!
//! - [`TrainSession::record_steps`]: `k` training steps, bit-identical to
//!   [`crate::train::Trainer::epoch`] over the same batches;
//! - [`EvalRecorder::record`]: an evaluation pass over a test set;
//! - [`Decoder::record`]: codes to images in a GPU buffer, and [`TextureDecode::record`]: those
//!   images into the host's `Rgba8Unorm` texture as an atlas of tiles;
//! - [`TextureEncoder::record`]: tiles of the host's texture to codes in a GPU buffer.
//!
//! Nothing submits, waits or allocates after construction. Results that must reach the CPU (losses,
//! metrics, images, codes) come through non-blocking readbacks: after the host's `queue.submit`, it
//! calls `submitted()` on each recorder that recorded (which asks for the mapping) and later
//! `poll*()` (which polls the device without blocking and returns the oldest finished result).
//!
//! # Why steps need slots
//!
//! A plan's per-step values (batch offset, optimiser step, random streams) live in its uniform
//! buffer. The training loop rewrites them with `queue.write_buffer` before each submit, but a queue
//! write takes effect at the next submit, before *every* command buffer in it: with several steps in
//! one encoder, all of them would read the values written last. A [`TrainSession`] therefore gives
//! each step recorded since the last submit a slot of its own in a staging buffer, written with
//! `queue.write_buffer`, and records a `copy_buffer_to_buffer` from that slot into the plan's
//! uniforms right before the step's compute pass; commands in one encoder run in order, so each step
//! reads its own values. The shuffled order of an epoch begun inside the encoder reaches the
//! dataset's index buffer the same way. The slots are free again once the host has submitted (a
//! later queue write lands after everything already submitted), hence the `submitted()` call and
//! [`StepOptions::max_steps_per_submit`], the number of slots.
//!
//! # Example
//!
//! `examples/latent_explorer.rs` trains a 2-D VAE a few steps per frame, decodes a latent grid into
//! a texture and draws it with a render pipeline, all in one encoder per frame.
#![warn(missing_docs)]

mod decode;
mod eval;
mod footprint;
mod readback;
mod session;
mod texture;

pub use decode::Decoder;
pub use eval::{EvalRecorder, EvalReport};
pub use footprint::Footprint;
pub use session::{StepLosses, StepOptions, TrainSession};
pub use texture::{AtlasLayout, TextureDecode, TextureEncoder, ValueMap, image_shape};
