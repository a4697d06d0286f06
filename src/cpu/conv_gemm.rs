//! Reference for `shaders/conv_gemm.wgsl`: im2col, its adjoint col2im, and the NCHW <-> channel-major
//! permutations, as plain loops over one conv2d geometry (see the shader's header for the layouts).

use super::activation::activate;
use crate::kernels::Activation;
use crate::kernels::conv::Conv2dShape;

/// `col[k, j]` with `k = (ic·KH + ky)·KW + kx`, `j = (n·OH + oy)·OW + ox`: the input under tap `k` of
/// output pixel `j`, 0 on padding.
pub fn im2col(col: &mut [f32], inp: &[f32], s: &Conv2dShape) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let cols = s.n * oh * ow;
    for ic in 0..s.c_in {
        for ky in 0..s.kh {
            for kx in 0..s.kw {
                let k = (ic * s.kh + ky) * s.kw + kx;
                for n in 0..s.n {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let iy = (oy * s.stride + ky) as isize - s.padding as isize;
                            let ix = (ox * s.stride + kx) as isize - s.padding as isize;
                            let inside = iy >= 0 && ix >= 0 && (iy as usize) < s.h && (ix as usize) < s.w;
                            let v = if inside {
                                inp[((n * s.c_in + ic) * s.h + iy as usize) * s.w + ix as usize]
                            } else {
                                0.0
                            };
                            col[k * cols + (n * oh + oy) * ow + ox] = v;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: every input pixel gets the sum of the `col` entries that read it, then
/// `bias[ic]` and the activation. Sums run over (ky, kx) in increasing order, as the shader's do.
pub fn col2im(out: &mut [f32], col: &[f32], bias: Option<&[f32]>, s: &Conv2dShape, act: Activation) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let cols = s.n * oh * ow;
    for n in 0..s.n {
        for ic in 0..s.c_in {
            for iy in 0..s.h {
                for ix in 0..s.w {
                    let mut acc = 0.0f32;
                    for ky in 0..s.kh {
                        let ty = iy + s.padding;
                        if ty < ky || !(ty - ky).is_multiple_of(s.stride) || (ty - ky) / s.stride >= oh {
                            continue;
                        }
                        let oy = (ty - ky) / s.stride;
                        for kx in 0..s.kw {
                            let tx = ix + s.padding;
                            if tx < kx || !(tx - kx).is_multiple_of(s.stride) || (tx - kx) / s.stride >= ow {
                                continue;
                            }
                            let ox = (tx - kx) / s.stride;
                            acc += col[((ic * s.kh + ky) * s.kw + kx) * cols + (n * oh + oy) * ow + ox];
                        }
                    }
                    if let Some(b) = bias {
                        acc += b[ic];
                    }
                    out[((n * s.c_in + ic) * s.h + iy) * s.w + ix] = activate(acc, act);
                }
            }
        }
    }
}

/// `out[n,c,s] = act(bias[c] + cn[c, n·OH·OW + s])` over the output shape `[N, C_OUT, OH, OW]`.
pub fn cnhw_to_nchw(out: &mut [f32], cn: &[f32], bias: Option<&[f32]>, s: &Conv2dShape, act: Activation) {
    let plane = s.out_h() * s.out_w();
    for n in 0..s.n {
        for c in 0..s.c_out {
            for p in 0..plane {
                let v = cn[c * s.n * plane + n * plane + p] + bias.map_or(0.0, |b| b[c]);
                out[(n * s.c_out + c) * plane + p] = activate(v, act);
            }
        }
    }
}

/// `cn[c, n·OH·OW + s] = inp[n,c,s]` over the output shape `[N, C_OUT, OH, OW]`.
pub fn nchw_to_cnhw(cn: &mut [f32], inp: &[f32], s: &Conv2dShape) {
    let plane = s.out_h() * s.out_w();
    for n in 0..s.n {
        for c in 0..s.c_out {
            for p in 0..plane {
                cn[c * s.n * plane + n * plane + p] = inp[(n * s.c_out + c) * plane + p];
            }
        }
    }
}
