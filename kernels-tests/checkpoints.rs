//! Checkpoints read strictly and written deterministically.
//!
//! - A tensor missing, unexpected, transposed, reshaped or not float32 is a typed error naming it
//!   (PyTorch's `load_state_dict(strict=True)`); a NaN or infinite weight names the tensor.
//! - A metadata entry aegpu reads that does not parse is an error naming the key.
//! - The same weights and metadata give the same bytes, whatever order the metadata came in.
//! - A PyTorch-style `state_dict` file without aegpu metadata loads into a model given by its
//!   configuration, with the same checks.
//!
//! Files are built here with the `safetensors` crate; only the tests that restore or save a model
//! need the GPU.

use aegpu::checkpoint::{self, keys};
use aegpu::error::{Error, TensorMismatch};
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::models::dense::DenseConfig;
use aegpu::models::{Autoencoder, Init, ModelConfig, NamedTensor};
use safetensors::Dtype;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod common;
use common::{gpu, random_vec};

/// 16-8-4-8-16: ReLU hidden layers, linear code, sigmoid output, BCE.
fn config_with_code(code: usize) -> ModelConfig {
    use Activation::*;
    DenseConfig::symmetric(16, &[8, code], Relu, Identity, Sigmoid, LossKind::Bce).unwrap().into()
}

fn config() -> ModelConfig {
    config_with_code(4)
}

/// The model's parameters with seeded values.
fn tensors(config: &ModelConfig, seed: u64) -> Vec<NamedTensor> {
    config
        .parameters()
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let values = random_vec(shape.iter().product(), seed + i as u64);
            (name, shape, values)
        })
        .collect()
}

/// A tensor as the file stores it: name, dtype, shape, bytes.
type Raw = (String, Dtype, Vec<usize>, Vec<u8>);

fn raw(tensors: &[NamedTensor]) -> Vec<Raw> {
    tensors
        .iter()
        .map(|(n, s, v)| (n.clone(), Dtype::F32, s.clone(), bytemuck::cast_slice(v).to_vec()))
        .collect()
}

/// A safetensors file of `tensors` with `metadata` (none at all when empty), written by the crate
/// as a PyTorch user's `save_file` would.
fn file(tensors: &[Raw], metadata: &[(&str, String)]) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, dtype, shape, bytes)| {
            (n.clone(), safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).unwrap())
        })
        .collect();
    let info: HashMap<String, String> = metadata.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    safetensors::serialize(views, (!info.is_empty()).then_some(info)).unwrap()
}

/// The metadata aegpu needs to rebuild `config`.
fn model_meta(config: &ModelConfig) -> Vec<(&'static str, String)> {
    vec![(keys::KIND, config.kind().to_string()), (keys::MODEL, config.to_json().unwrap())]
}

fn mismatch(bytes: &[u8]) -> (String, TensorMismatch, String) {
    match checkpoint::parse(bytes, Path::new("m.safetensors")) {
        Err(e @ Error::CheckpointMismatch { .. }) => {
            let msg = e.to_string();
            let Error::CheckpointMismatch { tensor, problem, .. } = e else { unreachable!() };
            (tensor, problem, msg)
        }
        Err(e) => panic!("expected a tensor mismatch, got: {e}"),
        Ok(_) => panic!("expected a tensor mismatch, the file loaded"),
    }
}

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("aegpu-checkpoints-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_tensor_mismatch_is_a_typed_error_naming_the_tensor() {
    let config = config();
    let meta = model_meta(&config);
    let good = tensors(&config, 1);
    let ckpt = checkpoint::parse(&file(&raw(&good), &meta), Path::new("m.safetensors")).unwrap();
    assert_eq!(ckpt.model, config);
    assert_eq!(ckpt.tensors, good, "tensors come back in the model's order with their values");

    let mut missing = raw(&good);
    missing.retain(|t| t.0 != "decoder.0.bias");
    let (tensor, problem, msg) = mismatch(&file(&missing, &meta));
    assert_eq!((tensor.as_str(), problem), ("decoder.0.bias", TensorMismatch::Missing { expected: vec![8] }));
    assert!(msg.contains("m.safetensors") && msg.contains("'decoder.0.bias' is missing"), "{msg}");

    let mut extra = raw(&good);
    extra.push(("decoder.4.weight".into(), Dtype::F32, vec![2, 2], vec![0; 16]));
    let (tensor, problem, msg) = mismatch(&file(&extra, &meta));
    assert_eq!(
        (tensor.as_str(), problem),
        ("decoder.4.weight", TensorMismatch::Unexpected { found: vec![2, 2] })
    );
    assert!(msg.contains("not a parameter of the model"), "{msg}");

    // encoder.0.weight saved [in, out] = [16, 8] instead of PyTorch's [out, in].
    let mut transposed = raw(&good);
    transposed[0].2 = vec![16, 8];
    let (tensor, problem, msg) = mismatch(&file(&transposed, &meta));
    let want = TensorMismatch::Transposed { expected: vec![8, 16], found: vec![16, 8] };
    assert_eq!((tensor.as_str(), problem), ("encoder.0.weight", want));
    assert!(msg.contains("transpose") && msg.contains("[out, in]"), "{msg}");

    let mut reshaped = raw(&good);
    let at = reshaped.iter().position(|t| t.0 == "encoder.2.weight").unwrap();
    reshaped[at].2 = vec![2, 16];
    let (tensor, problem, _) = mismatch(&file(&reshaped, &meta));
    let want = TensorMismatch::Shape { expected: vec![4, 8], found: vec![2, 16] };
    assert_eq!((tensor.as_str(), problem), ("encoder.2.weight", want));

    // A bias stored as float64: same name and shape, twice the bytes.
    let mut doubles = raw(&good);
    let at = doubles.iter().position(|t| t.0 == "encoder.0.bias").unwrap();
    doubles[at].1 = Dtype::F64;
    doubles[at].3 = [doubles[at].3.clone(), doubles[at].3.clone()].concat();
    let (tensor, problem, msg) = mismatch(&file(&doubles, &meta));
    assert_eq!((tensor.as_str(), problem), ("encoder.0.bias", TensorMismatch::Dtype { found: "F64".into() }));
    assert!(msg.contains("expected F32"), "{msg}");
}

#[test]
fn a_non_finite_weight_names_the_first_tensor_holding_one() {
    let config = config();
    let mut weights = tensors(&config, 2);
    let order: Vec<String> = weights.iter().map(|t| t.0.clone()).collect();
    let at = |name: &str| order.iter().position(|n| n == name).unwrap();
    weights[at("decoder.0.weight")].2[5] = f32::NAN;
    weights[at("decoder.2.bias")].2[0] = f32::INFINITY;
    let bytes = file(&raw(&weights), &model_meta(&config));
    match checkpoint::parse(&bytes, Path::new("d.safetensors")) {
        Err(e @ Error::NonFiniteWeights { .. }) => {
            let msg = e.to_string();
            let Error::NonFiniteWeights { tensor, index, value, .. } = e else { unreachable!() };
            assert_eq!((tensor.as_str(), index), ("decoder.0.weight", 5));
            assert!(value.is_nan());
            assert!(msg.contains("diverged") && msg.contains("--lr"), "{msg}");
        }
        Err(e) => panic!("expected NonFiniteWeights, got {e}"),
        Ok(_) => panic!("a NaN weight was accepted"),
    }
}

#[test]
fn invalid_metadata_is_an_error_naming_the_key() {
    let config = config();
    let weights = raw(&tensors(&config, 3));
    let with = |key: &'static str, value: &str| {
        let mut meta = model_meta(&config);
        meta.retain(|(k, _)| *k != key);
        meta.push((key, value.to_string()));
        checkpoint::parse(&file(&weights, &meta), Path::new("meta.safetensors"))
    };
    let optimizer = aegpu::kernels::optimizer::Optimizer::parse("adam", 1e-3, 0.0).unwrap();
    let train = aegpu::train::TrainConfig { epochs: 2, batch: 64, optimizer, seed: 7 };
    let ckpt = with(keys::TRAIN, &serde_json::to_string(&train).unwrap()).unwrap();
    assert_eq!(ckpt.train_config().unwrap().map(|t| t.seed), Some(7));
    // The matmul variants training ran are pinned when the checkpoint is restored.
    let policy = "narrow=tiled,wide=reg,large=tiled";
    let ckpt = with(keys::MATMUL, policy).unwrap();
    let gpu = gpu();
    let model = checkpoint::restore(&gpu, &ckpt, Path::new("meta.safetensors")).unwrap();
    assert_eq!(model.matmul_policy(&gpu).unwrap().name(), policy);
    let ckpt = with(keys::EPOCH, "3").unwrap();
    assert_eq!(ckpt.epoch().unwrap(), Some(3));
    assert_eq!(ckpt.step().unwrap(), None);
    for (key, value) in [
        (keys::TRAIN, "{not json"),
        (keys::TRAIN, r#"{"epochs":2}"#),
        (keys::EPOCH, "three"),
        (keys::STEP, "-1"),
        (keys::INPUT, "[1, 28]"),
        (keys::DATA, r#"{"kind":{"kind":"tape"}}"#),
        (keys::INIT, "he"),
        (keys::MODEL, r#"{"sizes":[16,4]}"#),
        (keys::KIND, "rnn"),
        (keys::MATMUL, "fastest"),
        (keys::MATMUL, "narrow=reg,wide=subgroup"),
    ] {
        match with(key, value) {
            Err(e @ Error::BadCheckpoint { .. }) => {
                let msg = e.to_string();
                let named = msg.contains(key) || (key == keys::KIND && msg.contains("rnn"));
                assert!(named && msg.contains("meta.safetensors"), "{key} = {value}: {msg}");
            }
            Err(e) => panic!("{key} = {value}: expected BadCheckpoint, got {e}"),
            Ok(_) => panic!("{key} = {value} was accepted"),
        }
    }
}

#[test]
fn the_same_weights_give_the_same_bytes() {
    let config = config();
    let weights = tensors(&config, 4);
    let mut meta = vec![
        ("aegpu.dataset", "mnist".to_string()),
        ("aegpu.epoch", "2".to_string()),
        ("aegpu.adapter", "test".to_string()),
        ("aegpu.init", "glorot".to_string()),
        ("aegpu.input", "[1,4,4]".to_string()),
    ];
    let a = checkpoint::encode(&config, &weights, &meta).unwrap();
    meta.reverse();
    let b = checkpoint::encode(&config, &weights, &meta).unwrap();
    assert!(a == b, "metadata order changed the bytes");
    // The header lists the metadata keys sorted, and the file reads back (crate and aegpu).
    let n = u64::from_le_bytes(a[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0, "the header keeps the 8-byte alignment");
    let header = std::str::from_utf8(&a[8..8 + n]).unwrap();
    let keys_at: Vec<usize> = [
        "aegpu.adapter",
        "aegpu.dataset",
        "aegpu.epoch",
        "aegpu.init",
        "aegpu.input",
        "aegpu.kind",
        "aegpu.model",
        "format",
    ]
    .iter()
    .map(|k| header.find(&format!("\"{k}\"")).unwrap_or_else(|| panic!("{k} not in {header}")))
    .collect();
    assert!(keys_at.windows(2).all(|w| w[0] < w[1]), "metadata keys not sorted: {header}");
    let back = checkpoint::parse(&a, Path::new("a.safetensors")).unwrap();
    assert_eq!(back.tensors, weights);
    assert_eq!(back.metadata.get("aegpu.dataset").map(String::as_str), Some("mnist"));
    let st = safetensors::SafeTensors::deserialize(&a).unwrap();
    assert_eq!(st.tensor("encoder.0.weight").unwrap().shape(), &[8, 16]);
}

/// The path training takes: two saves of one model (each building its own metadata map) give the
/// same file.
#[test]
fn saving_a_model_twice_gives_identical_files() {
    let gpu = gpu();
    let tmp = TempDir::new("twice");
    let model = Autoencoder::new(&gpu, config(), 5, Init::Glorot).unwrap();
    let meta: Vec<(&str, String)> = (0..12)
        .map(|i| (["aegpu.dataset", "aegpu.adapter", "x.a", "x.b", "x.c", "x.d"][i % 6], i.to_string()))
        .collect();
    let (a, b) = (tmp.0.join("a.safetensors"), tmp.0.join("b.safetensors"));
    checkpoint::save(&gpu, &model, &meta, &a).unwrap();
    checkpoint::save(&gpu, &model, &meta, &b).unwrap();
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(), "two saves differ");
}

/// A `state_dict` saved from PyTorch (`nn.Sequential` names, `[out, in]` weights, no aegpu
/// metadata) loads into a model of a given configuration, strictly; its values reach the GPU.
#[test]
fn a_pytorch_state_dict_loads_into_a_given_model() {
    let tmp = TempDir::new("torch");
    // Written by hand from docs/checkpoint-format.md: Linear, ReLU, Linear | Linear, ReLU, Linear.
    let shapes: [(&str, &[usize]); 8] = [
        ("encoder.0.weight", &[8, 16]),
        ("encoder.0.bias", &[8]),
        ("encoder.2.weight", &[4, 8]),
        ("encoder.2.bias", &[4]),
        ("decoder.0.weight", &[8, 4]),
        ("decoder.0.bias", &[8]),
        ("decoder.2.weight", &[16, 8]),
        ("decoder.2.bias", &[16]),
    ];
    let state: Vec<NamedTensor> = shapes
        .iter()
        .enumerate()
        .map(|(i, (n, s))| (n.to_string(), s.to_vec(), random_vec(s.iter().product(), 40 + i as u64)))
        .collect();
    let path = tmp.0.join("torch.safetensors");
    std::fs::write(&path, file(&raw(&state), &[])).unwrap();

    assert!(checkpoint::recorded_model(&path).unwrap().is_none());
    let err = checkpoint::load(&path).err().expect("a file without aegpu.model is not a checkpoint");
    assert!(err.to_string().contains("not an aegpu checkpoint"), "{err}");
    let ckpt = checkpoint::load_weights_for(&path, &config()).unwrap();
    assert_eq!(ckpt.model, config());
    assert_eq!(ckpt.tensors, state);

    // Another code width: the first tensor that differs is named.
    match checkpoint::load_weights_for(&path, &config_with_code(2)) {
        Err(Error::CheckpointMismatch { tensor, problem: TensorMismatch::Shape { .. }, .. }) => {
            assert_eq!(tensor, "encoder.2.weight")
        }
        other => panic!("expected a shape mismatch, got {:?}", other.err().map(|e| e.to_string())),
    }

    // Restored on the GPU, the model holds exactly those values.
    let gpu = gpu();
    let model = checkpoint::restore(&gpu, &ckpt, &path).unwrap();
    assert_eq!(model.export(&gpu).unwrap(), state);
    // Importing is strict too: one tensor more is refused.
    let mut more = state.clone();
    more.push(("decoder.3.weight".into(), vec![1], vec![0.0]));
    match model.import(&gpu, &more, &path) {
        Err(Error::CheckpointMismatch { tensor, problem: TensorMismatch::Unexpected { .. }, .. }) => {
            assert_eq!(tensor, "decoder.3.weight")
        }
        other => panic!("expected an unexpected tensor, got {:?}", other.err().map(|e| e.to_string())),
    }

    // With aegpu metadata, the file records its model.
    let saved = tmp.0.join("saved.safetensors");
    std::fs::write(&saved, checkpoint::encode(&config(), &state, &[]).unwrap()).unwrap();
    assert_eq!(checkpoint::recorded_model(&saved).unwrap(), Some(config()));
}
