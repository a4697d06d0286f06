//! Datasets as the GPU reads them (`aegpu::expert::gpu_data`): one buffer, many chunks of whole examples, or
//! streamed from host memory one batch per step. All three train and evaluate bit-identically; a
//! dataset bigger than one storage binding trains in chunks; impossible chunk sizes are errors.

mod common;

use aegpu::data::{Dataset, synthetic};
use aegpu::error::Error;
use aegpu::gpu::Gpu;
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::models::dense::DenseConfig;
use aegpu::models::{Autoencoder, Init};
use aegpu::train::{Evaluator, GpuDataset, Residency, TrainConfig, Trainer};
use common::*;

/// Bytes of one 8x8 example.
const DIM: u64 = 64;
/// lavapipe's largest storage binding, 128 MiB.
const LAVAPIPE_BINDING: u64 = 128 << 20;

fn small_data() -> (Dataset, Dataset) {
    let all = synthetic::synthetic(1200, 8, 8, 4, 3);
    (all.subset(0..1000), all.subset(1000..1200))
}

/// Everything a run produced, as bits: per-epoch (train loss, test loss, MSE, BCE), the exported
/// parameters, and a fresh evaluation's metrics, codes and reconstructions.
struct Outcome {
    history: Vec<[u64; 4]>,
    params: Vec<(String, Vec<u32>)>,
    eval: [u64; 4],
    codes: Vec<u32>,
    recon: Vec<u32>,
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Trains a small dense model for 2 epochs with both sets uploaded as `residency`.
fn train_with(gpu: &Gpu, residency: Residency) -> (Outcome, String, String) {
    let (train, test) = small_data();
    let train = GpuDataset::upload_with(gpu, &train, residency).unwrap();
    let test = GpuDataset::upload_with(gpu, &test, residency).unwrap();
    let config = DenseConfig::symmetric(
        64,
        &[32, 8],
        Activation::Relu,
        Activation::Identity,
        Activation::Sigmoid,
        LossKind::Bce,
    )
    .unwrap();
    let model = Autoencoder::new(gpu, config, 7, Init::Glorot).unwrap();
    let tc = TrainConfig {
        epochs: 2,
        batch: 50,
        optimizer: Optimizer::parse("adam", 3e-3, 0.0).unwrap(),
        seed: 5,
    };
    let history = aegpu::run::train(gpu, &model, &train, &test, &tc, &mut (), |_, _| Ok(())).unwrap();
    // 200 test examples in batches of 64: the remainder plan reads from position 192.
    let eval = Evaluator::new(gpu, &model, &test, 64).unwrap().run(20).unwrap();
    let m = eval.metrics;
    let outcome = Outcome {
        history: history
            .iter()
            .map(|h| [h.train_loss, h.test_loss, h.test_mse_px, h.test_bce_px].map(f64::to_bits))
            .collect(),
        params: model.export(gpu).unwrap().into_iter().map(|(n, _, v)| (n, bits(&v))).collect(),
        eval: [m.loss, m.mse_px, m.bce_px, m.code_mean].map(f64::to_bits),
        codes: bits(&eval.codes),
        recon: bits(&eval.recon),
    };
    (outcome, train.describe(), test.describe())
}

/// Field by field, so that a failure names what differs without printing every code.
fn assert_same(what: &str, got: &Outcome, one_buffer: &Outcome) {
    assert_eq!(got.history, one_buffer.history, "{what} vs one buffer: per-epoch losses");
    assert!(got.params == one_buffer.params, "{what} vs one buffer: trained parameters differ");
    assert_eq!(got.eval, one_buffer.eval, "{what} vs one buffer: evaluation metrics");
    assert!(got.codes == one_buffer.codes, "{what} vs one buffer: codes differ");
    assert!(got.recon == one_buffer.recon, "{what} vs one buffer: reconstructions differ");
}

#[test]
fn one_buffer_chunks_and_host_streaming_train_bit_identically() {
    let gpu = gpu();
    let (one, train_one, test_one) = train_with(&gpu, Residency::Auto);
    assert_eq!((train_one.as_str(), test_one.as_str()), ("1 buffer of 64.0 kB", "1 buffer of 12.8 kB"));
    // 147 examples per chunk (the 3 extra bytes round away): 7 chunks of the training set, the last
    // of 118; neither size is a multiple of the batch of 50, so batches straddle chunks.
    let forced = Residency::Gpu { max_chunk_bytes: Some(147 * DIM + 3) };
    let (chunked, train_chunked, test_chunked) = train_with(&gpu, forced);
    assert_eq!(
        (train_chunked.as_str(), test_chunked.as_str()),
        ("7 chunks of ≤ 9.4 kB", "2 chunks of ≤ 9.4 kB")
    );
    let (host, train_host, _) = train_with(&gpu, Residency::Host);
    assert_eq!(train_host, "streamed from host (64.0 kB)");

    assert_eq!(one.history.len(), 2);
    assert_same("7 chunks", &chunked, &one);
    assert_same("streamed from host", &host, &one);
}

#[test]
fn a_dataset_larger_than_one_storage_binding_trains_in_chunks() {
    let gpu = gpu();
    // 8600 examples of 128x128: 140.9 MB, past lavapipe's 128 MiB binding (and most GPUs' default).
    let (n, side) = (8600usize, 128usize);
    let dim = side * side;
    let images: Vec<u8> = (0..n * dim).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let ds = Dataset::from_parts("big", images, vec![0; n], side, side).unwrap();
    assert!(ds.images.len() as u64 > LAVAPIPE_BINDING);
    // An adapter with bigger bindings gets lavapipe's limit, so that it too splits the set.
    let data = match gpu.max_binding() > LAVAPIPE_BINDING {
        true => {
            GpuDataset::upload_with(&gpu, &ds, Residency::Gpu { max_chunk_bytes: Some(LAVAPIPE_BINDING) })
        }
        false => GpuDataset::upload(&gpu, &ds),
    }
    .unwrap();
    drop(ds);
    assert!(data.chunks() > 1 && !data.is_streamed(), "{}", data.describe());
    let config = DenseConfig::symmetric(
        dim,
        &[8],
        Activation::Identity,
        Activation::Identity,
        Activation::Sigmoid,
        LossKind::Mse,
    )
    .unwrap();
    let model = Autoencoder::new(&gpu, config, 1, Init::Glorot).unwrap();
    // 500 examples per step: the activations (input, logits and their gradient) fit one binding.
    let tc =
        TrainConfig { epochs: 1, batch: 500, optimizer: Optimizer::parse("sgd", 0.1, 0.0).unwrap(), seed: 2 };
    let mut trainer = Trainer::new(&gpu, &model, &data, tc).unwrap();
    assert_eq!(trainer.steps_per_epoch(), 17);
    let loss = trainer.epoch(1, |_, _| {}).unwrap();
    assert!(loss.is_finite() && loss > 0.0, "loss {loss} over {}", data.describe());
}

#[test]
fn a_chunk_smaller_than_one_example_is_an_error() {
    let gpu = gpu();
    let (train, _) = small_data();
    let too_small = Residency::Gpu { max_chunk_bytes: Some(DIM - 1) };
    match GpuDataset::upload_with(&gpu, &train, too_small) {
        Err(Error::Config(message)) => {
            assert!(message.contains("max_chunk_bytes 63") && message.contains("64 bytes"), "{message}")
        }
        Err(e) => panic!("expected a configuration error, got {e}"),
        Ok(d) => panic!("expected an error, got {}", d.describe()),
    }
    // One example per chunk is the smallest that works.
    let tiny = train.subset(0..20);
    let one_each =
        GpuDataset::upload_with(&gpu, &tiny, Residency::Gpu { max_chunk_bytes: Some(DIM) }).unwrap();
    assert_eq!((one_each.chunks(), one_each.describe().as_str()), (20, "20 chunks of ≤ 64 B"));
}
