//! Layers without parameters that change or map values element by element: 2x2 max-pooling (ceil
//! mode; it records the argmax for its backward), nearest 2x up-sampling, and a standalone activation.

use super::{Ctx, Node, Op, len3};
use crate::gpu::{Launch, View};
use crate::kernels::activation::{activation_backward, activation_forward};
use crate::kernels::pool;

fn argmax(ctx: &Ctx, node: &Node) -> View {
    ctx.acts.view(&format!("{} argmax", node.y))
}

/// One launch: max-pooling (writing `{y} argmax`), up-sampling, or the activation, over the batch.
pub fn forward(ctx: &Ctx, node: &Node, y: &View, x: &View) -> Vec<Launch> {
    let (n, [c, h, w]) = (ctx.batch(), node.input);
    vec![match node.op {
        Op::MaxPool2d => pool::maxpool2x2_forward(y, &argmax(ctx, node), x, n, c, h, w, true),
        Op::Upsample => pool::upsample2x_forward(y, x, n, c, h, w),
        Op::Activation(act) => activation_forward(y, x, n * len3(node.input), act),
        _ => unreachable!("a pooling, up-sampling or activation node"),
    }]
}

/// The gradient of what the layer read (nothing when that is the data).
pub fn backward(ctx: &Ctx, node: &Node, dx: Option<&View>, dy: &View, y: &View) -> Vec<Launch> {
    let Some(dx) = dx else { return Vec::new() };
    let (n, [c, h, w]) = (ctx.batch(), node.input);
    vec![match node.op {
        Op::MaxPool2d => pool::maxpool2x2_backward(dx, dy, &argmax(ctx, node), n, c, h, w, true),
        Op::Upsample => pool::upsample2x_backward(dx, dy, n, c, h, w),
        Op::Activation(act) => activation_backward(dx, dy, y, n * len3(node.input), act),
        _ => unreachable!("a pooling, up-sampling or activation node"),
    }]
}
