//! The dense autoencoder as a whole: backward vs finite differences of its own forward, training on
//! synthetic data, determinism, checkpoint round trip, and the bad-input errors.

mod common;

use aegpu::checkpoint;
use aegpu::data::{Dataset, synthetic};
use aegpu::error::Error;
use aegpu::expert::runner::Plan;
use aegpu::gpu::Gpu;
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::kernels::penalty::SparseNorm;
use aegpu::models::dense::{DenseConfig, Noise, Regularizers, Sparse};
use aegpu::models::{Autoencoder, Init, ModelConfig, Pass};
use aegpu::train::{Evaluator, GpuDataset, TrainConfig, Trainer};
use common::*;
use std::path::Path;

/// Loss (per-pixel mean of the configured kind) and the flat parameter gradient for input `x`.
/// The dense configuration a model was built from.
fn dense_config(model: &Autoencoder) -> &DenseConfig {
    match &model.config {
        ModelConfig::Dense(c) => c,
        ModelConfig::Conv(_) => panic!("a dense model"),
    }
}

fn loss_and_grad(gpu: &Gpu, model: &Autoencoder, x: &[f32], batch: usize) -> (f64, Vec<f32>) {
    let variant = gpu.matmul_policy().unwrap();
    let acts = model.activations(gpu, batch).unwrap();
    acts.input().write(gpu, x).unwrap();
    let mut launches = model.forward(&acts, variant, Pass::TRAIN);
    launches.extend(model.loss(&acts, &acts.input(), true, false));
    launches.extend(model.backward(&acts, variant));
    Plan::new(gpu, "fd", &launches).unwrap().run(gpu).unwrap();
    let totals = acts.totals().read(gpu).unwrap();
    let n = (batch * model.input_dim()) as f64;
    let loss = match (model.variational(), acts.kl_total()) {
        // A VAE's objective: nats per image, (Σ BCE + β·KL) / batch. ε is drawn from the same
        // stream on every run (the plan's stream is never advanced here): held fixed.
        (Some(v), Some(kl)) => {
            (totals[1] as f64 + v.beta as f64 * kl.read(gpu).unwrap()[0] as f64) / batch as f64
        }
        _ => totals[model.loss_kind().slot()] as f64 / n,
    };
    // Plus λ times the per-example penalty (sparse or contractive), averaged over the batch.
    let penalty = match acts.penalty_total() {
        Some(p) => {
            dense_config(model).regularize.penalty_lambda() as f64 * p.read(gpu).unwrap()[0] as f64
                / batch as f64
        }
        None => 0.0,
    };
    let loss = loss + penalty;
    (loss, model.grads.buffer.read_all_f32(gpu).unwrap())
}

fn finite_difference_check(config: DenseConfig, seed: u64) {
    let gpu = gpu();
    let model = Autoencoder::new(&gpu, config.clone(), seed, Init::Glorot).unwrap();
    // Non-zero biases so every bias gradient path is exercised.
    let mut params = model.params.buffer.read_all_f32(&gpu).unwrap();
    let biases: Vec<(usize, usize)> = model
        .params
        .layout
        .entries
        .iter()
        .filter(|(n, _, _)| n.ends_with(".bias"))
        .map(|&(_, o, l)| (o, l))
        .collect();
    let noise = random_vec(params.len(), seed + 7);
    for (o, l) in biases {
        for i in o..o + l {
            params[i] = 0.3 * noise[i];
        }
    }
    model.params.buffer.write(&gpu, 0, &params);
    let batch = 3;
    let x: Vec<f32> =
        random_vec(batch * config.input_dim(), seed + 1).iter().map(|v| 0.5 + 0.45 * v).collect();
    let (_, grad) = loss_and_grad(&gpu, &model, &x, batch);

    // Central differences in f32 on the GPU: eps large enough that the loss's rounding error
    // (~1e-7 relative) stays far below eps·|g|, small enough that the O(eps²) term is negligible.
    let eps = 1e-2f32;
    let mut fd = vec![0.0f32; params.len()];
    let mut worst = (0.0f32, 0usize);
    for (_, offset, len) in &model.params.layout.entries {
        for i in *offset..offset + len {
            let mut p = params.clone();
            p[i] = params[i] + eps;
            model.params.buffer.write(&gpu, 0, &p);
            let (up, _) = loss_and_grad(&gpu, &model, &x, batch);
            p[i] = params[i] - eps;
            model.params.buffer.write(&gpu, 0, &p);
            let (down, _) = loss_and_grad(&gpu, &model, &x, batch);
            fd[i] = ((up - down) / (2.0 * eps as f64)) as f32;
            let err = (fd[i] - grad[i]).abs();
            if err > worst.0 {
                worst = (err, i);
            }
        }
    }
    let scale = grad.iter().fold(0.0f32, |m, g| m.max(g.abs()));
    assert!(scale > 1e-4, "gradient is vanishingly small ({scale}); the check would prove nothing");
    let name = config.describe();
    assert_close(
        &format!("dense {name} {:?} backward vs finite differences", config.loss),
        &grad,
        &fd,
        2e-3 * scale,
        2e-2,
    );
    eprintln!("{name}: max |fd - backward| = {:e} at {} (max |g| {scale:e})", worst.0, worst.1);
}

#[test]
fn backward_matches_finite_differences_bce() {
    use Activation::*;
    let config = DenseConfig {
        sizes: vec![6, 5, 3, 4, 6],
        activations: vec![Tanh, LeakyRelu(0.2), Sigmoid, Sigmoid],
        code_layer: 1,
        loss: LossKind::Bce,
        variational: None,
        regularize: Default::default(),
    };
    finite_difference_check(config, 1);
}

#[test]
fn backward_matches_finite_differences_mse() {
    use Activation::*;
    for (seed, out) in [(2, Sigmoid), (3, Identity)] {
        let config = DenseConfig {
            sizes: vec![7, 4, 2, 4, 7],
            activations: vec![Sigmoid, Identity, Tanh, out],
            code_layer: 1,
            loss: LossKind::Mse,
            variational: None,
            regularize: Default::default(),
        };
        finite_difference_check(config, seed);
    }
}

#[test]
fn vae_backward_matches_finite_differences_with_fixed_noise() {
    use Activation::*;
    for (seed, beta) in [(4, 1.0), (5, 0.5)] {
        let config = DenseConfig {
            sizes: vec![6, 5, 2, 4, 6],
            activations: vec![Tanh, Identity, Sigmoid, Sigmoid],
            code_layer: 1,
            loss: LossKind::Bce,
            variational: Some(aegpu::models::dense::Variational { beta }),
            regularize: Default::default(),
        };
        finite_difference_check(config, seed);
    }
}

fn regularized(
    sizes: Vec<usize>,
    activations: Vec<Activation>,
    loss: LossKind,
    r: Regularizers,
) -> DenseConfig {
    DenseConfig { sizes, activations, code_layer: 1, loss, variational: None, regularize: r }
}

#[test]
fn sparse_penalties_backward_matches_finite_differences() {
    use Activation::*;
    // L1 has a kink at h = 0, where central differences straddle it: a sigmoid code keeps h > 0.
    // L2 is smooth, so a tanh code exercises both signs.
    for (seed, norm, code) in [(6, SparseNorm::L1, Sigmoid), (7, SparseNorm::L2, Tanh)] {
        let r = Regularizers { sparse: Some(Sparse { norm, lambda: 0.05 }), ..Default::default() };
        let config = regularized(vec![6, 5, 3, 5, 6], vec![Tanh, code, Tanh, Sigmoid], LossKind::Bce, r);
        finite_difference_check(config, seed);
    }
}

#[test]
fn contractive_backward_matches_finite_differences() {
    use Activation::*;
    let r = Regularizers { contractive: Some(0.3), ..Default::default() };
    let config = DenseConfig {
        sizes: vec![7, 4, 7],
        activations: vec![Sigmoid, Sigmoid],
        code_layer: 0,
        loss: LossKind::Bce,
        variational: None,
        regularize: r,
    };
    finite_difference_check(config, 8);
}

#[test]
fn dropout_and_denoising_backward_match_finite_differences_with_fixed_noise() {
    use Activation::*;
    let cases = [
        Regularizers { dropout: Some(0.3), ..Default::default() },
        Regularizers { noise: Some(Noise::Gaussian(0.2)), ..Default::default() },
        Regularizers { noise: Some(Noise::Masking(0.3)), dropout: Some(0.2), ..Default::default() },
    ];
    for (seed, r) in cases.into_iter().enumerate() {
        let config = regularized(vec![6, 5, 3, 5, 6], vec![Tanh, Sigmoid, Tanh, Sigmoid], LossKind::Mse, r);
        finite_difference_check(config, 20 + seed as u64);
    }
}

fn small_data() -> (Dataset, Dataset) {
    let all = synthetic::synthetic(1200, 8, 8, 4, 3);
    (all.subset(0..1000), all.subset(1000..1200))
}

fn small_config(loss: LossKind) -> DenseConfig {
    DenseConfig::symmetric(64, &[32, 8], Activation::Relu, Activation::Identity, Activation::Sigmoid, loss)
        .unwrap()
}

fn train_losses(gpu: &Gpu, seed: u64, epochs: usize) -> Vec<(f64, f64, f64)> {
    let (train, test) = small_data();
    let model = Autoencoder::new(gpu, small_config(LossKind::Bce), seed, Init::Glorot).unwrap();
    let train = GpuDataset::upload(gpu, &train).unwrap();
    let test = GpuDataset::upload(gpu, &test).unwrap();
    let tc = TrainConfig { epochs, batch: 50, optimizer: Optimizer::parse("adam", 3e-3, 0.0).unwrap(), seed };
    let history = aegpu::run::train(gpu, &model, &train, &test, &tc, &mut (), |_, _| Ok(())).unwrap();
    history.iter().map(|m| (m.train_loss, m.test_mse_px, m.test_bce_px)).collect()
}

#[test]
fn training_on_synthetic_data_lowers_the_loss() {
    let gpu = gpu();
    let losses = train_losses(&gpu, 5, 6);
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(last.0 < 0.7 * first.0, "train loss fell only from {} to {}", first.0, last.0);
    assert!(last.1 < 0.7 * first.1, "test MSE fell only from {} to {}", first.1, last.1);
}

#[test]
fn same_seed_gives_identical_losses_and_another_seed_does_not() {
    let gpu = gpu();
    let a = train_losses(&gpu, 11, 2);
    let b = train_losses(&gpu, 11, 2);
    let c = train_losses(&gpu, 12, 2);
    let bits = |v: &Vec<(f64, f64, f64)>| {
        v.iter().map(|t| (t.0.to_bits(), t.1.to_bits(), t.2.to_bits())).collect::<Vec<_>>()
    };
    assert_eq!(bits(&a), bits(&b), "same seed, same adapter: metrics must be bit-identical");
    assert_ne!(bits(&a), bits(&c));
}

#[test]
fn a_training_step_is_one_plan_and_builds_nothing_in_the_hot_path() {
    let gpu = gpu();
    let (train, _) = small_data();
    let model = Autoencoder::new(&gpu, small_config(LossKind::Mse), 0, Init::Glorot).unwrap();
    let data = GpuDataset::upload(&gpu, &train).unwrap();
    let tc = TrainConfig {
        epochs: 1,
        batch: 100,
        optimizer: Optimizer::parse("sgd", 0.05, 0.0).unwrap(),
        seed: 0,
    };
    let mut trainer = Trainer::new(&gpu, &model, &data, tc).unwrap();
    // gather + 4 layers forward + loss (2) + backward (4 weight, 4 bias, 3 input; the two hidden
    // layers' activation derivatives are fused into their bias gradients, the linear code and the
    // output need none) + update
    assert_eq!(trainer.dispatches_per_step(), 1 + 4 + 2 + 11 + 1);
    let pipelines = gpu.pipelines.len();
    trainer.epoch(1, |_, _| {}).unwrap();
    trainer.epoch(2, |_, _| {}).unwrap();
    assert_eq!(gpu.pipelines.len(), pipelines, "the training loop created pipelines");
}

#[test]
fn checkpoint_round_trip_gives_identical_outputs() {
    let gpu = gpu();
    let (train, test) = small_data();
    let model = Autoencoder::new(&gpu, small_config(LossKind::Bce), 9, Init::Glorot).unwrap();
    let train = GpuDataset::upload(&gpu, &train).unwrap();
    let test = GpuDataset::upload(&gpu, &test).unwrap();
    let tc = TrainConfig {
        epochs: 1,
        batch: 50,
        optimizer: Optimizer::parse("adamw", 1e-3, 1e-2).unwrap(),
        seed: 1,
    };
    aegpu::run::train(&gpu, &model, &train, &test, &tc, &mut (), |_, _| Ok(())).unwrap();
    let before = Evaluator::new(&gpu, &model, &test, 64).unwrap().run(20).unwrap();

    let dir = std::env::temp_dir().join(format!("aegpu-ckpt-{}", std::process::id()));
    let path = dir.join("model.safetensors");
    checkpoint::save(&gpu, &model, &[("aegpu.dataset", "synthetic".into())], &path).unwrap();
    let ckpt = checkpoint::load(&path).unwrap();
    assert_eq!(ckpt.model, model.config);
    assert_eq!(ckpt.metadata.get("aegpu.dataset").map(String::as_str), Some("synthetic"));
    let names: Vec<&str> = ckpt.tensors.iter().map(|(n, _, _)| n.as_str()).collect();
    for expected in
        ["encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "decoder.0.weight", "decoder.2.bias"]
    {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    let restored = checkpoint::restore(&gpu, &ckpt, &path).unwrap();
    let after = Evaluator::new(&gpu, &restored, &test, 64).unwrap().run(20).unwrap();
    assert_eq!(before.metrics.bce_px.to_bits(), after.metrics.bce_px.to_bits());
    assert_eq!(before.recon, after.recon);
    assert_eq!(before.codes, after.codes);
    // PyTorch layout: encoder.0.weight is [out, in] = [32, 64].
    let st_bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    assert_eq!(st.tensor("encoder.0.weight").unwrap().shape(), &[32, 64]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_checkpoints_are_errors_not_panics() {
    let dir = std::env::temp_dir().join(format!("aegpu-badckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("nope.safetensors");
    assert!(matches!(checkpoint::load(&missing), Err(Error::Io { .. })));
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file at all").unwrap();
    assert!(matches!(checkpoint::load(&garbage), Err(Error::BadCheckpoint { .. })));
    // A valid safetensors file that is not ours.
    let foreign = dir.join("foreign.safetensors");
    let data = [0u8; 8];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &data).unwrap();
    std::fs::write(&foreign, safetensors::serialize([("w", view)], None).unwrap()).unwrap();
    let err = checkpoint::load(&foreign).err().expect("foreign checkpoint accepted");
    assert!(err.to_string().contains("not an aegpu checkpoint"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_configurations_are_errors() {
    let gpu = gpu();
    use Activation::*;
    assert!(DenseConfig::symmetric(784, &[], Relu, Identity, Sigmoid, LossKind::Bce).is_err());
    assert!(DenseConfig::symmetric(784, &[0], Relu, Identity, Sigmoid, LossKind::Bce).is_err());
    // BCE on a linear output is refused (the loss works on logits of a sigmoid).
    let e = DenseConfig::symmetric(784, &[32], Relu, Relu, Identity, LossKind::Bce).unwrap_err();
    assert!(e.to_string().contains("sigmoid"), "{e}");
    assert!(DenseConfig::preset("huge", 784, LossKind::Bce).is_err());
    assert!(Optimizer::parse("adam", -1.0, 0.0).is_err());
    assert!(Optimizer::parse("lbfgs", 1e-3, 0.0).is_err());

    let (train, _) = small_data();
    let data = GpuDataset::upload(&gpu, &train).unwrap();
    let model = Autoencoder::new(&gpu, small_config(LossKind::Mse), 0, Init::Glorot).unwrap();
    let opt = Optimizer::parse("adam", 1e-3, 0.0).unwrap();
    for batch in [0, 5000] {
        let tc = TrainConfig { epochs: 1, batch, optimizer: opt, seed: 0 };
        assert!(
            matches!(Trainer::new(&gpu, &model, &data, tc), Err(Error::Config(_))),
            "batch {batch} accepted"
        );
    }
    // A model whose input width does not match the data.
    let wide = DenseConfig::symmetric(100, &[8], Relu, Identity, Sigmoid, LossKind::Mse).unwrap();
    let wide = Autoencoder::new(&gpu, wide, 0, Init::Glorot).unwrap();
    let tc = TrainConfig { epochs: 1, batch: 10, optimizer: opt, seed: 0 };
    assert!(matches!(Trainer::new(&gpu, &wide, &data, tc), Err(Error::Shape(_))));
}

#[test]
fn a_diverging_run_is_reported() {
    let gpu = gpu();
    let (train, test) = small_data();
    // A linear output, so nothing saturates and the loss can run away.
    let config = DenseConfig::symmetric(
        64,
        &[32, 8],
        Activation::Relu,
        Activation::Identity,
        Activation::Identity,
        LossKind::Mse,
    )
    .unwrap();
    let model = Autoencoder::new(&gpu, config, 0, Init::Glorot).unwrap();
    let train = GpuDataset::upload(&gpu, &train).unwrap();
    let test = GpuDataset::upload(&gpu, &test).unwrap();
    // SGD at an absurd rate blows the weights up to inf/NaN within an epoch or two.
    let tc =
        TrainConfig { epochs: 3, batch: 50, optimizer: Optimizer::parse("sgd", 1e4, 0.0).unwrap(), seed: 0 };
    let r = aegpu::run::train(&gpu, &model, &train, &test, &tc, &mut (), |_, _| Ok(()));
    assert!(matches!(r, Err(Error::Diverged { .. })), "got {:?}", r.map(|h| h.len()));
}

#[test]
fn a_borrowed_device_without_optional_features_trains() {
    // A host application's device with default features and limits (no subgroups, no timestamps):
    // the engine must pick kernels this device can run, whatever the tuning cache says.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
        .expect("an adapter (CI installs lavapipe)");
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).expect("device");
    let gpu = Gpu::from_device(device, queue, adapter.get_info());
    assert!(!gpu.owned);
    assert!(!gpu.features.contains(wgpu::Features::SUBGROUP));
    let losses = train_losses(&gpu, 3, 2);
    assert!(losses[1].0 < losses[0].0, "loss did not fall on a borrowed device: {losses:?}");
}

/// Test metrics are the training objective without dropout: a dropout model evaluates exactly like
/// the same weights without dropout, and a denoising model evaluates on corrupted inputs (so its loss
/// differs from the same weights on clean inputs), repeatably.
#[test]
fn evaluation_drops_no_units_and_corrupts_like_training() {
    let gpu = gpu();
    let (_, test) = small_data();
    let test = GpuDataset::upload(&gpu, &test).unwrap();
    let base = small_config(LossKind::Bce);
    let with = |r: Regularizers| base.clone().with_regularizers(r).unwrap();
    let plain = Autoencoder::new(&gpu, base.clone(), 5, Init::Glorot).unwrap();
    let weights = plain.export(&gpu).unwrap();
    let evaluate =
        |model: &Autoencoder| Evaluator::new(&gpu, model, &test, 64).unwrap().run(0).unwrap().metrics;
    let reference = evaluate(&plain);

    let dropout =
        Autoencoder::zeroed(&gpu, with(Regularizers { dropout: Some(0.5), ..Default::default() }), 5)
            .unwrap();
    dropout.import(&gpu, &weights, Path::new("plain")).unwrap();
    assert_eq!(evaluate(&dropout).bce_px.to_bits(), reference.bce_px.to_bits(), "dropout at evaluation");

    let noise = Some(Noise::Gaussian(0.5));
    let denoising = Autoencoder::zeroed(&gpu, with(Regularizers { noise, ..Default::default() }), 5).unwrap();
    denoising.import(&gpu, &weights, Path::new("plain")).unwrap();
    let (first, second) = (evaluate(&denoising), evaluate(&denoising));
    assert_ne!(first.bce_px, reference.bce_px, "a denoising model is evaluated on corrupted inputs");
    assert_eq!(first.bce_px.to_bits(), second.bce_px.to_bits(), "evaluation noise comes from fixed streams");
}

/// A VAE evaluated at z = μ (`Pass::EVAL_MEAN`) decodes its posterior means: its reconstructions are
/// the decoder's output on the codes the evaluation reports, its KL is the sampled pass's (the KL
/// does not depend on z), it has no noise (repeats bit for bit) and differs from the single-sample
/// reconstruction. A plain autoencoder evaluates the same either way.
#[test]
fn vae_evaluated_at_the_mean_decodes_the_posterior_means() {
    let gpu = gpu();
    let (_, test) = small_data();
    let test = GpuDataset::upload(&gpu, &test).unwrap();
    let variational = Some(aegpu::models::dense::Variational { beta: 1.0 });
    let vae = small_config(LossKind::Bce).with_variational(variational).unwrap();
    let model = Autoencoder::new(&gpu, vae, 3, Init::Glorot).unwrap();
    let at = |model: &Autoencoder, pass| {
        Evaluator::with_pass(&gpu, model, &test, 64, pass).unwrap().run(20).unwrap()
    };
    let (sampled, mean, again) =
        (at(&model, Pass::EVAL), at(&model, Pass::EVAL_MEAN), at(&model, Pass::EVAL_MEAN));
    assert_eq!(sampled.codes, mean.codes, "the codes (μ) do not depend on z");
    let kl = |o: &aegpu::train::EvalOutput| o.metrics.vae.expect("a VAE").1.to_bits();
    assert_eq!(kl(&sampled), kl(&mean), "the KL does not depend on z");
    assert_eq!(mean.metrics.bce_px.to_bits(), again.metrics.bce_px.to_bits());
    assert_ne!(sampled.metrics.bce_px, mean.metrics.bce_px, "z = μ is not a sample");
    let d = model.code_dim();
    let decoded = aegpu::generate::decode(&gpu, &model, &mean.codes[..20 * d]).unwrap();
    assert_close("reconstruction at z = μ vs decode(μ)", &mean.recon, &decoded, 1e-6, 1e-5);

    let plain = Autoencoder::new(&gpu, small_config(LossKind::Bce), 3, Init::Glorot).unwrap();
    let (a, b) = (at(&plain, Pass::EVAL), at(&plain, Pass::EVAL_MEAN));
    assert_eq!(a.metrics.bce_px.to_bits(), b.metrics.bce_px.to_bits(), "a plain model has no z");
}

/// A model configuration with no layer sizes (a hand-edited checkpoint's JSON) is a configuration
/// error, not an arithmetic underflow.
#[test]
fn empty_layer_sizes_are_a_config_error() {
    let config = DenseConfig::symmetric(
        16,
        &[4],
        Activation::Relu,
        Activation::Identity,
        Activation::Sigmoid,
        LossKind::Bce,
    )
    .unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&ModelConfig::Dense(config).to_json().unwrap()).unwrap();
    json["sizes"] = serde_json::json!([]);
    match ModelConfig::from_json(Some("dense"), &json.to_string()) {
        Err(Error::Config(message)) => assert!(message.contains("layer sizes"), "{message}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

/// Measuring the host's recording cost (`Trainer::host_cost`) records steps it never submits: the
/// training that follows is bit-identical to one where nothing was measured.
#[test]
fn measuring_the_recording_cost_leaves_training_unchanged() {
    let gpu = gpu();
    let data = synthetic(512, 28, 28, 10, 3);
    let train = GpuDataset::upload(&gpu, &data).unwrap();
    let run = |measure: bool| {
        let config = DenseConfig::preset("shallow", 784, LossKind::Bce).unwrap();
        let model = Autoencoder::new(&gpu, config, 0, Init::Glorot).unwrap();
        let tc = TrainConfig {
            epochs: 1,
            batch: 64,
            optimizer: Optimizer::parse("adam", 1e-3, 0.0).unwrap(),
            seed: 5,
        };
        let mut trainer = Trainer::new(&gpu, &model, &train, tc).unwrap();
        let first = trainer.epoch(1, |_, _| {}).unwrap();
        if measure {
            let cost = trainer.host_cost(5).unwrap();
            assert!(
                cost.record_us_per_step > 0.0 && cost.dispatches_per_step == trainer.dispatches_per_step()
            );
            assert_eq!(cost.steps_per_record, trainer.steps_per_submit().min(trainer.steps_per_epoch()));
        }
        let second = trainer.epoch(2, |_, _| {}).unwrap();
        (first, second, model.export(&gpu).unwrap())
    };
    assert_eq!(run(true), run(false));
}
