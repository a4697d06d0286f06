//! Running the built `aegpu` binary from a test: a temporary folder per test, the command with a
//! private tuning cache, assertions on its outcome that print its stderr when they fail, and a tiny
//! model trained on a slice of MNIST for the tools to work on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("aegpu-{tag}-{}", std::process::id()));
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

/// `aegpu ARGS` with a private tuning cache under `home` (and the register-blocked matmul, so
/// every test run uses the same kernels without measuring them).
pub fn command(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aegpu"));
    c.args(args).env("AEGPU_MATMUL", "reg").env("XDG_CACHE_HOME", home.join("cache")).env("HOME", home);
    c
}

/// Runs `aegpu ARGS` to completion (see [`command`]).
pub fn aegpu(home: &Path, args: &[&str]) -> Output {
    command(home, args).output().expect("running the aegpu binary")
}

/// Runs `aegpu ARGS` with the matmul kernel measured fastest here (the register-blocked one is
/// 3x slower on lavapipe: for the one test that runs PCA on all of MNIST).
pub fn aegpu_tuned(home: &Path, args: &[&str]) -> Output {
    command(home, args).env_remove("AEGPU_MATMUL").output().expect("running the aegpu binary")
}

/// Asserts success; returns stderr then stdout, as one text to search.
pub fn ok(out: Output, what: &str) -> String {
    let (stdout, stderr) = ok_split(out, what);
    stderr + &stdout
}

/// Asserts success; returns stdout and stderr apart (for a command whose stdout is data).
pub fn ok_split(out: Output, what: &str) -> (String, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what} failed:\n{stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// Asserts a clean failure: exit code 1 (aegpu's errors) or 2 (a usage error clap caught), nothing
/// on stdout (no half a result), and an error that mentions every needle. Returns stderr.
pub fn fails(out: Output, what: &str, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{what} should fail; stdout:\n{stdout}");
    assert!(matches!(out.status.code(), Some(1 | 2)), "{what}: exit code {:?}\n{stderr}", out.status.code());
    assert!(stdout.is_empty(), "{what}: printed a result:\n{stdout}");
    for n in needles {
        assert!(stderr.contains(n), "{what}: error should mention '{n}':\n{stderr}");
    }
    stderr
}

/// Every checkpoint tensor's name, shape and bytes.
pub type Tensors = Vec<(String, Vec<usize>, Vec<u8>)>;

/// A run folder's metrics.jsonl without timings, and its checkpoint's tensors: what two runs
/// that should compute the same must agree on, bit for bit.
pub fn result_of(dir: &Path) -> (Vec<serde_json::Value>, Tensors) {
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("JSON");
            let m = v.as_object_mut().expect("object");
            m.remove("epoch_s");
            m.remove("samples_per_s");
            v
        })
        .collect();
    let bytes = std::fs::read(dir.join("model.safetensors")).expect("checkpoint");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut tensors: Vec<_> =
        st.tensors().into_iter().map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec())).collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    (metrics, tensors)
}

/// A path as the `&str` an argument list wants.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
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
