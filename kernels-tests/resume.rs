//! Never losing a run, through the `aegpu` binary: a run stopped after 2 epochs and resumed to 4
//! gives bit-identical metrics and weights to 4 epochs straight (dense with random corruption and
//! dropout, and conv); Ctrl-C saves mid-epoch and the resumed run is still bit-identical; a folder
//! holding a run is refused unless --overwrite, a locked one names its owner, a failed run leaves
//! the old one untouched; options that do not apply are refused; a closed stdout or stderr does
//! not stop training.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

mod common;
use common::cli::{TempDir, aegpu, command, fails, ok, result_of, s};
use common::data_dir;

/// A small MNIST run's flags (the model's are appended by each test).
fn small(data: &Path, train: usize, batch: usize) -> Vec<String> {
    let args = ["train", "--quiet", "--data", s(data), "--test-limit", "200", "--seed", "3"];
    let mut v: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    v.extend(["--train-limit".into(), train.to_string(), "--batch".into(), batch.to_string()]);
    v
}

fn with(base: &[String], extra: &[&str]) -> Vec<String> {
    base.iter().cloned().chain(extra.iter().map(|a| a.to_string())).collect()
}

fn run(home: &Path, args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    aegpu(home, &args)
}

/// Runs with the convolution algorithm forced (it is otherwise measured per process, and two fresh
/// runs could pick different kernels, which round differently).
fn run_conv(home: &Path, args: &[String], conv: &str) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    command(home, &args).env("AEGPU_CONV", conv).output().expect("running aegpu")
}

/// 4 epochs straight against 2 + a resume to 4: the same metrics and weights, bit for bit.
fn two_plus_two(tag: &str, model: &[&str], train: usize, batch: usize) {
    let Some(data) = data_dir() else { return };
    let tmp = TempDir::new(tag);
    let t = tmp.path();
    let base = with(&small(&data, train, batch), model);
    let (straight, split) = (t.join("straight"), t.join("split"));
    ok(run_conv(t, &with(&base, &["--epochs", "4", "--out", s(&straight)]), "direct"), "4 epochs");
    ok(run_conv(t, &with(&base, &["--epochs", "2", "--out", s(&split)]), "direct"), "2 epochs");
    assert_eq!(result_of(&split).0.len(), 2);
    // The resume runs the recorded kernels, whatever this process would choose; the steps per
    // submit may change (results do not depend on them).
    let resume: Vec<String> =
        ["train", "--quiet", "--resume", s(&split), "--epochs", "4", "--steps-per-submit", "3"]
            .map(String::from)
            .to_vec();
    let resumed = command(t, &resume.iter().map(String::as_str).collect::<Vec<_>>())
        .env("AEGPU_CONV", "gemm")
        .env("AEGPU_MATMUL", "tiled")
        .output()
        .expect("running aegpu");
    let log = ok(resumed, "resume");
    assert!(log.contains("resume:  from epoch 3 step 0"), "{log}");
    assert_eq!(result_of(&split), result_of(&straight), "resumed run differs from the straight one");
    // The checkpoint says which epoch it holds, and the resumed epochs ran the recorded matmul (the
    // variants add each k in the same order on lavapipe, so only the record tells them apart).
    let bytes = std::fs::read(split.join("model.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta.get("aegpu.epoch").map(String::as_str), Some("4"));
    assert_eq!(meta.get("aegpu.matmul").map(String::as_str), Some("reg"), "the recorded matmul ran");
    let storage = if model.contains(&"f16") { "f16" } else { "f32" };
    assert_eq!(meta.get("aegpu.activations").map(String::as_str), Some(storage));
}

/// A run with f16 activation storage resumes with it (the resume state records it): resumed in f32,
/// the last two epochs would differ from the straight run's.
#[test]
fn f16_activation_storage_resumes_bit_identically() {
    two_plus_two("resume-f16", &["--layers", "64,32,16", "--activations", "f16", "--loss", "mse"], 1000, 50);
}

#[test]
fn dense_resume_is_bit_identical() {
    // Corruption and dropout draw fresh random numbers every step: the streams must resume too.
    let model = ["--layers", "64,16", "--noise", "gaussian:0.3", "--dropout", "0.1", "--loss", "mse"];
    two_plus_two("resume-dense", &model, 1000, 50);
}

#[test]
fn conv_resume_is_bit_identical() {
    two_plus_two("resume-conv", &["--model", "conv", "--preset", "strided", "--code-dim", "8"], 200, 20);
}

#[cfg(unix)]
#[test]
fn ctrl_c_saves_mid_epoch_and_the_resumed_run_is_bit_identical() {
    let Some(data) = data_dir() else { return };
    let tmp = TempDir::new("resume-sigint");
    let t = tmp.path();
    let base = with(&small(&data, 2000, 10), &["--layers", "32", "--epochs", "4"]);
    let (straight, stopped) = (t.join("straight"), t.join("stopped"));
    ok(run(t, &with(&base, &["--out", s(&straight)])), "straight run");

    // Interrupt once the first epoch is written: the signal lands somewhere in epoch 2, unless it
    // comes before the run checks for it after epoch 1 (then epoch 2 has not started: a loaded
    // machine can be that quick). Then again, waiting a little longer after the line (a fast
    // adapter may be in a later epoch by then: any epoch will do, as long as it is mid-epoch).
    let args = with(&base, &["--out", s(&stopped), "--overwrite"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut mid_epoch = None;
    for wait_ms in [0, 200, 600, 1500] {
        let mut child = command(t, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("an epoch line").unwrap();
        assert!(first.starts_with("epoch   1/4"), "{first}");
        std::thread::sleep(std::time::Duration::from_millis(wait_ms));
        let kill =
            std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
        assert!(kill.success());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "an interrupted run exits with 130:\n{stderr}");
        let epoch =
            (2..=4).find(|e| stderr.contains(&format!("interrupted in epoch {e}"))).unwrap_or_else(|| {
                panic!("interrupted after epoch 1 (the line was out) and before the end:\n{stderr}")
            });
        assert!(
            stderr.contains(&format!("Resume with: aegpu train --resume {}", stopped.display())),
            "{stderr}"
        );
        assert_eq!(result_of(&stopped).0.len(), epoch - 1, "the metrics hold the finished epochs only");
        assert!(!stopped.join(".aegpu.lock").exists(), "the lock is released");
        let log = ok(aegpu(t, &["train", "--quiet", "--resume", s(&stopped)]), "resume");
        assert!(log.contains(&format!("resume:  from epoch {epoch} step ")), "{log}");
        if !log.contains(&format!("resume:  from epoch {epoch} step 0 ")) {
            mid_epoch = Some(epoch);
            break;
        }
    }
    assert!(mid_epoch.is_some(), "no interrupt landed mid-epoch");
    assert_eq!(result_of(&stopped), result_of(&straight), "resumed run differs from the straight one");
}

#[test]
fn a_folder_holding_a_run_is_never_lost() {
    let Some(data) = data_dir() else { return };
    let tmp = TempDir::new("resume-folder");
    let t = tmp.path();
    let dir = t.join("run");
    let base = with(&small(&data, 200, 50), &["--layers", "16", "--out", s(&dir)]);
    ok(run(t, &with(&base, &["--epochs", "1"])), "first run");
    let before = std::fs::read(dir.join("metrics.jsonl")).unwrap();

    fails(
        run(t, &with(&base, &["--epochs", "1"])),
        "a second run",
        &["already holds a training run", "--resume", "--overwrite"],
    );
    // A run that fails validation never touches the folder, even with --overwrite.
    let too_big = with(&small(&data, 200, 5000), &["--layers", "16", "--out", s(&dir), "--overwrite"]);
    fails(run(t, &too_big), "bad batch", &["batch size 5000"]);
    assert_eq!(std::fs::read(dir.join("metrics.jsonl")).unwrap(), before);
    assert!(dir.join("model.safetensors").exists());
    // A live lock names its owner (this test's pid is alive); a stale one is taken over.
    std::fs::write(dir.join(".aegpu.lock"), std::process::id().to_string()).unwrap();
    let pid = format!("pid {}", std::process::id());
    fails(run(t, &with(&base, &["--overwrite"])), "locked folder", &["in use by another aegpu run", &pid]);
    fails(aegpu(t, &["train", "--resume", s(&dir), "--epochs", "2"]), "locked resume", &[&pid]);
    std::fs::write(dir.join(".aegpu.lock"), "4000000000").unwrap();
    let log = ok(run(t, &with(&base, &["--overwrite", "--epochs", "2"])), "overwrite");
    assert!(log.contains("stale lock"), "{log}");
    assert_eq!(result_of(&dir).0.len(), 2);
    // Resume takes its settings from the folder: other options are refused, and so is a finished run.
    fails(aegpu(t, &["train", "--resume", s(&dir), "--lr", "0.1"]), "resume --lr", &["drop --lr"]);
    fails(aegpu(t, &["train", "--resume", s(&dir)]), "finished", &["finished its 2 epochs", "--epochs"]);
    fails(aegpu(t, &["train", "--resume", s(&dir), "--epochs", "2"]), "no more", &["more than 2"]);
    fails(aegpu(t, &["train", "--resume", s(&t.join("nothing"))]), "empty", &["holds no training run"]);
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp") || n == ".aegpu.lock"), "left behind: {names:?}");
}

#[test]
fn options_that_do_not_apply_are_refused() {
    let Some(data) = data_dir() else { return };
    let tmp = TempDir::new("resume-flags");
    let t = tmp.path();
    let base = small(&data, 200, 50);
    let cases: [(&[&str], &str); 5] = [
        (&["--model", "conv", "--activation", "tanh"], "--activation does not apply"),
        (&["--model", "conv", "--layers", "64"], "--layers does not apply"),
        (&["--layers", "32", "--beta", "2"], "--beta does not apply"),
        (&["--preset", "deep", "--code-activation", "relu"], "--code-activation does not apply"),
        (&["--arch", "linear 16", "--code-dim", "4"], "--code-dim does not apply"),
    ];
    for (flags, needle) in cases {
        let out = t.join("never");
        fails(run(t, &with(&with(&base, flags), &["--out", s(&out)])), needle, &[needle]);
        assert!(!out.exists(), "{needle}: the folder was created");
    }
}

#[test]
fn a_closed_stdout_or_stderr_does_not_stop_training() {
    let Some(data) = data_dir() else { return };
    let tmp = TempDir::new("resume-pipes");
    let t = tmp.path();
    let base = with(&small(&data, 200, 50), &["--layers", "16", "--epochs", "3"]);
    for (name, closed) in [("stdout", true), ("stderr", false)] {
        let dir = t.join(name);
        let args = with(&base, &["--out", s(&dir)]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = command(t, &args);
        let mut child = if closed {
            c.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap()
        } else {
            c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
        };
        // `| head -1`: read one line, then close the pipe.
        if closed {
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            assert!(lines.next().is_some());
        } else {
            drop(child.stderr.take());
        }
        let status = child.wait().unwrap();
        assert!(status.success(), "closed {name}: {status}");
        assert_eq!(result_of(&dir).0.len(), 3, "closed {name}: every epoch is recorded");
        assert!(dir.join("recon.png").exists());
    }
}

#[test]
fn a_diverging_run_stops_with_the_epoch_and_a_fix() {
    let Some(data) = data_dir() else { return };
    let tmp = TempDir::new("resume-diverge");
    let t = tmp.path();
    let dir = t.join("run");
    // A linear output and SGD at an absurd rate: the loss runs away within the first epoch.
    let flags =
        ["--layers", "32", "--output", "identity", "--loss", "mse", "--optimizer", "sgd", "--lr", "10000"];
    let args = with(&with(&small(&data, 500, 50), &flags), &["--epochs", "3", "--out", s(&dir)]);
    let out = run(t, &args);
    assert_eq!(out.status.code(), Some(1));
    fails(
        out,
        "diverging run",
        &["diverged in epoch 1", "Lower --lr (now 10000)", "no checkpoint was written"],
    );
    assert!(!dir.join("model.safetensors").exists(), "no non-finite checkpoint is written");
}

/// Test loss of a run folder's last epoch.
fn last_test_loss(dir: &Path) -> f64 {
    result_of(dir).0.last().expect("an epoch")["test_loss"].as_f64().unwrap()
}

#[test]
fn training_starts_from_a_checkpoint_or_a_pytorch_state_dict() {
    let Some(data) = data_dir() else { return };
    let tmp = TempDir::new("resume-init-from");
    let t = tmp.path();
    let model = ["--layers", "64,16", "--loss", "mse", "--epochs", "1"];
    let base = with(&small(&data, 1000, 50), &model);
    let (first, more) = (t.join("first"), t.join("more"));
    ok(run(t, &with(&base, &["--out", s(&first)])), "first run");
    // The checkpoint brings its model: no model options needed.
    let ckpt = first.join("model.safetensors");
    let args = with(&small(&data, 1000, 50), &["--epochs", "1", "--init-from", s(&ckpt), "--out", s(&more)]);
    let log = ok(run(t, &args), "init from a checkpoint");
    assert!(log.contains("init:    weights from"), "{log}");
    assert!(log.contains("784-64r-16i-64r-784s"), "the checkpoint's model: {log}");
    assert!(
        last_test_loss(&more) < last_test_loss(&first),
        "a second epoch from the first one's weights improves"
    );

    // A PyTorch state_dict (no aegpu metadata): the model comes from the options, loaded strictly.
    let bytes = std::fs::read(&ckpt).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
    let torch = t.join("torch.safetensors");
    safetensors::serialize_to_file(tensors, None, &torch).unwrap();
    let from_torch = t.join("from-torch");
    let args = with(&base, &["--init-from", s(&torch), "--out", s(&from_torch)]);
    ok(run(t, &args), "init from a state_dict");
    assert_eq!(last_test_loss(&from_torch), last_test_loss(&more), "the same weights train the same");
    // Without the options, the default model does not fit the file: the tensor is named.
    let args = with(&small(&data, 1000, 50), &["--init-from", s(&torch), "--out", s(&t.join("never"))]);
    fails(run(t, &args), "a state_dict of another model", &["encoder.0.weight"]);
}
