//! Several steps per submit in the step runner (`crate::steps`) compute exactly what one step per
//! submit does, for every procedure that uses it: a classifier on plain labelled batches (dropout
//! and input masking: random streams per step; batches of part of a pass, and full batches), a
//! classifier with pseudo-labels (mixed batches: each step has its own order; both teachers),
//! recirculation, and greedy layer-wise pre-training (masking noise). K = 1, 3 and 8 on runs whose
//! step count is no multiple of K and that span several passes over the data: every step's logged
//! loss words (layer-wise: each epoch's mean loss) and the final parameters (and Adam moments) agree
//! bit for bit, and streamed data at K = 8 as resident data.

mod common;

use aegpu::classify::labels::balanced_subset;
use aegpu::classify::train::{ClassifierTrainer, FitConfig, LabelledData, PseudoConfig, Teacher};
use aegpu::classify::{Classifier, ClassifierOptions, Start};
use aegpu::data::synthetic::synthetic;
use aegpu::expert::nn::Noise;
use aegpu::gpu::{Gpu, StorageBuffer};
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::kernels::softmax_ce::PseudoLabels;
use aegpu::layerwise::{LayerwiseSpec, pretrain};
use aegpu::models::dense::DenseConfig;
use aegpu::models::{Autoencoder, Init};
use aegpu::recirculation::RecirculationTrainer;
use aegpu::train::{GpuDataset, Residency, TrainConfig};
use common::small_ae;

const KS: [usize; 3] = [1, 3, 8];

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn words(gpu: &Gpu, b: &StorageBuffer) -> Vec<u32> {
    bits(&b.read_all_f32(gpu).unwrap())
}

fn adam(lr: f32) -> Optimizer {
    Optimizer::parse("adam", lr, 0.0).unwrap()
}

/// Asserts that every K gives the outcome of K = 1.
fn same_for_every_k<T: PartialEq + std::fmt::Debug>(name: &str, run: impl Fn(usize) -> T) {
    let one = run(1);
    for k in &KS[1..] {
        assert!(run(*k) == one, "{name}: {k} steps per submit differ from 1");
    }
}

/// The step log, the parameters and both Adam moments of a classifier trained for 17 steps (in
/// runs of 5 and 12, so groups also end where a run does) at `k` steps per submit.
fn fit(
    gpu: &Gpu,
    ae: &Autoencoder,
    data: &LabelledData,
    labelled: Option<&[u32]>,
    config: FitConfig,
    k: usize,
) -> (Vec<u32>, [Vec<u32>; 3]) {
    let noise = Some(Noise::Masking(0.2));
    let options = ClassifierOptions { classes: 5, freeze: false, dropout: Some(0.2), noise, depth: None };
    let model = Classifier::from_encoder(gpu, ae, options, Start::Pretrained, 3).unwrap();
    let log = {
        let mut trainer = match labelled {
            None => ClassifierTrainer::new(gpu, &model, data, config).unwrap(),
            Some(l) => ClassifierTrainer::with_pool(gpu, &model, data, l.to_vec(), config).unwrap(),
        };
        trainer.set_steps_per_submit(k).unwrap();
        assert_eq!(trainer.steps_per_submit(), k);
        trainer.run(5).unwrap();
        trainer.run(100).unwrap();
        assert_eq!(trainer.steps_done(), 17);
        trainer.step_log().unwrap()
    };
    assert!(log.iter().all(|x| x.is_finite()), "{log:?}");
    (bits(&log), [words(gpu, &model.params.buffer), words(gpu, &model.opt_m), words(gpu, &model.opt_v)])
}

#[test]
fn a_classifier_on_plain_batches_is_bit_identical_for_every_steps_per_submit() {
    let gpu = common::gpu();
    // 150 examples in batches of 16: passes of 9 steps (6 examples dropped), 17 steps in all; and
    // full batches (`aegpu classify`'s default for small labelled sets), a pass per step.
    let train = synthetic(150, 8, 8, 5, 3);
    let data = LabelledData::upload(&gpu, &train, None).unwrap();
    let ae = small_ae(&gpu);
    for batch in [16, 150] {
        let config = FitConfig { steps: 17, batch, optimizer: adam(1e-2), seed: 4, pseudo: None };
        let name = format!("plain classifier, batch {batch}");
        same_for_every_k(&name, |k| fit(&gpu, &ae, &data, None, config, k));
    }
}

#[test]
fn a_classifier_with_pseudo_labels_is_bit_identical_for_every_steps_per_submit() {
    let gpu = common::gpu();
    // 20 labelled examples of a pool of 300 in batches of 8 + 16 unlabelled: passes of 2 labelled
    // steps, so every group of 3 or 8 crosses passes; the unlabelled pool is reshuffled after 18
    // steps. α ramps up over the run, so every step's weight differs.
    let train = synthetic(300, 8, 8, 5, 7);
    let chosen = balanced_subset(&train.labels, 5, 4, 0).unwrap();
    let positions: Vec<u32> = chosen.iter().map(|&i| i as u32).collect();
    let pool = LabelledData::upload_pool(&gpu, &train, &positions, None).unwrap();
    let ae = small_ae(&gpu);
    for teacher in [Teacher::Noisy, Teacher::Clean] {
        let labels = PseudoLabels { weight: 2.0, ramp_start: 1, ramp_end: 15, threshold: 0.3 };
        let pseudo = PseudoConfig { unlabelled_batch: 16, labels, teacher };
        let config = FitConfig { steps: 17, batch: 8, optimizer: adam(1e-2), seed: 4, pseudo: Some(pseudo) };
        let name = format!("pseudo-labels, {teacher:?} teacher");
        same_for_every_k(&name, |k| fit(&gpu, &ae, &pool, Some(&positions), config, k));
    }
    // More steps per submit than the run has changes nothing; a batch larger than the pool is an
    // error.
    let options = ClassifierOptions { classes: 5, freeze: false, dropout: None, noise: None, depth: None };
    let model = Classifier::from_encoder(&gpu, &ae, options, Start::Pretrained, 3).unwrap();
    let labels = PseudoLabels { weight: 1.0, ramp_start: 0, ramp_end: 1, threshold: 0.0 };
    let pseudo = PseudoConfig { unlabelled_batch: 16, labels, teacher: Teacher::Noisy };
    let config = FitConfig { steps: 3, batch: 8, optimizer: adam(1e-2), seed: 4, pseudo: Some(pseudo) };
    let mut trainer = ClassifierTrainer::with_pool(&gpu, &model, &pool, positions.clone(), config).unwrap();
    trainer.set_steps_per_submit(100).unwrap();
    assert_eq!(trainer.steps_per_submit(), 3);
    assert!(trainer.set_steps_per_submit(0).is_err());
    let huge = PseudoConfig { unlabelled_batch: 293, ..pseudo };
    let config = FitConfig { pseudo: Some(huge), ..config };
    assert!(ClassifierTrainer::with_pool(&gpu, &model, &pool, positions.clone(), config).is_err());
}

#[test]
fn recirculation_is_bit_identical_for_every_steps_per_submit() {
    let gpu = common::gpu();
    // 307 examples in batches of 30: epochs of 10 steps (7 examples dropped), 2 epochs.
    let images = synthetic(307, 10, 10, 4, 5);
    let data = GpuDataset::upload(&gpu, &images).unwrap();
    let c = DenseConfig::symmetric(
        100,
        &[12],
        Activation::Sigmoid,
        Activation::Sigmoid,
        Activation::Sigmoid,
        LossKind::Bce,
    )
    .unwrap();
    let config = TrainConfig { epochs: 2, batch: 30, optimizer: adam(1e-2), seed: 6 };
    let run = |data: &GpuDataset, k: usize| {
        let model = Autoencoder::new(&gpu, c.clone(), 2, Init::Glorot).unwrap();
        let log = {
            let mut trainer = RecirculationTrainer::new(&gpu, &model, data, config.clone(), 0.75).unwrap();
            trainer.set_steps_per_submit(k).unwrap();
            let steps_per_submit = trainer.steps_per_submit();
            let losses = [trainer.epoch().unwrap(), trainer.epoch().unwrap()];
            (losses.map(f64::to_bits), steps_per_submit, bits(&trainer.step_log().unwrap()))
        };
        let state = [words(&gpu, &model.params.buffer), words(&gpu, &model.opt_m), words(&gpu, &model.opt_v)];
        (log, state)
    };
    same_for_every_k("recirculation", |k| {
        let ((losses, used, log), state) = run(&data, k);
        assert_eq!(used, k);
        (losses, log, state)
    });
    // Streamed data takes several steps per submit too (each step's batch in a slot of its own),
    // and trains as resident data does.
    let streamed = GpuDataset::upload_with(&gpu, &images, Residency::Host).unwrap();
    let ((losses, used, log), state) = run(&streamed, 8);
    let ((want_losses, _, want_log), want_state) = run(&data, 8);
    assert_eq!(used, 8, "streamed data: 8 steps per submit");
    assert!((losses, log, state) == (want_losses, want_log, want_state), "streamed vs resident");
}

#[test]
fn layerwise_pretraining_is_bit_identical_for_every_steps_per_submit() {
    let gpu = common::gpu();
    // 307 examples in batches of 30: epochs of 10 steps, 2 per layer, 2 layers.
    let data = GpuDataset::upload(&gpu, &synthetic(307, 8, 8, 4, 9)).unwrap();
    let c = DenseConfig::symmetric(
        64,
        &[16, 6],
        Activation::Relu,
        Activation::Identity,
        Activation::Sigmoid,
        LossKind::Mse,
    )
    .unwrap();
    same_for_every_k("layer-wise", |k| {
        let model = Autoencoder::new(&gpu, c.clone(), 3, Init::Glorot).unwrap();
        let spec = LayerwiseSpec {
            epochs: 2,
            masking: Some(0.2),
            batch: 30,
            optimizer: adam(3e-3),
            seed: 8,
            steps_per_submit: k,
        };
        let history = pretrain(&gpu, &model, &data, &spec, |_| Ok(())).unwrap();
        assert_eq!(history.len(), 4);
        let losses: Vec<u64> = history.iter().map(|e| e.train_loss.to_bits()).collect();
        (losses, words(&gpu, &model.params.buffer))
    });
}
