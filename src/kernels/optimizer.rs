//! Launcher for `shaders/optimizer.wgsl`: one fused update of the whole parameter arena.

use super::{Launch, grid_1d};
use crate::error::{Error, Result};
use crate::gpu::View;
use crate::gpu::{PerStep, PipelineKey, Shader, StepState};

/// `shaders/optimizer.wgsl`.
pub const SHADER: Shader = Shader { name: "optimizer", source: include_str!("../../shaders/optimizer.wgsl") };

/// Optimiser and its hyper-parameters (PyTorch's semantics and defaults).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Optimizer {
    /// SGD with momentum μ and L2 weight decay (coupled).
    Sgd {
        /// Learning rate: `p -= lr · v`.
        lr: f32,
        /// Momentum μ in `v = μ·v + (g + λ·p)` (dampening 0).
        momentum: f32,
        /// L2 coefficient λ added to the gradient as `λ·p`.
        weight_decay: f32,
    },
    /// Adam with L2 weight decay added to the gradient.
    Adam {
        /// Learning rate, applied to the bias-corrected step `m̂ / (sqrt(v̂) + ε)`.
        lr: f32,
        /// Decay of the first moment m (0.9).
        beta1: f32,
        /// Decay of the second moment v (0.999).
        beta2: f32,
        /// Added to `sqrt(v̂)` in the denominator (1e-8).
        eps: f32,
        /// L2 coefficient λ: the moments see `g + λ·p`.
        weight_decay: f32,
    },
    /// AdamW: decoupled weight decay.
    AdamW {
        /// Learning rate, applied to the bias-corrected step and to the decay.
        lr: f32,
        /// Decay of the first moment m (0.9).
        beta1: f32,
        /// Decay of the second moment v (0.999).
        beta2: f32,
        /// Added to `sqrt(v̂)` in the denominator (1e-8).
        eps: f32,
        /// Decoupled decay λ: `p -= lr·λ·p` before the Adam step.
        weight_decay: f32,
    },
}

impl Optimizer {
    /// `sgd|adam|adamw` with learning rate `lr` and PyTorch's defaults for the rest
    /// (SGD momentum 0.9 here, since plain SGD is rarely what anyone wants for an autoencoder).
    pub fn parse(name: &str, lr: f32, weight_decay: f32) -> Result<Optimizer> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::Config(format!("learning rate must be a positive number, got {lr}")));
        }
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            return Err(Error::Config(format!("weight decay must be >= 0, got {weight_decay}")));
        }
        Ok(match name.to_lowercase().as_str() {
            "sgd" => Optimizer::Sgd { lr, momentum: 0.9, weight_decay },
            "adam" => Optimizer::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay },
            "adamw" => Optimizer::AdamW { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay },
            other => {
                return Err(Error::Config(format!("unknown optimizer '{other}': use sgd, adam or adamw")));
            }
        })
    }

    /// The learning rate, whichever the kind.
    pub fn lr(&self) -> f32 {
        match *self {
            Optimizer::Sgd { lr, .. } | Optimizer::Adam { lr, .. } | Optimizer::AdamW { lr, .. } => lr,
        }
    }

    /// Words of optimiser state per parameter (momentum; Adam's two moments).
    pub fn state_per_param(&self) -> usize {
        match self {
            Optimizer::Sgd { .. } => 1,
            _ => 2,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    decoupled: u32,
    lr: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    inv_bias1: f32,
    inv_bias2: f32,
    _pad: [u32; 3],
}

/// The update for step `t` (1-based: Adam's bias corrections depend on it) over `n` parameters.
/// `v` is unused by SGD (pass `m` again).
pub fn optimizer_step(
    opt: &Optimizer,
    params: &View,
    grads: &View,
    m: &View,
    v: &View,
    n: usize,
    t: u64,
) -> Launch {
    let t = t.max(1) as i32;
    let (entry, p) = match *opt {
        Optimizer::Sgd { lr, momentum, weight_decay } => (
            "sgd_momentum",
            Params {
                n: n as u32,
                decoupled: 0,
                lr,
                weight_decay,
                beta1: momentum,
                beta2: 0.0,
                eps: 0.0,
                inv_bias1: 1.0,
                inv_bias2: 1.0,
                _pad: [0; 3],
            },
        ),
        Optimizer::Adam { lr, beta1, beta2, eps, weight_decay }
        | Optimizer::AdamW { lr, beta1, beta2, eps, weight_decay } => (
            "adam",
            Params {
                n: n as u32,
                decoupled: matches!(opt, Optimizer::AdamW { .. }) as u32,
                lr,
                weight_decay,
                beta1,
                beta2,
                eps,
                inv_bias1: inv_bias(beta1, t),
                inv_bias2: inv_bias(beta2, t),
                _pad: [0; 3],
            },
        ),
    };
    Launch {
        key: PipelineKey::new(SHADER, entry, &[]),
        uniform: bytemuck::bytes_of(&p).to_vec(),
        views: vec![params.clone(), grads.clone(), m.clone(), v.clone()],
        workgroups: grid_1d(n, 256),
        label: "optimizer",
        // SGD's uniform is the same every step; Adam's bias corrections follow t.
        per_step: (entry == "adam").then_some(PerStep { draws_random: false, rewrite: adam_at_step }),
    }
}

/// Adam's bias correction 1 / (1 - β^t), in f64 so late steps (β^t → 0) keep full precision before
/// rounding.
fn inv_bias(beta: f32, t: i32) -> f32 {
    (1.0 / (1.0 - (beta as f64).powi(t))) as f32
}

/// Every step, Adam's bias corrections follow the step count t.
fn adam_at_step(uniform: &[u8], step: &StepState) -> Vec<u8> {
    let p: Params = bytemuck::pod_read_unaligned(uniform);
    let t = step.step.max(1) as i32;
    bytemuck::bytes_of(&Params { inv_bias1: inv_bias(p.beta1, t), inv_bias2: inv_bias(p.beta2, t), ..p })
        .to_vec()
}
