//! The checkpoint commands and data flags through the `aegpu` binary, on a tiny IDX dataset (4x4
//! images):
//!
//! - a `--data` that is a file, a `.gz` that cannot be opened and an unknown `WGPU_BACKEND` are
//!   each reported as what they are.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::random_vec;

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("aegpu-tools-cli-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `aegpu ARGS` with a private tuning cache under `home` and extra environment `env`.
fn aegpu(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aegpu"));
    cmd.args(args).env("AEGPU_MATMUL", "reg").env("XDG_CACHE_HOME", home.join("cache")).env("HOME", home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running the aegpu binary")
}

/// (stdout, stderr) of a run that must succeed.
fn ok(out: Output, what: &str) -> (String, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what} failed:\n{stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// The stderr of a run that must fail, checked for each of `needles`.
fn fails(out: Output, what: &str, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{what} should fail; stdout:\n{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(1), "{what}: exit code");
    assert!(out.stdout.is_empty(), "{what}: printed a result:\n{}", String::from_utf8_lossy(&out.stdout));
    for n in needles {
        assert!(stderr.contains(n), "{what}: error should mention '{n}':\n{stderr}");
    }
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

/// An IDX file: magic 00 00 08 DD, big-endian sizes, bytes.
fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// MNIST's four files (unpacked) with 20 train and 12 test 4x4 images of pixels 1..=255.
fn tiny_mnist(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n) in [("train", 20u32), ("t10k", 12)] {
        let pixels: Vec<u8> =
            random_vec(n as usize * 16, n as u64).iter().map(|v| (v.abs() * 254.0) as u8 + 1).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), idx(&[n, 4, 4], &pixels)).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), idx(&[n], &labels)).unwrap();
    }
}

#[test]
fn data_and_backend_mistakes_are_named() {
    let tmp = TempDir::new("mistakes");
    let t = tmp.path();
    // --data naming a file.
    let file = t.join("mnist.tar");
    std::fs::write(&file, b"not a folder").unwrap();
    let pca = |dir: &Path| aegpu(t, &["pca", "--components", "2", "--data", s(dir)], &[]);
    let err = fails(pca(&file), "--data FILE", &["a file, not a directory"]);
    assert!(!err.contains(&format!("{} (no such directory", file.display())), "{err}");

    // Original .gz files, one a link to nothing, one a folder: each is named, not reported missing.
    let gz = t.join("gz");
    tiny_mnist(&gz);
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        let raw = std::fs::read(gz.join(name)).unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&raw).unwrap();
        std::fs::write(gz.join(format!("{name}.gz")), enc.finish().unwrap()).unwrap();
        std::fs::remove_file(gz.join(name)).unwrap();
    }
    ok(pca(&gz), "pca on gzipped files");
    std::fs::remove_file(gz.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    std::os::unix::fs::symlink(t.join("gone.gz"), gz.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    std::fs::remove_file(gz.join("train-images-idx3-ubyte.gz")).unwrap();
    std::fs::create_dir(gz.join("train-images-idx3-ubyte.gz")).unwrap();
    let err = fails(
        pca(&gz),
        "unreadable .gz files",
        &[
            "t10k-labels-idx1-ubyte.gz is a link to nothing",
            "train-images-idx3-ubyte.gz is not a regular file",
        ],
    );
    assert!(!err.contains("missing t10k-labels") && !err.contains("missing train-images"), "{err}");

    // A misspelt backend.
    let err = fails(
        aegpu(t, &["info"], &[("WGPU_BACKEND", "vulcan")]),
        "WGPU_BACKEND=vulcan",
        &["WGPU_BACKEND", "'vulcan' is not a backend"],
    );
    assert!(!err.contains("offer none"), "{err}");
}
