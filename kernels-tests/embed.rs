//! The engine inside a host's frame loop (`aegpu::embed`): steps recorded into the host's encoder
//! train bit-identically to `Trainer::epoch`, recorded evaluation equals the `Evaluator`, the
//! decoder equals `generate::decode`, the footprint equals the buffers allocated, and a device made
//! with default limits and no features (no SUBGROUP) works.

mod common;

use aegpu::data::synthetic::synthetic;
use aegpu::embed::{Decoder, EvalRecorder, Footprint, StepOptions, TrainSession};
use aegpu::gpu::Gpu;
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::models::conv::ConvConfig;
use aegpu::models::dense::{DenseConfig, Variational};
use aegpu::models::{Autoencoder, Init};
use aegpu::train::{Evaluator, GpuDataset, Residency, TrainConfig, Trainer};

fn vae(input: usize) -> DenseConfig {
    DenseConfig::symmetric(
        input,
        &[32, 2],
        Activation::Relu,
        Activation::Identity,
        Activation::Sigmoid,
        LossKind::Bce,
    )
    .and_then(|c| c.with_variational(Some(Variational { beta: 1.0 })))
    .expect("a valid VAE")
}

fn config(batch: usize) -> TrainConfig {
    TrainConfig { epochs: 2, batch, optimizer: Optimizer::parse("adam", 2e-3, 0.0).expect("adam"), seed: 11 }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Steps recorded 2 + 2 per submit (an epoch boundary inside a submit, several calls per submit)
/// leave the parameters and both Adam moments bit-identical to two `Trainer::epoch`s, and the
/// losses read back without waiting average to the epochs' losses exactly.
#[test]
fn recorded_steps_match_trainer_epochs_bit_for_bit() {
    let gpu = common::gpu();
    let data = synthetic(600, 12, 12, 4, 3);
    let train = GpuDataset::upload(&gpu, &data).unwrap();
    let reference = Autoencoder::new(&gpu, vae(144), 5, Init::Glorot).unwrap();
    let mut trainer = Trainer::new(&gpu, &reference, &train, config(64)).unwrap();
    let epoch_losses = [trainer.epoch(1, |_, _| {}).unwrap(), trainer.epoch(2, |_, _| {}).unwrap()];

    let model = Autoencoder::new(&gpu, vae(144), 5, Init::Glorot).unwrap();
    let options = StepOptions { max_steps_per_submit: 5, ..Default::default() };
    let mut session = TrainSession::new(&gpu, &model, &train, config(64), options).unwrap();
    let spe = session.steps_per_epoch();
    assert_eq!(spe, 9);
    let mut losses = Vec::new();
    let mut recorded = 0;
    while recorded < 2 * spe {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        for _ in 0..2 {
            let k = 2.min(2 * spe - recorded);
            session.record_steps(&mut enc, k).unwrap();
            recorded += k;
        }
        gpu.queue.submit([enc.finish()]);
        session.submitted();
        // This test's host waits for each submit, so that no readback is still in flight when the
        // next one needs its slot: a loaded machine (CI) would otherwise drop losses, which is the
        // designed behaviour of a host that polls too rarely, not what this test is about.
        gpu.wait().unwrap();
        while let Some(l) = session.poll_losses() {
            losses.push(l);
        }
    }
    gpu.wait().unwrap();
    while let Some(l) = session.poll_losses() {
        losses.push(l);
    }
    assert_eq!(session.steps_recorded(), 18);
    assert_eq!(session.position(), (3, 0));
    assert_eq!(session.losses_dropped(), 0);
    let per_step: Vec<f64> = losses.iter().flat_map(|l| l.losses.clone()).collect();
    let firsts: Vec<u64> = losses.iter().map(|l| l.first_step).collect();
    assert_eq!(firsts, (0..9).map(|i| 2 * i + 1).collect::<Vec<u64>>(), "one report per call, in order");
    for (e, want) in epoch_losses.iter().enumerate() {
        let got = per_step[e * spe..(e + 1) * spe].iter().sum::<f64>() / spe as f64;
        assert_eq!(got.to_bits(), want.to_bits(), "epoch {} loss: recorded {got} vs trainer {want}", e + 1);
    }
    for (what, a, b) in [
        ("parameters", &model.params.buffer, &reference.params.buffer),
        ("Adam m", &model.opt_m, &reference.opt_m),
        ("Adam v", &model.opt_v, &reference.opt_v),
    ] {
        let (a, b) = (a.read_all_f32(&gpu).unwrap(), b.read_all_f32(&gpu).unwrap());
        let differ = bits(&a).iter().zip(bits(&b)).filter(|(x, y)| **x != *y).count();
        assert_eq!(differ, 0, "{what}: {differ} of {} words differ from the trainer's", a.len());
    }
}

/// More steps than slots between submits is an error that records nothing; after `submitted()` the
/// slots are free again. A streamed dataset and a zero-slot session are refused.
#[test]
fn step_slots_are_enforced_and_streamed_data_refused() {
    let gpu = common::gpu();
    let data = synthetic(256, 12, 12, 4, 3);
    let train = GpuDataset::upload(&gpu, &data).unwrap();
    let model = Autoencoder::new(&gpu, vae(144), 5, Init::Glorot).unwrap();
    let options = StepOptions { max_steps_per_submit: 3, ..Default::default() };
    let mut session = TrainSession::new(&gpu, &model, &train, config(32), options).unwrap();
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    session.record_steps(&mut enc, 2).unwrap();
    let err = session.record_steps(&mut enc, 2).unwrap_err().to_string();
    assert!(err.contains("max_steps_per_submit = 3") && err.contains("submitted()"), "{err}");
    assert_eq!(session.steps_recorded(), 2, "the refused call recorded nothing");
    gpu.queue.submit([enc.finish()]);
    session.submitted();
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    session.record_steps(&mut enc, 3).unwrap();
    gpu.queue.submit([enc.finish()]);
    session.submitted();
    gpu.wait().unwrap();

    let zero = TrainSession::new(
        &gpu,
        &model,
        &train,
        config(32),
        StepOptions { max_steps_per_submit: 0, ..Default::default() },
    );
    assert!(zero.is_err());
    let streamed = GpuDataset::upload_with(&gpu, &data, Residency::Host).unwrap();
    let err = TrainSession::new(&gpu, &model, &streamed, config(32), StepOptions::default()).err().unwrap();
    assert!(err.to_string().contains("resident"), "{err}");
}

/// Two recorded evaluation passes in one encoder (a remainder batch included) give exactly the
/// metrics of `Evaluator::run`.
#[test]
fn recorded_evaluation_equals_the_evaluator() {
    let gpu = common::gpu();
    let data = synthetic(250, 12, 12, 4, 8);
    let test = GpuDataset::upload(&gpu, &data).unwrap();
    let model = Autoencoder::new(&gpu, vae(144), 2, Init::Glorot).unwrap();
    let want = Evaluator::new(&gpu, &model, &test, 64).unwrap().run(0).unwrap().metrics;
    let mut eval = EvalRecorder::new(&gpu, &model, &test, 64).unwrap();
    assert_eq!(eval.batches(), 4);
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    eval.record(&mut enc);
    eval.record(&mut enc);
    gpu.queue.submit([enc.finish()]);
    eval.submitted();
    gpu.wait().unwrap();
    for pass in 0..2 {
        let got = eval.poll().expect("a finished pass");
        assert_eq!(got.pass, pass);
        assert_eq!(got.loss.to_bits(), want.loss.to_bits(), "loss {} vs {}", got.loss, want.loss);
        assert_eq!(got.mse_px.to_bits(), want.mse_px.to_bits());
        assert_eq!(got.bce_px.to_bits(), want.bce_px.to_bits());
        assert_eq!(got.vae, want.vae);
    }
    assert!(eval.poll().is_none());
}

/// The decoder's GPU images equal `generate::decode` (which applies the output activation on the
/// CPU: the GPU's sigmoid may differ in the last bits), from codes written or copied from a host
/// buffer, and arrive through the non-blocking read.
#[test]
fn decoder_equals_generate_decode() {
    let gpu = common::gpu();
    let model = Autoencoder::new(&gpu, vae(144), 4, Init::Glorot).unwrap();
    let codes: Vec<f32> = common::random_vec(10, 1).iter().map(|v| 2.0 * v).collect();
    let want = aegpu::generate::decode(&gpu, &model, &codes).unwrap();
    let mut decoder = Decoder::new(&gpu, &model, 5).unwrap();
    decoder.write_codes(&codes).unwrap();
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    decoder.record(&mut enc);
    assert!(decoder.record_read(&mut enc));
    gpu.queue.submit([enc.finish()]);
    decoder.submitted();
    gpu.wait().unwrap();
    let got = decoder.poll().expect("a finished read");
    common::assert_close("decoded images (written codes)", &got, &want, 1e-6, 1e-5);

    // The same codes, reversed, from a host buffer copied inside the encoder.
    let reversed: Vec<f32> = codes.chunks(2).rev().flatten().copied().collect();
    let host = aegpu::gpu::StorageBuffer::from_slice(&gpu, "host codes", &reversed).unwrap();
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    decoder.record_codes_from(&mut enc, &host.buffer, 0, 5).unwrap();
    decoder.record(&mut enc);
    gpu.queue.submit([enc.finish()]);
    let got = decoder.images().read(&gpu).unwrap();
    let want_rev: Vec<f32> = want.chunks(144).rev().flatten().copied().collect();
    common::assert_close("decoded images (copied codes)", &got, &want_rev, 1e-6, 1e-5);
    assert!(decoder.write_codes(&codes[..3]).is_err(), "1.5 codes");
    assert!(decoder.write_codes(&[0.0; 12]).is_err(), "6 codes for 5 slots");
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    assert!(decoder.record_codes_from(&mut enc, &host.buffer, 4, 5).is_err(), "past the buffer's end");
}

/// `Footprint::of` tells, before allocating, the sizes of the buffers the model and a batch's
/// activations then take, for a dense VAE and a conv model.
#[test]
fn footprint_equals_the_buffers_allocated() {
    let gpu = common::gpu();
    let data = synthetic(256, 12, 12, 4, 3);
    let train = GpuDataset::upload(&gpu, &data).unwrap();
    let dense = Autoencoder::new(&gpu, vae(144), 5, Init::Glorot).unwrap();
    let conv = ConvConfig::preset("strided", [1, 12, 12], Some(8), LossKind::Bce).unwrap();
    let conv = Autoencoder::new(&gpu, conv, 5, Init::Glorot).unwrap();
    for (name, model) in [("dense VAE", &dense), ("strided conv", &conv)] {
        for batch in [1, 32, 100] {
            let f = Footprint::of(&gpu, model, batch).unwrap();
            let acts = model.activations(&gpu, batch).unwrap();
            assert_eq!(f.activations, acts.tensors.arena.buffer.buffer.size(), "{name} batch {batch}");
            assert_eq!(f.parameters, model.params.buffer.buffer.size(), "{name}");
            assert_eq!(f.gradients, model.grads.buffer.buffer.size(), "{name}");
            assert_eq!(f.optimizer, model.opt_m.buffer.size() + model.opt_v.buffer.size(), "{name}");
            assert_eq!(f.total(), f.model_bytes() + f.activations);
        }
    }
    let session = TrainSession::new(&gpu, &dense, &train, config(32), StepOptions::default()).unwrap();
    let allocations = session.allocations();
    let acts = allocations.iter().find(|(what, _)| *what == "activations").unwrap().1;
    assert_eq!(acts, Footprint::of(&gpu, &dense, 32).unwrap().activations);
}

/// A host that asks for nothing: default limits (128 MiB bindings, 8 storage buffers per stage) and
/// no features. The engine picks a matmul variant without subgroups, trains a conv model through a
/// session, and builds no pipeline after the first frame.
#[test]
fn a_host_device_with_default_limits_and_no_features_works() {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
        .expect("an adapter (lavapipe in CI)");
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).unwrap();
    let gpu = Gpu::from_device(device, queue, adapter.get_info());
    assert!(!gpu.features.contains(wgpu::Features::SUBGROUP));
    assert_eq!(gpu.limits.max_storage_buffer_binding_size, 128 << 20);
    let policy = gpu.matmul_policy().unwrap();
    for class in aegpu::kernels::matmul_policy::ShapeClass::ALL {
        assert_ne!(policy.class(class), aegpu::kernels::matmul::MatmulVariant::Subgroup, "{class:?}");
    }

    let data = synthetic(128, 12, 12, 4, 3);
    let train = GpuDataset::upload(&gpu, &data).unwrap();
    let conv = ConvConfig::preset("strided", [1, 12, 12], Some(8), LossKind::Bce).unwrap();
    let model = Autoencoder::new(&gpu, conv, 5, Init::Glorot).unwrap();
    let mut session = TrainSession::new(&gpu, &model, &train, config(16), StepOptions::default()).unwrap();
    let mut decoder = Decoder::new(&gpu, &model, 4).unwrap();
    let mut pipelines = Vec::new();
    let mut losses = Vec::new();
    for _ in 0..3 {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        session.record_steps(&mut enc, 3).unwrap();
        decoder.record(&mut enc);
        gpu.queue.submit([enc.finish()]);
        session.submitted();
        decoder.submitted();
        pipelines.push(gpu.pipelines.len());
        gpu.wait().unwrap();
        while let Some(l) = session.poll_losses() {
            losses.extend(l.losses);
        }
    }
    assert_eq!(pipelines[0], pipelines[2], "pipelines built after the first frame");
    assert_eq!(losses.len(), 9);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
}

/// f16 activation storage inside a host's frame: a session on a device the host created with
/// SHADER_F16 trains bit-identically to a `Trainer` with the same storage; on a device created
/// without it the session is refused with what to request.
#[test]
fn f16_activations_in_a_session_match_the_trainer() {
    use aegpu::expert::nn::ActivationStorage;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
        .expect("an adapter (lavapipe in CI)");
    assert!(adapter.features().contains(wgpu::Features::SHADER_F16), "lavapipe offers shader-f16");
    let desc = wgpu::DeviceDescriptor { required_features: wgpu::Features::SHADER_F16, ..Default::default() };
    let (device, queue) = pollster::block_on(adapter.request_device(&desc)).unwrap();
    let gpu = Gpu::from_device(device, queue, adapter.get_info());
    let data = synthetic(600, 12, 12, 4, 3);
    let train = GpuDataset::upload(&gpu, &data).unwrap();
    let reference = Autoencoder::new(&gpu, vae(144), 5, Init::Glorot).unwrap();
    let mut trainer = Trainer::new(&gpu, &reference, &train, config(64)).unwrap();
    trainer.set_activation_storage(ActivationStorage::F16).unwrap();
    assert_eq!(trainer.half_tensors(), ["h0", "h3"]);
    trainer.epoch(1, |_, _| {}).unwrap();

    let model = Autoencoder::new(&gpu, vae(144), 5, Init::Glorot).unwrap();
    let options = StepOptions { max_steps_per_submit: 9, activations: ActivationStorage::F16 };
    let mut session = TrainSession::new(&gpu, &model, &train, config(64), options).unwrap();
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    session.record_steps(&mut enc, session.steps_per_epoch()).unwrap();
    gpu.queue.submit([enc.finish()]);
    session.submitted();
    gpu.wait().unwrap();
    let (a, b) = (
        model.params.buffer.read_all_f32(&gpu).unwrap(),
        reference.params.buffer.read_all_f32(&gpu).unwrap(),
    );
    assert_eq!(bits(&a), bits(&b), "the session's f16 epoch differs from the trainer's");

    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).unwrap();
    let plain = Gpu::from_device(device, queue, adapter.get_info());
    let train = GpuDataset::upload(&plain, &data).unwrap();
    let model = Autoencoder::new(&plain, vae(144), 5, Init::Glorot).unwrap();
    let options = StepOptions { activations: ActivationStorage::F16, ..Default::default() };
    match TrainSession::new(&plain, &model, &train, config(64), options) {
        Err(aegpu::error::Error::Config(m)) => assert!(m.contains("Features::SHADER_F16"), "{m}"),
        other => panic!("expected a configuration error, got {:?}", other.err()),
    }
}
