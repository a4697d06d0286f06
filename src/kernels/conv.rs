//! Launcher for `shaders/conv2d.wgsl`: 2-D convolution and transposed convolution (NCHW, f32), forward
//! with a fused bias + activation, and the three gradients (input, weight, bias).
//!
//! The shader has four entry points written for one conv2d; a transposed convolution is the adjoint of
//! the conv2d given by [`ConvTranspose2dShape::adjoint`], so its launchers bind the same entry points with
//! the roles swapped (its forward is conv2d's backward-to-input, its backward-to-input is conv2d's
//! forward). Activation backward is not here: the `dout` these functions take is the gradient with
//! respect to the pre-activation (see `shaders/activation.wgsl`).

use super::{Activation, Launch, grid_1d};
use crate::error::{Error, Result};
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

/// A `Conv2d` (PyTorch layout): input `[n, c_in, h, w]`, weight `[c_out, c_in, kh, kw]`, bias `[c_out]`,
/// output `[n, c_out, out_h, out_w]`, with `out_h = (h + 2·padding - kh)/stride + 1`. No dilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dShape {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2dShape {
    /// Output height; meaningful once [`Conv2dShape::validate`] passed (0 when the output is empty).
    pub fn out_h(&self) -> usize {
        conv_out(self.h, self.kh, self.stride, self.padding)
    }

    pub fn out_w(&self) -> usize {
        conv_out(self.w, self.kw, self.stride, self.padding)
    }

    pub fn input_len(&self) -> usize {
        self.n * self.c_in * self.h * self.w
    }

    pub fn output_len(&self) -> usize {
        self.n * self.c_out * self.out_h() * self.out_w()
    }

    pub fn weight_len(&self) -> usize {
        self.c_out * self.c_in * self.kh * self.kw
    }

    pub fn bias_len(&self) -> usize {
        self.c_out
    }

    /// Checks that the shape describes a non-empty convolution the kernels can run: every size >= 1,
    /// padding smaller than the kernel (in both directions), the padded input at least as large as the
    /// kernel, and every tensor indexable with 32-bit indices.
    pub fn validate(&self) -> Result<()> {
        let s = self;
        let what = format!(
            "conv2d [n {}, c_in {}, {}x{}] -> c_out {}, kernel {}x{}, stride {}, padding {}",
            s.n, s.c_in, s.h, s.w, s.c_out, s.kh, s.kw, s.stride, s.padding
        );
        check_common(&what, s.n, s.c_in, s.h, s.w, s.c_out, s.kh, s.kw, s.stride, s.padding)?;
        if s.h + 2 * s.padding < s.kh || s.w + 2 * s.padding < s.kw {
            return Err(Error::Shape(format!(
                "{what}: the kernel is larger than the padded input ({}x{}), so the output would be empty",
                s.h + 2 * s.padding,
                s.w + 2 * s.padding
            )));
        }
        check_u32(&what, &[s.input_len(), s.output_len(), s.weight_len()])
    }

    /// Floating-point operations of the forward pass (2 per multiply-add, counting the taps that fall on
    /// padding, as the usual `2·N·C_out·OH·OW·C_in·KH·KW`). Each of the two matrix-like gradients
    /// (input, weight) costs the same.
    pub fn flops(&self) -> f64 {
        2.0 * self.output_len() as f64 * (self.c_in * self.kh * self.kw) as f64
    }
}

/// A `ConvTranspose2d` (PyTorch layout): input `[n, c_in, h, w]`, weight `[c_in, c_out, kh, kw]`, bias
/// `[c_out]`, output `[n, c_out, out_h, out_w]` with
/// `out_h = (h - 1)·stride - 2·padding + kh + output_padding`. No dilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvTranspose2dShape {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
    /// Extra rows/columns at the bottom/right of the output; must be smaller than the stride.
    pub output_padding: usize,
}

impl ConvTranspose2dShape {
    /// Output height; meaningful once [`ConvTranspose2dShape::validate`] passed (0 when empty).
    pub fn out_h(&self) -> usize {
        transpose_out(self.h, self.kh, self.stride, self.padding, self.output_padding)
    }

    pub fn out_w(&self) -> usize {
        transpose_out(self.w, self.kw, self.stride, self.padding, self.output_padding)
    }

    pub fn input_len(&self) -> usize {
        self.n * self.c_in * self.h * self.w
    }

    pub fn output_len(&self) -> usize {
        self.n * self.c_out * self.out_h() * self.out_w()
    }

    pub fn weight_len(&self) -> usize {
        self.c_in * self.c_out * self.kh * self.kw
    }

    pub fn bias_len(&self) -> usize {
        self.c_out
    }

    /// Like [`Conv2dShape::validate`], plus `output_padding < stride` (PyTorch's rule) and a non-empty
    /// output.
    pub fn validate(&self) -> Result<()> {
        let s = self;
        let what = format!(
            "conv_transpose2d [n {}, c_in {}, {}x{}] -> c_out {}, kernel {}x{}, stride {}, padding {}, output_padding {}",
            s.n, s.c_in, s.h, s.w, s.c_out, s.kh, s.kw, s.stride, s.padding, s.output_padding
        );
        check_common(&what, s.n, s.c_in, s.h, s.w, s.c_out, s.kh, s.kw, s.stride, s.padding)?;
        if s.output_padding >= s.stride {
            return Err(Error::Shape(format!("{what}: output_padding must be smaller than the stride")));
        }
        if s.out_h() == 0 || s.out_w() == 0 {
            return Err(Error::Shape(format!(
                "{what}: the output would be empty ((h-1)*stride - 2*padding + kernel + output_padding <= 0)"
            )));
        }
        check_u32(&what, &[s.input_len(), s.output_len(), s.weight_len()])
    }

    /// The conv2d whose backward-to-input is this transposed convolution: input `[n, c_out, out_h,
    /// out_w]`, output `[n, c_in, h, w]`, weight `[c_in, c_out, kh, kw]` read as `[C_OUT, C_IN, ..]`.
    /// Its `out_h()` is this shape's `h` because `output_padding < stride`.
    pub fn adjoint(&self) -> Conv2dShape {
        Conv2dShape {
            n: self.n,
            c_in: self.c_out,
            h: self.out_h(),
            w: self.out_w(),
            c_out: self.c_in,
            kh: self.kh,
            kw: self.kw,
            stride: self.stride,
            padding: self.padding,
        }
    }

    /// Floating-point operations of the forward pass: `2·N·C_in·H·W·C_out·KH·KW` (each input pixel meets
    /// every tap, counting the ones that land on cropped padding). The gradients cost the same.
    pub fn flops(&self) -> f64 {
        2.0 * self.input_len() as f64 * (self.c_out * self.kh * self.kw) as f64
    }
}

fn conv_out(size: usize, k: usize, stride: usize, padding: usize) -> usize {
    if stride == 0 || size + 2 * padding < k {
        return 0;
    }
    (size + 2 * padding - k) / stride + 1
}

fn transpose_out(size: usize, k: usize, stride: usize, padding: usize, output_padding: usize) -> usize {
    if size == 0 {
        return 0;
    }
    ((size - 1) * stride + k + output_padding).saturating_sub(2 * padding)
}

#[allow(clippy::too_many_arguments)]
fn check_common(
    what: &str,
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    padding: usize,
) -> Result<()> {
    let named = [
        ("n", n),
        ("c_in", c_in),
        ("h", h),
        ("w", w),
        ("c_out", c_out),
        ("kh", kh),
        ("kw", kw),
        ("stride", stride),
    ];
    if let Some((name, _)) = named.iter().find(|(_, v)| *v == 0) {
        return Err(Error::Shape(format!("{what}: {name} must be at least 1")));
    }
    if padding >= kh || padding >= kw {
        return Err(Error::Shape(format!(
            "{what}: padding must be smaller than the kernel (some outputs would see only padding)"
        )));
    }
    Ok(())
}

fn check_u32(what: &str, lens: &[usize]) -> Result<()> {
    if let Some(&len) = lens.iter().find(|&&l| l > u32::MAX as usize) {
        return Err(Error::Shape(format!(
            "{what}: a tensor of {len} elements is too large for 32-bit indexing"
        )));
    }
    Ok(())
}

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
    _pad0: u32,
    _pad1: u32,
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
            _pad0: 0,
            _pad1: 0,
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

fn backward_weight_launch(
    label: &'static str,
    dweight: &View,
    x_role: &View,
    y_role: &View,
    c: &Conv2dShape,
) -> Launch {
    let block = channel_block(c.c_out);
    launch(
        pipeline_key("conv2d_backward_weight", Some(block)),
        label,
        Params::new(c, Activation::Identity, false),
        x_role,
        dweight,
        y_role,
        y_role,
        grid_1d(c.c_out.div_ceil(block) * c.c_in * c.kh * c.kw, 1),
    )
}

/// Per-channel sums of `dout` `[n, channels, h, w]` into `dbias` `[channels]`.
fn channel_sum_launch(
    label: &'static str,
    dbias: &View,
    dout: &View,
    n: usize,
    channels: usize,
    h: usize,
    w: usize,
) -> Launch {
    let c = Conv2dShape { n, c_in: 1, h, w, c_out: channels, kh: 1, kw: 1, stride: 1, padding: 0 };
    // With a 1x1 kernel, stride 1, no padding, the y side is [n, channels, h, w].
    launch(
        pipeline_key("conv2d_backward_bias", None),
        label,
        Params::new(&c, Activation::Identity, false),
        dout,
        dout,
        dbias,
        dout,
        grid_1d(channels, 1),
    )
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
pub fn conv2d_backward_weight(dweight: &View, dout: &View, inp: &View, shape: &Conv2dShape) -> Launch {
    let s = shape;
    check_views(
        "conv2d_backward_weight",
        s.validate(),
        &[("dweight", dweight, s.weight_len()), ("dout", dout, s.output_len()), ("inp", inp, s.input_len())],
    );
    backward_weight_launch("conv2d_backward_weight", dweight, inp, dout, s)
}

/// Backward of a conv2d layer to its bias: `dbias[oc] = Σ_{n,oy,ox} dout[n,oc,oy,ox]` (deterministic).
pub fn conv2d_backward_bias(dbias: &View, dout: &View, shape: &Conv2dShape) -> Launch {
    let s = shape;
    check_views(
        "conv2d_backward_bias",
        s.validate(),
        &[("dbias", dbias, s.bias_len()), ("dout", dout, s.output_len())],
    );
    channel_sum_launch("conv2d_backward_bias", dbias, dout, s.n, s.c_out, s.out_h(), s.out_w())
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
) -> Launch {
    let s = shape;
    check_views(
        "conv_transpose2d_backward_weight",
        s.validate(),
        &[("dweight", dweight, s.weight_len()), ("dout", dout, s.output_len()), ("inp", inp, s.input_len())],
    );
    backward_weight_launch("conv_transpose2d_backward_weight", dweight, dout, inp, &s.adjoint())
}

/// Backward of a transposed-conv layer to its bias: `dbias[oc] = Σ_{n,oy,ox} dout[n,oc,oy,ox]`.
pub fn conv_transpose2d_backward_bias(dbias: &View, dout: &View, shape: &ConvTranspose2dShape) -> Launch {
    let s = shape;
    check_views(
        "conv_transpose2d_backward_bias",
        s.validate(),
        &[("dbias", dbias, s.bias_len()), ("dout", dout, s.output_len())],
    );
    channel_sum_launch("conv_transpose2d_backward_bias", dbias, dout, s.n, s.c_out, s.out_h(), s.out_w())
}
