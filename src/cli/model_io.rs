//! Opening a checkpoint for the tool commands (encode, decode, compress, decompress, filters,
//! pca --checkpoint): the model on a fresh GPU, its input shape, and the data it was trained on
//! when a command needs a dataset split. (`tools.rs` has its own for eval/sample/...; this one does
//! not load any data until asked.)

use std::path::Path;

use super::DataArgs;
use aegpu::checkpoint::{self, Checkpoint};
use aegpu::data::DataSource;
use aegpu::error::{Error, Result};
use aegpu::gpu::{Gpu, GpuOptions};
use aegpu::models::Autoencoder;

/// A checkpoint's model on a fresh GPU, with what the file holds.
pub(super) struct Opened {
    pub gpu: Gpu,
    pub model: Autoencoder,
    pub ckpt: Checkpoint,
}

impl Opened {
    /// `[channels, rows, cols]` of the model's input: what the checkpoint records (`aegpu.input`);
    /// a conv model's own input shape; a 784-value dense model without the record is MNIST's
    /// `1x28x28`; other dense inputs are a square grey image when they can be.
    pub fn shape(&self) -> [usize; 3] {
        let dim = self.model.input_dim();
        let recorded =
            self.ckpt.metadata.get("aegpu.input").and_then(|j| serde_json::from_str::<[usize; 3]>(j).ok());
        if let Some(s) = recorded.filter(|s| s.iter().product::<usize>() == dim) {
            return s;
        }
        let [c, h, w] = self.model.net.input;
        if h > 1 || w > 1 {
            return [c, h, w];
        }
        let side = (dim as f64).sqrt().round() as usize;
        if side * side == dim { [1, side, side] } else { [1, 1, dim] }
    }
}

pub(super) fn open_model(path: &Path) -> Result<Opened> {
    let ckpt = checkpoint::load(path)?;
    let gpu = Gpu::new(&GpuOptions::default())?;
    let model = checkpoint::restore(&gpu, &ckpt, path)?;
    Ok(Opened { gpu, model, ckpt })
}

/// The data a checkpoint was trained on (its `aegpu.data`), or MNIST / Fashion-MNIST when
/// `dataset` or `dir` is given (and for checkpoints from before sources were recorded).
pub(super) fn checkpoint_source(
    ckpt: &Checkpoint,
    path: &Path,
    dataset: Option<&str>,
    dir: Option<&Path>,
) -> Result<DataSource> {
    match (ckpt.metadata.get("aegpu.data"), dataset, dir) {
        (Some(json), None, None) => {
            serde_json::from_str::<DataSource>(json).map_err(|e| Error::BadCheckpoint {
                path: path.to_path_buf(),
                reason: format!("its 'aegpu.data' entry is not a data source: {e}"),
            })
        }
        _ => {
            let name = dataset.map(str::to_string).or_else(|| ckpt.metadata.get("aegpu.dataset").cloned());
            DataArgs::idx(name.as_deref().unwrap_or("mnist"), dir.map(Path::to_path_buf)).source()
        }
    }
}

/// An error unless `dim` values per example fit the model.
pub(super) fn check_input(model: &Autoencoder, dim: usize, what: &str) -> Result<()> {
    if dim != model.input_dim() {
        let [c, h, w] = model.net.input;
        return Err(Error::Shape(format!(
            "{what} have {dim} values per example but the checkpoint's model takes {} ({c}x{h}x{w})",
            model.input_dim()
        )));
    }
    Ok(())
}
