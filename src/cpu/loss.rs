//! Reference for `shaders/loss.wgsl`.

use crate::kernels::Activation;
use crate::kernels::loss::LossKind;

/// Returns (Σ squared error, Σ cross-entropy) over all elements, in f64, and writes
/// `dz = grad_scale · ∂loss/∂z` when `dz` is given.
pub fn loss_forward_backward(
    dz: Option<&mut [f32]>,
    z: &[f32],
    target: &[f32],
    kind: LossKind,
    out_act: Activation,
    grad_scale: f32,
) -> (f64, f64) {
    let (mut se, mut ce) = (0.0f64, 0.0f64);
    let mut grads = Vec::with_capacity(z.len());
    for (&zi, &t) in z.iter().zip(target) {
        let (zi, t) = (zi as f64, t as f64);
        let (y, bce, dy_dz) = if out_act == Activation::Sigmoid {
            let y = 1.0 / (1.0 + (-zi).exp());
            (y, zi.max(0.0) - zi * t + (-zi.abs()).exp().ln_1p(), y * (1.0 - y))
        } else {
            // The shader's bounds, as f32 rounds them (1 - 1e-7 is 1 - 2^-23 in f32).
            let yc = zi.clamp(1e-7f32 as f64, (1.0f32 - 1e-7f32) as f64);
            (zi, -(t * yc.ln() + (1.0 - t) * (1.0 - yc).ln()), 1.0)
        };
        let err = y - t;
        se += err * err;
        ce += bce;
        let g = match kind {
            LossKind::Mse => 2.0 * err * dy_dz,
            LossKind::Bce => err,
        };
        grads.push((grad_scale as f64 * g) as f32);
    }
    if let Some(dz) = dz {
        dz.copy_from_slice(&grads);
    }
    (se, ce)
}
