//! Penalties on the code, placed right after the layer that writes it; forward they do nothing (the
//! code is their input tensor), backward they add their gradient to the code's gradient before the
//! code layer's own backward. Weights are per example, next to a per-pixel mean reconstruction loss.
//!
//! - Sparse: λ·Σ_j |h_j| (L1) or λ·Σ_j h_j² (L2), averaged over the batch; any code layer.
//! - Contractive: λ·‖J_f(x)‖²_F of h = σ(Wx + b), averaged over the batch. Its closed form
//!   ‖J‖²_F = Σ_j (h_j(1-h_j))² ‖W_j‖² holds for one sigmoid Linear reading the input only, so it is
//!   offered only there; it also has a direct term on W, added after the layer's weight gradient.

use super::{Ctx, Node, Op, len3};
use crate::gpu::{Launch, View};
use crate::kernels::Activation;
use crate::kernels::penalty::{self, SparseNorm};
use crate::kernels::reduce::colsum;
use crate::runner::ArenaLayout;

/// A penalty on the code, added to the per-pixel reconstruction loss as λ times a per-example
/// figure averaged over the batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Penalty {
    /// Activity sparsity: λ·Σ_j |h_j| (L1) or λ·Σ_j h_j² (L2) over the code; any code layer.
    Sparse {
        /// L1 or L2.
        norm: SparseNorm,
        /// Weight λ per example.
        lambda: f32,
    },
    /// λ·‖J_f(x)‖²_F of a one-layer sigmoid encoder, in closed form.
    Contractive {
        /// Weight λ per example.
        lambda: f32,
    },
}

impl Penalty {
    /// The weight λ of either kind.
    pub fn lambda(&self) -> f32 {
        match *self {
            Penalty::Sparse { lambda, .. } | Penalty::Contractive { lambda } => lambda,
        }
    }

    /// Checks that a contractive penalty follows a one-layer sigmoid encoder (`code_layer`).
    pub fn check_placement(&self, code_layer: &Node, is_first_layer: bool) -> Result<(), String> {
        if let Penalty::Contractive { .. } = self
            && !(is_first_layer
                && code_layer.op.act() == Some(Activation::Sigmoid)
                && matches!(code_layer.op, Op::Linear { .. }))
        {
            return Err(
                "the contractive penalty is computed in closed form for a one-layer sigmoid encoder: \
                        use --layers WIDTH --code-activation sigmoid"
                    .into(),
            );
        }
        let inputs = len3(code_layer.input);
        if let Penalty::Contractive { .. } = self
            && inputs > crate::kernels::MAX_LOOP_STEPS
        {
            return Err(format!(
                "the contractive penalty sums each code unit's {inputs} input weights in one loop, more \
                 than the {} one GPU invocation may run (lavapipe ends longer loops early): use smaller \
                 inputs (--size for image folders) or a convolutional encoder",
                crate::kernels::MAX_LOOP_STEPS
            ));
        }
        Ok(())
    }

    /// Checks that a batch fits the contractive penalty's weight-gradient loop, which runs over the
    /// batch and then over the code layer's `inputs` in one invocation (lavapipe's loop bound).
    pub fn check_batch(&self, batch: usize, inputs: usize) -> Result<(), String> {
        let most = crate::kernels::MAX_LOOP_STEPS;
        match self {
            Penalty::Contractive { .. } if batch + inputs > most => Err(format!(
                "a contractive penalty over a batch of {batch} with {inputs} inputs loops {} times in \
                 one GPU invocation, more than {most} (lavapipe ends longer loops early): use a smaller --batch",
                batch + inputs
            )),
            _ => Ok(()),
        }
    }

    /// Scratch for `width` code values per example: partial sums (sparse) or per-example ‖J‖²_F
    /// and the row norms of W (contractive), and the unscaled total.
    pub fn add_tensors(&self, layout: &mut ArenaLayout, batch: usize, width: usize) {
        match self {
            Penalty::Sparse { .. } => {
                layout.add("penalty partials", penalty::activity_partial_rows(batch * width));
            }
            Penalty::Contractive { .. } => {
                layout.add("jf2", batch);
                layout.add("row norms", width);
            }
        }
        layout.add("penalty total", 1);
    }

    /// The penalty's value (into `penalty total`) and its gradient added to `dh`; `code_layer` is the
    /// layer before (whose weight the contractive penalty reads).
    pub fn backward(
        &self,
        ctx: &Ctx,
        node: &Node,
        code_layer: Option<&Node>,
        dh: &View,
        h: &View,
    ) -> Vec<Launch> {
        let (b, width) = (ctx.batch(), len3(node.input));
        let scale = self.lambda() / b as f32;
        let total = ctx.acts.view("penalty total");
        match *self {
            Penalty::Sparse { norm, .. } => {
                let partials = ctx.acts.view("penalty partials");
                penalty::activity_penalty(&total, &partials, Some(dh), h, b, width, norm, scale).to_vec()
            }
            Penalty::Contractive { .. } => {
                let layer = code_layer.expect("a contractive penalty follows its code layer");
                let (rows, jf2, w) =
                    (ctx.acts.view("row norms"), ctx.acts.view("jf2"), ctx.param(layer, "weight"));
                vec![
                    penalty::contractive_rows(&rows, &w, width, len3(layer.input)),
                    penalty::contractive_h(&jf2, Some(dh), h, &rows, b, width, scale),
                    colsum(&total, &jf2, b, 1, false),
                ]
            }
        }
    }

    /// The contractive penalty's direct path through the row norms of W, added to dW after the code
    /// layer's backward wrote it (nothing for a sparse penalty).
    pub fn weight_term(&self, ctx: &Ctx, node: &Node, code_layer: Option<&Node>) -> Vec<Launch> {
        let (Penalty::Contractive { lambda }, Some(layer)) = (*self, code_layer) else { return Vec::new() };
        let (b, width) = (ctx.batch(), len3(node.input));
        let (dw, w, h) = (ctx.grad(layer, "weight"), ctx.param(layer, "weight"), ctx.acts.view(&node.x));
        vec![penalty::contractive_weight(&dw, &h, &w, b, width, len3(layer.input), lambda / b as f32)]
    }
}
