//! Reference for `shaders/activation.wgsl`.

use crate::kernels::Activation;

/// y = f(x) for one value (`apply_activation` of `shaders/activation_fns.wgsl`).
pub fn activate(x: f32, act: Activation) -> f32 {
    match act {
        Activation::Identity => x,
        Activation::Relu => x.max(0.0),
        Activation::LeakyRelu(s) => {
            if x > 0.0 {
                x
            } else {
                s * x
            }
        }
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::Tanh => x.tanh(),
    }
}

/// f'(x) written in terms of the output y = f(x).
pub fn derivative_from_output(y: f32, act: Activation) -> f32 {
    match act {
        Activation::Identity => 1.0,
        Activation::Relu => (y > 0.0) as u8 as f32,
        Activation::LeakyRelu(s) => {
            if y > 0.0 {
                1.0
            } else {
                s
            }
        }
        Activation::Sigmoid => y * (1.0 - y),
        Activation::Tanh => 1.0 - y * y,
    }
}

/// `out[i] = f(inp[i])` element by element (the `act_forward` entry point).
pub fn activation_forward(out: &mut [f32], inp: &[f32], act: Activation) {
    for (o, &x) in out.iter_mut().zip(inp) {
        *o = activate(x, act);
    }
}

/// `dinp[i] = dout[i] · f'(x_i)`, with f' written from the forward output `out` (the
/// `act_backward` entry point).
pub fn activation_backward(dinp: &mut [f32], dout: &[f32], out: &[f32], act: Activation) {
    for ((d, &g), &y) in dinp.iter_mut().zip(dout).zip(out) {
        *d = g * derivative_from_output(y, act);
    }
}

/// Reference for `act_backward_colsum`: `dinp = dout ⊙ act'(out)` over `[rows, cols]`, then
/// `dbias[j] = Σ_i dinp[i, j]` (in f64, as [`crate::cpu::reduce::colsum`]).
pub fn activation_backward_bias(
    dinp: &mut [f32],
    dbias: &mut [f32],
    dout: &[f32],
    out: &[f32],
    (rows, cols): (usize, usize),
    act: Activation,
) {
    activation_backward(dinp, dout, out, act);
    crate::cpu::reduce::colsum(dbias, dinp, rows, cols, false);
}
