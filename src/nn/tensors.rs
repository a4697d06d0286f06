//! A batch's named tensors: one activation arena, looked up by name (`x`, `h3`, `dh3`, `z`, ...).

use crate::error::{Error, Result};
use crate::gpu::View;
use crate::runner::Arena;

/// How a network's hidden activations are stored during training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ActivationStorage {
    /// Every tensor f32.
    #[default]
    F32,
    /// Opt-in: the outputs of dense layers that only feed the next dense layer are stored as f16
    /// (two per word; `Features::SHADER_F16`), read and written by the SGEMM with f32 arithmetic.
    /// Gradients, parameters, the code and the reconstruction stay f32.
    F16,
}

impl ActivationStorage {
    /// Parses `f32` or `f16` (the `--activations` flag).
    pub fn parse(s: &str) -> Result<ActivationStorage> {
        match s.trim().to_lowercase().as_str() {
            "f32" | "32" => Ok(ActivationStorage::F32),
            "f16" | "16" | "half" => Ok(ActivationStorage::F16),
            other => Err(Error::Config(format!("--activations '{other}': use f32 or f16"))),
        }
    }

    /// The `--activations` spelling: `f32` or `f16`.
    pub fn name(self) -> &'static str {
        match self {
            ActivationStorage::F32 => "f32",
            ActivationStorage::F16 => "f16",
        }
    }
}

/// Every tensor of a network for one batch size, in one arena.
pub struct Tensors {
    /// The one buffer holding every tensor, with its name → range table.
    pub arena: Arena,
    /// Examples per batch the tensors are sized for.
    pub batch: usize,
    /// Tensors stored as f16 (two values per word).
    half: Vec<String>,
}

impl Tensors {
    /// Tensors all stored as f32.
    pub fn new(arena: Arena, batch: usize) -> Tensors {
        Tensors { arena, batch, half: Vec::new() }
    }

    /// Tensors whose `half` ones are stored as f16 (laid out at half their length in words).
    pub fn with_half(arena: Arena, batch: usize, half: Vec<String>) -> Tensors {
        Tensors { arena, batch, half }
    }

    /// Whether tensor `name` is stored as f16.
    pub fn is_half(&self, name: &str) -> bool {
        self.half.iter().any(|h| h == name)
    }

    /// Tensor `name`.
    ///
    /// # Panics
    /// If the layout has no such tensor: names come from the network that laid the arena out, so a
    /// missing one is a bug in a layer, never a user error.
    pub fn view(&self, name: &str) -> View {
        self.arena.named(name).unwrap_or_else(|| panic!("no tensor '{name}' in the activation arena"))
    }

    /// The gradient of tensor `name`.
    pub fn grad(&self, name: &str) -> View {
        self.view(&format!("d{name}"))
    }

    /// Tensor `name`, if the layout has it (optional scratch such as a penalty's total).
    pub fn get(&self, name: &str) -> Option<View> {
        self.arena.named(name)
    }
}
