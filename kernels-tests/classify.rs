//! Classifiers from autoencoders (issue 15): the fused softmax + cross-entropy kernel against its CPU
//! reference on awkward shapes (huge logits, ties, one class), its gradient against finite
//! differences, the classifier network's backward against finite differences of its own forward
//! (dense and conv encoders, with dropout held fixed), the VAE's μ rows and the frozen encoder, the
//! class-balanced label draw and the confusion matrix, learning on synthetic data, and the
//! `aegpu classify` command end to end on a small MNIST subset.

mod common;

use aegpu::classify::labels::{balanced_subset, class_count, confusion, mean_sd};
use aegpu::classify::train::{ClassifierEvaluator, ClassifierTrainer, FitConfig, LabelledData};
use aegpu::classify::{Classifier, ClassifierOptions, HEAD, Start};
use aegpu::data::synthetic::synthetic;
use aegpu::expert::cpu;
use aegpu::expert::runner::{Plan, View};
use aegpu::gpu::{Gpu, StorageBuffer};
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::kernels::softmax_ce::{softmax_ce, softmax_ce_totals};
use aegpu::models::conv::{ConvConfig, Layer};
use aegpu::models::dense::{DenseConfig, Variational};
use aegpu::models::{Autoencoder, Init, Pass};
use common::cli::{TempDir, aegpu, fails, ok, s};
use common::guard::*;
use common::*;
use rand::RngExt;

/// Logits of one of four kinds: moderate, wide, huge with a common offset (a naive exp overflows),
/// and small integers (ties for the argmax).
fn logits(rows: usize, classes: usize, kind: usize, seed: u64) -> Vec<f32> {
    let v = random_vec(rows * classes, seed);
    match kind {
        0 => v.iter().map(|x| 3.0 * x).collect(),
        1 => v.iter().map(|x| 40.0 * x).collect(),
        2 => v.iter().map(|x| 1.0e4 + 5.0 * x).collect(),
        _ => v.iter().map(|x| (1.5 * x).round()).collect(),
    }
}

fn labels(rows: usize, classes: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    (0..rows).map(|_| r.random_range(0..classes) as f32).collect()
}

#[test]
fn softmax_ce_matches_cpu_reference_on_awkward_shapes() {
    let gpu = gpu();
    let mut cases = 0;
    for &rows in &[1usize, 63, 64, 65, 257] {
        for &classes in &[1usize, 2, 10, 37] {
            for kind in 0..4 {
                let seed = (rows * 131 + classes * 7 + kind) as u64;
                let z = logits(rows, classes, kind, seed);
                let t = labels(rows, classes, seed + 1);
                let scale = 1.0 / rows as f32;
                let (zb, tb) = (upload_with_tail(&gpu, "z", &z), upload_with_tail(&gpu, "t", &t));
                let dz = upload_with_tail(&gpu, "dz", &vec![0.0; rows * classes]);
                let out = upload_with_tail(&gpu, "rows", &vec![0.0; 2 * rows]);
                let pred = upload_with_tail(&gpu, "pred", &vec![0.0; rows]);
                let v = |b: &StorageBuffer, n: usize| View { buffer: b.buffer.clone(), offset: 0, len: n };
                let launch = softmax_ce(
                    &v(&out, 2 * rows),
                    &v(&pred, rows),
                    Some(&v(&dz, rows * classes)),
                    &v(&zb, rows * classes),
                    &v(&tb, rows),
                    rows,
                    classes,
                    scale,
                );
                Plan::new(&gpu, "t", &[launch]).unwrap().run(&gpu).unwrap();
                let what = format!("rows {rows} classes {classes} kind {kind}");
                let got_dz = read_checked(&gpu, &format!("{what} dz"), &dz, rows * classes);
                let got_out = read_checked(&gpu, &format!("{what} rows"), &out, 2 * rows);
                let got_pred = read_checked(&gpu, &format!("{what} pred"), &pred, rows);
                let (mut want_dz, mut want_out, mut want_pred) =
                    (vec![0.0; rows * classes], vec![0.0; 2 * rows], vec![0.0; rows]);
                cpu::softmax::softmax_ce(
                    Some(&mut want_dz),
                    &mut want_out,
                    &mut want_pred,
                    &z,
                    &t,
                    classes,
                    scale,
                );
                // exp and log on the GPU may be a few ulps off the f64 reference (Vulkan allows it);
                // the loss is a sum of `classes` terms, so its allowance grows with them.
                let loss = |o: &[f32]| o.iter().step_by(2).copied().collect::<Vec<_>>();
                assert_close(
                    &format!("{what} loss"),
                    &loss(&got_out),
                    &loss(&want_out),
                    2e-6 * classes as f32,
                    1e-5,
                );
                assert!(got_out.iter().all(|v| v.is_finite()), "{what}: non-finite loss");
                assert_close(&format!("{what} dz"), &got_dz, &want_dz, 1e-6 * scale, 1e-4);
                // The argmax compares the same f32 values on both sides: exact, ties included.
                assert_eq!(got_pred, want_pred, "{what}: predictions");
                let correct = |o: &[f32]| o.iter().skip(1).step_by(2).copied().collect::<Vec<_>>();
                assert_eq!(correct(&got_out), correct(&want_out), "{what}: correct flags");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 80);
}

#[test]
fn softmax_ce_without_gradient_writes_no_gradient_and_totals_accumulate() {
    let gpu = gpu();
    let (rows, classes) = (300, 10);
    let z = logits(rows, classes, 0, 5);
    let t = labels(rows, classes, 6);
    let zb = StorageBuffer::from_slice(&gpu, "z", &z).unwrap();
    let tb = StorageBuffer::from_slice(&gpu, "t", &t).unwrap();
    let out = StorageBuffer::zeroed(&gpu, "rows", 2 * rows).unwrap();
    let pred = StorageBuffer::zeroed(&gpu, "pred", rows).unwrap();
    let totals = StorageBuffer::from_slice(&gpu, "totals", &[1.5f32, 2.0]).unwrap();
    let w = |b: &StorageBuffer| View::whole(b);
    let launches = softmax_ce_totals(
        &w(&totals),
        &w(&out),
        &w(&pred),
        None,
        &w(&zb),
        &w(&tb),
        rows,
        classes,
        1.0,
        true,
        None,
    );
    Plan::new(&gpu, "t", &launches).unwrap().run(&gpu).unwrap();
    assert_eq!(zb.read_all_f32(&gpu).unwrap(), z, "the logits stand in for the unused gradient: untouched");
    let (mut o, mut p) = (vec![0.0; 2 * rows], vec![0.0; rows]);
    cpu::softmax::softmax_ce(None, &mut o, &mut p, &z, &t, classes, 1.0);
    let mut want = [1.5f32, 2.0];
    cpu::reduce::colsum(&mut want, &o, rows, 2, true);
    let got = totals.read_all_f32(&gpu).unwrap();
    assert_close("accumulated totals", &got, &want, 1e-3, 1e-5);
    assert_eq!(got[1], want[1], "the count of correct rows is exact");
}

#[test]
fn softmax_ce_gradient_matches_finite_differences() {
    let gpu = gpu();
    let (rows, classes) = (5, 7);
    let z = logits(rows, classes, 0, 9);
    let t = labels(rows, classes, 10);
    let scale = 1.0 / rows as f32;
    let (zb, tb) = (
        StorageBuffer::from_slice(&gpu, "z", &z).unwrap(),
        StorageBuffer::from_slice(&gpu, "t", &t).unwrap(),
    );
    let dz = StorageBuffer::zeroed(&gpu, "dz", rows * classes).unwrap();
    let out = StorageBuffer::zeroed(&gpu, "rows", 2 * rows).unwrap();
    let pred = StorageBuffer::zeroed(&gpu, "pred", rows).unwrap();
    let w = |b: &StorageBuffer| View::whole(b);
    let plan = Plan::new(
        &gpu,
        "t",
        &[softmax_ce(&w(&out), &w(&pred), Some(&w(&dz)), &w(&zb), &w(&tb), rows, classes, scale)],
    )
    .unwrap();
    plan.run(&gpu).unwrap();
    let grad = dz.read_all_f32(&gpu).unwrap();
    // The mean loss from the reference in f64 (the kernel is checked against it above).
    let mean_loss = |z: &[f32]| {
        let (mut o, mut p) = (vec![0.0; 2 * rows], vec![0.0; rows]);
        cpu::softmax::softmax_ce(None, &mut o, &mut p, z, &t, classes, 1.0);
        o.iter().step_by(2).map(|&v| v as f64).sum::<f64>() / rows as f64
    };
    let fd = central_differences(&z, 1e-2, mean_loss);
    assert_close("dz vs finite differences", &grad, &fd, 2e-4, 2e-3);
}

/// A tiny dense autoencoder 12-8-4 (tanh: no kinks), optionally a VAE.
fn dense_ae(gpu: &Gpu, vae: bool, seed: u64) -> Autoencoder {
    let c = DenseConfig::symmetric(
        12,
        &[8, 4],
        Activation::Tanh,
        // A VAE's code layer is linear; a plain one gets tanh (no kinks either way).
        if vae { Activation::Identity } else { Activation::Tanh },
        Activation::Sigmoid,
        LossKind::Bce,
    )
    .unwrap()
    .with_variational(vae.then_some(Variational { beta: 1.0 }))
    .unwrap();
    Autoencoder::new(gpu, c, seed, Init::Glorot).unwrap()
}

/// A tiny conv autoencoder on 1x6x6: a stride-2 tanh conv, a linear code, and back.
fn conv_ae(gpu: &Gpu, seed: u64) -> Autoencoder {
    let c = ConvConfig {
        input: [1, 6, 6],
        layers: vec![
            Layer::conv(3, 3, 2, 1, Activation::Tanh),
            Layer::Linear { out: 4, act: Activation::Tanh },
            Layer::Linear { out: 27, act: Activation::Tanh },
            Layer::Unflatten { c: 3, h: 3, w: 3 },
            Layer::conv_t(1, 2, 1, Activation::Sigmoid),
        ],
        code_layer: 1,
        loss: LossKind::Bce,
        variational: None,
        noise: None,
        sparse: None,
        dropout: None,
    };
    Autoencoder::new(gpu, c, seed, Init::Glorot).unwrap()
}

/// The classifier's forward + loss + backward on a fixed batch, against central differences of the
/// mean cross-entropy for every parameter. The plan is never advanced, so dropout masks stay fixed.
fn finite_difference_check(name: &str, gpu: &Gpu, model: &Classifier, batch: usize, seed: u64) {
    let variant = gpu.matmul_policy().unwrap();
    let acts = model.activations(gpu, batch).unwrap();
    let x: Vec<f32> = random_vec(batch * model.input_dim(), seed).iter().map(|v| 0.5 + 0.45 * v).collect();
    acts.input().write(gpu, &x).unwrap();
    acts.labels().write(gpu, &labels(batch, model.classes(), seed + 1)).unwrap();
    let mut launches = model.forward(&acts, variant, Pass::TRAIN);
    launches.extend(model.loss(&acts, true, false, None));
    launches.extend(model.backward(&acts, variant));
    let plan = Plan::new(gpu, "fd", &launches).unwrap();
    let loss = || {
        plan.run(gpu).unwrap();
        acts.totals().read(gpu).unwrap()[0] as f64 / batch as f64
    };
    let base = loss();
    let grad = model.grads.buffer.read_all_f32(gpu).unwrap();
    let params = model.params.buffer.read_all_f32(gpu).unwrap();
    let eps = 3e-3f32;
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for (tensor, offset, len) in &model.params.layout.entries {
        let trained = !model.options.freeze || tensor.starts_with(HEAD);
        for i in *offset..offset + len {
            let mut p = params.clone();
            p[i] += eps;
            model.params.buffer.write(gpu, 0, &p);
            let up = loss();
            p[i] -= 2.0 * eps;
            model.params.buffer.write(gpu, 0, &p);
            let down = loss();
            let fd = ((up - down) / (2.0 * eps as f64)) as f32;
            if trained {
                got.push(grad[i]);
                want.push(fd);
            } else {
                assert_eq!(grad[i], 0.0, "{name}: frozen {tensor} got a gradient");
            }
        }
        if trained {
            assert!(
                grad[*offset..offset + len].iter().any(|&g| g != 0.0),
                "{name}: {tensor}'s gradient is all zero"
            );
        }
    }
    model.params.buffer.write(gpu, 0, &params);
    let scale = got.iter().fold(0.0f32, |m, g| m.max(g.abs()));
    // f32 loss rounding (~1e-7 · loss) over 2·eps, plus the O(eps²) term.
    let atol = 1e-3 * scale + 8.0 * f32::EPSILON * base as f32 / (2.0 * eps);
    assert_close(&format!("{name}: backward vs finite differences"), &got, &want, atol, 2e-2);
    eprintln!("{name}: {} entries checked, loss {base:.4}, max |g| {scale:e}", got.len());
}

#[test]
fn classifier_backward_matches_finite_differences() {
    let gpu = gpu();
    let opts = |dropout, freeze| ClassifierOptions { classes: 3, freeze, dropout, noise: None, depth: None };
    let ae = dense_ae(&gpu, false, 1);
    let m = Classifier::from_encoder(&gpu, &ae, opts(None, false), Start::Pretrained, 2).unwrap();
    finite_difference_check("dense", &gpu, &m, 5, 3);
    let m = Classifier::from_encoder(&gpu, &ae, opts(Some(0.3), false), Start::Pretrained, 2).unwrap();
    finite_difference_check("dense + dropout (masks fixed)", &gpu, &m, 5, 4);
    let m = Classifier::from_encoder(&gpu, &ae, opts(None, true), Start::Pretrained, 2).unwrap();
    finite_difference_check("dense, frozen encoder", &gpu, &m, 5, 5);
    let vae = dense_ae(&gpu, true, 6);
    let m = Classifier::from_encoder(&gpu, &vae, opts(None, false), Start::Pretrained, 2).unwrap();
    finite_difference_check("vae μ", &gpu, &m, 4, 7);
    let conv = conv_ae(&gpu, 8);
    let m = Classifier::from_encoder(&gpu, &conv, opts(Some(0.2), false), Start::Pretrained, 2).unwrap();
    finite_difference_check("conv + dropout", &gpu, &m, 3, 9);
    let first = ClassifierOptions { depth: Some(1), ..opts(None, false) };
    let m = Classifier::from_encoder(&gpu, &conv, first, Start::Pretrained, 2).unwrap();
    assert_eq!(m.net.nodes.last().unwrap().input, [3, 3, 3], "the head reads the first conv's maps");
    finite_difference_check("conv, first layer only", &gpu, &m, 3, 10);
}

#[test]
fn the_encoder_is_copied_a_vae_gives_its_mu_rows_and_scratch_is_random() {
    let gpu = gpu();
    let opts = ClassifierOptions { classes: 5, freeze: false, dropout: None, noise: None, depth: None };
    let vae = dense_ae(&gpu, true, 11);
    let trained = vae.export(&gpu).unwrap();
    let m = Classifier::from_encoder(&gpu, &vae, opts, Start::Pretrained, 3).unwrap();
    let got = m.export(&gpu).unwrap();
    let names: Vec<&str> = got.iter().map(|t| t.0.as_str()).collect();
    let encoder: Vec<&str> = trained.iter().take(4).map(|t| t.0.as_str()).collect();
    assert_eq!(names[..4], encoder[..], "the encoder's tensors keep their checkpoint names");
    assert_eq!(names[4..], ["classifier.weight", "classifier.bias"]);
    let shapes: Vec<&[usize]> = got.iter().map(|t| t.1.as_slice()).collect();
    assert_eq!(shapes, [&[8usize, 12][..], &[8], &[4, 8], &[4], &[5, 4], &[5]]);
    for (name, _, values) in &got[..4] {
        let (_, shape, all) = trained.iter().find(|t| &t.0 == name).unwrap();
        // The VAE's code layer is [8 -> 2·4]: its first 4 rows (μ) and biases are the classifier's.
        assert_eq!(&all[..values.len()], values.as_slice(), "{name} (trained shape {shape:?})");
    }
    let shallow = Classifier::from_encoder(
        &gpu,
        &vae,
        ClassifierOptions { depth: Some(1), ..opts },
        Start::Pretrained,
        3,
    )
    .unwrap()
    .export(&gpu)
    .unwrap();
    let shapes: Vec<&[usize]> = shallow.iter().map(|t| t.1.as_slice()).collect();
    assert_eq!(
        shapes,
        [&[8usize, 12][..], &[8], &[5, 8], &[5]],
        "depth 1: the head reads the 8 hidden units"
    );
    for depth in [0, 3] {
        let o = ClassifierOptions { depth: Some(depth), ..opts };
        assert!(Classifier::from_encoder(&gpu, &vae, o, Start::Pretrained, 3).is_err(), "depth {depth}");
    }
    let s1 = Classifier::from_encoder(&gpu, &vae, opts, Start::Scratch(Init::Glorot), 3).unwrap();
    let s2 = Classifier::from_encoder(&gpu, &vae, opts, Start::Scratch(Init::Glorot), 4).unwrap();
    let (a, b) = (s1.export(&gpu).unwrap(), s2.export(&gpu).unwrap());
    assert_ne!(a[0].2, got[0].2, "from scratch is not the trained encoder");
    assert_ne!(a[0].2, b[0].2, "another seed, other random weights");
    assert_eq!(a[4].2, got[4].2, "the softmax layer starts the same with either encoder");
}

#[test]
fn balanced_draws_confusion_and_spread() {
    let labels: Vec<u8> = (0..200).map(|i| ((i * 7) % 10) as u8).collect();
    let a = balanced_subset(&labels, 10, 3, 1).unwrap();
    assert_eq!(a.len(), 30);
    for c in 0..10 {
        assert_eq!(a.iter().filter(|&&i| labels[i] == c).count(), 3, "class {c}");
    }
    assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
    assert_eq!(a, balanced_subset(&labels, 10, 3, 1).unwrap(), "the same seed draws the same");
    assert_ne!(a, balanced_subset(&labels, 10, 3, 2).unwrap(), "another seed draws others");
    let err = balanced_subset(&labels, 10, 21, 1).unwrap_err().to_string();
    assert!(err.contains("class 0 has 20 training examples"), "{err}");
    assert!(balanced_subset(&labels, 10, 0, 1).is_err());
    let counts = confusion(&[0, 1, 1, 2], &[0, 2, 1, 2], 3).unwrap();
    assert_eq!(counts, [1, 0, 0, 0, 1, 1, 0, 0, 1]);
    assert!(confusion(&[0, 3], &[0, 1], 3).is_err(), "a label past the classes is an error");
    assert!(confusion(&[0], &[0, 1], 3).is_err());
    let (m, sd) = mean_sd(&[0.1, 0.2, 0.3]);
    assert!((m - 0.2).abs() < 1e-12 && (sd - 0.1).abs() < 1e-12, "{m} {sd}");
    assert_eq!(mean_sd(&[0.25]), (0.25, 0.0));
}

#[test]
fn a_classifier_learns_synthetic_classes_and_freezing_keeps_the_encoder() {
    let gpu = gpu();
    let all = synthetic(700, 8, 8, 5, 3);
    let (train, test) = (all.subset(0..500), all.subset(500..700));
    assert_eq!(class_count(&train, &test), 5);
    let ae = small_ae(&gpu);
    let labelled = train.select(&balanced_subset(&train.labels, 5, 8, 0).unwrap());
    let data = LabelledData::upload(&gpu, &labelled, None).unwrap();
    let test_data = LabelledData::upload(&gpu, &test, None).unwrap();
    let opt = Optimizer::parse("adam", 1e-2, 0.0).unwrap();
    for freeze in [false, true] {
        let options = ClassifierOptions { classes: 5, freeze, dropout: None, noise: None, depth: None };
        let model = Classifier::from_encoder(&gpu, &ae, options, Start::Scratch(Init::Glorot), 1).unwrap();
        let before = model.export(&gpu).unwrap();
        let config = FitConfig { steps: 60, batch: 20, optimizer: opt, seed: 0, pseudo: None };
        let mut trainer = ClassifierTrainer::new(&gpu, &model, &data, config).unwrap();
        let evaluator = ClassifierEvaluator::new(&gpu, &model, &test_data, 64).unwrap();
        let start = evaluator.run().unwrap();
        let first = trainer.run(10).unwrap();
        let rest = trainer.run(1000).unwrap();
        assert_eq!(trainer.steps_done(), 60, "never past the configured steps");
        let end = evaluator.run().unwrap();
        assert!(rest.loss < first.loss, "freeze {freeze}: training loss {} -> {}", first.loss, rest.loss);
        assert!(
            end.scores.error < 0.3 && end.scores.error < start.scores.error,
            "freeze {freeze}: test error {} -> {}",
            start.scores.error,
            end.scores.error
        );
        // The evaluator's predictions agree with its error and with the confusion matrix.
        let counts = confusion(&test.labels, &end.predictions, 5).unwrap();
        let right: u64 = (0..5).map(|c| counts[c * 5 + c]).sum();
        assert!((1.0 - right as f64 / test.n as f64 - end.scores.error).abs() < 1e-9);
        let after = model.export(&gpu).unwrap();
        for ((name, _, b), (_, _, a)) in before.iter().zip(&after) {
            let head = name.starts_with(HEAD);
            assert_eq!(b == a, freeze && !head, "freeze {freeze}: {name} changed: {}", b != a);
        }
    }
    // A batch larger than the labelled set, and zero steps, are errors.
    let options = ClassifierOptions { classes: 5, freeze: false, dropout: None, noise: None, depth: None };
    let model = Classifier::from_encoder(&gpu, &ae, options, Start::Pretrained, 1).unwrap();
    let too_big = FitConfig { steps: 1, batch: 41, optimizer: opt, seed: 0, pseudo: None };
    assert!(ClassifierTrainer::new(&gpu, &model, &data, too_big).is_err());
    assert!(
        ClassifierTrainer::new(
            &gpu,
            &model,
            &data,
            FitConfig { steps: 0, batch: 4, optimizer: opt, seed: 0, pseudo: None }
        )
        .is_err()
    );
    let two = ClassifierOptions { classes: 1, ..options };
    assert!(Classifier::from_encoder(&gpu, &ae, two, Start::Pretrained, 1).is_err(), "one class is an error");
}

#[test]
fn classify_command_end_to_end_on_an_mnist_subset() {
    let Some(data) = data_dir() else { return };
    let tmp = TempDir::new("classify");
    let home = tmp.path();
    let ae = home.join("ae");
    let data = data.to_str().unwrap();
    let base = ["--data", data, "--test-limit", "300"];
    let mut train = vec![
        "train",
        "--layers",
        "32",
        "--epochs",
        "1",
        "--batch",
        "64",
        "--train-limit",
        "1000",
        "--quiet",
        "--out",
        s(&ae),
    ];
    train.extend(base);
    ok(aegpu(home, &train), "pre-training");
    let ckpt = ae.join("model.safetensors");
    let run = |extra: &[&str], out: &str| {
        let out = home.join(out);
        let mut args = vec![
            "classify",
            "--checkpoint",
            s(&ckpt),
            "--train-limit",
            "2000",
            "--steps",
            "40",
            "--eval-every",
            "20",
        ];
        args.extend(base);
        args.extend(extra);
        args.extend(["--out", s(&out)]);
        (ok(aegpu(home, &args), &format!("classify {extra:?}")), out)
    };
    let (log, out) = run(&["--labels-per-class", "5", "--seed", "0,1", "--validate", "500"], "fine");
    assert!(log.contains("over 2 draw(s) of 5 labels per class"), "{log}");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    let mean = result["test_error_mean"].as_f64().unwrap();
    assert!(
        mean < 0.7,
        "5 labels per class on a pre-trained encoder should beat chance (0.9) clearly: {mean}"
    );
    assert_eq!(result["runs"].as_array().unwrap().len(), 2);
    let val = result["val_error_mean"].as_f64().unwrap();
    assert!(val > 0.0 && val < 0.8 && log.contains("validation error"), "validation error {val}");
    assert_eq!(result["runs"][0]["labels"], 50);
    let counts: u64 =
        result["runs"][0]["confusion"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum();
    assert_eq!(counts, 300, "the confusion matrix counts every test image");
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 4, "two lines per draw (steps 20 and 40):\n{lines}");
    for f in ["confusion.png", "confusion-seed0.png", "confusion-seed1.png", "classifier-seed0.safetensors"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    // The classifier runs and records the encoder's matmul policy (its checkpoint's), whatever this
    // process would choose.
    let meta = |path: &std::path::Path| {
        let bytes = std::fs::read(path).unwrap();
        let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        m.metadata().clone().unwrap()
    };
    assert_eq!(meta(&ckpt).get("aegpu.matmul").map(String::as_str), Some("reg"));
    let pinned = home.join("pinned");
    let mut args = vec!["classify", "--checkpoint", s(&ckpt), "--train-limit", "500", "--steps", "4"];
    args.extend(base);
    args.extend(["--labels-per-class", "5", "--out", s(&pinned)]);
    let out = common::cli::command(home, &args).env("AEGPU_MATMUL", "tiled").output().unwrap();
    ok(out, "classify under AEGPU_MATMUL=tiled");
    let recorded = meta(&pinned.join("classifier.safetensors"));
    assert_eq!(recorded.get("aegpu.matmul").map(String::as_str), Some("reg"), "{recorded:?}");
    let (log, _) = run(&["--labels-per-class", "5", "--freeze", "--steps-per-submit", "3"], "probe");
    assert!(log.contains("frozen (linear probe)") && log.contains("330 trained"), "{log}");
    assert!(log.contains("dispatches per step, 3 steps per submit"), "{log}");
    let (log, out) = run(
        &["--labels-per-class", "5", "--from-scratch", "--dropout", "0.1", "--noise", "masking:0.2"],
        "scratch",
    );
    assert!(log.contains("from scratch") && out.join("confusion.png").exists(), "{log}");
    // Bad inputs are errors that say why; an existing run is not overwritten without --overwrite.
    let bad = |extra: &[&str], needles: &[&str]| {
        let mut args = vec!["classify", "--checkpoint", s(&ckpt), "--out", s(&out)];
        args.extend(base);
        args.extend(extra);
        fails(aegpu(home, &args), &format!("{extra:?}"), needles);
    };
    bad(
        &["--overwrite", "--train-limit", "50", "--labels-per-class", "10"],
        &["fewer than the 10 labels per class"],
    );
    bad(&["--overwrite", "--steps", "0"], &["--steps must be at least 1"]);
    bad(&["--overwrite", "--train-limit", "100", "--validate", "100"], &["--validate 100"]);
    bad(&["--overwrite", "--dropout", "1.5"], &["dropout"]);
    bad(&[], &["already holds"]);
}
