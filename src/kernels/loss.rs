//! Launcher for `shaders/loss.wgsl`: fused reconstruction loss + gradient, reduced deterministically.

use super::{Activation, Launch, grid_1d, reduce};
use crate::error::{Error, Result};
use crate::gpu::View;
use crate::gpu::{PipelineKey, Shader};

/// `shaders/loss.wgsl`.
pub const SHADER: Shader = Shader { name: "loss", source: include_str!("../../shaders/loss.wgsl") };

/// Reconstruction losses, both reported per pixel (mean over batch and features).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Squared error `(y - t)²` of the output y against the target t (the clean input).
    Mse,
    /// Binary cross-entropy on logits; needs a sigmoid output.
    Bce,
}

impl LossKind {
    /// The shader's `kind` id: 0 MSE, 1 BCE.
    pub fn id(self) -> u32 {
        match self {
            LossKind::Mse => 0,
            LossKind::Bce => 1,
        }
    }

    /// Parses `mse` or `bce` (any case); `None` otherwise.
    pub fn parse(s: &str) -> Option<LossKind> {
        match s.to_lowercase().as_str() {
            "mse" => Some(LossKind::Mse),
            "bce" => Some(LossKind::Bce),
            _ => None,
        }
    }

    /// Index of this loss in the (squared error, cross-entropy) totals.
    pub fn slot(self) -> usize {
        self.id() as usize
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    kind: u32,
    out_act: u32,
    write_grad: u32,
    grad_scale: f32,
    _pad: [u32; 3],
}

/// Number of partial-sum rows the loss pass writes for `n` elements.
pub fn partial_rows(n: usize) -> usize {
    let g = grid_1d(n, 1024);
    (g[0] * g[1]) as usize
}

/// Checks that the output activation and the loss go together.
pub fn check(kind: LossKind, out_act: Activation) -> Result<()> {
    match (kind, out_act) {
        (LossKind::Mse, Activation::Identity | Activation::Sigmoid)
        | (LossKind::Bce, Activation::Sigmoid) => Ok(()),
        (LossKind::Bce, a) => Err(Error::Config(format!(
            "BCE needs a sigmoid output layer, not {a:?} (the loss is computed on logits)"
        ))),
        (LossKind::Mse, a) => {
            Err(Error::Config(format!("the output activation must be identity or sigmoid, not {a:?}")))
        }
    }
}

/// The loss pass then its reduction: `totals[0..2]` = (Σ squared error, Σ cross-entropy) over n
/// elements; when `dz` is given it receives `grad_scale · ∂loss/∂z`. `partials` needs
/// `2 * partial_rows(n)` words.
#[allow(clippy::too_many_arguments)]
pub fn loss_forward_backward(
    totals: &View,
    partials: &View,
    dz: Option<&View>,
    z: &View,
    target: &View,
    n: usize,
    kind: LossKind,
    out_act: Activation,
    grad_scale: f32,
) -> [Launch; 2] {
    let p = Params {
        n: n as u32,
        kind: kind.id(),
        out_act: out_act.id(),
        write_grad: dz.is_some() as u32,
        grad_scale,
        _pad: [0; 3],
    };
    let dz = dz.cloned().unwrap_or_else(|| partials.clone());
    let pass = Launch {
        key: PipelineKey::new(SHADER, "loss_forward_backward", &[]),
        uniform: bytemuck::bytes_of(&p).to_vec(),
        views: vec![z.clone(), target.clone(), dz, partials.clone()],
        workgroups: grid_1d(n, 1024),
        label: "loss",
        per_step: None,
    };
    [pass, reduce::colsum(totals, partials, partial_rows(n), 2, false)]
}
