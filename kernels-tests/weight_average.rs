//! `train --average-from EPOCH` (stochastic weight averaging) through the `aegpu` binary on a small
//! MNIST subset:
//! - the checkpoint holds exactly the f32 running mean of the epoch ends' weights, computed here
//!   from the checkpoints of runs stopped at those epochs (training itself goes on from the last
//!   weights: the plain figures equal a run without averaging);
//! - avg_test_* appear from the first averaged epoch on, and `eval` of the checkpoint gives the
//!   last one;
//! - a run stopped and resumed gives bit-identical metrics and average, and so does a run that
//!   starts its average when resumed;
//! - an epoch outside the run, a second average on a resume, and the flag with recirculation are
//!   refused.

use std::path::Path;

mod common;
use common::cli::{TempDir, aegpu, fails, ok, result_of, s};
use common::data_dir;

fn train(home: &Path, data: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["train", "--quiet", "--data", s(data), "--train-limit", "600"];
    args.extend(["--batch", "50", "--layers", "32,8", "--seed", "5", "--out", s(out)]);
    args.extend(extra);
    ok(aegpu(home, &args), &format!("train {extra:?}"))
}

/// The checkpoint's tensors as f32 values, by name.
fn weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    result_of(dir).1.into_iter().map(|(n, _, bytes)| (n, bytemuck::pod_collect_to_vec(&bytes))).collect()
}

fn metric(line: &serde_json::Value, key: &str) -> Option<f64> {
    line.get(key).and_then(serde_json::Value::as_f64)
}

#[test]
fn the_checkpoint_is_the_running_mean_of_the_epoch_ends() {
    let Some(data) = data_dir() else { return };
    let tmp = TempDir::new("swa-mean");
    let t = tmp.path();
    let ends: Vec<_> = (1..=3)
        .map(|e| {
            let dir = t.join(format!("plain{e}"));
            train(t, &data, &dir, &["--epochs", &e.to_string()]);
            dir
        })
        .collect();
    let avg = t.join("avg");
    train(t, &data, &avg, &["--epochs", "3", "--average-from", "2"]);

    // mean = w2, then w2 + (w3 − w2) / 2, in f32 as the engine computes it.
    let (w2, w3, mean) = (weights(&ends[1]), weights(&ends[2]), weights(&avg));
    for ((name, a), ((_, b), (_, m))) in w2.iter().zip(w3.iter().zip(&mean)) {
        let expected: Vec<f32> = a.iter().zip(b).map(|(&a, &b)| a + (b - a) / 2.0).collect();
        assert_eq!(m, &expected, "{name}: not the mean of epochs 2 and 3");
        assert_ne!(m, b, "{name}: the last weights, not the mean");
    }
    // Training goes on from the last weights: the plain figures are those of the run without.
    let (plain, averaged) = (result_of(&ends[2]).0, result_of(&avg).0);
    for (p, a) in plain.iter().zip(&averaged) {
        for key in ["train_loss", "test_loss", "test_mse_px"] {
            assert_eq!(metric(p, key), metric(a, key), "{key}: {p} vs {a}");
        }
    }
    assert_eq!(metric(&averaged[0], "avg_test_mse_px"), None, "epoch 1 is not averaged: {}", averaged[0]);
    // One epoch averaged is that epoch's weights.
    assert_eq!(metric(&averaged[1], "avg_test_mse_px"), metric(&averaged[1], "test_mse_px"));
    let last = metric(&averaged[2], "avg_test_mse_px").expect("epoch 3 is averaged");
    assert_ne!(Some(last), metric(&averaged[2], "test_mse_px"));
    let eval = ok(
        aegpu(t, &["eval", "--checkpoint", s(&avg.join("model.safetensors")), "--data", s(&data)]),
        "eval",
    );
    let json: serde_json::Value = serde_json::from_str(eval.lines().last().unwrap()).expect("JSON");
    assert_eq!(json["test_mse_px"].as_f64(), Some(last), "eval of the checkpoint: {json}");
    let bytes = std::fs::read(avg.join("model.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta.get("aegpu.averaged_epochs").map(String::as_str), Some("2"), "{meta:?}");
    assert_eq!(meta.get("aegpu.average_from").map(String::as_str), Some("2"), "{meta:?}");
}

#[test]
fn a_resumed_average_is_bit_identical() {
    let Some(data) = data_dir() else { return };
    let tmp = TempDir::new("swa-resume");
    let t = tmp.path();
    let (straight, split) = (t.join("straight"), t.join("split"));
    train(t, &data, &straight, &["--epochs", "4", "--average-from", "2"]);
    train(t, &data, &split, &["--epochs", "2", "--average-from", "2"]);
    let log = ok(aegpu(t, &["train", "--quiet", "--resume", s(&split), "--epochs", "4"]), "resume");
    assert!(log.contains("stochastic weight averaging"), "{log}");
    assert_eq!(result_of(&split), result_of(&straight), "the resumed average differs");
    let resume = |dir: &Path, extra: &[&str]| {
        aegpu(t, &[&["train", "--quiet", "--resume", s(dir)][..], extra].concat())
    };
    fails(
        resume(&split, &["--epochs", "5", "--average-from", "3"]),
        "a second average on a resume",
        &["drop --average-from 3"],
    );
    // A run without an average can start one when it is resumed, at an epoch still to come: the
    // same as a run that asked for it from the start.
    let late = t.join("late");
    train(t, &data, &late, &["--epochs", "1"]);
    fails(
        resume(&late, &["--epochs", "4", "--average-from", "1"]),
        "a past epoch",
        &["already finished epoch 1"],
    );
    ok(resume(&late, &["--epochs", "4", "--average-from", "2"]), "an average started on a resume");
    assert_eq!(result_of(&late), result_of(&straight), "an average started on a resume differs");
}

#[test]
fn epochs_outside_the_run_are_refused() {
    let Some(data) = data_dir() else { return };
    let tmp = TempDir::new("swa-refused");
    let t = tmp.path();
    let out = t.join("out");
    let base =
        ["train", "--quiet", "--data", s(&data), "--train-limit", "100", "--batch", "50", "--out", s(&out)];
    for (extra, needles) in [
        (&["--epochs", "3", "--average-from", "4"][..], &["--average-from 4", "1..=3"][..]),
        (&["--epochs", "3", "--average-from", "0"], &["--average-from 0"]),
        (&["--method", "recirculation", "--average-from", "1"], &["--average-from does not apply"]),
    ] {
        fails(aegpu(t, &[&base[..], extra].concat()), &format!("{extra:?}"), needles);
        assert!(!out.exists(), "{extra:?}: the output folder was touched");
    }
}
