//! Launcher for `shaders/pool.wgsl`: 2x2 max-pooling (stride 2, with argmax for the backward) and
//! nearest-neighbour 2x up-sampling, forward and backward (NCHW, f32).
//!
//! `h, w` are always the size of the layer's *input* (the pooled / up-sampled tensor is derived).
//! Max-pooling floors like PyTorch's `MaxPool2d(2)` (with odd `h` or `w` the last row/column is dropped
//! and gets a zero gradient), or with `ceil` rounds up like `MaxPool2d(2, ceil_mode=True)` and Keras's
//! `padding="same"` (the last window is cut short and takes the max of the values it covers).

use super::{Launch, grid_1d};
use crate::error::{Error, Result};
use crate::gpu::View;
use crate::gpu::{PipelineKey, Shader};

/// `shaders/pool.wgsl`.
pub const SHADER: Shader = Shader { name: "pool", source: include_str!("../../shaders/pool.wgsl") };

/// Output size of a 2x2 stride-2 max-pool: `(h / 2, w / 2)`, rounded up with `ceil`.
pub fn maxpool2x2_out(h: usize, w: usize, ceil: bool) -> (usize, usize) {
    if ceil { (h.div_ceil(2), w.div_ceil(2)) } else { (h / 2, w / 2) }
}

/// Output size `(2h, 2w)` of a nearest 2x up-sampling.
pub fn upsample2x_out(h: usize, w: usize) -> (usize, usize) {
    (2 * h, 2 * w)
}

/// A max-pool needs a non-empty output (a 2x2 input unless `ceil`) and 32-bit indexable tensors.
pub fn maxpool2x2_validate(n: usize, c: usize, h: usize, w: usize, ceil: bool) -> Result<()> {
    check_nonzero("maxpool2x2", n, c, h, w)?;
    if !ceil && (h < 2 || w < 2) {
        return Err(Error::Shape(format!(
            "maxpool2x2 of a {h}x{w} input: the output would be empty (it needs at least 2x2)"
        )));
    }
    check_u32("maxpool2x2", n * c * h * w)
}

/// An up-sampling needs a non-empty input and a 32-bit indexable output.
pub fn upsample2x_validate(n: usize, c: usize, h: usize, w: usize) -> Result<()> {
    check_nonzero("upsample2x", n, c, h, w)?;
    check_u32("upsample2x", n * c * h * w * 4)
}

fn check_nonzero(what: &str, n: usize, c: usize, h: usize, w: usize) -> Result<()> {
    if n == 0 || c == 0 || h == 0 || w == 0 {
        return Err(Error::Shape(format!(
            "{what} of [n {n}, c {c}, {h}x{w}]: every size must be at least 1"
        )));
    }
    Ok(())
}

fn check_u32(what: &str, len: usize) -> Result<()> {
    if len > u32::MAX as usize {
        return Err(Error::Shape(format!(
            "{what}: a tensor of {len} elements is too large for 32-bit indexing"
        )));
    }
    Ok(())
}

/// Bytes of the max-pool forward (read x once, write y and argmax) for GB/s reports.
pub fn maxpool2x2_bytes(n: usize, c: usize, h: usize, w: usize, ceil: bool) -> f64 {
    let (oh, ow) = maxpool2x2_out(h, w, ceil);
    4.0 * (n * c) as f64 * (h * w + 2 * oh * ow) as f64
}

/// Bytes of the up-sampling forward (read x, write 4x as much) for GB/s reports.
pub fn upsample2x_bytes(n: usize, c: usize, h: usize, w: usize) -> f64 {
    4.0 * (n * c * h * w) as f64 * 5.0
}

/// The pool.wgsl entry points with the workgroup size the dispatch math assumes (`grid_1d(n, 256)`).
pub const ENTRY_POINTS: [(&str, [u32; 3]); 4] = [
    ("maxpool2x2_forward", [256, 1, 1]),
    ("maxpool2x2_backward", [256, 1, 1]),
    ("upsample2x_forward", [256, 1, 1]),
    ("upsample2x_backward", [256, 1, 1]),
];

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

fn params(n: usize, c: usize, h: usize, w: usize, (oh, ow): (usize, usize)) -> Params {
    Params {
        planes: (n * c) as u32,
        h: h as u32,
        w: w as u32,
        oh: oh as u32,
        ow: ow as u32,
        _pad0: 0,
        _pad1: 0,
        _pad2: 0,
    }
}

fn check(label: &str, ok: Result<()>, views: &[(&str, &View, usize)]) {
    if let Err(e) = ok {
        panic!("{label}: {e}");
    }
    for (name, v, need) in views {
        assert!(v.len >= *need, "{label}: view '{name}' holds {} values, the shape needs {need}", v.len);
    }
}

/// `out[n,c,oy,ox] = max` of the 2x2 window (cut short at the edge with `ceil`), `argmax` = its index `iy·w + ix` in the input plane (u32).
#[allow(clippy::too_many_arguments)]
pub fn maxpool2x2_forward(
    out: &View,
    argmax: &View,
    inp: &View,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    ceil: bool,
) -> Launch {
    let (oh, ow) = maxpool2x2_out(h, w, ceil);
    let len = n * c * oh * ow;
    check(
        "maxpool2x2_forward",
        maxpool2x2_validate(n, c, h, w, ceil),
        &[("out", out, len), ("argmax", argmax, len), ("inp", inp, n * c * h * w)],
    );
    Launch {
        key: PipelineKey::new(SHADER, "maxpool2x2_forward", &[]),
        uniform: bytemuck::bytes_of(&params(n, c, h, w, (oh, ow))).to_vec(),
        views: vec![inp.clone(), out.clone(), argmax.clone()],
        workgroups: grid_1d(len, 256),
        label: "maxpool2x2_forward",
        per_step: None,
    }
}

/// `dinp[n,c,iy,ix] = dout` of its window if it was the window's argmax, else 0 (every element written).
#[allow(clippy::too_many_arguments)]
pub fn maxpool2x2_backward(
    dinp: &View,
    dout: &View,
    argmax: &View,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    ceil: bool,
) -> Launch {
    let (oh, ow) = maxpool2x2_out(h, w, ceil);
    let len = n * c * oh * ow;
    check(
        "maxpool2x2_backward",
        maxpool2x2_validate(n, c, h, w, ceil),
        &[("dinp", dinp, n * c * h * w), ("dout", dout, len), ("argmax", argmax, len)],
    );
    Launch {
        key: PipelineKey::new(SHADER, "maxpool2x2_backward", &[]),
        uniform: bytemuck::bytes_of(&params(n, c, h, w, (oh, ow))).to_vec(),
        views: vec![dinp.clone(), dout.clone(), argmax.clone()],
        workgroups: grid_1d(n * c * h * w, 256),
        label: "maxpool2x2_backward",
        per_step: None,
    }
}

/// `out[n,c,oy,ox] = inp[n,c,oy/2,ox/2]`, `out` is `[n, c, 2h, 2w]`.
pub fn upsample2x_forward(out: &View, inp: &View, n: usize, c: usize, h: usize, w: usize) -> Launch {
    let len = n * c * h * w;
    check("upsample2x_forward", upsample2x_validate(n, c, h, w), &[("out", out, 4 * len), ("inp", inp, len)]);
    Launch {
        key: PipelineKey::new(SHADER, "upsample2x_forward", &[]),
        uniform: bytemuck::bytes_of(&params(n, c, h, w, upsample2x_out(h, w))).to_vec(),
        views: vec![inp.clone(), out.clone()],
        workgroups: grid_1d(4 * len, 256),
        label: "upsample2x_forward",
        per_step: None,
    }
}

/// `dinp[n,c,iy,ix] = Σ` of the 4 `dout` of its 2x2 block (fixed order: deterministic).
pub fn upsample2x_backward(dinp: &View, dout: &View, n: usize, c: usize, h: usize, w: usize) -> Launch {
    let len = n * c * h * w;
    check(
        "upsample2x_backward",
        upsample2x_validate(n, c, h, w),
        &[("dinp", dinp, len), ("dout", dout, 4 * len)],
    );
    Launch {
        key: PipelineKey::new(SHADER, "upsample2x_backward", &[]),
        uniform: bytemuck::bytes_of(&params(n, c, h, w, upsample2x_out(h, w))).to_vec(),
        views: vec![dinp.clone(), dout.clone()],
        workgroups: grid_1d(len, 256),
        label: "upsample2x_backward",
        per_step: None,
    }
}
