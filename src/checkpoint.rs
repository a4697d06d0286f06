//! Checkpoints as safetensors files a PyTorch user can open: weights in PyTorch's layouts (`[out, in]`,
//! `[out, in, kh, kw]`, `[in, out, kh, kw]` for transposed convolutions) named like `nn.Sequential`
//! encoder/decoder modules (`encoder.0.weight`, `decoder.4.bias`, ...), and the model family, model and
//! training configuration as JSON in the metadata (`aegpu.kind`, `aegpu.model`, `aegpu.train`,
//! `aegpu.dataset`, ...; every key is described in `docs/checkpoint-format.md`). A checkpoint without
//! `aegpu.kind` holds a dense model.
//!
//! Loading is strict: the tensors must be exactly the parameters of the model the metadata describes
//! (names, shapes, float32), every weight finite, and every metadata key aegpu reads must parse.
//! Saving is deterministic: the same weights and metadata give the same bytes.

mod encode;
mod meta;

pub use encode::encode;
pub use meta::keys;

use crate::error::{Error, Result, TensorMismatch};
use crate::gpu::Gpu;
use crate::models::{Autoencoder, ModelConfig, NamedTensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a checkpoint holds, read back and checked.
pub struct Checkpoint {
    /// The file it came from (named in errors about it).
    pub path: PathBuf,
    /// The architecture, from `aegpu.kind` and `aegpu.model`.
    pub model: ModelConfig,
    /// The rest of the metadata (training config, dataset name, epoch, ...), without `aegpu.model`
    /// and `aegpu.kind`.
    pub metadata: BTreeMap<String, String>,
    /// The model's parameters in its layer order: (name, PyTorch shape, values).
    pub tensors: Vec<NamedTensor>,
}

/// Writes the model's parameters and `metadata` (plus the model config) to `path`, atomically
/// (a temporary file renamed into place, so an interrupted run never leaves half a checkpoint).
///
/// ```
/// use aegpu::prelude::*;
///
/// # fn main() -> aegpu::Result<()> {
/// let gpu = match Gpu::new(&GpuOptions::default()) {
///     Err(Error::NoAdapter { .. }) => return Ok(()), // no GPU driver on this machine
///     other => other?,
/// };
/// let model = Autoencoder::new(&gpu, ModelConfig::preset("shallow", [1, 28, 28], LossKind::Bce)?, 0, Init::Glorot)?;
/// let path = std::env::temp_dir().join(format!("aegpu-doc-{}.safetensors", std::process::id()));
/// checkpoint::save(&gpu, &model, &[("note", "a doc example".into())], &path)?;
///
/// let ckpt = checkpoint::load(&path)?; // checks every tensor against the recorded model
/// let restored = checkpoint::restore(&gpu, &ckpt, &path)?;
/// assert_eq!(restored.export(&gpu)?, model.export(&gpu)?);
/// # std::fs::remove_file(&path).ok();
/// # Ok(())
/// # }
/// ```
pub fn save(gpu: &Gpu, model: &Autoencoder, metadata: &[(&str, String)], path: &Path) -> Result<()> {
    save_tensors(&model.config, &model.export(gpu)?, metadata, path)
}

/// [`save`] of tensors already on the host (e.g. averaged weights) for a model of `config`.
pub fn save_tensors(
    config: &ModelConfig,
    tensors: &[NamedTensor],
    metadata: &[(&str, String)],
    path: &Path,
) -> Result<()> {
    let data = encode(config, tensors, metadata)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    crate::atomic_file::write_atomic(path, &data)
}

/// Reads a checkpoint written by [`save`] and checks it against the model its metadata describes.
pub fn load(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes, path)
}

/// [`load`] on bytes already read (`path` only names them in errors). Needs no GPU.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
    let mut metadata = read_metadata(bytes, path)?;
    let model = model_from(&metadata, path)?
        .ok_or_else(|| bad(path, "no 'aegpu.model' entry in the metadata: not an aegpu checkpoint"))?;
    metadata.remove(keys::MODEL);
    metadata.remove(keys::KIND);
    let tensors = read_tensors(bytes, path, &model)?;
    Ok(Checkpoint { path: path.to_path_buf(), model, metadata, tensors })
}

/// Reads the weights of `path` for a model of `config`, with the same strict checks as [`load`]:
/// for files that may lack aegpu's metadata, such as a `state_dict` saved from PyTorch with the
/// names and layouts of `docs/checkpoint-format.md` (`safetensors.torch.save_file`). Metadata that
/// is present is checked and kept; `aegpu.model`, if any, is not used (see [`recorded_model`]).
pub fn load_weights_for(path: &Path, config: &ModelConfig) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut metadata = read_metadata(&bytes, path)?;
    model_from(&metadata, path)?;
    metadata.remove(keys::MODEL);
    metadata.remove(keys::KIND);
    let tensors = read_tensors(&bytes, path, config)?;
    Ok(Checkpoint { path: path.to_path_buf(), model: config.clone(), metadata, tensors })
}

/// The model a file's metadata records (`aegpu.kind` + `aegpu.model`), or `None` for a file without
/// it (one saved by PyTorch); an entry that does not parse is an error.
pub fn recorded_model(path: &Path) -> Result<Option<ModelConfig>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    model_from(&read_metadata(&bytes, path)?, path)
}

/// Builds the model a checkpoint describes, on `gpu`, with the training seed it records as the
/// seed of its noise (a VAE's ε at evaluation; 0 when it records none).
pub fn restore(gpu: &Gpu, ckpt: &Checkpoint, path: &Path) -> Result<Autoencoder> {
    let seed = ckpt.train_config()?.map_or(0, |t| t.seed);
    let mut model = Autoencoder::zeroed(gpu, ckpt.model.clone(), seed)?;
    // The kernels training ran, so that evaluation computes what training measured.
    if let Some(chosen) = ckpt.conv_algorithms()? {
        model.set_conv_algorithms(&chosen).map_err(|e| bad(path, e))?;
    }
    // The same for the matmul variants, where this device runs them all (else the tuned ones run,
    // and the figures may differ in the last bits; by the f16 rounding of the operands, for a run
    // on cooperative tiles with f16 operands evaluated where they are not available).
    if let Some(policy) = ckpt.matmul_policy() {
        let _ = model.pin_matmul_policy(gpu, policy);
    }
    model.import(gpu, &ckpt.tensors, path)?;
    Ok(model)
}

/// The header's metadata, every key aegpu reads checked.
fn read_metadata(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, String>> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(path, e))?;
    let metadata: BTreeMap<String, String> =
        header.metadata().clone().unwrap_or_default().into_iter().collect();
    meta::validate(&metadata, path)?;
    Ok(metadata)
}

fn model_from(metadata: &BTreeMap<String, String>, path: &Path) -> Result<Option<ModelConfig>> {
    let Some(json) = metadata.get(keys::MODEL) else { return Ok(None) };
    let kind = metadata.get(keys::KIND).map(String::as_str);
    ModelConfig::from_json(kind, json)
        .map(Some)
        .map_err(|e| bad(path, format!("its '{}' entry: {e}", keys::MODEL)))
}

/// The tensors of `bytes` as the parameters of `config`, in its order: names and shapes as the
/// model has them, float32, finite.
fn read_tensors(bytes: &[u8], path: &Path, config: &ModelConfig) -> Result<Vec<NamedTensor>> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(path, e))?;
    let found: Vec<(String, Vec<usize>)> =
        st.iter().map(|(name, view)| (name.to_string(), view.shape().to_vec())).collect();
    let expected = config.parameters().map_err(|e| bad(path, e))?;
    crate::models::strict::check_tensors(path, &expected, &found)?;
    let mut tensors = Vec::with_capacity(expected.len());
    for (name, shape) in expected {
        let view = st.tensor(&name).map_err(|e| bad(path, e))?;
        if view.dtype() != safetensors::Dtype::F32 {
            let problem = TensorMismatch::Dtype { found: format!("{:?}", view.dtype()) };
            return Err(Error::CheckpointMismatch { path: path.to_path_buf(), tensor: name, problem });
        }
        let values = bytemuck::pod_collect_to_vec::<u8, f32>(view.data());
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFiniteWeights { path: path.to_path_buf(), tensor: name, index, value });
        }
        tensors.push((name, shape, values));
    }
    Ok(tensors)
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::BadCheckpoint { path: path.to_path_buf(), reason: reason.to_string() }
}
