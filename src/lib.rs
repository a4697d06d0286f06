//! Autoencoders trained and used on any GPU that wgpu reaches (Vulkan, Metal, DX12), with
//! hand-written WGSL kernels and no autodiff: every model stores its forward and its backward pass
//! as explicit lists of kernel calls, and every kernel has a plain-Rust CPU reference.
//!
//! # Start here
//!
//! [`prelude`] brings what an application uses. Open a device (or borrow yours with
//! [`Gpu::from_device`]), describe a model, put a dataset on the GPU, train, then decode:
//!
//! ```
//! use aegpu::prelude::*;
//!
//! # fn main() -> aegpu::Result<()> {
//! let gpu = match Gpu::new(&GpuOptions::default()) {
//!     Err(Error::NoAdapter { .. }) => return Ok(()), // no GPU driver on this machine
//!     other => other?,
//! };
//! let data = aegpu::data::synthetic(2048, 28, 28, 10, 7); // or data::load, load_folder, load_npy
//! let config = ModelConfig::preset("shallow", [1, 28, 28], LossKind::Bce)?;
//! let model = Autoencoder::new(&gpu, config, 0, Init::Glorot)?;
//! let train = GpuDataset::upload(&gpu, &data)?;
//! let optimizer = Optimizer::parse("adam", 1e-3, 0.0)?;
//! let mut trainer = Trainer::new(&gpu, &model, &train, TrainConfig { epochs: 1, batch: 128, optimizer, seed: 0 })?;
//! let loss = trainer.epoch(1, |_, _| {})?;
//! let images = aegpu::generate::decode(&gpu, &model, &vec![0.5; 4 * model.code_width()])?;
//! assert_eq!(images.len(), 4 * 784);
//! # let _ = loss;
//! # Ok(())
//! # }
//! ```
//!
//! # The crate
//!
//! - [`gpu`]: the device, owned or lent by a host; [`error`]: the one error type.
//! - [`models`]: configurations (dense, conv, `--arch` text, presets) and the [`Autoencoder`];
//!   [`data`]: MNIST / Fashion-MNIST IDX files, image folders, CIFAR-10, `.npy`, patches.
//! - [`train`]: the [`Trainer`] and the [`Evaluator`]; [`run`]: whole runs with progress reports;
//!   [`checkpoint`]: safetensors files PyTorch reads.
//! - [`embed`]: the engine inside a host's frame loop: steps, evaluation and decoding recorded into
//!   the host's own encoder, textures in and out; nothing submits or waits behind its back.
//! - [`generate`]: decode, sample, grids, interpolation, denoising; [`classify`], [`layerwise`],
//!   [`recirculation`]: the pre-training procedures.
//! - [`kernels`]: one launcher per WGSL shader; [`expert`]: the layers below (CPU references,
//!   layers, plans, kernel tuning, profiling) for tools, tests and kernel authors.
//! - With features: `viz` (PNG pictures), `codec` (codes and compression), `pca`, `bench`.
//!
//! # Features
//!
//! `default = ["cli"]`: the `aegpu` binary and everything its commands use. A host application
//! takes `default-features = false`: the engine, with none of clap, indicatif or ctrlc, and adds
//! `images` (folders of PNG/JPEG in, PNG pictures out), `npy`, `pca` or `bench` as it needs them.
//! Without one of them, the functions that need it return [`Error::FeatureDisabled`].
#![deny(missing_docs)]

pub mod checkpoint;
pub mod classify;
pub mod data;
pub mod embed;
pub mod error;
pub mod generate;
pub mod gpu;
pub mod kernels;
pub mod layerwise;
pub mod models;
pub mod prelude;
pub mod recirculation;
pub mod run;
pub mod train;

#[cfg(feature = "bench")]
pub mod bench;
#[cfg(all(feature = "images", feature = "npy"))]
pub mod codec;
#[cfg(all(feature = "pca", feature = "images", feature = "npy"))]
pub mod pca;
#[cfg(feature = "images")]
pub mod viz;

pub mod expert;
// Inside the crate these are still `crate::runner`, `crate::tune`, ... (one name for each file).
pub(crate) use expert::{atomic_file, cpu, evaluate, gpu_data, nn, profile, runner, steps, tune};

pub use checkpoint::{Checkpoint, restore, save};
pub use error::{Error, Result};
pub use gpu::{Gpu, GpuOptions};
pub use models::{Autoencoder, Init, ModelConfig};
pub use train::{Evaluator, GpuDataset, TrainConfig, Trainer};
