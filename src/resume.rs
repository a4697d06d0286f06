//! The state that makes a training run resumable, as one safetensors file (`state.safetensors`,
//! written atomically after every epoch and when a run is interrupted): the parameters and the
//! optimiser's moments by tensor name, the position (epoch and batch) and step counter, the loss
//! log of an interrupted epoch's finished steps, the metrics history, and the configuration that
//! rebuilds the run (model, data source, training settings). Training is deterministic given these,
//! so a resumed run gives bit-identical weights and metrics to an uninterrupted one.

use crate::atomic_file::write_atomic;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::models::Autoencoder;
use crate::run::Position;
use crate::train::{EpochMetrics, Trainer};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The file name of the resume state inside a run folder.
pub const STATE_FILE: &str = "state.safetensors";

/// Prefixes of the optimiser moments' tensor names (SGD keeps its momentum in `m`).
const M: &str = "optimizer.m.";
const V: &str = "optimizer.v.";
const LOSS_LOG: &str = "loss_log";

/// A run's state between two steps.
pub struct TrainState {
    /// Where the run continues.
    pub position: Position,
    /// Optimiser steps taken.
    pub step: u64,
    /// Metrics of every finished epoch, in order.
    pub history: Vec<EpochMetrics>,
    /// The caller's configuration entries (model, data, training settings), kept verbatim.
    pub config: BTreeMap<String, String>,
    /// Parameters, moments and the loss log, by name.
    tensors: Vec<(String, Vec<f32>)>,
}

impl TrainState {
    /// Reads the state off the GPU: `model`'s parameters and moments and the loss log of the
    /// current epoch's steps before `position.batch`.
    pub fn capture(
        gpu: &Gpu,
        model: &Autoencoder,
        trainer: &Trainer,
        position: Position,
        history: &[EpochMetrics],
        config: BTreeMap<String, String>,
    ) -> Result<TrainState> {
        let params = model.params.buffer.read_all_f32(gpu)?;
        let m = model.opt_m.read_all_f32(gpu)?;
        let v = model.opt_v.read_all_f32(gpu)?;
        let mut tensors = Vec::new();
        for (name, at, len) in &model.params.layout.entries {
            tensors.push((name.clone(), params[*at..at + len].to_vec()));
            tensors.push((format!("{M}{name}"), m[*at..at + len].to_vec()));
            tensors.push((format!("{V}{name}"), v[*at..at + len].to_vec()));
        }
        if position.batch > 0 {
            tensors.push((LOSS_LOG.into(), trainer.loss_log_prefix(position.batch)?));
        }
        let step = trainer.steps_done();
        Ok(TrainState { position, step, history: history.to_vec(), config, tensors })
    }

    /// Writes the parameters and moments into `model` and the step and loss log into `trainer`.
    /// Every tensor of the model must be there with its exact length.
    pub fn restore(&self, gpu: &Gpu, model: &Autoencoder, trainer: &mut Trainer) -> Result<()> {
        let find = |name: &str, len: usize| -> Result<&[f32]> {
            let (_, values) = self.tensors.iter().find(|(n, _)| n == name).ok_or_else(|| {
                Error::Shape(format!("the resume state has no tensor '{name}': it is not this model's"))
            })?;
            if values.len() != len {
                return Err(Error::Shape(format!(
                    "the resume state's '{name}' has {} values, the model's {len}",
                    values.len()
                )));
            }
            Ok(values)
        };
        for (name, at, len) in &model.params.layout.entries {
            model.params.buffer.write(gpu, *at, find(name, *len)?);
            model.opt_m.write(gpu, *at, find(&format!("{M}{name}"), *len)?);
            model.opt_v.write(gpu, *at, find(&format!("{V}{name}"), *len)?);
        }
        let log = self.tensors.iter().find(|(n, _)| n == LOSS_LOG).map_or(&[][..], |(_, v)| v);
        trainer.restore(self.step, log)
    }

    /// Adds a tensor the caller keeps with the run (e.g. the weight average), under `name`.
    pub fn add_tensor(&mut self, name: &str, values: Vec<f32>) {
        self.tensors.push((name.to_string(), values));
    }

    /// A tensor added with [`TrainState::add_tensor`].
    pub fn tensor(&self, name: &str) -> Option<&[f32]> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, v)| &v[..])
    }

    /// The first tensor holding a NaN or an infinity, if any.
    pub fn non_finite(&self) -> Option<&str> {
        self.tensors.iter().find(|(_, v)| v.iter().any(|x| !x.is_finite())).map(|(n, _)| n.as_str())
    }

    /// Writes the state to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bad = |e: &dyn std::fmt::Display| bad(path, e);
        let views = self
            .tensors
            .iter()
            .map(|(name, values)| {
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    vec![values.len()],
                    bytemuck::cast_slice(values),
                )
                .map(|view| (name.clone(), view))
                .map_err(|e| bad(&e))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut meta: HashMap<String, String> = self.config.clone().into_iter().collect();
        let position = serde_json::to_string(&self.position).map_err(|e| bad(&e))?;
        let history = serde_json::to_string(&self.history).map_err(|e| bad(&e))?;
        meta.insert("aegpu.position".into(), position);
        meta.insert("aegpu.step".into(), self.step.to_string());
        meta.insert("aegpu.history".into(), history);
        let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| bad(&e))?;
        write_atomic(path, &bytes)
    }

    /// Reads a state written by [`TrainState::save`].
    pub fn load(path: &Path) -> Result<TrainState> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(path, e))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(path, e))?;
        let mut config: BTreeMap<String, String> =
            header.metadata().clone().unwrap_or_default().into_iter().collect();
        let mut take = |key: &str| {
            config.remove(key).ok_or_else(|| bad(path, format!("no '{key}' entry: not a resume state")))
        };
        let position: Position = serde_json::from_str(&take("aegpu.position")?)
            .map_err(|e| bad(path, format!("aegpu.position: {e}")))?;
        let step: u64 = take("aegpu.step")?.parse().map_err(|e| bad(path, format!("aegpu.step: {e}")))?;
        let history: Vec<EpochMetrics> = serde_json::from_str(&take("aegpu.history")?)
            .map_err(|e| bad(path, format!("aegpu.history: {e}")))?;
        let mut tensors = Vec::new();
        for (name, view) in st.tensors() {
            if view.dtype() != safetensors::Dtype::F32 || view.shape().len() != 1 {
                return Err(bad(path, format!("tensor '{name}' is not a 1-D F32 tensor")));
            }
            tensors.push((name, bytemuck::pod_collect_to_vec::<u8, f32>(view.data())));
        }
        Ok(TrainState { position, step, history, config, tensors })
    }
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::BadCheckpoint { path: path.to_path_buf(), reason: reason.to_string() }
}
