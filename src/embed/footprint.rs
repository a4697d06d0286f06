//! What the engine allocates on the GPU for a model and a batch, told before allocating it.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::models::Autoencoder;

/// GPU memory of a model trained on batches of `batch`, in bytes, computed from the layouts
/// without allocating anything. Every figure is the size of one buffer the engine creates:
/// parameters, gradients and the optimiser's two moment buffers (each one arena of the model's
/// parameters, padded to the storage alignment), and the activations of one batch (every layer's
/// output and gradient, plus loss scratch). A [`super::TrainSession`] adds a few small buffers on top
/// (listed with their sizes by [`super::TrainSession::allocations`]), and the dataset takes its
/// images as bytes (rounded up to 4 per chunk) plus 4 bytes per example for the shuffled order.
///
/// ```no_run
/// # fn budget(gpu: &aegpu::gpu::Gpu, model: &aegpu::models::Autoencoder) -> aegpu::Result<()> {
/// let f = aegpu::embed::Footprint::of(gpu, model, 128)?;
/// println!("model {} B, a batch of 128: {} B, total {} B", f.model_bytes(), f.activations, f.total());
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// The parameter arena.
    pub parameters: u64,
    /// The gradient arena (same layout).
    pub gradients: u64,
    /// The optimiser's first and second moments (two buffers of the arena's size, allocated whatever the optimiser).
    pub optimizer: u64,
    /// The activation arena for one batch.
    pub activations: u64,
}

impl Footprint {
    /// The footprint of `model` with activations for `batch` examples on `gpu` (whose storage
    /// alignment pads the arenas).
    pub fn of(gpu: &Gpu, model: &Autoencoder, batch: usize) -> Result<Footprint> {
        let arena = model.params.layout.total.max(1) as u64 * 4;
        Ok(Footprint {
            parameters: arena,
            gradients: arena,
            optimizer: 2 * arena,
            activations: model.activation_bytes(gpu, batch)?,
        })
    }

    /// Parameters, gradients and optimiser state: what the model takes whatever the batch.
    pub fn model_bytes(&self) -> u64 {
        self.parameters + self.gradients + self.optimizer
    }

    /// Everything above.
    pub fn total(&self) -> u64 {
        self.model_bytes() + self.activations
    }
}
