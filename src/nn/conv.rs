//! Conv2d and ConvTranspose2d layers over NCHW batches, each run by the algorithm measured fastest
//! for its shape (direct kernels of conv2d.wgsl, im2col + matmul of conv_gemm.wgsl, or the implicit
//! GEMM of conv_implicit_gemm.wgsl; see `tune`). The GEMM scratch (`gemm col`, `gemm cn`, `gemm
//! parts`) and the implicit GEMM's split-K partials (`implicit parts`) are shared by every layer.

use super::{Ctx, Network, Node, Op};
use crate::gpu::{Launch, View};
use crate::kernels::conv::{self, Conv2dShape, ConvTranspose2dShape};
use crate::kernels::conv_gemm::{self, GemmScratch, ScratchLens};
use crate::kernels::conv_implicit_gemm as implicit;
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

/// The algorithm of a conv layer.
fn algorithm(node: &Node) -> ConvAlgorithm {
    match node.op {
        Op::Conv2d { algorithm, .. } | Op::ConvTranspose2d { algorithm, .. } => algorithm,
        _ => unreachable!("a conv layer"),
    }
}

fn uses(node: &Node, algo: ConvAlgorithm) -> bool {
    matches!(node.op, Op::Conv2d { algorithm, .. } | Op::ConvTranspose2d { algorithm, .. } if algorithm == algo)
}

/// Reserves the GEMM scratch, sized for the largest GEMM layer, when any layer uses the GEMM, and the
/// implicit GEMM's split-K partials when any layer uses it.
pub fn add_scratch(layout: &mut ArenaLayout, net: &Network, batch: usize) {
    let implicit: Vec<&Node> = net.nodes.iter().filter(|n| uses(n, ConvAlgorithm::ImplicitGemm)).collect();
    if !implicit.is_empty() {
        let parts = implicit.iter().filter_map(|n| n.op.conv_geometry(n.input, batch));
        layout.add("implicit parts", parts.map(|g| implicit::parts_len(&g)).max().unwrap_or(0).max(1));
    }
    let gemm: Vec<&Node> = net.nodes.iter().filter(|n| uses(n, ConvAlgorithm::Gemm)).collect();
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
    match (node.op, algorithm(node)) {
        (Op::Conv2d { .. }, ConvAlgorithm::Gemm) => {
            let s = conv_shape(&node.op, node.input, n);
            conv_gemm::conv2d_forward(y, x, &w, Some(&b), &s, act, &scratch(ctx), ctx.matmul)
        }
        (Op::ConvTranspose2d { .. }, ConvAlgorithm::Gemm) => {
            let s = conv_t_shape(&node.op, node.input, n);
            conv_gemm::conv_transpose2d_forward(y, x, &w, Some(&b), &s, act, &scratch(ctx), ctx.matmul)
        }
        (Op::Conv2d { .. }, ConvAlgorithm::ImplicitGemm) => {
            vec![implicit::conv2d_forward(y, x, &w, Some(&b), &conv_shape(&node.op, node.input, n), act)]
        }
        (Op::ConvTranspose2d { .. }, ConvAlgorithm::ImplicitGemm) => {
            let s = conv_t_shape(&node.op, node.input, n);
            vec![implicit::conv_transpose2d_forward(y, x, &w, Some(&b), &s, act)]
        }
        (Op::Conv2d { .. }, ConvAlgorithm::Direct) => {
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
            launches.extend(conv::conv2d_backward_bias_act(&db, dy, y, &s, act));
        }
        _ => {
            let s = conv_t_shape(&node.op, node.input, n);
            launches.extend(conv::conv_transpose2d_backward_bias_act(&db, dy, y, &s, act));
        }
    }
    match (node.op, algorithm(node)) {
        (Op::Conv2d { .. }, ConvAlgorithm::Gemm) => {
            let s = conv_shape(&node.op, node.input, n);
            launches.extend(conv_gemm::conv2d_backward(&dw, dx, dy, x, &w, &s, &scratch(ctx), ctx.matmul));
        }
        (Op::Conv2d { .. }, ConvAlgorithm::ImplicitGemm) => {
            let s = conv_shape(&node.op, node.input, n);
            launches.extend(implicit::conv2d_backward_weight(
                &dw,
                dy,
                x,
                &ctx.acts.view("implicit parts"),
                &s,
            ));
            if let Some(dx) = dx {
                launches.push(implicit::conv2d_backward_input(dx, dy, &w, &s));
            }
        }
        (Op::ConvTranspose2d { .. }, ConvAlgorithm::ImplicitGemm) => {
            let s = conv_t_shape(&node.op, node.input, n);
            let parts = ctx.acts.view("implicit parts");
            launches.extend(implicit::conv_transpose2d_backward_weight(&dw, dy, x, &parts, &s));
            if let Some(dx) = dx {
                launches.push(implicit::conv_transpose2d_backward_input(dx, dy, &w, &s));
            }
        }
        (Op::ConvTranspose2d { .. }, ConvAlgorithm::Gemm) => {
            let s = conv_t_shape(&node.op, node.input, n);
            launches.extend(conv_gemm::conv_transpose2d_backward(
                &dw,
                dx,
                dy,
                x,
                &w,
                &s,
                &scratch(ctx),
                ctx.matmul,
            ));
        }
        (Op::Conv2d { .. }, ConvAlgorithm::Direct) => {
            let s = conv_shape(&node.op, node.input, n);
            launches.extend(conv::conv2d_backward_weight(&dw, dy, x, &s));
            if let Some(dx) = dx {
                launches.push(conv::conv2d_backward_input(dx, dy, &w, &s));
            }
        }
        _ => {
            let s = conv_t_shape(&node.op, node.input, n);
            launches.extend(conv::conv_transpose2d_backward_weight(&dw, dy, x, &s));
            if let Some(dx) = dx {
                launches.push(conv::conv_transpose2d_backward_input(dx, dy, &w, &s));
            }
        }
    }
    launches
}
