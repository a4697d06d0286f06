//! Checkpoints as safetensors files a PyTorch user can open: weights in PyTorch's layouts (`[out, in]`,
//! `[out, in, kh, kw]`, `[in, out, kh, kw]` for transposed convolutions) named like `nn.Sequential`
//! encoder/decoder modules (`encoder.0.weight`, `decoder.4.bias`, ...), and the model family, model and
//! training configuration as JSON in the metadata (`aegpu.kind`, `aegpu.model`, `aegpu.train`,
//! `aegpu.dataset`). A checkpoint without `aegpu.kind` holds a dense model.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::models::{Autoencoder, ModelConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What a checkpoint holds, read back.
pub struct Checkpoint {
    pub model: ModelConfig,
    /// The rest of the metadata (training config, dataset name, ...).
    pub metadata: HashMap<String, String>,
    pub tensors: Vec<(String, Vec<f32>)>,
}

/// Writes the model's parameters and `metadata` (plus the model config) to `path`, atomically
/// (a temporary file renamed into place, so an interrupted run never leaves half a checkpoint).
pub fn save(gpu: &Gpu, model: &Autoencoder, metadata: &[(&str, String)], path: &Path) -> Result<()> {
    let tensors = model.export(gpu)?;
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape, values)| (name, shape, bytemuck::cast_slice(&values).to_vec()))
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| bad(path, e))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut info: HashMap<String, String> =
        metadata.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    info.insert("aegpu.kind".into(), model.kind().into());
    info.insert("aegpu.model".into(), model.config_json().map_err(|e| bad(path, e))?);
    info.insert("format".into(), "pt".into());
    let data = safetensors::serialize(views, Some(info)).map_err(|e| bad(path, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    std::fs::write(&tmp, data).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Reads a checkpoint written by [`save`].
pub fn load(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(path, e))?;
    let mut metadata = meta.metadata().clone().unwrap_or_default();
    let model_json = metadata
        .remove("aegpu.model")
        .ok_or_else(|| bad(path, "no 'aegpu.model' entry in the metadata: not an aegpu checkpoint"))?;
    let kind = metadata.remove("aegpu.kind");
    let model = ModelConfig::from_json(kind.as_deref(), &model_json).map_err(|e| bad(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(path, e))?;
    let mut tensors = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(bad(path, format!("tensor '{name}' is {:?}, expected F32", view.dtype())));
        }
        tensors.push((name, bytemuck::pod_collect_to_vec::<u8, f32>(view.data())));
    }
    Ok(Checkpoint { model, metadata, tensors })
}

/// Builds the model a checkpoint describes, on `gpu`.
pub fn restore(gpu: &Gpu, ckpt: &Checkpoint, path: &Path) -> Result<Autoencoder> {
    // The model's noise seed (a VAE's ε at evaluation) is the training seed, kept in the metadata.
    let seed = ckpt
        .metadata
        .get("aegpu.train")
        .and_then(|t| serde_json::from_str::<crate::train::TrainConfig>(t).ok())
        .map_or(0, |t| t.seed);
    let model = Autoencoder::zeroed(gpu, ckpt.model.clone(), seed)?;
    model.import(gpu, &ckpt.tensors).map_err(|e| bad(path, e))?;
    Ok(model)
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::BadCheckpoint { path: path.to_path_buf(), reason: reason.to_string() }
}
