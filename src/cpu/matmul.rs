//! Reference for `shaders/matmul.wgsl`: `c = act(op(a) · op(b) + bias)` (or `c += ...`).

use crate::cpu::activation::activate;
use crate::kernels::Activation;
use crate::kernels::matmul::Transpose;

/// Plain triple loop, accumulated in f64 so it is a trustworthy oracle.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    m: usize,
    n: usize,
    k: usize,
    trans: Transpose,
    act: Activation,
    accumulate: bool,
) {
    let (ta, tb) = match trans {
        Transpose::Nn => (false, false),
        Transpose::Nt => (false, true),
        Transpose::Tn => (true, false),
    };
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for kk in 0..k {
                let av = if ta { a[kk * m + i] } else { a[i * k + kk] };
                let bv = if tb { b[j * k + kk] } else { b[kk * n + j] };
                s += av as f64 * bv as f64;
            }
            let mut v = s as f32 + bias.map_or(0.0, |bb| bb[j]);
            v = activate(v, act);
            if accumulate {
                c[i * n + j] += v;
            } else {
                c[i * n + j] = v;
            }
        }
    }
}
