//! aegpu: autoencoders trained on any GPU that wgpu reaches, with hand-written WGSL kernels.
//!
//! Layout: [`gpu`] (device, buffers, pipelines), [`kernels`] (one launcher per shader),
//! [`cpu`] (reference of every kernel), [`runner`] (arenas and plans), [`models`] (each
//! autoencoder's explicit forward and backward lists), [`data`], [`gpu_data`] (datasets as the GPU
//! reads them), [`train`], [`checkpoint`], [`viz`].
pub mod atomic_file;
pub mod bench;
pub mod checkpoint;
pub mod classify;
pub mod cli;
pub mod cpu;
pub mod data;
pub mod error;
pub mod generate;
pub mod gpu;
pub mod gpu_data;
pub mod kernels;
pub mod layerwise;
pub mod models;
pub mod nn;
pub mod pca;
pub mod recirculation;
pub mod resume;
pub mod run;
pub mod runner;
pub mod steps;
pub mod train;
pub mod tune;
pub mod viz;

pub use error::{Error, Result};
