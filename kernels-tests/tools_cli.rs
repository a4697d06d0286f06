//! The checkpoint commands and data flags through the `aegpu` binary, on a tiny IDX dataset (4x4
//! images) and checkpoints built here with `checkpoint::encode`:
//!
//! - eval, denoise, sample, grid and interpolate refuse a checkpoint with a NaN weight (naming the
//!   tensor) and one whose finite weights overflow to NaN outputs, with a non-zero exit code, and
//!   accept a healthy one;
//! - eval prints the epoch and step a checkpoint records (or says it records none) and, for a VAE,
//!   the reconstruction at z = μ next to the single-sample one, and for a denoising model its
//!   figures on clean inputs, equal to the same weights' without corruption;
//! - a `--data` that is a file, a `.gz` that cannot be opened and an unknown `WGPU_BACKEND` are
//!   each reported as what they are.

use aegpu::checkpoint;
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::models::dense::{DenseConfig, Noise, Variational};
use aegpu::models::{ModelConfig, NamedTensor};
use std::io::Write;
use std::path::Path;
use std::process::Output;

mod common;
use common::cli::{TempDir, command, fails, ok_split, s};
use common::random_vec;

/// Runs `aegpu ARGS` (see [`command`]) with extra environment `env`.
fn aegpu(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(home, args).envs(env.iter().copied()).output().expect("running the aegpu binary")
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

/// 16-2-16, linear 2-D code, sigmoid output, BCE.
fn ae() -> ModelConfig {
    use Activation::*;
    DenseConfig::symmetric(16, &[2], Relu, Identity, Sigmoid, LossKind::Bce).unwrap().into()
}

/// Writes a checkpoint of `config` whose parameter `i` (of shape s) is `fill(i, s)`.
fn write_ckpt(
    path: &Path,
    config: &ModelConfig,
    meta: &[(&str, String)],
    fill: impl Fn(usize, &[usize]) -> Vec<f32>,
) {
    let tensors: Vec<NamedTensor> = config
        .parameters()
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let values = fill(i, &shape);
            (name, shape, values)
        })
        .collect();
    std::fs::write(path, checkpoint::encode(config, &tensors, meta).unwrap()).unwrap();
}

/// Small seeded weights: a model that computes finite things.
fn healthy(i: usize, shape: &[usize]) -> Vec<f32> {
    random_vec(shape.iter().product(), 70 + i as u64).iter().map(|v| v * 0.5).collect()
}

/// The five checkpoint commands, with their outputs in `dir`.
fn commands(ckpt: &str, data: &str, dir: &Path) -> Vec<(&'static str, Vec<String>)> {
    let out = |name: &str| dir.join(name).display().to_string();
    let base =
        |cmd: &str| vec![cmd.to_string(), "--checkpoint".into(), ckpt.into(), "--data".into(), data.into()];
    let with = |cmd: &'static str, extra: Vec<String>| (cmd, [base(cmd), extra].concat());
    vec![
        with("eval", vec![]),
        with("denoise", vec!["--out".into(), out("denoise.png")]),
        with("sample", vec!["--n".into(), "4".into(), "--out".into(), out("samples.png")]),
        with("grid", vec!["--steps".into(), "3".into(), "--out".into(), out("grid.png")]),
        with(
            "interpolate",
            ["--from", "0", "--to", "1", "--steps", "3", "--out"]
                .map(String::from)
                .into_iter()
                .chain([out("interp.png")])
                .collect(),
        ),
    ]
}

#[test]
fn checkpoint_commands_refuse_non_finite_weights_and_outputs() {
    let tmp = TempDir::new("finite");
    let t = tmp.path();
    let data = t.join("data");
    tiny_mnist(&data);
    let data = s(&data);

    // A NaN weight: refused when the file is read, before any data or GPU, naming the tensor.
    let nan = t.join("nan.safetensors");
    write_ckpt(&nan, &ae(), &[], |i, shape| {
        let mut v = healthy(i, shape);
        if i == 0 {
            v[3] = f32::NAN;
        }
        v
    });
    // Finite weights whose outputs overflow: codes of about 1e31, then 3e38·h1 − 3e38·h2 = inf − inf.
    let overflow = t.join("overflow.safetensors");
    write_ckpt(&overflow, &ae(), &[], |i, shape| {
        let n: usize = shape.iter().product();
        match i {
            0 => vec![1e30; n],
            1 => vec![1.0; n],
            2 => (0..n).map(|k| if k % 2 == 0 { 3e38 } else { -3e38 }).collect(),
            _ => vec![0.0; n],
        }
    });
    let fine = t.join("fine.safetensors");
    write_ckpt(&fine, &ae(), &[], healthy);

    for (cmd, args) in commands(s(&nan), data, t) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(
            aegpu(t, &args, &[]),
            &format!("{cmd} of a NaN checkpoint"),
            &["'encoder.0.weight' holds NaN at index 3", "diverged"],
        );
    }
    for (cmd, args) in commands(s(&overflow), data, t) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(aegpu(t, &args, &[]), &format!("{cmd} of an overflowing checkpoint"), &["gives non-finite"]);
    }
    for (cmd, args) in commands(s(&fine), data, t) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok_split(aegpu(t, &args, &[]), &format!("{cmd} of a healthy checkpoint"));
    }
}

#[test]
fn eval_reports_the_epoch_and_a_vae_at_its_mean() {
    let tmp = TempDir::new("eval");
    let t = tmp.path();
    let data = t.join("data");
    tiny_mnist(&data);
    use Activation::*;
    let vae: ModelConfig = DenseConfig::symmetric(16, &[6, 2], Relu, Identity, Sigmoid, LossKind::Bce)
        .unwrap()
        .with_variational(Some(Variational { beta: 1.0 }))
        .unwrap()
        .into();
    let recorded = t.join("vae.safetensors");
    let meta = [("aegpu.epoch", "3".to_string()), ("aegpu.step", "42".to_string())];
    write_ckpt(&recorded, &vae, &meta, healthy);
    let (stdout, stderr) =
        ok_split(aegpu(t, &["eval", "--checkpoint", s(&recorded), "--data", s(&data)], &[]), "eval of a VAE");
    assert!(stderr.contains("checkpoint: epoch 3 (step 42)"), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!((json["epoch"].as_u64(), json["step"].as_u64()), (Some(3), Some(42)), "{json}");
    let num = |k: &str| json[k].as_f64().unwrap_or_else(|| panic!("no number '{k}' in {json}"));
    for k in ["test_mse_px_at_mu", "test_bce_px_at_mu", "test_psnr_db_at_mu", "test_kl", "test_elbo_nats"] {
        assert!(num(k).is_finite(), "{k}");
    }
    // The sampled z and z = μ reconstruct differently (σ is about 1 with these weights).
    assert_ne!(num("test_recon_nats"), num("test_recon_nats_at_mu"), "{json}");
    let (nats, per_px) = (num("test_recon_nats_at_mu"), num("test_bce_px_at_mu"));
    assert!((nats - 16.0 * per_px).abs() <= 1e-9 * nats, "nats per image = 16 px · BCE/px: {json}");

    let old = t.join("old.safetensors");
    write_ckpt(&old, &ae(), &[], healthy);
    let (stdout, stderr) =
        ok_split(aegpu(t, &["eval", "--checkpoint", s(&old), "--data", s(&data)], &[]), "eval");
    assert!(stderr.contains("epoch unknown (checkpoint from before epochs were recorded)"), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert!(json["epoch"].is_null() && json["test_bce_px"].is_number(), "{json}");
    assert!(json.get("test_bce_px_at_mu").is_none(), "a plain autoencoder has no z = μ pass: {json}");
}

#[test]
fn eval_gives_a_denoising_model_clean_figures_too() {
    let tmp = TempDir::new("eval-clean");
    let t = tmp.path();
    let data = t.join("data");
    tiny_mnist(&data);
    let eval = |ckpt: &Path| {
        let (stdout, _) =
            ok_split(aegpu(t, &["eval", "--checkpoint", s(ckpt), "--data", s(&data)], &[]), "eval");
        serde_json::from_str::<serde_json::Value>(stdout.trim()).expect("one JSON line")
    };
    let plain = t.join("plain.safetensors");
    write_ckpt(&plain, &ae(), &[], healthy);
    let mut config = DenseConfig::symmetric(
        16,
        &[2],
        Activation::Relu,
        Activation::Identity,
        Activation::Sigmoid,
        LossKind::Bce,
    )
    .unwrap();
    config.regularize.noise = Some(Noise::parse("masking:0.5").unwrap());
    let denoising = t.join("denoising.safetensors");
    write_ckpt(&denoising, &config.into(), &[], healthy);
    let (plain, noisy) = (eval(&plain), eval(&denoising));
    assert!(plain.get("test_mse_px_clean").is_none(), "a plain model has one set of figures: {plain}");
    // The same weights on clean inputs: exactly the plain model's figures; on masked ones, others.
    for k in ["loss", "mse_px", "bce_px", "psnr_db"] {
        let clean = noisy[format!("test_{k}_clean")].as_f64().unwrap_or_else(|| panic!("no {k}: {noisy}"));
        assert_eq!(clean, plain[format!("test_{k}")].as_f64().unwrap(), "{k}: {noisy} vs {plain}");
        assert_ne!(clean, noisy[format!("test_{k}")].as_f64().unwrap(), "{k}: {noisy}");
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
    ok_split(pca(&gz), "pca on gzipped files");
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
