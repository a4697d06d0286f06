//! Autoencoder variants: each stores its parameter layout, forward list and backward list.
pub mod dense;
