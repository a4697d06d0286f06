//! Checkpoint bytes, the same for the same weights and metadata. The safetensors crate writes the
//! tensors (sorted by name; all float32) but takes the metadata as a `HashMap`, whose order differs
//! from one map to the next, so the metadata object is spliced into its header with sorted keys.

use crate::error::{Error, Result};
use crate::models::{ModelConfig, NamedTensor};
use std::collections::BTreeMap;

/// The bytes of a checkpoint of a `config` model: `tensors` as float32 with their shapes, and
/// `metadata` plus `aegpu.kind`, `aegpu.model` and `format: pt` (which tells `safetensors.torch`
/// the tensors are PyTorch's). Needs no GPU; [`super::save`] writes what it returns.
pub fn encode(config: &ModelConfig, tensors: &[NamedTensor], metadata: &[(&str, String)]) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(name, shape, values)| {
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                shape.clone(),
                bytemuck::cast_slice(values),
            )
            .map(|view| (name.as_str(), view))
            .map_err(|e| Error::Shape(format!("tensor '{name}' of shape {shape:?}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let plain = safetensors::serialize(views, None)
        .map_err(|e| Error::Shape(format!("the tensors do not make a safetensors file: {e}")))?;

    let mut info: BTreeMap<&str, String> = metadata.iter().map(|(k, v)| (*k, v.clone())).collect();
    info.insert(super::keys::KIND, config.kind().into());
    info.insert(super::keys::MODEL, config.to_json()?);
    info.insert("format", "pt".into());
    let info = serde_json::to_string(&info).map_err(|e| Error::Config(e.to_string()))?;

    // The crate's header is `{"name":{...},...}` padded with spaces to 8 bytes; the data follows,
    // at offsets relative to the header's end, so a longer header moves nothing.
    let header_len = u64::from_le_bytes(plain[..8].try_into().expect("8 bytes")) as usize;
    let tensors_json =
        std::str::from_utf8(&plain[8..8 + header_len]).expect("the crate writes JSON").trim_end();
    let entries = &tensors_json[1..tensors_json.len() - 1];
    let mut header = format!("{{\"__metadata__\":{info}");
    if !entries.is_empty() {
        header.push(',');
        header.push_str(entries);
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let data = &plain[8 + header_len..];
    let mut out = Vec::with_capacity(8 + header.len() + data.len());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    Ok(out)
}
