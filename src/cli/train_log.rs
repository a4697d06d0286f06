//! The header `aegpu train` prints before the first epoch: adapter, model, data, kernels, and how
//! the steps reach the GPU (dispatches per step, steps per submit, submits per epoch).

use aegpu::data;
use aegpu::gpu::Gpu;
use aegpu::kernels::matmul_policy::ShapeClass;
use aegpu::models::{Autoencoder, Init};
use aegpu::train::{GpuDataset, TrainConfig, Trainer};

pub(super) fn print_header(
    gpu: &Gpu,
    model: &Autoencoder,
    config: &TrainConfig,
    init: Init,
    source: String,
    (split, train, test): (&data::Split, &GpuDataset, &GpuDataset),
    trainer: &Trainer,
) {
    note!("adapter: {}", gpu.describe());
    note!(
        "model:   {} {} ({} parameters, {:?} init), loss {:?}, {:?}, batch {}, {} train / {} test examples of {}",
        model.kind(),
        model.describe(),
        model.parameter_count(),
        init,
        model.loss_kind(),
        config.optimizer,
        config.batch,
        split.train.n,
        split.test.n,
        source
    );
    note!("data:    train set {}, test set {}", train.describe(), test.describe());
    let choices = model.kernel_choices();
    if !choices.is_empty() {
        note!("kernels: {choices}");
    }
    // A precision path the user forced (cooperative tiles with f16 operands) is said, not implied.
    if let Ok(policy) = model.matmul_policy(gpu)
        && ShapeClass::ALL.iter().any(|&c| policy.class(c).rounds_operands())
    {
        note!(
            "matmul:  {} rounds each product's operands to f16 (cooperative matrices, f32 accumulation)",
            policy.name()
        );
    }
    let half = trainer.half_tensors();
    if !half.is_empty() {
        let mb = |b: u64| b as f64 / 1e6;
        let f32_bytes = model.activation_bytes(gpu, config.batch).unwrap_or(0);
        note!(
            "memory:  activations {:.2} MB per step with {} stored as f16 ({:.2} MB all f32)",
            mb(trainer.activation_bytes()),
            half.join(", "),
            mb(f32_bytes)
        );
    }
    note!(
        "steps:   {} dispatches per step, {} steps per submit, {} submits per epoch of {} steps",
        trainer.dispatches_per_step(),
        trainer.steps_per_submit(),
        trainer.submits_per_epoch(),
        trainer.steps_per_epoch()
    );
}
