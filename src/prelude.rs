//! What an application that trains or uses autoencoders names: `use aegpu::prelude::*;`.
//!
//! The device ([`Gpu`]), a model ([`ModelConfig`] from a preset, a layer list or `--arch` text;
//! [`Autoencoder`]), data ([`Dataset`], [`GpuDataset`]), training ([`Trainer`], [`TrainConfig`],
//! [`Optimizer`], [`Evaluator`]), checkpoints ([`checkpoint`]), the frame-loop API
//! ([`TrainSession`], [`Decoder`], [`TextureDecode`], [`TextureEncoder`], [`EvalRecorder`]) and
//! errors ([`Error`], [`Result`]).

pub use crate::checkpoint;
pub use crate::data::{Dataset, DatasetName, FolderOptions, Split};
pub use crate::embed::{
    AtlasLayout, Decoder, EvalRecorder, StepOptions, TextureDecode, TextureEncoder, TrainSession, ValueMap,
};
pub use crate::error::{Error, Result};
pub use crate::gpu::{Gpu, GpuOptions};
pub use crate::kernels::Activation;
pub use crate::kernels::loss::LossKind;
pub use crate::kernels::optimizer::Optimizer;
pub use crate::models::conv::ConvConfig;
pub use crate::models::dense::{DenseConfig, Variational};
pub use crate::models::{Autoencoder, Init, ModelConfig};
pub use crate::run::Progress;
pub use crate::train::{EpochMetrics, Evaluator, GpuDataset, TrainConfig, Trainer};
