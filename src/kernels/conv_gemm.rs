//! Launcher for `shaders/conv_gemm.wgsl`: 2-D convolution and transposed convolution as matrix
//! products (im2col + the tuned matmul), forward and backward, with the same contracts as the direct
//! kernels in [`super::conv`]. Which algorithm a model uses is measured per adapter (see `tune`).
//!
//! Every function returns the launch list of one layer operation; the lists use a [`GemmScratch`]
//! (the im2col matrix, a channel-major copy and the split-K partial products) that layers may share,
//! since their lists run one after the other.

use super::conv::{Conv2dShape, ConvTranspose2dShape, Params, check_views};
use super::matmul::{Half, Matmul, Transpose};
use super::matmul_policy::MatmulPolicy;
use super::reduce::colsum;
use super::{Activation, Launch, MAX_LOOP_STEPS};
use crate::gpu::View;
use crate::gpu::{PipelineKey, Shader};

/// `shaders/conv_gemm.wgsl`, after the shared activation functions of `shaders/activation_fns.wgsl`.
pub const SHADER: Shader = Shader {
    name: "conv_gemm",
    source: concat!(
        include_str!("../../shaders/activation_fns.wgsl"),
        include_str!("../../shaders/conv_gemm.wgsl")
    ),
};

/// The conv_gemm.wgsl entry points with the workgroup size the dispatch math assumes.
pub const ENTRY_POINTS: [(&str, [u32; 3]); 4] = [
    ("im2col", [256, 1, 1]),
    ("col2im", [256, 1, 1]),
    ("cnhw_to_nchw", [256, 1, 1]),
    ("nchw_to_cnhw", [256, 1, 1]),
];

/// Scratch storage of the GEMM formulation, sized by [`ScratchLens`] for the largest layer.
#[derive(Clone, Debug)]
pub struct GemmScratch {
    /// The im2col matrix `[C_IN·KH·KW, N·OH·OW]` (or its gradient).
    pub col: View,
    /// A channel-major `[C_OUT, N·OH·OW]` copy of an output or its gradient.
    pub cn: View,
    /// Split-K partial weight gradients `[splits, C_OUT, C_IN·KH·KW]`.
    pub parts: View,
}

/// Values each scratch view needs for one conv2d geometry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScratchLens {
    /// f32 elements of [`GemmScratch::col`]: `C_IN·KH·KW · N·OH·OW`.
    pub col: usize,
    /// f32 elements of [`GemmScratch::cn`]: `C_OUT · N·OH·OW`.
    pub cn: usize,
    /// f32 elements of [`GemmScratch::parts`]: `splits · C_OUT · C_IN·KH·KW`.
    pub parts: usize,
}

impl ScratchLens {
    /// What a conv2d of shape `s` needs (a transposed convolution: its adjoint's).
    pub fn of(s: &Conv2dShape) -> ScratchLens {
        let (k, j) = (taps(s), columns(s));
        ScratchLens { col: k * j, cn: s.c_out * j, parts: weight_splits(s) * s.c_out * k }
    }

    /// The element-wise maximum: scratch that serves both.
    pub fn max(self, o: ScratchLens) -> ScratchLens {
        ScratchLens { col: self.col.max(o.col), cn: self.cn.max(o.cn), parts: self.parts.max(o.parts) }
    }
}

/// Rows of the im2col matrix: one per tap `(ic, ky, kx)`.
fn taps(s: &Conv2dShape) -> usize {
    s.c_in * s.kh * s.kw
}

/// Columns of the im2col matrix: one per output pixel `(n, oy, ox)`.
fn columns(s: &Conv2dShape) -> usize {
    s.n * s.out_h() * s.out_w()
}

/// Chunks of the weight gradient's long inner dimension (N·OH·OW): without them a layer with few
/// output channels and taps would be one or two workgroups long. About 1024 columns per chunk, at
/// most 64 chunks, unless a chunk would then loop past [`MAX_LOOP_STEPS`].
pub fn weight_splits(s: &Conv2dShape) -> usize {
    (columns(s) / 1024).clamp(1, 64).max(columns(s).div_ceil(MAX_LOOP_STEPS))
}

/// Invocations per workgroup along the pixels.
const WG: usize = 256;

/// A launch over `[n · plane pixels, channels]`, see the shader's header.
#[allow(clippy::too_many_arguments)]
fn launch(
    entry: &'static str,
    s: &Conv2dShape,
    act: Activation,
    bias: Option<&View>,
    img: &View,
    mat: &View,
    plane: usize,
    channels: usize,
) -> Launch {
    let groups = (s.n * plane).div_ceil(WG);
    assert!(
        groups <= 65535 && channels <= 65535,
        "{entry}: {} pixels and {channels} channels must fit the dispatch limits (65535 x 256, 65535)",
        s.n * plane
    );
    Launch {
        key: PipelineKey::new(SHADER, entry, &[]),
        uniform: bytemuck::bytes_of(&Params::new(s, act, bias.is_some())).to_vec(),
        // Any buffer satisfies the layout when there is no bias; the shader never reads it.
        views: vec![img.clone(), mat.clone(), bias.unwrap_or(img).clone()],
        workgroups: [groups as u32, channels as u32, 1],
        label: entry,
        per_step: None,
    }
}

/// `col[k, j]` = the input under tap `k` of output pixel `j` (0 on padding).
pub fn im2col(col: &View, inp: &View, s: &Conv2dShape) -> Launch {
    check_views("im2col", s.validate(), &[("col", col, taps(s) * columns(s)), ("inp", inp, s.input_len())]);
    launch("im2col", s, Activation::Identity, None, inp, col, s.out_h() * s.out_w(), s.c_in)
}

/// `out[n,ic,iy,ix] = act(bias[ic] + Σ col)` over the taps that read that input pixel (im2col's adjoint).
pub fn col2im(out: &View, col: &View, bias: Option<&View>, s: &Conv2dShape, act: Activation) -> Launch {
    let mut views = vec![("out", out, s.input_len()), ("col", col, taps(s) * columns(s))];
    if let Some(b) = bias {
        views.push(("bias", b, s.c_in));
    }
    check_views("col2im", s.validate(), &views);
    launch("col2im", s, act, bias, out, col, s.h * s.w, s.c_in)
}

/// `out[n,c,s] = act(bias[c] + cn[c, n·OH·OW + s])`: a channel-major product back to NCHW.
pub fn cnhw_to_nchw(out: &View, cn: &View, bias: Option<&View>, s: &Conv2dShape, act: Activation) -> Launch {
    let mut views = vec![("out", out, s.output_len()), ("cn", cn, s.output_len())];
    if let Some(b) = bias {
        views.push(("bias", b, s.c_out));
    }
    check_views("cnhw_to_nchw", s.validate(), &views);
    launch("cnhw_to_nchw", s, act, bias, out, cn, s.out_h() * s.out_w(), s.c_out)
}

/// `cn[c, n·OH·OW + s] = inp[n,c,s]` for an output-shaped `[N, C_OUT, OH, OW]` tensor.
pub fn nchw_to_cnhw(cn: &View, inp: &View, s: &Conv2dShape) -> Launch {
    check_views("nchw_to_cnhw", s.validate(), &[("cn", cn, s.output_len()), ("inp", inp, s.output_len())]);
    launch("nchw_to_cnhw", s, Activation::Identity, None, inp, cn, s.out_h() * s.out_w(), s.c_out)
}

#[allow(clippy::too_many_arguments)]
fn product(
    c: &View,
    a: &View,
    b: &View,
    m: usize,
    n: usize,
    k: usize,
    trans: Transpose,
    policy: MatmulPolicy,
    splits: usize,
) -> Vec<Launch> {
    Matmul {
        c: c.clone(),
        a: a.clone(),
        b: b.clone(),
        bias: None,
        m,
        n,
        k,
        trans,
        act: Activation::Identity,
        accumulate: false,
        variant: policy.pick(m, n),
        splits,
        half: Half::NONE,
    }
    .launches()
}

/// `y = act(conv2d(x, w) + b)`: im2col, `W[C_OUT, K] · col`, back to NCHW with bias and activation.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward(
    out: &View,
    inp: &View,
    weight: &View,
    bias: Option<&View>,
    s: &Conv2dShape,
    act: Activation,
    scratch: &GemmScratch,
    policy: MatmulPolicy,
) -> Vec<Launch> {
    let (k, j) = (taps(s), columns(s));
    let mut launches = vec![im2col(&scratch.col, inp, s)];
    launches.extend(product(&scratch.cn, weight, &scratch.col, s.c_out, j, k, Transpose::Nn, policy, 1));
    launches.push(cnhw_to_nchw(out, &scratch.cn, bias, s, act));
    launches
}

/// The weight gradient from `cn` (dY channel-major) and `col` (im2col of X): split-K partial products
/// `cn · colᵀ`, then their sum.
fn weight_gradient(
    dweight: &View,
    s: &Conv2dShape,
    scratch: &GemmScratch,
    policy: MatmulPolicy,
) -> Vec<Launch> {
    let (k, j, splits) = (taps(s), columns(s), weight_splits(s));
    check_views(
        "conv weight gradient",
        Ok(()),
        &[("dweight", dweight, s.c_out * k), ("parts", &scratch.parts, splits * s.c_out * k)],
    );
    let mut launches =
        product(&scratch.parts, &scratch.cn, &scratch.col, s.c_out, k, j, Transpose::Nt, policy, splits);
    launches.push(colsum(dweight, &scratch.parts, splits, s.c_out * k, false));
    launches
}

/// Backward of a conv2d layer (`dout` is the gradient of the pre-activation output): the weight
/// gradient, and with `dinp` the input gradient `col2im(Wᵀ · dY)`. The bias gradient is the direct
/// kernel's ([`super::conv::conv2d_backward_bias`]).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    dweight: &View,
    dinp: Option<&View>,
    dout: &View,
    inp: &View,
    weight: &View,
    s: &Conv2dShape,
    scratch: &GemmScratch,
    policy: MatmulPolicy,
) -> Vec<Launch> {
    let (k, j) = (taps(s), columns(s));
    let mut launches = vec![nchw_to_cnhw(&scratch.cn, dout, s), im2col(&scratch.col, inp, s)];
    launches.extend(weight_gradient(dweight, s, scratch, policy));
    if let Some(dinp) = dinp {
        // dcol = Wᵀ · dY overwrites col, which the weight gradient has finished with.
        launches.extend(product(&scratch.col, weight, &scratch.cn, k, j, s.c_out, Transpose::Tn, policy, 1));
        launches.push(col2im(dinp, &scratch.col, None, s, Activation::Identity));
    }
    launches
}

/// `y = act(conv_transpose2d(x, w) + b)`: the adjoint conv2d's input gradient, `col2im(Wᵀ · X)`, with
/// bias and activation fused into the col2im.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d_forward(
    out: &View,
    inp: &View,
    weight: &View,
    bias: Option<&View>,
    t: &ConvTranspose2dShape,
    act: Activation,
    scratch: &GemmScratch,
    policy: MatmulPolicy,
) -> Vec<Launch> {
    let a = t.adjoint();
    let (k, j) = (taps(&a), columns(&a));
    let mut launches = vec![nchw_to_cnhw(&scratch.cn, inp, &a)];
    launches.extend(product(&scratch.col, weight, &scratch.cn, k, j, a.c_out, Transpose::Tn, policy, 1));
    launches.push(col2im(out, &scratch.col, bias, &a, act));
    launches
}

/// Backward of a transposed-conv layer: the weight gradient (the adjoint's, with `dout` in the input
/// role and `inp` in the output role) and with `dinp` the input gradient (the adjoint's forward on
/// `dout`). Both read `im2col(dout)`.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d_backward(
    dweight: &View,
    dinp: Option<&View>,
    dout: &View,
    inp: &View,
    weight: &View,
    t: &ConvTranspose2dShape,
    scratch: &GemmScratch,
    policy: MatmulPolicy,
) -> Vec<Launch> {
    let a = t.adjoint();
    let (k, j) = (taps(&a), columns(&a));
    let mut launches = vec![nchw_to_cnhw(&scratch.cn, inp, &a), im2col(&scratch.col, dout, &a)];
    launches.extend(weight_gradient(dweight, &a, scratch, policy));
    if let Some(dinp) = dinp {
        // W · im2col(dY) overwrites cn, which the weight gradient has finished with.
        launches.extend(product(&scratch.cn, weight, &scratch.col, a.c_out, j, k, Transpose::Nn, policy, 1));
        launches.push(cnhw_to_nchw(dinp, &scratch.cn, None, &a, Activation::Identity));
    }
    launches
}
