//! Helpers for the tool tests that run the `aegpu` binary: a temp folder, the binary with a
//! private tuning cache, success/failure checks, and a tiny model trained on a slice of MNIST.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("aegpu-tools-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `aegpu ARGS` with a private tuning cache under `home` (and the register-blocked matmul,
/// so that separate processes compute the same bits).
pub fn aegpu(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aegpu"))
        .args(args)
        .env("AEGPU_MATMUL", "reg")
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("HOME", home)
        .output()
        .expect("running the aegpu binary")
}

/// Runs `aegpu ARGS` with the matmul kernel measured fastest here (the register-blocked one is
/// 3x slower on lavapipe: for the one test that runs PCA on all of MNIST).
pub fn aegpu_tuned(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aegpu"))
        .args(args)
        .env_remove("AEGPU_MATMUL")
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("HOME", home)
        .output()
        .expect("running the aegpu binary")
}

/// stdout of a run that must succeed (its stderr in the failure message).
pub fn ok(out: Output, what: &str) -> (String, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what} failed:\n{stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// A run that must fail with an error mentioning each of `needles`.
pub fn fails(out: Output, what: &str, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} should fail");
    for n in needles {
        assert!(stderr.contains(n), "{what}: error should mention '{n}':\n{stderr}");
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Trains `aegpu train EXTRA` for one epoch on the first 512 MNIST training images (128 test)
/// into `dir`; returns the checkpoint's path.
pub fn train_tiny(home: &Path, data: &Path, dir: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "train",
        "--data",
        s(data),
        "--train-limit",
        "512",
        "--test-limit",
        "128",
        "--epochs",
        "1",
        "--batch",
        "64",
        "--quiet",
        "--out",
        s(dir),
    ];
    args.extend_from_slice(extra);
    ok(aegpu(home, &args), "training a tiny model");
    dir.join("model.safetensors")
}
