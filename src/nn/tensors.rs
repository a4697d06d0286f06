//! A batch's named tensors: one activation arena, looked up by name (`x`, `h3`, `dh3`, `z`, ...).

use crate::gpu::View;
use crate::runner::Arena;

/// Every tensor of a network for one batch size, in one arena.
pub struct Tensors {
    pub arena: Arena,
    pub batch: usize,
}

impl Tensors {
    pub fn new(arena: Arena, batch: usize) -> Tensors {
        Tensors { arena, batch }
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
