//! Reference for `shaders/optimizer.wgsl` (PyTorch's SGD, Adam and AdamW update rules).

use crate::kernels::optimizer::Optimizer;

/// One update at step `t` (1-based). `v` is unused by SGD.
pub fn optimizer_step(
    opt: &Optimizer,
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    t: u64,
) {
    let t = t.max(1) as i32;
    match *opt {
        Optimizer::Sgd { lr, momentum, weight_decay } => {
            for i in 0..params.len() {
                let g = grads[i] + weight_decay * params[i];
                m[i] = momentum * m[i] + g;
                params[i] -= lr * m[i];
            }
        }
        Optimizer::Adam { lr, beta1, beta2, eps, weight_decay }
        | Optimizer::AdamW { lr, beta1, beta2, eps, weight_decay } => {
            let decoupled = matches!(opt, Optimizer::AdamW { .. });
            let inv_b1 = (1.0 / (1.0 - (beta1 as f64).powi(t))) as f32;
            let inv_b2 = (1.0 / (1.0 - (beta2 as f64).powi(t))) as f32;
            for i in 0..params.len() {
                let mut w = params[i];
                let mut g = grads[i];
                if decoupled {
                    w -= lr * weight_decay * w;
                } else {
                    g += weight_decay * w;
                }
                m[i] = beta1 * m[i] + (1.0 - beta1) * g;
                v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
                params[i] = w - lr * (m[i] * inv_b1) / ((v[i] * inv_b2).sqrt() + eps);
            }
        }
    }
}
