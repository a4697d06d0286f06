//! Training with f16 activation storage (`Trainer::set_activation_storage`): which tensors become
//! f16 (the outputs of dense layers feeding dense layers, not the code, the output or any gradient),
//! the arena they save, loss parity with f32 over two epochs, bit-identical runs for any steps per
//! submit, and the refusal for models it cannot serve.

mod common;

use aegpu::data::synthetic::synthetic;
use aegpu::error::Error;
use aegpu::expert::nn::ActivationStorage;
use aegpu::gpu::Gpu;
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::models::dense::DenseConfig;
use aegpu::models::{Autoencoder, Init, ModelConfig};
use aegpu::train::{GpuDataset, TrainConfig, Trainer};

const EXAMPLES: usize = 12 * 32 + 7;

fn config() -> TrainConfig {
    TrainConfig { epochs: 2, batch: 32, optimizer: Optimizer::parse("adam", 2e-3, 0.0).unwrap(), seed: 11 }
}

/// 144-64-32-8-32-64-144: four hidden tensors can be f16 (h0, h1 in the encoder, h3, h4 in the
/// decoder); the code h2 and the output h5 cannot.
fn deep() -> ModelConfig {
    DenseConfig::symmetric(
        144,
        &[64, 32, 8],
        Activation::Tanh,
        Activation::Identity,
        Activation::Sigmoid,
        LossKind::Bce,
    )
    .unwrap()
    .into()
}

/// Two epochs stored as `storage` at `k` steps per submit: (epoch losses, parameters).
fn train(gpu: &Gpu, data: &GpuDataset, storage: ActivationStorage, k: usize) -> (Vec<f64>, Vec<f32>) {
    let model = Autoencoder::new(gpu, deep(), 5, Init::Glorot).unwrap();
    let mut trainer = Trainer::new(gpu, &model, data, config()).unwrap();
    trainer.set_steps_per_submit(k).unwrap();
    trainer.set_activation_storage(storage).unwrap();
    let losses = vec![trainer.epoch(1, |_, _| {}).unwrap(), trainer.epoch(2, |_, _| {}).unwrap()];
    (losses, model.params.buffer.read_all_f32(gpu).unwrap())
}

#[test]
fn the_hidden_outputs_of_dense_chains_are_stored_as_f16() {
    let gpu = common::gpu();
    let model = Autoencoder::new(&gpu, deep(), 5, Init::Glorot).unwrap();
    let f32_acts = model.activations_stored(&gpu, 32, ActivationStorage::F32).unwrap();
    let f16_acts = model.activations_stored(&gpu, 32, ActivationStorage::F16).unwrap();
    let half: Vec<&str> = ["x", "h0", "h1", "h2", "h3", "h4", "h5"]
        .into_iter()
        .filter(|t| f16_acts.tensors.is_half(t))
        .collect();
    assert_eq!(half, ["h0", "h1", "h3", "h4"]);
    assert!(["h0", "h1"].iter().all(|t| !f32_acts.tensors.is_half(t)));
    // Each f16 tensor takes half its words (the gradients do not shrink).
    for (t, values) in [("h0", 32 * 64), ("h1", 32 * 32), ("h3", 32 * 32), ("h4", 32 * 64)] {
        assert_eq!(f32_acts.tensors.view(t).len, values, "{t}");
        assert_eq!(f16_acts.tensors.view(t).len, values / 2, "{t}");
        assert_eq!(f16_acts.tensors.grad(t).len, values, "d{t}");
    }
    assert!(f16_acts.tensors.arena.layout.total < f32_acts.tensors.arena.layout.total);
}

/// f16 storage rounds each stored activation to 11 significant bits: the losses stay within 1 %
/// of f32's, and they differ (the f16 kernels ran). Any steps per submit gives the same bits.
#[test]
fn f16_storage_trains_within_a_percent_of_f32_and_is_reproducible() {
    let gpu = common::gpu();
    let data = GpuDataset::upload(&gpu, &synthetic(EXAMPLES, 12, 12, 4, 3)).unwrap();
    let (want, want_params) = train(&gpu, &data, ActivationStorage::F32, 4);
    let (got, params) = train(&gpu, &data, ActivationStorage::F16, 4);
    for (epoch, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(g.is_finite() && ((g - w) / w).abs() < 0.01, "epoch {}: f16 {g} against f32 {w}", epoch + 1);
    }
    assert_ne!(params, want_params, "f16 storage gave f32's bits: were its kernels used?");
    let drift = params.iter().zip(&want_params).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(drift < 0.05, "parameters drifted {drift} from f32's");
    for k in [1, 5] {
        assert!(train(&gpu, &data, ActivationStorage::F16, k) == (got.clone(), params.clone()), "K = {k}");
    }
}

/// A model with no dense layer feeding another besides its code has nothing to store as f16.
#[test]
fn a_model_without_dense_chains_is_refused() {
    let gpu = common::gpu();
    let shallow: ModelConfig = DenseConfig::symmetric(
        144,
        &[16],
        Activation::Relu,
        Activation::Relu,
        Activation::Sigmoid,
        LossKind::Bce,
    )
    .unwrap()
    .into();
    let conv: ModelConfig = aegpu::models::arch::parse(
        "conv 4 k3 s2 relu, conv 8 k3 s2 relu, flatten, linear 3",
        [1, 12, 12],
        LossKind::Bce,
        Activation::Sigmoid,
    )
    .unwrap()
    .into();
    let data = GpuDataset::upload(&gpu, &synthetic(64, 12, 12, 4, 3)).unwrap();
    for config in [shallow, conv] {
        let model = Autoencoder::new(&gpu, config, 5, Init::Glorot).unwrap();
        let mut trainer = Trainer::new(&gpu, &model, &data, config_small()).unwrap();
        match trainer.set_activation_storage(ActivationStorage::F16) {
            Err(Error::Config(m)) => assert!(m.contains("--activations f32"), "{m}"),
            other => panic!("expected a configuration error, got {:?}", other.err()),
        }
        trainer.set_activation_storage(ActivationStorage::F32).unwrap();
    }
    assert!(ActivationStorage::parse("f8").is_err());
    assert_eq!(ActivationStorage::parse("F16").unwrap(), ActivationStorage::F16);
}

fn config_small() -> TrainConfig {
    TrainConfig { batch: 16, ..config() }
}
