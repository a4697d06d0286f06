//! Linear (fully connected) layer: `y = act(x · Wᵀ + b)`, `W` stored `[out, in]` as PyTorch does.
//! A convolutional feature map is read flattened (NCHW per example is PyTorch's flatten order).

use super::{Ctx, Node, Op, len3};
use crate::gpu::{Launch, View};
use crate::kernels::Activation;
use crate::kernels::activation::activation_backward_bias;
use crate::kernels::matmul::{Half, linear_backward_input, linear_backward_weight, linear_forward};
use crate::kernels::reduce::bias_backward;

fn dims(node: &Node) -> (usize, usize, Activation) {
    let Op::Linear { out, act } = node.op else { unreachable!("a Linear node") };
    (len3(node.input), out, act)
}

/// `y = act(x · Wᵀ + b)` with bias and activation fused into the matmul; x and y each f32 or f16
/// as the activation storage laid them out.
pub fn forward(ctx: &Ctx, node: &Node, y: &View, x: &View) -> Vec<Launch> {
    let (k, m, act) = dims(node);
    let (w, b) = (ctx.param(node, "weight"), ctx.param(node, "bias"));
    let half = Half { a: ctx.acts.is_half(&node.x), b: false, c: ctx.acts.is_half(&node.y) };
    linear_forward(y, x, &w, &b, ctx.batch(), k, m, act, ctx.matmul, half)
}

/// dZ = dY ⊙ act'(Y) in place with db = Σ_batch dZ in the same pass (one kernel, bit-identical to
/// the two apart), then dW = dZᵀ · X and dX = dZ · W when wanted.
pub fn backward(ctx: &Ctx, node: &Node, dx: Option<&View>, dy: &View, x: &View, y: &View) -> Vec<Launch> {
    let (k, m, act) = dims(node);
    let n = ctx.batch();
    let (w, dw, db) = (ctx.param(node, "weight"), ctx.grad(node, "weight"), ctx.grad(node, "bias"));
    let mut launches = vec![match act {
        Activation::Identity => bias_backward(&db, dy, n, m),
        _ => activation_backward_bias(dy, &db, dy, y, n, m, act, ctx.acts.is_half(&node.y)),
    }];
    launches.extend(linear_backward_weight(&dw, dy, x, n, k, m, ctx.matmul, ctx.acts.is_half(&node.x)));
    if let Some(dx) = dx {
        launches.extend(linear_backward_input(dx, dy, &w, n, k, m, ctx.matmul));
    }
    launches
}
