//! The metadata a checkpoint records, read strictly: a key aegpu reads must parse when present (an
//! unreadable entry is an error naming it, never a silent default). Formats are listed in
//! `docs/checkpoint-format.md`.

use super::{Checkpoint, bad};
use crate::data::DataSource;
use crate::error::Result;
use crate::kernels::matmul_policy::MatmulPolicy;
use crate::models::Init;
use crate::train::TrainConfig;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::Path;

/// The metadata keys.
pub mod keys {
    /// `dense` or `conv` (absent: dense, as in checkpoints from before conv models).
    pub const KIND: &str = "aegpu.kind";
    /// The model configuration, JSON.
    pub const MODEL: &str = "aegpu.model";
    /// The training configuration (epochs, batch, optimizer, seed), JSON.
    pub const TRAIN: &str = "aegpu.train";
    /// How the weights were first drawn: `glorot` or `torch`.
    pub const INIT: &str = "aegpu.init";
    /// The data's name for logs (`mnist`, a folder's name, ...), free text.
    pub const DATASET: &str = "aegpu.dataset";
    /// The data source as the command line gave it, JSON.
    pub const DATA: &str = "aegpu.data";
    /// `[channels, rows, cols]` of an example, JSON.
    pub const INPUT: &str = "aegpu.input";
    /// The adapter that trained it, free text.
    pub const ADAPTER: &str = "aegpu.adapter";
    /// Epochs completed when it was written, a decimal integer.
    pub const EPOCH: &str = "aegpu.epoch";
    /// Optimiser steps taken when it was written, a decimal integer.
    pub const STEP: &str = "aegpu.step";
    /// The convolution algorithm of every configuration layer (`"direct"`, `"gemm"`, or `null` for
    /// a layer that is no convolution), JSON: evaluation runs the kernels training ran.
    pub const CONV_ALGORITHMS: &str = "aegpu.conv_algorithms";
    /// The matmul variant training ran (`reg`, `tiled`, `subgroup`), free text.
    pub const MATMUL: &str = "aegpu.matmul";
    /// How training stored hidden activations: `f32` or `f16` (absent: f32).
    pub const ACTIVATIONS: &str = "aegpu.activations";
}

/// Checks every key aegpu reads (`aegpu.model` is parsed with the model).
pub(super) fn validate(metadata: &BTreeMap<String, String>, path: &Path) -> Result<()> {
    parsed::<TrainConfig>(metadata, keys::TRAIN, path)?;
    parsed::<DataSource>(metadata, keys::DATA, path)?;
    parsed::<[usize; 3]>(metadata, keys::INPUT, path)?;
    parsed::<u64>(metadata, keys::EPOCH, path)?;
    parsed::<u64>(metadata, keys::STEP, path)?;
    parsed::<Vec<Option<crate::tune::ConvAlgorithm>>>(metadata, keys::CONV_ALGORITHMS, path)?;
    if let Some(init) = metadata.get(keys::INIT)
        && Init::parse(init).is_none()
    {
        return Err(bad(path, format!("its '{}' entry {init:?} is not glorot or torch", keys::INIT)));
    }
    if let Some(a) = metadata.get(keys::ACTIVATIONS)
        && crate::nn::ActivationStorage::parse(a).is_err()
    {
        return Err(bad(path, format!("its '{}' entry {a:?} is not f32 or f16", keys::ACTIVATIONS)));
    }
    if let Some(m) = metadata.get(keys::MATMUL)
        && MatmulPolicy::parse(m).is_none()
    {
        return Err(bad(
            path,
            format!("its '{}' entry {m:?} is not a matmul variant or policy", keys::MATMUL),
        ));
    }
    Ok(())
}

/// The JSON value of `key`, if present.
fn parsed<T: DeserializeOwned>(
    metadata: &BTreeMap<String, String>,
    key: &str,
    path: &Path,
) -> Result<Option<T>> {
    let Some(text) = metadata.get(key) else { return Ok(None) };
    serde_json::from_str(text).map(Some).map_err(|e| {
        bad(path, format!("its '{key}' entry {text:?} does not parse ({e}); the file was edited or damaged"))
    })
}

impl Checkpoint {
    /// The training configuration it records (`aegpu.train`).
    pub fn train_config(&self) -> Result<Option<TrainConfig>> {
        parsed(&self.metadata, keys::TRAIN, &self.path)
    }

    /// The data source it records (`aegpu.data`; absent in checkpoints of MNIST-only builds).
    pub fn data_source(&self) -> Result<Option<DataSource>> {
        parsed(&self.metadata, keys::DATA, &self.path)
    }

    /// The matmul variants training ran (`aegpu.matmul`), if recorded (checked when read).
    pub fn matmul_policy(&self) -> Option<MatmulPolicy> {
        self.metadata.get(keys::MATMUL).and_then(|m| MatmulPolicy::parse(m))
    }

    /// The convolution algorithms training ran (`aegpu.conv_algorithms`), if recorded.
    pub fn conv_algorithms(&self) -> Result<Option<Vec<Option<crate::tune::ConvAlgorithm>>>> {
        parsed(&self.metadata, keys::CONV_ALGORITHMS, &self.path)
    }

    /// Epochs completed when it was written (`aegpu.epoch`; absent in older checkpoints).
    pub fn epoch(&self) -> Result<Option<u64>> {
        parsed(&self.metadata, keys::EPOCH, &self.path)
    }

    /// Optimiser steps taken when it was written (`aegpu.step`; absent in older checkpoints).
    pub fn step(&self) -> Result<Option<u64>> {
        parsed(&self.metadata, keys::STEP, &self.path)
    }
}
