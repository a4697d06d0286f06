//! Launcher for `shaders/conv_implicit_gemm.wgsl`: 2-D convolution and transposed convolution as tiled
//! matrix products whose loaders read the im2col elements straight from the NCHW tensors (implicit
//! GEMM), with the same contracts as the direct kernels in [`super::conv`]: no im2col matrix, no
//! channel-major copies. The only scratch is the weight gradient's split-K partials (`parts`,
//! [`parts_len`] values), summed in split order by reduce.wgsl's colsum (deterministic).
//!
//! The bias gradient is the direct kernel's ([`super::conv::conv2d_backward_bias`]), as for the
//! other algorithms. A transposed convolution runs the conv2d entry points on its adjoint
//! ([`ConvTranspose2dShape::adjoint`]): its forward is the adjoint's input gradient (with bias and
//! activation), its input gradient the adjoint's forward, its weight gradient the adjoint's with `dout`
//! in the input role.

use super::conv::{Conv2dShape, ConvTranspose2dShape, check_views};
use super::reduce::colsum;
use super::{Activation, Launch, grid_1d};
use crate::gpu::View;
use crate::gpu::{PipelineKey, Shader};

/// `shaders/conv_implicit_gemm.wgsl`, after the shared activation functions.
pub const SHADER: Shader = Shader {
    name: "conv_implicit_gemm",
    source: concat!(
        include_str!("../../shaders/activation_fns.wgsl"),
        include_str!("../../shaders/conv_implicit_gemm.wgsl")
    ),
};

/// The entry points with the workgroup size the dispatch math assumes.
pub const ENTRY_POINTS: [(&str, [u32; 3]); 3] =
    [("forward", [64, 1, 1]), ("backward_input", [64, 1, 1]), ("backward_weight", [64, 1, 1])];

/// The shader's tile: rows (channels) x columns (pixels or taps) per workgroup, and the k step.
pub const TILE_M: usize = 16;
/// Columns per workgroup tile: output pixels `(n, oy, ox)` for `forward`, input pixels of one stride
/// phase for `backward_input`, taps `(ic, ky, kx)` for `backward_weight` (the shader's `TN`).
pub const TILE_N: usize = 64;
/// Inner-dimension elements staged in workgroup memory per k step (the shader's `TK`).
pub const TILE_K: usize = 16;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    padding: u32,
    act: u32,
    has_bias: u32,
    slope: f32,
    chunk: u32,
    _pad0: u32,
}

impl Params {
    fn new(s: &Conv2dShape, act: Activation, has_bias: bool, chunk: usize) -> Params {
        Params {
            n: s.n as u32,
            c_in: s.c_in as u32,
            h: s.h as u32,
            w: s.w as u32,
            c_out: s.c_out as u32,
            oh: s.out_h() as u32,
            ow: s.out_w() as u32,
            kh: s.kh as u32,
            kw: s.kw as u32,
            stride: s.stride as u32,
            padding: s.padding as u32,
            act: act.id(),
            has_bias: has_bias as u32,
            slope: act.slope(),
            chunk: chunk as u32,
            _pad0: 0,
        }
    }
}

/// Most k steps (of [`TILE_K`]) one invocation runs: lavapipe silently ends an invocation's loops once
/// their iterations total 65,535 (measured: a 4,097-step k loop with a 16-step inner loop came out
/// wrong), so the shader's only loops are its k loops, and the host keeps them well below that.
pub const MAX_STEPS: usize = 16384;

/// Chunks of the weight gradient's sum over N·OH·OW output pixels: as the GEMM's
/// ([`super::conv_gemm::weight_splits`], about 1024 pixels per chunk, at most 64), and more when a chunk
/// would exceed [`MAX_STEPS`].
pub fn weight_splits(s: &Conv2dShape) -> usize {
    let pixels = s.n * s.out_h() * s.out_w();
    super::conv_gemm::weight_splits(s).max(pixels.div_ceil(MAX_STEPS * TILE_K))
}

/// Values of split-K partials the weight gradient of `s` needs (0 when it runs in one split).
pub fn parts_len(s: &Conv2dShape) -> usize {
    match weight_splits(s) {
        1 => 0,
        splits => splits * s.weight_len(),
    }
}

/// Output pixels per split of the weight gradient: the N·OH·OW pixels cut into
/// [`weight_splits`] chunks, rounded up to whole k steps.
fn chunk(s: &Conv2dShape) -> usize {
    (s.n * s.out_h() * s.out_w()).div_ceil(weight_splits(s)).div_ceil(TILE_K) * TILE_K
}

/// The grid of `forward` / `backward_input`: `columns / TILE_N` column tiles folded into (x, y) past
/// 65,535 (the WebGPU minimum of `max_compute_workgroups_per_dimension`), row tiles in z.
fn grid(label: &str, columns: usize, rows: usize, taps: usize) -> [u32; 3] {
    assert!(
        taps.div_ceil(TILE_K) <= MAX_STEPS,
        "{label}: {taps} taps per output exceed the {MAX_STEPS} k steps one invocation may loop"
    );
    let [x, y, _] = grid_1d(columns, TILE_N);
    let z = rows.div_ceil(TILE_M);
    assert!(z <= 65535, "{label}: {rows} channels need more than 65535 row tiles");
    [x, y, z as u32]
}

#[allow(clippy::too_many_arguments)]
fn launch(
    entry: &'static str,
    label: &'static str,
    params: Params,
    b_side: &View,
    a_side: &View,
    bias: Option<&View>,
    out: &View,
    workgroups: [u32; 3],
) -> Launch {
    Launch {
        key: PipelineKey::new(SHADER, entry, &[]),
        uniform: bytemuck::bytes_of(&params).to_vec(),
        // Any buffer satisfies the layout when there is no bias; the shader never reads it.
        views: vec![b_side.clone(), a_side.clone(), bias.unwrap_or(out).clone(), out.clone()],
        workgroups,
        label,
        per_step: None,
    }
}

/// `out = act(conv2d(inp, weight) + bias)` of conv2d geometry `s`.
fn forward_launch(
    label: &'static str,
    out: &View,
    inp: &View,
    weight: &View,
    bias: Option<&View>,
    s: &Conv2dShape,
    act: Activation,
) -> Launch {
    let workgroups = grid(label, s.n * s.out_h() * s.out_w(), s.c_out, s.c_in * s.kh * s.kw);
    let params = Params::new(s, act, bias.is_some(), 0);
    launch("forward", label, params, inp, weight, bias, out, workgroups)
}

/// `dinp = act(conv2dᵀ(dout, weight) + bias)` of conv2d geometry `s`.
fn backward_input_launch(
    label: &'static str,
    dinp: &View,
    dout: &View,
    weight: &View,
    bias: Option<&View>,
    s: &Conv2dShape,
    act: Activation,
) -> Launch {
    // One product per stride phase: the largest has ceil(H/S)·ceil(W/S) pixels per sample.
    let phases = s.stride * s.stride;
    let [x, y, z] =
        grid(label, s.n * s.h.div_ceil(s.stride) * s.w.div_ceil(s.stride), s.c_in, s.c_out * s.kh * s.kw);
    assert!(
        z as usize * phases <= 65535,
        "{label}: {} channels x {phases} stride phases exceed 65535 workgroups",
        s.c_in
    );
    let workgroups = [x, y, z * phases as u32];
    let params = Params::new(s, act, bias.is_some(), 0);
    launch("backward_input", label, params, dout, weight, bias, dinp, workgroups)
}

/// `dweight = Σ_q dout[q] ⊗ im2col(inp)[q]` of conv2d geometry `s`: one launch straight into
/// `dweight`, or the split partials into `parts` and their sum in split order.
fn backward_weight_launches(
    label: &'static str,
    dweight: &View,
    dout: &View,
    inp: &View,
    parts: &View,
    s: &Conv2dShape,
) -> Vec<Launch> {
    let (taps, splits) = (s.c_in * s.kh * s.kw, weight_splits(s));
    let tiles = taps.div_ceil(TILE_N);
    assert!(
        tiles <= 65535 && splits <= 65535,
        "{label}: {taps} taps or {splits} splits exceed 65535 workgroups"
    );
    let workgroups = [tiles as u32, s.c_out.div_ceil(TILE_M) as u32, splits as u32];
    let params = Params::new(s, Activation::Identity, false, chunk(s));
    if splits == 1 {
        return vec![launch("backward_weight", label, params, inp, dout, None, dweight, workgroups)];
    }
    check_views(label, Ok(()), &[("parts", parts, parts_len(s))]);
    vec![
        launch("backward_weight", label, params, inp, dout, None, parts, workgroups),
        colsum(dweight, parts, splits, s.weight_len(), false),
    ]
}

/// Forward of a conv2d layer: `out = act(conv2d(inp, weight) + bias)`; `bias: None` for `bias=False`.
pub fn conv2d_forward(
    out: &View,
    inp: &View,
    weight: &View,
    bias: Option<&View>,
    s: &Conv2dShape,
    act: Activation,
) -> Launch {
    let mut views =
        vec![("out", out, s.output_len()), ("inp", inp, s.input_len()), ("weight", weight, s.weight_len())];
    if let Some(b) = bias {
        views.push(("bias", b, s.bias_len()));
    }
    check_views("implicit conv2d_forward", s.validate(), &views);
    forward_launch("implicit conv2d_forward", out, inp, weight, bias, s, act)
}

/// Backward of a conv2d layer to its input (`dout`: the gradient of the pre-activation output).
pub fn conv2d_backward_input(dinp: &View, dout: &View, weight: &View, s: &Conv2dShape) -> Launch {
    check_views(
        "implicit conv2d_backward_input",
        s.validate(),
        &[("dinp", dinp, s.input_len()), ("dout", dout, s.output_len()), ("weight", weight, s.weight_len())],
    );
    backward_input_launch("implicit conv2d_backward_input", dinp, dout, weight, None, s, Activation::Identity)
}

/// Backward of a conv2d layer to its weights (deterministic split-K; `parts` holds [`parts_len`]).
pub fn conv2d_backward_weight(
    dweight: &View,
    dout: &View,
    inp: &View,
    parts: &View,
    s: &Conv2dShape,
) -> Vec<Launch> {
    check_views(
        "implicit conv2d_backward_weight",
        s.validate(),
        &[("dweight", dweight, s.weight_len()), ("dout", dout, s.output_len()), ("inp", inp, s.input_len())],
    );
    backward_weight_launches("implicit conv2d_backward_weight", dweight, dout, inp, parts, s)
}

/// Forward of a transposed-conv layer: the adjoint conv2d's input gradient with bias and activation.
pub fn conv_transpose2d_forward(
    out: &View,
    inp: &View,
    weight: &View,
    bias: Option<&View>,
    t: &ConvTranspose2dShape,
    act: Activation,
) -> Launch {
    let mut views =
        vec![("out", out, t.output_len()), ("inp", inp, t.input_len()), ("weight", weight, t.weight_len())];
    if let Some(b) = bias {
        views.push(("bias", b, t.bias_len()));
    }
    check_views("implicit conv_transpose2d_forward", t.validate(), &views);
    backward_input_launch("implicit conv_transpose2d_forward", out, inp, weight, bias, &t.adjoint(), act)
}

/// Backward of a transposed-conv layer to its input: the adjoint conv2d's forward of `dout`.
pub fn conv_transpose2d_backward_input(
    dinp: &View,
    dout: &View,
    weight: &View,
    t: &ConvTranspose2dShape,
) -> Launch {
    check_views(
        "implicit conv_transpose2d_backward_input",
        t.validate(),
        &[("dinp", dinp, t.input_len()), ("dout", dout, t.output_len()), ("weight", weight, t.weight_len())],
    );
    let label = "implicit conv_transpose2d_backward_input";
    forward_launch(label, dinp, dout, weight, None, &t.adjoint(), Activation::Identity)
}

/// Backward of a transposed-conv layer to its weights: the adjoint's weight gradient with `dout` in
/// the input role and `inp` in the output-gradient role (`parts`: [`parts_len`] of the adjoint).
pub fn conv_transpose2d_backward_weight(
    dweight: &View,
    dout: &View,
    inp: &View,
    parts: &View,
    t: &ConvTranspose2dShape,
) -> Vec<Launch> {
    check_views(
        "implicit conv_transpose2d_backward_weight",
        t.validate(),
        &[("dweight", dweight, t.weight_len()), ("dout", dout, t.output_len()), ("inp", inp, t.input_len())],
    );
    let label = "implicit conv_transpose2d_backward_weight";
    backward_weight_launches(label, dweight, inp, dout, parts, &t.adjoint())
}
