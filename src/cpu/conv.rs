//! Reference for `shaders/conv2d.wgsl`: conv2d and conv_transpose2d (PyTorch semantics, NCHW), forward
//! and the gradients to input, weight and bias. Plain loops over the definitions, accumulated in f64.
//!
//! The transposed convolution is written here from its own definition (each input pixel scatters
//! `x · w` into the output), not through the conv2d adjoint the GPU uses, so the tests check that
//! mapping too. The functions are generic over f32 and f64: the finite-difference checks run the
//! forward in f64. Activations are applied in f32 (as on the GPU); the identity keeps full precision.

use crate::cpu::activation::activate;
use crate::kernels::Activation;
use crate::kernels::conv::{Conv2dShape, ConvTranspose2dShape};

/// f32 or f64, converted through f64.
pub trait Real: Copy {
    /// The value widened to f64 (exact for both).
    fn to_f64(self) -> f64;
    /// An f64 rounded to this type (exact for f64).
    fn from_f64(v: f64) -> Self;
}

impl Real for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
}

impl Real for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> f64 {
        v
    }
}

fn finish<T: Real>(v: f64, act: Activation) -> T {
    match act {
        Activation::Identity => T::from_f64(v),
        _ => T::from_f64(activate(v as f32, act) as f64),
    }
}

/// Index of `[a, b, c, d]` in a tensor of shape `[_, nb, nc, nd]`.
fn at(a: usize, b: usize, c: usize, d: usize, nb: usize, nc: usize, nd: usize) -> usize {
    ((a * nb + b) * nc + c) * nd + d
}

/// `coord·stride - padding + k` if it lies in `[0, size)`.
fn tap(coord: usize, k: usize, stride: usize, padding: usize, size: usize) -> Option<usize> {
    (coord * stride + k).checked_sub(padding).filter(|&i| i < size)
}

/// `out[n,oc,oy,ox] = act(bias[oc] + Σ_{ic,ky,kx} inp[n,ic,oy·S-P+ky,ox·S-P+kx] · weight[oc,ic,ky,kx])`.
pub fn conv2d_forward<T: Real>(
    out: &mut [T],
    inp: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    s: &Conv2dShape,
    act: Activation,
) {
    let (oh, ow) = (s.out_h(), s.out_w());
    for n in 0..s.n {
        for oc in 0..s.c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut sum = bias.map_or(0.0, |b| b[oc].to_f64());
                    for ic in 0..s.c_in {
                        for ky in 0..s.kh {
                            let Some(iy) = tap(oy, ky, s.stride, s.padding, s.h) else {
                                continue;
                            };
                            for kx in 0..s.kw {
                                let Some(ix) = tap(ox, kx, s.stride, s.padding, s.w) else {
                                    continue;
                                };
                                let xv = inp[at(n, ic, iy, ix, s.c_in, s.h, s.w)].to_f64();
                                let wv = weight[at(oc, ic, ky, kx, s.c_in, s.kh, s.kw)].to_f64();
                                sum += xv * wv;
                            }
                        }
                    }
                    out[at(n, oc, oy, ox, s.c_out, oh, ow)] = finish(sum, act);
                }
            }
        }
    }
}

/// The chain rule through [`conv2d_forward`] (before the activation): every output gradient flows back
/// to the inputs its taps read, `dinp[n,ic,iy,ix] += dout[n,oc,oy,ox] · weight[oc,ic,ky,kx]`.
pub fn conv2d_backward_input<T: Real>(dinp: &mut [T], dout: &[T], weight: &[T], s: &Conv2dShape) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let mut acc = vec![0.0f64; s.input_len()];
    for n in 0..s.n {
        for oc in 0..s.c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let g = dout[at(n, oc, oy, ox, s.c_out, oh, ow)].to_f64();
                    for ic in 0..s.c_in {
                        for ky in 0..s.kh {
                            let Some(iy) = tap(oy, ky, s.stride, s.padding, s.h) else {
                                continue;
                            };
                            for kx in 0..s.kw {
                                let Some(ix) = tap(ox, kx, s.stride, s.padding, s.w) else {
                                    continue;
                                };
                                let wv = weight[at(oc, ic, ky, kx, s.c_in, s.kh, s.kw)].to_f64();
                                acc[at(n, ic, iy, ix, s.c_in, s.h, s.w)] += g * wv;
                            }
                        }
                    }
                }
            }
        }
    }
    for (d, a) in dinp.iter_mut().zip(acc) {
        *d = T::from_f64(a);
    }
}

/// `dweight[oc,ic,ky,kx] = Σ_{n,oy,ox} dout[n,oc,oy,ox] · inp[n,ic,oy·S-P+ky,ox·S-P+kx]`.
pub fn conv2d_backward_weight<T: Real>(dweight: &mut [T], dout: &[T], inp: &[T], s: &Conv2dShape) {
    let (oh, ow) = (s.out_h(), s.out_w());
    for oc in 0..s.c_out {
        for ic in 0..s.c_in {
            for ky in 0..s.kh {
                for kx in 0..s.kw {
                    let mut sum = 0.0f64;
                    for n in 0..s.n {
                        for oy in 0..oh {
                            let Some(iy) = tap(oy, ky, s.stride, s.padding, s.h) else {
                                continue;
                            };
                            for ox in 0..ow {
                                let Some(ix) = tap(ox, kx, s.stride, s.padding, s.w) else {
                                    continue;
                                };
                                sum += dout[at(n, oc, oy, ox, s.c_out, oh, ow)].to_f64()
                                    * inp[at(n, ic, iy, ix, s.c_in, s.h, s.w)].to_f64();
                            }
                        }
                    }
                    dweight[at(oc, ic, ky, kx, s.c_in, s.kh, s.kw)] = T::from_f64(sum);
                }
            }
        }
    }
}

/// `dbias[c] = Σ_{n,y,x} dout[n,c,y,x]` for `dout` of shape `[n, channels, h, w]`.
pub fn channel_sum<T: Real>(dbias: &mut [T], dout: &[T], n: usize, channels: usize, h: usize, w: usize) {
    for (c, d) in dbias.iter_mut().enumerate().take(channels) {
        let mut sum = 0.0f64;
        for b in 0..n {
            let plane = &dout[(b * channels + c) * h * w..][..h * w];
            sum += plane.iter().map(|v| v.to_f64()).sum::<f64>();
        }
        *d = T::from_f64(sum);
    }
}

/// `dbias[oc] = Σ_{n,oy,ox} dout[n,oc,oy,ox]`.
pub fn conv2d_backward_bias<T: Real>(dbias: &mut [T], dout: &[T], s: &Conv2dShape) {
    channel_sum(dbias, dout, s.n, s.c_out, s.out_h(), s.out_w());
}

/// PyTorch's ConvTranspose2d: every input pixel scatters `inp[n,ic,iy,ix] · weight[ic,oc,ky,kx]` to
/// `out[n,oc,iy·S-P+ky,ix·S-P+kx]` (dropped when outside the output); then bias and activation.
pub fn conv_transpose2d_forward<T: Real>(
    out: &mut [T],
    inp: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    s: &ConvTranspose2dShape,
    act: Activation,
) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let mut acc = vec![0.0f64; s.output_len()];
    for n in 0..s.n {
        for ic in 0..s.c_in {
            for iy in 0..s.h {
                for ix in 0..s.w {
                    let xv = inp[at(n, ic, iy, ix, s.c_in, s.h, s.w)].to_f64();
                    for oc in 0..s.c_out {
                        for ky in 0..s.kh {
                            let Some(oy) = tap(iy, ky, s.stride, s.padding, oh) else {
                                continue;
                            };
                            for kx in 0..s.kw {
                                let Some(ox) = tap(ix, kx, s.stride, s.padding, ow) else {
                                    continue;
                                };
                                let wv = weight[at(ic, oc, ky, kx, s.c_out, s.kh, s.kw)].to_f64();
                                acc[at(n, oc, oy, ox, s.c_out, oh, ow)] += xv * wv;
                            }
                        }
                    }
                }
            }
        }
    }
    for n in 0..s.n {
        for oc in 0..s.c_out {
            let b = bias.map_or(0.0, |b| b[oc].to_f64());
            for i in 0..oh * ow {
                let idx = (n * s.c_out + oc) * oh * ow + i;
                out[idx] = finish(acc[idx] + b, act);
            }
        }
    }
}

/// `dinp[n,ic,iy,ix] = Σ_{oc,ky,kx} dout[n,oc,iy·S-P+ky,ix·S-P+kx] · weight[ic,oc,ky,kx]`.
pub fn conv_transpose2d_backward_input<T: Real>(
    dinp: &mut [T],
    dout: &[T],
    weight: &[T],
    s: &ConvTranspose2dShape,
) {
    let (oh, ow) = (s.out_h(), s.out_w());
    for n in 0..s.n {
        for ic in 0..s.c_in {
            for iy in 0..s.h {
                for ix in 0..s.w {
                    let mut sum = 0.0f64;
                    for oc in 0..s.c_out {
                        for ky in 0..s.kh {
                            let Some(oy) = tap(iy, ky, s.stride, s.padding, oh) else {
                                continue;
                            };
                            for kx in 0..s.kw {
                                let Some(ox) = tap(ix, kx, s.stride, s.padding, ow) else {
                                    continue;
                                };
                                sum += dout[at(n, oc, oy, ox, s.c_out, oh, ow)].to_f64()
                                    * weight[at(ic, oc, ky, kx, s.c_out, s.kh, s.kw)].to_f64();
                            }
                        }
                    }
                    dinp[at(n, ic, iy, ix, s.c_in, s.h, s.w)] = T::from_f64(sum);
                }
            }
        }
    }
}

/// `dweight[ic,oc,ky,kx] = Σ_{n,iy,ix} inp[n,ic,iy,ix] · dout[n,oc,iy·S-P+ky,ix·S-P+kx]`.
pub fn conv_transpose2d_backward_weight<T: Real>(
    dweight: &mut [T],
    dout: &[T],
    inp: &[T],
    s: &ConvTranspose2dShape,
) {
    let (oh, ow) = (s.out_h(), s.out_w());
    for ic in 0..s.c_in {
        for oc in 0..s.c_out {
            for ky in 0..s.kh {
                for kx in 0..s.kw {
                    let mut sum = 0.0f64;
                    for n in 0..s.n {
                        for iy in 0..s.h {
                            let Some(oy) = tap(iy, ky, s.stride, s.padding, oh) else {
                                continue;
                            };
                            for ix in 0..s.w {
                                let Some(ox) = tap(ix, kx, s.stride, s.padding, ow) else {
                                    continue;
                                };
                                sum += inp[at(n, ic, iy, ix, s.c_in, s.h, s.w)].to_f64()
                                    * dout[at(n, oc, oy, ox, s.c_out, oh, ow)].to_f64();
                            }
                        }
                    }
                    dweight[at(ic, oc, ky, kx, s.c_out, s.kh, s.kw)] = T::from_f64(sum);
                }
            }
        }
    }
}

/// `dbias[oc] = Σ_{n,oy,ox} dout[n,oc,oy,ox]`.
pub fn conv_transpose2d_backward_bias<T: Real>(dbias: &mut [T], dout: &[T], s: &ConvTranspose2dShape) {
    channel_sum(dbias, dout, s.n, s.c_out, s.out_h(), s.out_w());
}
