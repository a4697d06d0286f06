//! Several training steps per submit (`Trainer::set_steps_per_submit`) compute exactly what one
//! step per submit does: the same epoch losses and the same parameters and Adam moments, bit for
//! bit, for a dense model with dropout (random streams per step) and a conv model, for K = 1, a K
//! that divides the steps of an epoch and one that does not; and a run stopped after a group of
//! steps (Ctrl-C) and resumed in a fresh trainer with another K continues exactly.

mod common;

use aegpu::data::synthetic::synthetic;
use aegpu::gpu::Gpu;
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::models::dense::{DenseConfig, Regularizers};
use aegpu::models::{Autoencoder, Init, ModelConfig};
use aegpu::train::{EpochEnd, GpuDataset, Residency, TrainConfig, Trainer};

/// 12 steps of 32 per epoch (7 examples left over).
const EXAMPLES: usize = 12 * 32 + 7;

fn config() -> TrainConfig {
    TrainConfig { epochs: 2, batch: 32, optimizer: Optimizer::parse("adam", 2e-3, 0.0).unwrap(), seed: 11 }
}

fn dense() -> ModelConfig {
    DenseConfig::symmetric(
        144,
        &[32, 8],
        Activation::Tanh,
        Activation::Identity,
        Activation::Sigmoid,
        LossKind::Bce,
    )
    .and_then(|c| c.with_regularizers(Regularizers { dropout: Some(0.2), ..Default::default() }))
    .unwrap()
    .into()
}

fn conv() -> ModelConfig {
    aegpu::models::arch::parse(
        "conv 4 k3 s2 relu, conv 8 k3 s2 relu, flatten, linear 3",
        [1, 12, 12],
        LossKind::Bce,
        Activation::Sigmoid,
    )
    .unwrap()
    .into()
}

/// What a run leaves: the bits of each epoch's loss, of the parameters and of both Adam moments.
#[derive(Debug, PartialEq)]
struct Outcome {
    losses: Vec<u64>,
    state: Vec<Vec<u32>>,
}

fn outcome(gpu: &Gpu, model: &Autoencoder, losses: &[f64]) -> Outcome {
    let words =
        |b: &aegpu::gpu::StorageBuffer| b.read_all_f32(gpu).unwrap().iter().map(|x| x.to_bits()).collect();
    Outcome {
        losses: losses.iter().map(|l| l.to_bits()).collect(),
        state: vec![words(&model.params.buffer), words(&model.opt_m), words(&model.opt_v)],
    }
}

/// Two epochs at `k` steps per submit.
fn train(gpu: &Gpu, model: &ModelConfig, data: &GpuDataset, k: usize) -> Outcome {
    let model = Autoencoder::new(gpu, model.clone(), 5, Init::Glorot).unwrap();
    let mut trainer = Trainer::new(gpu, &model, data, config()).unwrap();
    trainer.set_steps_per_submit(k).unwrap();
    assert_eq!(trainer.steps_per_epoch(), 12);
    assert_eq!(trainer.submits_per_epoch(), 12usize.div_ceil(trainer.steps_per_submit()));
    let losses = [trainer.epoch(1, |_, _| {}).unwrap(), trainer.epoch(2, |_, _| {}).unwrap()];
    outcome(gpu, &model, &losses)
}

/// Epoch 1 at `k` steps per submit, stopped after its first submit; then, in a fresh trainer at
/// `resume_k` restored from the step counter and the loss log (as `aegpu train --resume` does),
/// the rest of epoch 1 and epoch 2.
fn stopped_and_resumed(
    gpu: &Gpu,
    model: &ModelConfig,
    data: &GpuDataset,
    k: usize,
    resume_k: usize,
) -> Outcome {
    let model = Autoencoder::new(gpu, model.clone(), 5, Init::Glorot).unwrap();
    let (step, log, next) = {
        let mut trainer = Trainer::new(gpu, &model, data, config()).unwrap();
        trainer.set_steps_per_submit(k).unwrap();
        let mut seen = Vec::new();
        let end = trainer.run_epoch(1, 0, &|| true, |done, _| seen.push(done)).unwrap();
        assert_eq!(seen, vec![k], "the progress callback sees whole groups");
        let EpochEnd::Stopped { next_batch } = end else { panic!("asked to stop, got {end:?}") };
        assert_eq!(next_batch, k, "a stop finishes the current group of steps and no more");
        (trainer.steps_done(), trainer.loss_log_prefix(next_batch).unwrap(), next_batch)
    };
    let mut trainer = Trainer::new(gpu, &model, data, config()).unwrap();
    trainer.set_steps_per_submit(resume_k).unwrap();
    trainer.restore(step, &log).unwrap();
    let first = match trainer.run_epoch(1, next, &|| false, |_, _| {}).unwrap() {
        EpochEnd::Finished { train_loss } => train_loss,
        end => panic!("not asked to stop, got {end:?}"),
    };
    let losses = [first, trainer.epoch(2, |_, _| {}).unwrap()];
    outcome(gpu, &model, &losses)
}

fn check(name: &str, model: ModelConfig) {
    let gpu = common::gpu();
    let data = GpuDataset::upload(&gpu, &synthetic(EXAMPLES, 12, 12, 4, 3)).unwrap();
    let one = train(&gpu, &model, &data, 1);
    assert!(one.losses.iter().all(|&l| f64::from_bits(l).is_finite()), "{name}: {:?}", one.losses);
    for k in [4, 5, 12, 100] {
        assert!(train(&gpu, &model, &data, k) == one, "{name}: {k} steps per submit differ from 1");
    }
    assert!(stopped_and_resumed(&gpu, &model, &data, 5, 4) == one, "{name}: stopped at 5, resumed at 4");
    assert!(stopped_and_resumed(&gpu, &model, &data, 1, 8) == one, "{name}: stopped at 1, resumed at 8");
}

#[test]
fn dense_with_dropout_is_bit_identical_for_every_steps_per_submit() {
    check("dense", dense());
}

#[test]
fn conv_is_bit_identical_for_every_steps_per_submit() {
    check("conv", conv());
}

/// Streamed data writes each step's batch into a slot of its own and copies it into the batch
/// buffer right before the step, so it takes several steps per submit too and trains exactly as
/// resident data does, at K = 1, 4 and 5 (12 steps per epoch). K = 0 is an error.
#[test]
fn streamed_data_takes_several_steps_per_submit() {
    let gpu = common::gpu();
    let images = synthetic(EXAMPLES, 12, 12, 4, 3);
    let resident = GpuDataset::upload(&gpu, &images).unwrap();
    let streamed = GpuDataset::upload_with(&gpu, &images, Residency::Host).unwrap();
    let want = train(&gpu, &dense(), &resident, 4);
    for (k, submits) in [(1, 12), (4, 3), (5, 3)] {
        let model = Autoencoder::new(&gpu, dense(), 5, Init::Glorot).unwrap();
        let mut trainer = Trainer::new(&gpu, &model, &streamed, config()).unwrap();
        assert!(trainer.set_steps_per_submit(0).is_err());
        trainer.set_steps_per_submit(k).unwrap();
        assert_eq!((trainer.steps_per_submit(), trainer.submits_per_epoch()), (k, submits));
        let losses = [trainer.epoch(1, |_, _| {}).unwrap(), trainer.epoch(2, |_, _| {}).unwrap()];
        assert!(outcome(&gpu, &model, &losses) == want, "streamed data at K = {k}");
    }
}
