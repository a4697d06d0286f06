//! Reference for `shaders/pool.wgsl`: 2x2 stride-2 max-pooling (floor, like PyTorch's `MaxPool2d(2)`,
//! or `ceil` like `ceil_mode=True` / Keras `padding="same"`) with argmax, and nearest 2x up-sampling; forward and backward, NCHW. `h, w` are the input size.

/// `out[n,c,oy,ox]` = max of `inp[n,c,2oy..2oy+2, 2ox..2ox+2]`; `argmax` = the winner's `iy·w + ix`
/// within its plane. Ties go to the first in row-major window order (strict `>`), as in PyTorch. With
/// `ceil` the last window of an odd size covers only the values inside the input.
#[allow(clippy::too_many_arguments)]
pub fn maxpool2x2_forward(
    out: &mut [f32],
    argmax: &mut [u32],
    inp: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    ceil: bool,
) {
    let (oh, ow) = if ceil { (h.div_ceil(2), w.div_ceil(2)) } else { (h / 2, w / 2) };
    for plane in 0..n * c {
        let x = &inp[plane * h * w..][..h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best_at = 2 * oy * w + 2 * ox;
                for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                    if 2 * oy + dy >= h || 2 * ox + dx >= w {
                        continue;
                    }
                    let at = (2 * oy + dy) * w + 2 * ox + dx;
                    if x[at] > x[best_at] {
                        best_at = at;
                    }
                }
                let o = (plane * oh + oy) * ow + ox;
                out[o] = x[best_at];
                argmax[o] = best_at as u32;
            }
        }
    }
}

/// `dinp` = 0 everywhere except `dinp[argmax of each window] = dout` of that window.
#[allow(clippy::too_many_arguments)]
pub fn maxpool2x2_backward(
    dinp: &mut [f32],
    dout: &[f32],
    argmax: &[u32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    ceil: bool,
) {
    let (oh, ow) = if ceil { (h.div_ceil(2), w.div_ceil(2)) } else { (h / 2, w / 2) };
    dinp[..n * c * h * w].fill(0.0);
    for plane in 0..n * c {
        for o in plane * oh * ow..(plane + 1) * oh * ow {
            dinp[plane * h * w + argmax[o] as usize] = dout[o];
        }
    }
}

/// `out[n,c,oy,ox] = inp[n,c,oy/2,ox/2]`, `out` of shape `[n, c, 2h, 2w]`.
pub fn upsample2x_forward(out: &mut [f32], inp: &[f32], n: usize, c: usize, h: usize, w: usize) {
    let (oh, ow) = (2 * h, 2 * w);
    for plane in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                out[(plane * oh + oy) * ow + ox] = inp[(plane * h + oy / 2) * w + ox / 2];
            }
        }
    }
}

/// `dinp[n,c,iy,ix]` = sum of the 4 `dout` its value was copied to.
pub fn upsample2x_backward(dinp: &mut [f32], dout: &[f32], n: usize, c: usize, h: usize, w: usize) {
    let (oh, ow) = (2 * h, 2 * w);
    for plane in 0..n * c {
        for iy in 0..h {
            for ix in 0..w {
                let mut sum = 0.0f64;
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    sum += dout[(plane * oh + 2 * iy + dy) * ow + 2 * ix + dx] as f64;
                }
                dinp[(plane * h + iy) * w + ix] = sum as f32;
            }
        }
    }
}
