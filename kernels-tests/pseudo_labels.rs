//! Pseudo-labels (Lee 2013) for `aegpu classify`: the softmax + cross-entropy kernel's unlabelled
//! rows (own argmax as target, α(step) / unlabelled rows as weight, labels never read, no share of
//! the totals) against the CPU reference on awkward shapes and at steps before, inside and after
//! α's ramp, their gradient against finite differences, the mixed batches (a pool of examples
//! with only the drawn labels uploaded; labelled-only pool training bit-identical to training on
//! the drawn subset), learning from unlabelled synthetic data, and the command line.

mod common;

use aegpu::classify::labels::balanced_subset;
use aegpu::classify::train::{
    ClassifierEvaluator, ClassifierTrainer, FitConfig, LabelledData, PseudoConfig, Teacher,
};
use aegpu::classify::{Classifier, ClassifierOptions, Start};
use aegpu::data::synthetic::synthetic;
use aegpu::expert::cpu;
use aegpu::expert::runner::{Plan, View};
use aegpu::gpu::StorageBuffer;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::kernels::softmax_ce::{Mixed, PseudoLabels, softmax_ce_mixed};
use aegpu::models::Init;
use common::cli::{TempDir, aegpu, fails, ok, s};
use common::*;
use rand::RngExt;

#[test]
fn alpha_ramps_linearly_between_its_steps() {
    let p = PseudoLabels { weight: 3.0, ramp_start: 10, ramp_end: 20, threshold: 0.0 };
    let got: Vec<f32> = [0u64, 10, 11, 15, 19, 20, 1000].iter().map(|&t| p.alpha(t)).collect();
    assert_close("alpha", &got, &[0.0, 0.0, 0.3, 1.5, 2.7, 3.0, 3.0], 1e-6, 0.0);
    let step = PseudoLabels { weight: 2.0, ramp_start: 5, ramp_end: 5, threshold: 0.0 };
    assert_eq!((step.alpha(5), step.alpha(6)), (0.0, 2.0), "START = END is a step function");
}

/// Logits with a clear argmax per row (no ties within 0.05), so finite differences keep it.
fn logits(rows: usize, classes: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    let mut z = Vec::with_capacity(rows * classes);
    for _ in 0..rows {
        let top = r.random_range(0..classes);
        for j in 0..classes {
            let v: f32 = r.random_range(-2.0..2.0);
            z.push(if j == top { 2.5 + v.abs() } else { v.min(2.4) });
        }
    }
    z
}

/// Runs the kernel on `z` (with `teacher` logits, if any) after advancing its plan to `step`;
/// (dz, rows_out, pred).
#[allow(clippy::too_many_arguments)]
fn run_mixed(
    gpu: &aegpu::gpu::Gpu,
    (z, teacher): (&[f32], Option<&[f32]>),
    labels: &[f32],
    classes: usize,
    (labelled_rows, pseudo): (usize, PseudoLabels),
    scale: f32,
    step: u64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = labels.len();
    let teacher = teacher.map(|t| View::whole(&StorageBuffer::from_slice(gpu, "teacher", t).unwrap()));
    let mixed = Mixed { labelled_rows, pseudo, teacher };
    let zb = StorageBuffer::from_slice(gpu, "z", z).unwrap();
    let tb = StorageBuffer::from_slice(gpu, "t", labels).unwrap();
    let dz = StorageBuffer::from_slice(gpu, "dz", &vec![7.0f32; rows * classes]).unwrap();
    let out = StorageBuffer::from_slice(gpu, "rows", &vec![7.0f32; 2 * rows]).unwrap();
    let pred = StorageBuffer::zeroed(gpu, "pred", rows).unwrap();
    let w = |b: &StorageBuffer| View::whole(b);
    let launch = softmax_ce_mixed(
        &w(&out),
        &w(&pred),
        Some(&w(&dz)),
        &w(&zb),
        &w(&tb),
        rows,
        classes,
        scale,
        Some(mixed),
    );
    let plan = Plan::new(gpu, "t", &[launch]).unwrap();
    plan.advance(gpu, step, 0);
    plan.run(gpu).unwrap();
    (dz.read_all_f32(gpu).unwrap(), out.read_all_f32(gpu).unwrap(), pred.read_all_f32(gpu).unwrap())
}

#[test]
fn unlabelled_rows_match_the_cpu_reference_before_inside_and_after_the_ramp() {
    let gpu = gpu();
    let mut cases = 0;
    let (mut skipped_by_threshold, mut teachers) = (0, 0);
    for &rows in &[1usize, 2, 65, 257] {
        for &classes in &[2usize, 10, 37] {
            for &labelled_rows in &[0, 1, rows / 2, rows] {
                let seed = (rows * 1009 + classes * 31 + labelled_rows) as u64;
                let z = logits(rows, classes, seed);
                // An unlabelled row's label would index far outside its row if it were read.
                let t: Vec<f32> = (0..rows)
                    .map(|r| if r < labelled_rows { ((r * 7 + 3) % classes) as f32 } else { 1.0e9 })
                    .collect();
                let scale = 1.0 / labelled_rows.max(1) as f32;
                // Every other case with a confidence threshold that some rows miss, moved off any
                // row's top probability (where f32 and f64 could disagree).
                let threshold = if (rows + classes + labelled_rows) % 2 == 0 { 0.0f32 } else { 0.7 };
                let pseudo = PseudoLabels { weight: 3.0, ramp_start: 4, ramp_end: 12, threshold };
                // A clean teacher's logits in every third case (the rows teach themselves otherwise).
                let teacher = seed.is_multiple_of(3).then(|| logits(rows, classes, seed + 7));
                // The top probability of every row's teacher, so the test knows which rows miss the
                // threshold.
                let top_of = teacher.as_deref().unwrap_or(&z);
                let top: Vec<f64> = (0..rows)
                    .map(|r| {
                        let row = &top_of[r * classes..(r + 1) * classes];
                        let m = row.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
                        1.0 / row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>()
                    })
                    .collect();
                let mut threshold = threshold;
                while threshold > 0.0 && top.iter().any(|p| (p - threshold as f64).abs() < 1e-4) {
                    threshold += 1e-3;
                }
                let pseudo = PseudoLabels { threshold, ..pseudo };
                teachers += teacher.is_some() as usize;
                for step in [1u64, 8, 40] {
                    let inputs = (z.as_slice(), teacher.as_deref());
                    let (dz, out, pred) =
                        run_mixed(&gpu, inputs, &t, classes, (labelled_rows, pseudo), scale, step);
                    let unlabelled = (rows - labelled_rows).max(1) as f32;
                    let pseudo_scale = pseudo.alpha(step) / unlabelled;
                    let (mut want_dz, mut want_out, mut want_pred) =
                        (vec![0.0; rows * classes], vec![0.0; 2 * rows], vec![0.0; rows]);
                    cpu::softmax::softmax_ce_mixed(
                        Some(&mut want_dz),
                        &mut want_out,
                        &mut want_pred,
                        inputs,
                        &t,
                        classes,
                        scale,
                        (labelled_rows, pseudo_scale, threshold),
                    );
                    let what = format!("rows {rows} classes {classes} labelled {labelled_rows} step {step}");
                    assert_close(&format!("{what} dz"), &dz, &want_dz, 1e-6, 1e-4);
                    assert_close(&format!("{what} rows"), &out, &want_out, 2e-6 * classes as f32, 1e-5);
                    assert_eq!(pred, want_pred, "{what}: predictions");
                    for r in labelled_rows..rows {
                        assert_eq!(
                            (out[2 * r], out[2 * r + 1]),
                            (0.0, 0.0),
                            "{what}: row {r} adds to the totals"
                        );
                        let g = &dz[r * classes..(r + 1) * classes];
                        let silent = step <= 4 || top[r] < threshold as f64;
                        assert_eq!(g.iter().all(|&v| v == 0.0), silent, "{what}: row {r} gradient {g:?}");
                        skipped_by_threshold += (step > 4 && top[r] < threshold as f64) as usize;
                    }
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 4 * 3 * 4 * 3);
    assert!(skipped_by_threshold > 50, "the threshold silenced {skipped_by_threshold} rows");
    assert!(teachers > 8, "{teachers} cases with a teacher");
}

#[test]
fn the_mixed_gradient_matches_finite_differences_with_the_pseudo_targets_held() {
    let gpu = gpu();
    let (rows, labelled_rows, classes) = (9, 4, 6);
    let z = logits(rows, classes, 77);
    let t: Vec<f32> = (0..rows).map(|r| ((r * 5 + 1) % classes) as f32).collect();
    let pseudo = PseudoLabels { weight: 2.0, ramp_start: 0, ramp_end: 0, threshold: 0.0 };
    let scale = 1.0 / labelled_rows as f32;
    let (grad, _, pred) = run_mixed(&gpu, (&z, None), &t, classes, (labelled_rows, pseudo), scale, 3);
    // The objective: mean CE of the labelled rows + α/U · Σ CE of the others at their (fixed) argmax.
    let mut targets = t.clone();
    targets[labelled_rows..].copy_from_slice(&pred[labelled_rows..]);
    let alpha_u = 2.0 / (rows - labelled_rows) as f64;
    let objective = |z: &[f32]| {
        let (mut o, mut p) = (vec![0.0; 2 * rows], vec![0.0; rows]);
        cpu::softmax::softmax_ce(None, &mut o, &mut p, z, &targets, classes, 1.0);
        (0..rows)
            .map(|r| o[2 * r] as f64 * if r < labelled_rows { scale as f64 } else { alpha_u })
            .sum::<f64>()
    };
    let fd = central_differences(&z, 1e-2, objective);
    assert_close("mixed dz vs finite differences", &grad, &fd, 2e-4, 2e-3);
    assert!(grad[labelled_rows * classes..].iter().any(|&g| g.abs() > 1e-3), "the pseudo rows learn");
}

#[test]
fn a_pool_uploads_only_the_drawn_labels_and_labelled_only_pool_training_is_bit_identical() {
    let gpu = gpu();
    let train = synthetic(300, 8, 8, 5, 3);
    let chosen = balanced_subset(&train.labels, 5, 4, 0).unwrap();
    let positions: Vec<u32> = chosen.iter().map(|&i| i as u32).collect();
    let pool = LabelledData::upload_pool(&gpu, &train, &positions, None).unwrap();
    for i in 0..train.n {
        let want = if chosen.contains(&i) { train.labels[i] } else { 0 };
        assert_eq!(pool.labels.labels[i], want, "example {i}: only drawn labels reach the GPU");
    }
    assert!(LabelledData::upload_pool(&gpu, &train, &[300], None).is_err(), "a position past the pool");
    let subset = LabelledData::upload(&gpu, &train.select(&chosen), None).unwrap();
    let ae = small_ae(&gpu);
    let options =
        ClassifierOptions { classes: 5, freeze: false, dropout: Some(0.2), noise: None, depth: None };
    let opt = Optimizer::parse("adam", 1e-2, 0.0).unwrap();
    // 20 labelled examples in batches of 8: passes of 2 steps, the last 4 dropped each time.
    let config = FitConfig { steps: 7, batch: 8, optimizer: opt, seed: 5, pseudo: None };
    let weights = |pooled: bool| {
        let model = Classifier::from_encoder(&gpu, &ae, options, Start::Pretrained, 2).unwrap();
        let losses = {
            let mut trainer = if pooled {
                ClassifierTrainer::with_pool(&gpu, &model, &pool, positions.clone(), config).unwrap()
            } else {
                ClassifierTrainer::new(&gpu, &model, &subset, config).unwrap()
            };
            (0..7).map(|_| trainer.run(1).unwrap().loss).collect::<Vec<_>>()
        };
        (losses, model.params.buffer.read_all_f32(&gpu).unwrap())
    };
    let (a, b) = (weights(false), weights(true));
    assert_eq!(a.0, b.0, "losses step by step");
    assert!(a.1 == b.1, "weights after 7 steps");
    // Pseudo-labels need a pool; an unlabelled batch larger than the pool is an error.
    let pseudo = PseudoConfig {
        unlabelled_batch: 16,
        labels: PseudoLabels { weight: 1.0, ramp_start: 0, ramp_end: 2, threshold: 0.0 },
        teacher: Teacher::Noisy,
    };
    let model = Classifier::from_encoder(&gpu, &ae, options, Start::Pretrained, 2).unwrap();
    let with = FitConfig { pseudo: Some(pseudo), ..config };
    assert!(ClassifierTrainer::new(&gpu, &model, &subset, with).is_err());
    let huge = PseudoConfig { unlabelled_batch: 301, ..pseudo };
    let with = FitConfig { pseudo: Some(huge), ..config };
    assert!(ClassifierTrainer::with_pool(&gpu, &model, &pool, positions.clone(), with).is_err());
}

#[test]
fn pseudo_labels_use_the_unlabelled_examples() {
    // Two labels per class of five well-separated synthetic classes: the pool's unlabelled examples
    // move the classifier, and the training scores stay those of the labelled rows.
    let gpu = gpu();
    let all = synthetic(900, 8, 8, 5, 11);
    let (train, test) = (all.subset(0..700), all.subset(700..900));
    let chosen = balanced_subset(&train.labels, 5, 2, 1).unwrap();
    let positions: Vec<u32> = chosen.iter().map(|&i| i as u32).collect();
    let pool = LabelledData::upload_pool(&gpu, &train, &positions, None).unwrap();
    let test_data = LabelledData::upload(&gpu, &test, None).unwrap();
    let ae = small_ae(&gpu);
    let options = ClassifierOptions { classes: 5, freeze: false, dropout: None, noise: None, depth: None };
    let opt = Optimizer::parse("adam", 3e-3, 0.0).unwrap();
    let fit = |pseudo: Option<PseudoConfig>| {
        let model = Classifier::from_encoder(&gpu, &ae, options, Start::Scratch(Init::Glorot), 3).unwrap();
        let config = FitConfig { steps: 80, batch: 10, optimizer: opt, seed: 1, pseudo };
        let mut trainer =
            ClassifierTrainer::with_pool(&gpu, &model, &pool, positions.clone(), config).unwrap();
        let train = trainer.run(80).unwrap();
        let evaluation = ClassifierEvaluator::new(&gpu, &model, &test_data, 64).unwrap().run().unwrap();
        (train, evaluation.scores, model.params.buffer.read_all_f32(&gpu).unwrap())
    };
    let pseudo = PseudoConfig {
        unlabelled_batch: 64,
        labels: PseudoLabels { weight: 1.0, ramp_start: 20, ramp_end: 40, threshold: 0.5 },
        teacher: Teacher::Noisy,
    };
    let (plain_train, plain, plain_w) = fit(None);
    let (pl_train, pl, pl_w) = fit(Some(pseudo));
    // With no training noise a clean teacher computes the same logits as the training pass.
    let (_, clean, clean_w) = fit(Some(PseudoConfig { teacher: Teacher::Clean, ..pseudo }));
    assert!(plain_w != pl_w, "the unlabelled rows changed the training");
    assert!(clean_w == pl_w, "without noise or dropout, the clean teacher is the training pass");
    for (name, s) in [("plain", plain_train), ("pseudo", pl_train)] {
        assert!(s.loss.is_finite() && (0.0..=1.0).contains(&s.error), "{name}: training scores {s:?}");
    }
    assert!(pl.error < 0.3, "with pseudo-labels the classifier still learns: test error {}", pl.error);
    eprintln!(
        "test error: labels only {:.3}, with pseudo-labels {:.3} (clean teacher {:.3})",
        plain.error, pl.error, clean.error
    );
}

#[test]
fn classify_command_with_pseudo_labels_on_an_mnist_subset() {
    let Some(data) = data_dir() else { return };
    let tmp = TempDir::new("pseudo");
    let home = tmp.path();
    let ae = home.join("ae");
    let data = data.to_str().unwrap();
    let base = ["--data", data, "--test-limit", "200"];
    let mut train =
        vec!["train", "--layers", "32", "--epochs", "1", "--batch", "64", "--train-limit", "600", "--quiet"];
    train.extend(base);
    train.extend(["--out", s(&ae)]);
    ok(aegpu(home, &train), "pre-training");
    let ckpt = ae.join("model.safetensors");
    let out = home.join("pl");
    let mut args = vec!["classify", "--checkpoint", s(&ckpt), "--train-limit", "1000", "--steps", "12"];
    args.extend(base);
    let mut good = args.clone();
    good.extend([
        "--labels-per-class",
        "3",
        "--pseudo-labels",
        "2:4:8",
        "--unlabelled-batch",
        "48",
        "--pseudo-threshold",
        "0.5",
        "--out",
        s(&out),
    ]);
    let log = ok(aegpu(home, &good), "classify with pseudo-labels");
    assert!(log.contains("pseudo-labels: 48 unlabelled examples per step from 1000"), "{log}");
    assert!(log.contains("confidence threshold 0.5"), "{log}");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    assert_eq!(result["pseudo_labels"]["unlabelled_batch"], 48);
    assert_eq!(result["pseudo_labels"]["labels"]["ramp_end"], 8);
    assert_eq!(result["runs"][0]["labels"], 30);
    let bad_out = home.join("bad");
    let bad = |extra: &[&str], needles: &[&str]| {
        let mut a = args.clone();
        a.extend(extra);
        a.extend(["--out", s(&bad_out)]);
        fails(aegpu(home, &a), &format!("{extra:?}"), needles);
    };
    bad(&["--unlabelled-batch", "10"], &["--unlabelled-batch applies only with --pseudo-labels"]);
    bad(&["--pseudo-threshold", "0.9"], &["--pseudo-threshold applies only with --pseudo-labels"]);
    bad(&["--pseudo-labels", "1:1:2", "--pseudo-threshold", "1.5"], &["must lie in [0, 1]"]);
    bad(&["--pseudo-labels", "3:10"], &["expected WEIGHT:START:END"]);
    bad(&["--pseudo-labels", "3:10:5"], &["END must not come before START"]);
    bad(&["--pseudo-labels", "x:1:2"], &["WEIGHT is not a number"]);
    bad(&["--pseudo-labels", "1:1:2", "--unlabelled-batch", "5000"], &["between 1 and the 1000"]);
}
