//! A trained model used as a codec: its encoder and decoder over many images ([`batch`]), code
//! files NumPy and PyTorch read ([`files`]), the compressed-image file ([`container`]), and image
//! files brought to the model's input shape ([`images`]).

pub mod baseline;
pub mod batch;
pub mod container;
pub mod files;
pub mod images;

pub use batch::{decode, encode, means, reconstruct};
