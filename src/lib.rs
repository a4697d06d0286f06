//! aegpu: autoencoders trained on any GPU that wgpu reaches, with hand-written WGSL kernels.
//!
//! Layout: [`gpu`] (device, buffers, pipelines), [`kernels`] (one launcher per shader),
//! [`cpu`] (reference of every kernel), [`runner`] (arenas and plans), [`models`] (each
//! autoencoder's explicit forward and backward lists), [`data`], [`gpu_data`] (datasets as the GPU
//! reads them), [`train`], [`checkpoint`], [`viz`], and [`embed`] (the engine inside a host's frame
//! loop: steps, evaluation and decoding recorded into the host's encoder, textures in and out).
pub mod atomic_file;
pub mod average;
#[cfg(feature = "bench")]
pub mod bench;
pub mod checkpoint;
pub mod classify;
#[cfg(all(feature = "images", feature = "npy"))]
pub mod codec;
pub mod cpu;
pub mod data;
pub mod embed;
pub mod error;
pub mod evaluate;
pub mod generate;
pub mod gpu;
pub mod gpu_data;
pub mod kernels;
pub mod layerwise;
pub mod models;
pub mod nn;
#[cfg(all(feature = "pca", feature = "images", feature = "npy"))]
pub mod pca;
pub mod profile;
pub mod recirculation;
pub mod resume;
pub mod run;
pub mod runner;
pub mod steps;
pub mod train;
pub mod tune;
#[cfg(feature = "images")]
pub mod viz;

pub use error::{Error, Result};
