//! Recirculation (issue 15): its two element-wise kernels against the CPU reference on awkward
//! sizes, a whole step's states and weight changes against the CPU rule, learning on synthetic data
//! (the test reconstruction falls below the mean image's), and `train --method recirculation` end
//! to end with the options it refuses.

mod common;

use aegpu::data::synthetic::synthetic;
use aegpu::expert::cpu;
use aegpu::expert::runner::{Plan, View};
use aegpu::gpu::StorageBuffer;
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::kernels::recirculation::{recirc_diff, recirc_mix};
use aegpu::models::dense::DenseConfig;
use aegpu::models::{Autoencoder, Init};
use aegpu::recirculation::{RecirculationTrainer, check_model, mean_image_baseline, step_launches, tensors};
use aegpu::train::{Evaluator, GpuDataset, TrainConfig};
use common::cli::{TempDir, aegpu, fails, ok, s};
use common::*;

const TAIL: usize = 29;
const SENTINEL: f32 = -12345.5;

#[test]
fn mix_and_diff_match_cpu_reference_on_awkward_sizes() {
    let gpu = gpu();
    // Around the 256-wide workgroup, and past 65535 workgroups (the dispatch folds into y).
    for &n in &[1usize, 255, 256, 257, 4099, 65535 * 256 + 257] {
        let x: Vec<f32> = random_vec(n, n as u64).iter().map(|v| 0.5 + 0.5 * v).collect();
        let z: Vec<f32> = random_vec(n, n as u64 + 1).iter().map(|v| 12.0 * v).collect();
        let up = |v: &[f32]| StorageBuffer::from_slice(&gpu, "in", v).unwrap();
        let (xb, zb) = (up(&x), up(&z));
        let out = StorageBuffer::from_slice(&gpu, "out", &vec![SENTINEL; n + TAIL]).unwrap();
        let o = View { buffer: out.buffer.clone(), offset: 0, len: n };
        for (k, lambda) in [0.0f32, 0.75].into_iter().enumerate() {
            let launches = [recirc_mix(&o, &View::whole(&xb), &View::whole(&zb), n, lambda)];
            Plan::new(&gpu, "t", &launches).unwrap().run(&gpu).unwrap();
            let got = out.read_all_f32(&gpu).unwrap();
            assert!(got[n..].iter().all(|v| v.to_bits() == SENTINEL.to_bits()), "n {n}: wrote past n");
            let mut want = vec![0.0; n];
            cpu::recirculation::recirc_mix(&mut want, &x, &z, lambda);
            // exp on the GPU may be a few ulps off libm's (Vulkan allows it).
            assert_close(&format!("mix n {n} case {k}"), &got[..n], &want, 2e-6, 1e-5);
        }
        let scale = 1.0 / 7.0;
        Plan::new(&gpu, "t", &[recirc_diff(&o, &View::whole(&xb), &View::whole(&zb), n, scale)])
            .unwrap()
            .run(&gpu)
            .unwrap();
        let got = out.read_all_f32(&gpu).unwrap();
        let mut want = vec![0.0; n];
        cpu::recirculation::recirc_diff(&mut want, &x, &z, scale);
        // The same two correctly rounded f32 operations: exact.
        assert!(got[..n].iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "diff n {n}");
        assert!(got[n..].iter().all(|v| v.to_bits() == SENTINEL.to_bits()), "diff n {n}: wrote past n");
    }
}

fn one_layer(gpu: &aegpu::gpu::Gpu, d: usize, h: usize, seed: u64) -> Autoencoder {
    let s = Activation::Sigmoid;
    let c = DenseConfig::symmetric(d, &[h], s, s, s, LossKind::Bce).unwrap();
    Autoencoder::new(gpu, c, seed, Init::Glorot).unwrap()
}

#[test]
fn a_step_computes_the_states_and_weight_changes_of_the_rule() {
    let gpu = gpu();
    for (d, h, batch, lambda, seed) in [(13, 5, 7, 0.75f32, 1u64), (20, 1, 3, 0.0, 2), (9, 17, 1, 0.5, 3)] {
        let model = one_layer(&gpu, d, h, seed);
        assert_eq!(check_model(&model).unwrap(), (d, h));
        // Non-zero biases, so every term of the rule shows.
        let mut p = model.params.buffer.read_all_f32(&gpu).unwrap();
        let noise = random_vec(p.len(), seed + 5);
        for (name, at, len) in &model.params.layout.entries {
            if name.ends_with("bias") {
                p[*at..at + len].copy_from_slice(&noise[*at..at + len]);
            }
        }
        model.params.buffer.write(&gpu, 0, &p);
        let t = tensors(&model, &gpu, batch).unwrap();
        let x: Vec<f32> = random_vec(batch * d, seed + 9).iter().map(|v| 0.5 + 0.5 * v).collect();
        t.view("x").write(&gpu, &x).unwrap();
        let sgd = Optimizer::parse("sgd", 0.1, 0.0).unwrap();
        let config = TrainConfig { epochs: 1, batch, optimizer: sgd, seed: 0 };
        let plan =
            Plan::new(&gpu, "step", &step_launches(&model, &t, &gpu, lambda, &config).unwrap()).unwrap();
        plan.run(&gpu).unwrap();
        let get = |name: &str| model.params.named(name).unwrap();
        let (we, be) = (get("encoder.0.weight"), get("encoder.0.bias"));
        let dec = model.net.nodes[1].params.clone().unwrap();
        let (wd, bd) = (get(&format!("{dec}.weight")), get(&format!("{dec}.bias")));
        let read = |v: &View| v.read(&gpu).unwrap();
        let r = cpu::recirculation::step(
            &x,
            &p_of(&p, &we),
            &p_of(&p, &be),
            &p_of(&p, &wd),
            &p_of(&p, &bd),
            batch,
            lambda,
        );
        let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<_>>();
        let what = format!("d {d} h {h} batch {batch} λ {lambda}");
        assert_close(&format!("{what}: h1"), &read(&t.view("h0")), &f(&r.h1), 1e-6, 1e-5);
        assert_close(&format!("{what}: v2"), &read(&t.view("v2")), &f(&r.v2), 1e-6, 1e-5);
        assert_close(&format!("{what}: h3"), &read(&t.view("h3")), &f(&r.h3), 1e-6, 1e-5);
        let g = |name: &str| model.grads.named(name).unwrap().read(&gpu).unwrap();
        assert_close(&format!("{what}: dW_e"), &g("encoder.0.weight"), &f(&r.d_we), 1e-6, 1e-4);
        assert_close(&format!("{what}: db_e"), &g("encoder.0.bias"), &f(&r.d_be), 1e-6, 1e-4);
        assert_close(&format!("{what}: dW_d"), &g(&format!("{dec}.weight")), &f(&r.d_wd), 1e-6, 1e-4);
        assert_close(&format!("{what}: db_d"), &g(&format!("{dec}.bias")), &f(&r.d_bd), 1e-6, 1e-4);
        // The update is SGD's first step on those changes: p - lr·g.
        let after = read(&we);
        let want: Vec<f32> = p_of(&p, &we).iter().zip(&r.d_we).map(|(&w, &dw)| w - 0.1 * dw as f32).collect();
        assert_close(&format!("{what}: updated W_e"), &after, &want, 1e-6, 1e-5);
    }
    // A model with two hidden layers, or a ReLU code, is not recirculation's.
    let two = DenseConfig::symmetric(
        8,
        &[4, 2],
        Activation::Sigmoid,
        Activation::Sigmoid,
        Activation::Sigmoid,
        LossKind::Bce,
    )
    .unwrap();
    assert!(check_model(&Autoencoder::new(&gpu, two, 0, Init::Glorot).unwrap()).is_err());
    let relu = DenseConfig::symmetric(
        8,
        &[4],
        Activation::Relu,
        Activation::Relu,
        Activation::Sigmoid,
        LossKind::Bce,
    )
    .unwrap();
    assert!(check_model(&Autoencoder::new(&gpu, relu, 0, Init::Glorot).unwrap()).is_err());
}

/// The host copy of a parameter view.
fn p_of(all: &[f32], v: &View) -> Vec<f32> {
    all[v.offset..v.offset + v.len].to_vec()
}

#[test]
fn recirculation_learns_synthetic_images_below_the_mean_image() {
    let gpu = gpu();
    let all = synthetic(1200, 10, 10, 6, 4);
    let (train, test) = (all.subset(0..1000), all.subset(1000..1200));
    let (base_mse, _) = mean_image_baseline(&train, &test);
    let model = one_layer(&gpu, 100, 16, 5);
    let (tg, sg) = (GpuDataset::upload(&gpu, &train).unwrap(), GpuDataset::upload(&gpu, &test).unwrap());
    let adam = Optimizer::parse("adam", 1e-2, 0.0).unwrap();
    let config = TrainConfig { epochs: 8, batch: 50, optimizer: adam, seed: 1 };
    let mut trainer = RecirculationTrainer::new(&gpu, &model, &tg, config, 0.75).unwrap();
    let evaluator = Evaluator::new(&gpu, &model, &sg, 100).unwrap();
    let start = evaluator.run(0).unwrap().metrics.mse_px;
    let mut losses = Vec::new();
    for _ in 0..8 {
        losses.push(trainer.epoch().unwrap());
    }
    let end = evaluator.run(0).unwrap().metrics.mse_px;
    assert!(losses[7] < losses[0], "training loss {losses:?}");
    assert!(end < 0.7 * base_mse && end < start, "test MSE/px {start} -> {end}; mean image {base_mse}");
    assert!(
        RecirculationTrainer::new(
            &gpu,
            &model,
            &tg,
            TrainConfig { epochs: 1, batch: 50, optimizer: adam, seed: 1 },
            1.0
        )
        .is_err()
    );
}

#[test]
fn mean_image_baseline_is_the_error_of_the_mean() {
    let a = aegpu::data::Dataset::from_parts("a", vec![0, 255, 255, 255], vec![0, 1], 1, 2).unwrap();
    let b = aegpu::data::Dataset::from_parts("b", vec![0, 0], vec![0], 1, 2).unwrap();
    // Mean image (0.5, 1): squared errors 0.25 and 1 against (0, 0).
    let (mse, bce) = mean_image_baseline(&a, &b);
    assert!((mse - 0.625).abs() < 1e-12, "{mse}");
    let want = (-(0.5f64).ln() - (1e-7f64).ln()) / 2.0;
    assert!((bce - want).abs() < 1e-6, "{bce} vs {want}");
}

#[test]
fn train_method_recirculation_end_to_end() {
    let Some(data) = data_dir() else { return };
    let tmp = TempDir::new("recirc");
    let home = tmp.path();
    let out = home.join("rc");
    let data = data.to_str().unwrap();
    let args = [
        "train",
        "--method",
        "recirculation",
        "--layers",
        "32",
        "--epochs",
        "2",
        "--batch",
        "50",
        "--data",
        data,
        "--train-limit",
        "2000",
        "--test-limit",
        "300",
        "--quiet",
        "--steps-per-submit",
        "3",
        "--out",
        s(&out),
    ];
    let log = ok(aegpu(home, &args), "recirculation");
    assert!(log.contains("dispatches per step, 3 steps per submit"), "{log}");
    assert!(log.contains("784-32s-784s") && log.contains("no back-propagated error"), "{log}");
    let metrics: Vec<serde_json::Value> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(metrics.len(), 2);
    let loss = |i: usize| metrics[i]["test_bce_px"].as_f64().unwrap();
    assert!(loss(1) < loss(0), "test BCE {} -> {}", loss(0), loss(1));
    for f in ["model.safetensors", "recon.png", "filters.png"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let matmul = meta.metadata().as_ref().and_then(|m| m.get("aegpu.matmul").cloned());
    assert_eq!(matmul.as_deref(), Some("reg"), "the checkpoint records the matmul policy that ran");
    // The checkpoint is an ordinary autoencoder: eval reproduces the last test loss.
    let eval =
        ok(aegpu(home, &["eval", "--checkpoint", s(&out.join("model.safetensors")), "--data", data]), "eval");
    assert!(eval.contains("bce"), "{eval}");
    let bad_out = home.join("bad");
    let bad = |extra: &[&str], needles: &[&str]| {
        let mut a =
            vec!["train", "--data", data, "--train-limit", "200", "--epochs", "1", "--out", s(&bad_out)];
        a.extend(extra);
        fails(aegpu(home, &a), &format!("{extra:?}"), needles);
    };
    bad(&["--method", "recirculation", "--layers", "64,32"], &["one hidden layer"]);
    bad(
        &["--method", "recirculation", "--noise", "masking:0.3"],
        &["--noise does not apply to --method recirculation"],
    );
    bad(&["--method", "recirculation", "--code-activation", "relu"], &["logistic"]);
    bad(&["--method", "recirculation", "--regression", "1.0"], &["regression"]);
    bad(&["--regression", "0.5"], &["--regression does not apply here"]);
    bad(&["--method", "hebb"], &["use backprop or recirculation"]);
}
