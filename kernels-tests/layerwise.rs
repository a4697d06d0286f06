//! Greedy layer-wise pre-training (issue 15): a stage's backward (the two trained layers, through
//! the mirror into the encoder layer, none below) against finite differences of its own loss,
//! with and without masking noise; every stage's loss falls and the stacked model reconstructs
//! better than at initialisation; the pairs of a model; and `train --pretrain layerwise` end to end.

mod common;

use aegpu::data::synthetic::synthetic;
use aegpu::expert::runner::Plan;
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::layerwise::{LayerStage, LayerwiseSpec, layer_pairs, parse_spec, pretrain};
use aegpu::models::dense::{DenseConfig, Variational};
use aegpu::models::{Autoencoder, Init};
use aegpu::train::{Evaluator, GpuDataset};
use common::cli::{TempDir, aegpu, fails, ok, s};
use common::*;

fn deep(gpu: &aegpu::gpu::Gpu, act: Activation, loss: LossKind, seed: u64) -> Autoencoder {
    let c = DenseConfig::symmetric(10, &[6, 4, 3], act, act, Activation::Sigmoid, loss).unwrap();
    Autoencoder::new(gpu, c, seed, Init::Glorot).unwrap()
}

#[test]
fn a_stage_backward_matches_finite_differences() {
    let gpu = gpu();
    let model = deep(&gpu, Activation::Tanh, LossKind::Bce, 1);
    let batch = 4;
    for (k, masking) in [(0, None), (0, Some(0.3)), (1, None), (2, Some(0.25))] {
        let stage = LayerStage::new(&gpu, &model, k, masking).unwrap();
        let acts = stage.tensors(&gpu, batch).unwrap();
        let x: Vec<f32> = random_vec(batch * 10, k as u64 + 3).iter().map(|v| 0.5 + 0.45 * v).collect();
        acts.view("x").write(&gpu, &x).unwrap();
        let plan = Plan::new(&gpu, "stage", &stage.launches(&acts, 7)).unwrap();
        let dim = (batch * stage.net.output()[0]) as f64;
        let slot = stage.loss.slot();
        let loss = || {
            plan.run(&gpu).unwrap();
            acts.view("loss totals").read(&gpu).unwrap()[slot] as f64 / dim
        };
        let base = loss();
        let grad = stage.grads.buffer.read_all_f32(&gpu).unwrap();
        let params = stage.params.buffer.read_all_f32(&gpu).unwrap();
        let entries = &stage.params.layout.entries;
        let trained = entries.len() - 4;
        let (mut got, mut want) = (Vec::new(), Vec::new());
        let eps = 3e-3f32;
        for (t, (name, at, len)) in entries.iter().enumerate() {
            for i in *at..at + len {
                if t < trained {
                    assert_eq!(grad[i], 0.0, "stage {k}: frozen {name} got a gradient");
                    continue;
                }
                let mut p = params.clone();
                p[i] += eps;
                stage.params.buffer.write(&gpu, 0, &p);
                let up = loss();
                p[i] -= 2.0 * eps;
                stage.params.buffer.write(&gpu, 0, &p);
                let down = loss();
                got.push(grad[i]);
                want.push(((up - down) / (2.0 * eps as f64)) as f32);
            }
        }
        stage.params.buffer.write(&gpu, 0, &params);
        let scale = got.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        assert!(scale > 1e-4, "stage {k}: vanishing gradient {scale}");
        let atol = 1e-3 * scale + 8.0 * f32::EPSILON * base as f32 / (2.0 * eps);
        assert_close(
            &format!("stage {k} masking {masking:?}: backward vs finite differences"),
            &got,
            &want,
            atol,
            2e-2,
        );
        let expect = if k == 0 { LossKind::Bce } else { LossKind::Mse };
        assert_eq!(stage.loss, expect, "stage {k}: the first reconstructs the image with the model's loss");
    }
}

#[test]
fn pairs_mirror_the_encoder_and_other_models_are_refused() {
    let gpu = gpu();
    let model = deep(&gpu, Activation::Relu, LossKind::Mse, 0);
    let pairs = layer_pairs(&model).unwrap();
    assert_eq!(pairs.len(), 3);
    let names: Vec<(String, String)> = pairs
        .iter()
        .map(|&(e, d)| {
            (model.net.nodes[e].params.clone().unwrap(), model.net.nodes[d].params.clone().unwrap())
        })
        .collect();
    let want = [("encoder.0", "decoder.4"), ("encoder.2", "decoder.2"), ("encoder.4", "decoder.0")];
    assert_eq!(names, want.map(|(a, b)| (a.to_string(), b.to_string())));
    let vae = DenseConfig::symmetric(
        10,
        &[6, 3],
        Activation::Relu,
        Activation::Identity,
        Activation::Sigmoid,
        LossKind::Bce,
    )
    .unwrap()
    .with_variational(Some(Variational { beta: 1.0 }))
    .unwrap();
    assert!(layer_pairs(&Autoencoder::new(&gpu, vae, 0, Init::Glorot).unwrap()).is_err());
    assert_eq!(parse_spec("layerwise").unwrap(), 1);
    assert_eq!(parse_spec("layerwise:7").unwrap(), 7);
    for bad in ["layerwise:0", "layerwise:x", "greedy", "layerwise:"] {
        assert!(parse_spec(bad).is_err(), "{bad}");
    }
    assert!(LayerStage::new(&gpu, &model, 3, None).is_err(), "no fourth layer");
}

#[test]
fn every_stage_learns_and_the_stack_reconstructs_better_than_at_init() {
    let gpu = gpu();
    let all = synthetic(1100, 8, 8, 5, 2);
    let (train, test) = (all.subset(0..1000), all.subset(1000..1100));
    let c = DenseConfig::symmetric(
        64,
        &[32, 16, 8],
        Activation::Relu,
        Activation::Identity,
        Activation::Sigmoid,
        LossKind::Mse,
    )
    .unwrap();
    let model = Autoencoder::new(&gpu, c, 3, Init::Glorot).unwrap();
    let (tg, sg) = (GpuDataset::upload(&gpu, &train).unwrap(), GpuDataset::upload(&gpu, &test).unwrap());
    let evaluator = Evaluator::new(&gpu, &model, &sg, 100).unwrap();
    let before = evaluator.run(0).unwrap().metrics.mse_px;
    let optimizer = Optimizer::parse("adam", 3e-3, 0.0).unwrap();
    let spec =
        LayerwiseSpec { epochs: 3, masking: Some(0.1), batch: 50, optimizer, seed: 4, steps_per_submit: 8 };
    let mut seen = Vec::new();
    let history = pretrain(&gpu, &model, &tg, &spec, |e| {
        seen.push((e.layer, e.epoch));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]);
    for layer in 0..3 {
        let l: Vec<f64> = history.iter().filter(|e| e.layer == layer).map(|e| e.train_loss).collect();
        assert!(l[2] < l[0], "layer {layer}'s pre-training loss {l:?}");
    }
    assert_eq!(history[3].autoencoder, "32-16-32");
    let after = evaluator.run(0).unwrap().metrics.mse_px;
    assert!(after < 0.8 * before, "the stacked pre-trained model reconstructs {before} -> {after}");
}

#[test]
fn train_with_layerwise_pretraining_end_to_end() {
    let Some(data) = data_dir() else { return };
    let tmp = TempDir::new("layerwise");
    let home = tmp.path();
    let out = home.join("lw");
    let data = data.to_str().unwrap();
    let base =
        ["train", "--data", data, "--train-limit", "1000", "--test-limit", "200", "--batch", "50", "--quiet"];
    let mut args = base.to_vec();
    args.extend([
        "--layers",
        "64,16",
        "--pretrain",
        "layerwise:2",
        "--pretrain-noise",
        "masking:0.2",
        "--epochs",
        "1",
        "--steps-per-submit",
        "3",
    ]);
    args.extend(["--out", s(&out)]);
    let log = ok(aegpu(home, &args), "layer-wise pre-training");
    assert!(log.contains("pretrain layer 1 (64-16-64)  epoch 2/2"), "{log}");
    assert!(
        log.contains("up to 3 steps per submit") && log.contains("3 steps per submit, 7 submits"),
        "{log}"
    );
    let lines = std::fs::read_to_string(out.join("pretrain.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 4, "2 layers x 2 epochs:\n{lines}");
    assert_eq!(std::fs::read_to_string(out.join("metrics.jsonl")).unwrap().lines().count(), 1);
    let ckpt = std::fs::read(out.join("model.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&ckpt).unwrap();
    let pre = meta.metadata().as_ref().unwrap().get("aegpu.pretrain").cloned().unwrap_or_default();
    assert!(pre.contains("\"epochs\":2") && pre.contains("\"masking\":0.2"), "{pre}");
    assert!(!pre.contains("steps_per_submit"), "results do not depend on it: not recorded: {pre}");
    let bad_out = home.join("bad");
    let bad = |extra: &[&str], needles: &[&str]| {
        let mut a = base.to_vec();
        a.extend(["--epochs", "1", "--out", s(&bad_out)]);
        a.extend(extra);
        fails(aegpu(home, &a), &format!("{extra:?}"), needles);
    };
    bad(&["--pretrain", "layerwise:0"], &["layerwise:EPOCHS"]);
    bad(&["--pretrain", "layerwise", "--pretrain-noise", "gaussian:0.3"], &["use masking:P"]);
    bad(&["--pretrain-noise", "masking:0.3"], &["--pretrain-noise does not apply here"]);
    bad(&["--pretrain", "layerwise", "--model", "conv"], &["dense autoencoder"]);
    bad(&["--pretrain", "layerwise", "--model", "vae", "--layers", "64,4"], &["dense autoencoder"]);
    fails(
        aegpu(home, &["train", "--resume", s(&out), "--pretrain", "layerwise"]),
        "resume",
        &["drop --pretrain"],
    );
}

/// A stage runs the model's matmul policy (the one its run records), not the adapter's tuning.
#[test]
fn a_stage_runs_the_models_matmul_policy() {
    use aegpu::kernels::matmul::MatmulVariant;
    use aegpu::kernels::matmul_policy::MatmulPolicy;
    let gpu = gpu();
    for variant in [MatmulVariant::Tiled, MatmulVariant::Sgemm32x128] {
        let mut model = deep(&gpu, Activation::Tanh, LossKind::Bce, 1);
        model.pin_matmul_policy(&gpu, MatmulPolicy::uniform(variant)).unwrap();
        let stage = LayerStage::new(&gpu, &model, 1, None).unwrap();
        let acts = stage.tensors(&gpu, 4).unwrap();
        let launches = stage.launches(&acts, 7);
        let products: Vec<_> = launches.iter().filter(|l| l.label == "matmul").collect();
        assert!(!products.is_empty());
        assert!(products.iter().all(|l| l.key.entry == variant.entry()), "{variant:?}");
    }
}
