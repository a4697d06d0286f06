//! Launcher for `shaders/conv2d.wgsl`: 2-D convolution and transposed convolution (NCHW, f32), forward
//! with a fused bias + activation, and the three gradients (input, weight, bias).
//!
//! The shader has four entry points written for one conv2d; a transposed convolution is the adjoint of
//! the conv2d given by [`ConvTranspose2dShape::adjoint`], so its launchers bind the same entry points with
//! the roles swapped (its forward is conv2d's backward-to-input, its backward-to-input is conv2d's
//! forward). Activation backward is not here: the `dout` these functions take is the gradient with
//! respect to the pre-activation (see `shaders/activation.wgsl`).

use super::{Activation, Launch, MAX_LOOP_STEPS, grid_1d};
use crate::error::Result;
use crate::gpu::View;
use crate::gpu::{PipelineKey, Shader};

/// `shaders/conv2d.wgsl`, after the shared activation functions of `shaders/activation_fns.wgsl`.
pub const SHADER: Shader = Shader {
    name: "conv2d",
    source: concat!(
        include_str!("../../shaders/activation_fns.wgsl"),
        include_str!("../../shaders/conv2d.wgsl")
    ),
};

pub use super::conv_shape::{Conv2dShape, ConvTranspose2dShape};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
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
    /// The reductions' first sample (they sum samples `n_first..n`).
    n_first: u32,
    /// The reductions add to their output (a later range of samples).
    accumulate: u32,
}

impl Params {
    pub(crate) fn new(s: &Conv2dShape, act: Activation, has_bias: bool) -> Params {
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
            n_first: 0,
            accumulate: 0,
        }
    }
}

/// The conv2d.wgsl entry points with the workgroup size the dispatch math assumes (`grid_1d(n, 256)`
/// for one invocation per output element or channel block; `grid_1d(n, 1)` for one 64-lane workgroup
/// per weight element (or channel block of them) or bias element).
pub const ENTRY_POINTS: [(&str, [u32; 3]); 4] = [
    ("conv2d_forward", [256, 1, 1]),
    ("conv2d_backward_input", [256, 1, 1]),
    ("conv2d_backward_weight", [64, 1, 1]),
    ("conv2d_backward_bias", [64, 1, 1]),
];

/// Channels per invocation / workgroup (the `CHANNEL_BLOCK` override) of `conv2d_forward` (output
/// channels), `conv2d_backward_input` (input channels) and `conv2d_backward_weight` (output channels)
/// when the blocked dimension has `channels` channels: 4, or 1 below 4 (where the clamped duplicates
/// of a 4-block would only waste work).
pub fn channel_block(channels: usize) -> usize {
    if channels >= 4 { 4 } else { 1 }
}

/// The pipeline of conv2d.wgsl's `entry`; `channel_block` is `Some` for the three entry points that
/// block channels and `None` for `conv2d_backward_bias`.
pub fn pipeline_key(entry: &'static str, channel_block: Option<usize>) -> PipelineKey {
    match channel_block {
        Some(b) => PipelineKey::new(SHADER, entry, &[("CHANNEL_BLOCK", b as f64)]),
        None => PipelineKey::new(SHADER, entry, &[]),
    }
}

/// The most loop iterations one invocation of the direct forward or input-gradient kernel runs for
/// a conv2d of shape `s` (a transposed convolution: its adjoint's): every input channel's taps for
/// an output pixel, or every output channel's taps that reach an input pixel, counting each loop's
/// exit. Past [`MAX_LOOP_STEPS`] lavapipe ends the loops early, so the direct algorithm is not
/// used there (the GEMM forms split their products instead).
pub fn direct_loop_steps(s: &Conv2dShape) -> usize {
    let forward = s.c_in * (2 + s.kh * (2 + s.kw));
    let (ty, tx) = (s.kh.div_ceil(s.stride), s.kw.div_ceil(s.stride));
    let input = s.c_out * (2 + ty * (2 + tx));
    forward.max(input)
}

/// Bindings are by role (1 x side, 2 weight side, 3 bias side, 4 y side); every launch binds all four.
#[allow(clippy::too_many_arguments)]
fn launch(
    key: PipelineKey,
    label: &'static str,
    params: Params,
    x: &View,
    weight: &View,
    bias: &View,
    y: &View,
    workgroups: [u32; 3],
) -> Launch {
    Launch {
        key,
        uniform: bytemuck::bytes_of(&params).to_vec(),
        views: vec![x.clone(), weight.clone(), bias.clone(), y.clone()],
        workgroups,
        label,
        per_step: None,
    }
}

/// Panics with a clear message when a launcher is handed an invalid shape or a view that is too short
/// (a bug in the caller: models validate their shapes when they are built).
pub(crate) fn check_views(label: &str, shape_ok: Result<()>, views: &[(&str, &View, usize)]) {
    if let Err(e) = shape_ok {
        panic!("{label}: {e}");
    }
    for (name, v, need) in views {
        assert!(v.len >= *need, "{label}: view '{name}' holds {} values, the shape needs {need}", v.len);
    }
}

fn forward_launch(
    label: &'static str,
    out: &View,
    inp: &View,
    weight: &View,
    bias: Option<&View>,
    c: &Conv2dShape,
    act: Activation,
) -> Launch {
    // Any buffer satisfies the layout when there is no bias; the shader never reads it.
    let b = bias.unwrap_or(out);
    let block = channel_block(c.c_out);
    launch(
        pipeline_key("conv2d_forward", Some(block)),
        label,
        Params::new(c, act, bias.is_some()),
        inp,
        weight,
        b,
        out,
        grid_1d(c.n * c.c_out.div_ceil(block) * c.out_h() * c.out_w(), 256),
    )
}

fn backward_input_launch(
    label: &'static str,
    dinp: &View,
    dout: &View,
    weight: &View,
    bias: Option<&View>,
    c: &Conv2dShape,
    act: Activation,
) -> Launch {
    let b = bias.unwrap_or(dinp);
    let block = channel_block(c.c_in);
    launch(
        pipeline_key("conv2d_backward_input", Some(block)),
        label,
        Params::new(c, act, bias.is_some()),
        dinp,
        weight,
        b,
        dout,
        grid_1d(c.n * c.c_in.div_ceil(block) * c.h * c.w, 256),
    )
}

/// A reduction over the batch as launches over consecutive sample ranges, each short enough that
/// no invocation loops past [`MAX_LOOP_STEPS`] when a sample costs it `steps_per_sample` loop
/// iterations; the later ranges add to the first one's sums, in order (deterministic). One launch,
/// with `params` unchanged, for any batch that fits.
fn over_sample_ranges(
    params: Params,
    steps_per_sample: usize,
    launch: impl Fn(Params) -> Launch,
) -> Vec<Launch> {
    let per_launch = (MAX_LOOP_STEPS / steps_per_sample.max(1)).max(1);
    let n = params.n as usize;
    (0..n.div_ceil(per_launch).max(1))
        .map(|r| {
            let first = r * per_launch;
            let end = (first + per_launch).min(n);
            launch(Params { n: end as u32, n_first: first as u32, accumulate: (r > 0) as u32, ..params })
        })
        .collect()
}

fn backward_weight_launch(
    label: &'static str,
    dweight: &View,
    x_role: &View,
    y_role: &View,
    c: &Conv2dShape,
) -> Vec<Launch> {
    let block = channel_block(c.c_out);
    // A lane's loop iterations per sample: the sample, its rows (every 8th) and their columns
    // (every 8th), counting each loop's exit as one more (lavapipe's limiter stopped the 3x3 case
    // at about 6 per sample, not the 3 its rows and columns make).
    let steps = 2 + c.out_h().div_ceil(8) * (2 + c.out_w().div_ceil(8));
    over_sample_ranges(Params::new(c, Activation::Identity, false), steps, |params| {
        launch(
            pipeline_key("conv2d_backward_weight", Some(block)),
            label,
            params,
            x_role,
            dweight,
            y_role,
            y_role,
            grid_1d(c.c_out.div_ceil(block) * c.c_in * c.kh * c.kw, 1),
        )
    })
}

/// Per-channel sums of `dout` `[n, channels, h, w]` into `dbias` `[channels]`.
fn channel_sum_launch(
    label: &'static str,
    dbias: &View,
    dout: &View,
    (n, channels, h, w): (usize, usize, usize, usize),
    act: Activation,
    out: &View,
) -> Vec<Launch> {
    let c = Conv2dShape { n, c_in: 1, h, w, c_out: channels, kh: 1, kw: 1, stride: 1, padding: 0 };
    // With a 1x1 kernel, stride 1, no padding, the y side is [n, channels, h, w]; x (read only
    // with a non-identity act) is the forward output the derivative is taken from. A lane's loop
    // iterations per sample: the sample, every 64th pixel of its plane and the loop's exit.
    over_sample_ranges(Params::new(&c, act, false), 2 + (h * w).div_ceil(64), |params| {
        launch(
            pipeline_key("conv2d_backward_bias", None),
            label,
            params,
            out,
            dout,
            dbias,
            dout,
            grid_1d(channels, 1),
        )
    })
}

/// Forward of a conv2d layer: `out = act(conv2d(inp, weight) + bias)`; `bias: None` for `bias=False`.
pub fn conv2d_forward(
    out: &View,
    inp: &View,
    weight: &View,
    bias: Option<&View>,
    shape: &Conv2dShape,
    act: Activation,
) -> Launch {
    let s = shape;
    let mut views =
        vec![("out", out, s.output_len()), ("inp", inp, s.input_len()), ("weight", weight, s.weight_len())];
    if let Some(b) = bias {
        views.push(("bias", b, s.bias_len()));
    }
    check_views("conv2d_forward", s.validate(), &views);
    forward_launch("conv2d_forward", out, inp, weight, bias, s, act)
}

/// Backward of a conv2d layer to its input: `dinp = conv2dᵀ(dout, weight)` (`dout` is the gradient
/// with respect to the pre-activation).
pub fn conv2d_backward_input(dinp: &View, dout: &View, weight: &View, shape: &Conv2dShape) -> Launch {
    let s = shape;
    check_views(
        "conv2d_backward_input",
        s.validate(),
        &[("dinp", dinp, s.input_len()), ("dout", dout, s.output_len()), ("weight", weight, s.weight_len())],
    );
    backward_input_launch("conv2d_backward_input", dinp, dout, weight, None, s, Activation::Identity)
}

/// Backward of a conv2d layer to its weights: `dweight[oc,ic,ky,kx] = Σ_{n,oy,ox} dout · inp`
/// (deterministic: fixed-order sums, no atomics).
pub fn conv2d_backward_weight(dweight: &View, dout: &View, inp: &View, shape: &Conv2dShape) -> Vec<Launch> {
    let s = shape;
    check_views(
        "conv2d_backward_weight",
        s.validate(),
        &[("dweight", dweight, s.weight_len()), ("dout", dout, s.output_len()), ("inp", inp, s.input_len())],
    );
    backward_weight_launch("conv2d_backward_weight", dweight, inp, dout, s)
}

/// Backward of a conv2d layer to its bias: `dbias[oc] = Σ_{n,oy,ox} dout[n,oc,oy,ox]` (deterministic).
pub fn conv2d_backward_bias(dbias: &View, dout: &View, shape: &Conv2dShape) -> Vec<Launch> {
    let s = shape;
    check_views(
        "conv2d_backward_bias",
        s.validate(),
        &[("dbias", dbias, s.bias_len()), ("dout", dout, s.output_len())],
    );
    let dims = (s.n, s.c_out, s.out_h(), s.out_w());
    channel_sum_launch("conv2d_backward_bias", dbias, dout, dims, Activation::Identity, dout)
}

/// [`conv2d_backward_bias`] with the layer's activation derivative in the same pass: `dout` becomes
/// `dout ⊙ act'(out)` in place and `dbias` its per-channel sum. Bit-identical to
/// `activation_backward` in place then [`conv2d_backward_bias`] (same products, same order).
pub fn conv2d_backward_bias_act(
    dbias: &View,
    dout: &View,
    out: &View,
    shape: &Conv2dShape,
    act: Activation,
) -> Vec<Launch> {
    if act == Activation::Identity {
        return conv2d_backward_bias(dbias, dout, shape);
    }
    let s = shape;
    check_views(
        "conv2d_backward_bias_act",
        s.validate(),
        &[("dbias", dbias, s.bias_len()), ("dout", dout, s.output_len()), ("out", out, s.output_len())],
    );
    let dims = (s.n, s.c_out, s.out_h(), s.out_w());
    channel_sum_launch("conv2d_backward_bias_act", dbias, dout, dims, act, out)
}

/// Forward of a transposed-conv layer: `out = act(conv_transpose2d(inp, weight) + bias)`, run as the
/// backward-to-input of [`ConvTranspose2dShape::adjoint`] with a fused bias and activation.
pub fn conv_transpose2d_forward(
    out: &View,
    inp: &View,
    weight: &View,
    bias: Option<&View>,
    shape: &ConvTranspose2dShape,
    act: Activation,
) -> Launch {
    let s = shape;
    let mut views =
        vec![("out", out, s.output_len()), ("inp", inp, s.input_len()), ("weight", weight, s.weight_len())];
    if let Some(b) = bias {
        views.push(("bias", b, s.bias_len()));
    }
    check_views("conv_transpose2d_forward", s.validate(), &views);
    backward_input_launch("conv_transpose2d_forward", out, inp, weight, bias, &s.adjoint(), act)
}

/// Backward of a transposed-conv layer to its input: a plain conv2d of `dout` with the same weights
/// (the forward of [`ConvTranspose2dShape::adjoint`]).
pub fn conv_transpose2d_backward_input(
    dinp: &View,
    dout: &View,
    weight: &View,
    shape: &ConvTranspose2dShape,
) -> Launch {
    let s = shape;
    check_views(
        "conv_transpose2d_backward_input",
        s.validate(),
        &[("dinp", dinp, s.input_len()), ("dout", dout, s.output_len()), ("weight", weight, s.weight_len())],
    );
    forward_launch(
        "conv_transpose2d_backward_input",
        dinp,
        dout,
        weight,
        None,
        &s.adjoint(),
        Activation::Identity,
    )
}

/// Backward of a transposed-conv layer to its weights:
/// `dweight[ic,oc,ky,kx] = Σ_{n,iy,ix} inp[n,ic,iy,ix] · dout[n,oc,iy·S-P+ky,ix·S-P+kx]`, which is
/// conv2d's weight gradient of the adjoint with `dout` in the input role and `inp` in the output role.
pub fn conv_transpose2d_backward_weight(
    dweight: &View,
    dout: &View,
    inp: &View,
    shape: &ConvTranspose2dShape,
) -> Vec<Launch> {
    let s = shape;
    check_views(
        "conv_transpose2d_backward_weight",
        s.validate(),
        &[("dweight", dweight, s.weight_len()), ("dout", dout, s.output_len()), ("inp", inp, s.input_len())],
    );
    backward_weight_launch("conv_transpose2d_backward_weight", dweight, dout, inp, &s.adjoint())
}

/// Backward of a transposed-conv layer to its bias: `dbias[oc] = Σ_{n,oy,ox} dout[n,oc,oy,ox]`.
pub fn conv_transpose2d_backward_bias(
    dbias: &View,
    dout: &View,
    shape: &ConvTranspose2dShape,
) -> Vec<Launch> {
    let s = shape;
    check_views(
        "conv_transpose2d_backward_bias",
        s.validate(),
        &[("dbias", dbias, s.bias_len()), ("dout", dout, s.output_len())],
    );
    let dims = (s.n, s.c_out, s.out_h(), s.out_w());
    channel_sum_launch("conv_transpose2d_backward_bias", dbias, dout, dims, Activation::Identity, dout)
}

/// [`conv_transpose2d_backward_bias`] with the activation derivative in the same pass (see
/// [`conv2d_backward_bias_act`]).
pub fn conv_transpose2d_backward_bias_act(
    dbias: &View,
    dout: &View,
    out: &View,
    shape: &ConvTranspose2dShape,
    act: Activation,
) -> Vec<Launch> {
    if act == Activation::Identity {
        return conv_transpose2d_backward_bias(dbias, dout, shape);
    }
    let s = shape;
    check_views(
        "conv_transpose2d_backward_bias_act",
        s.validate(),
        &[("dbias", dbias, s.bias_len()), ("dout", dout, s.output_len()), ("out", out, s.output_len())],
    );
    let dims = (s.n, s.c_out, s.out_h(), s.out_w());
    channel_sum_launch("conv_transpose2d_backward_bias_act", dbias, dout, dims, act, out)
}
