//! Conv2d and ConvTranspose2d layers over NCHW batches, each run by the algorithm measured fastest
//! for its shape (direct kernels of conv2d.wgsl, or im2col + matmul of conv_gemm.wgsl; see `tune`).
//! The GEMM scratch (`gemm col`, `gemm cn`, `gemm parts`) is shared by every layer of a network.

use super::{Ctx, Network, Node, Op};
use crate::gpu::{Launch, View};
use crate::kernels::conv::{self, Conv2dShape, ConvTranspose2dShape};
use crate::kernels::conv_gemm::{self, GemmScratch, ScratchLens};
use crate::runner::ArenaLayout;
use crate::tune::ConvAlgorithm;

/// The geometry of a `Conv2d` op reading `[c, h, w]` examples, for a batch of `n`.
pub fn conv_shape(op: &Op, [c, h, w]: [usize; 3], n: usize) -> Conv2dShape {
    let Op::Conv2d { out, kernel, stride, padding, .. } = *op else { unreachable!("a Conv2d op") };
    Conv2dShape { n, c_in: c, h, w, c_out: out, kh: kernel, kw: kernel, stride, padding }
}

/// The geometry of a `ConvTranspose2d` op reading `[c, h, w]` examples, for a batch of `n`.
pub fn conv_t_shape(op: &Op, [c, h, w]: [usize; 3], n: usize) -> ConvTranspose2dShape {
    let Op::ConvTranspose2d { out, kernel, stride, padding, output_padding, .. } = *op else {
        unreachable!("a ConvTranspose2d op")
    };
    ConvTranspose2dShape {
        n,
        c_in: c,
        h,
        w,
        c_out: out,
        kh: kernel,
        kw: kernel,
        stride,
        padding,
        output_padding,
    }
}

fn uses_gemm(node: &Node) -> bool {
    matches!(
        node.op,
        Op::Conv2d { algorithm: ConvAlgorithm::Gemm, .. }
            | Op::ConvTranspose2d { algorithm: ConvAlgorithm::Gemm, .. }
    )
}

/// Reserves the GEMM scratch, sized for the largest GEMM layer, when any layer uses the GEMM.
pub fn add_scratch(layout: &mut ArenaLayout, net: &Network, batch: usize) {
    let gemm: Vec<&Node> = net.nodes.iter().filter(|n| uses_gemm(n)).collect();
    if gemm.is_empty() {
        return;
    }
    let lens = gemm
        .iter()
        .filter_map(|n| n.op.conv_geometry(n.input, batch))
        .map(|g| ScratchLens::of(&g))
        .fold(ScratchLens::default(), ScratchLens::max);
    layout.add("gemm col", lens.col.max(1));
    layout.add("gemm cn", lens.cn.max(1));
    layout.add("gemm parts", lens.parts.max(1));
}

fn scratch(ctx: &Ctx) -> GemmScratch {
    GemmScratch {
        col: ctx.acts.view("gemm col"),
        cn: ctx.acts.view("gemm cn"),
        parts: ctx.acts.view("gemm parts"),
    }
}

/// `y = act(conv(x, W) + b)` (or the transposed convolution), bias and activation fused.
pub fn forward(ctx: &Ctx, node: &Node, y: &View, x: &View) -> Vec<Launch> {
    let (n, act) = (ctx.batch(), node.op.act().expect("a conv layer"));
    let (w, b) = (ctx.param(node, "weight"), ctx.param(node, "bias"));
    match (node.op, uses_gemm(node)) {
        (Op::Conv2d { .. }, true) => {
            let s = conv_shape(&node.op, node.input, n);
            conv_gemm::conv2d_forward(y, x, &w, Some(&b), &s, act, &scratch(ctx), ctx.variant)
        }
        (Op::ConvTranspose2d { .. }, true) => {
            let s = conv_t_shape(&node.op, node.input, n);
            conv_gemm::conv_transpose2d_forward(y, x, &w, Some(&b), &s, act, &scratch(ctx), ctx.variant)
        }
        (Op::Conv2d { .. }, false) => {
            vec![conv::conv2d_forward(y, x, &w, Some(&b), &conv_shape(&node.op, node.input, n), act)]
        }
        _ => vec![conv::conv_transpose2d_forward(
            y,
            x,
            &w,
            Some(&b),
            &conv_t_shape(&node.op, node.input, n),
            act,
        )],
    }
}

/// dZ = dY ⊙ act'(Y) in place with the bias gradient in the same pass (one kernel, bit-identical to
/// the two apart), then the weight and (when wanted) input gradients.
pub fn backward(ctx: &Ctx, node: &Node, dx: Option<&View>, dy: &View, x: &View, y: &View) -> Vec<Launch> {
    let (n, act) = (ctx.batch(), node.op.act().expect("a conv layer"));
    let mut launches = Vec::new();
    let (w, dw, db) = (ctx.param(node, "weight"), ctx.grad(node, "weight"), ctx.grad(node, "bias"));
    match node.op {
        Op::Conv2d { .. } => {
            let s = conv_shape(&node.op, node.input, n);
            launches.push(conv::conv2d_backward_bias_act(&db, dy, y, &s, act));
        }
        _ => {
            let s = conv_t_shape(&node.op, node.input, n);
            launches.push(conv::conv_transpose2d_backward_bias_act(&db, dy, y, &s, act));
        }
    }
    match (node.op, uses_gemm(node)) {
        (Op::Conv2d { .. }, true) => {
            let s = conv_shape(&node.op, node.input, n);
            launches.extend(conv_gemm::conv2d_backward(&dw, dx, dy, x, &w, &s, &scratch(ctx), ctx.variant));
        }
        (Op::ConvTranspose2d { .. }, true) => {
            let s = conv_t_shape(&node.op, node.input, n);
            launches.extend(conv_gemm::conv_transpose2d_backward(
                &dw,
                dx,
                dy,
                x,
                &w,
                &s,
                &scratch(ctx),
                ctx.variant,
            ));
        }
        (Op::Conv2d { .. }, false) => {
            let s = conv_shape(&node.op, node.input, n);
            launches.push(conv::conv2d_backward_weight(&dw, dy, x, &s));
            if let Some(dx) = dx {
                launches.push(conv::conv2d_backward_input(dx, dy, &w, &s));
            }
        }
        _ => {
            let s = conv_t_shape(&node.op, node.input, n);
            launches.push(conv::conv_transpose2d_backward_weight(&dw, dy, x, &s));
            if let Some(dx) = dx {
                launches.push(conv::conv_transpose2d_backward_input(dx, dy, &w, &s));
            }
        }
    }
    launches
}
