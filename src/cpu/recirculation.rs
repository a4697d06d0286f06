//! Reference for `shaders/recirculation.wgsl`, and a whole recirculation step on the CPU: the
//! pseudo-gradients (the negated weight changes) of Hinton & McClelland's rule.

/// `out = λ·x + (1 − λ)·σ(logits)`.
pub fn recirc_mix(out: &mut [f32], x: &[f32], logits: &[f32], lambda: f32) {
    for ((o, &xi), &z) in out.iter_mut().zip(x).zip(logits) {
        let r = 1.0 / (1.0 + (-z).exp());
        *o = lambda * xi + (1.0 - lambda) * r;
    }
}

/// `out = scale·(a − b)`.
pub fn recirc_diff(out: &mut [f32], a: &[f32], b: &[f32], scale: f32) {
    for ((o, &ai), &bi) in out.iter_mut().zip(a).zip(b) {
        *o = scale * (ai - bi);
    }
}

/// The states and pseudo-gradients of one recirculation step on a batch, in f64.
pub struct Step {
    /// Hidden state at time 1, `[batch, hidden]`.
    pub h1: Vec<f64>,
    /// Visible state at time 2 (regressed reconstruction), `[batch, visible]`.
    pub v2: Vec<f64>,
    /// Hidden state at time 3.
    pub h3: Vec<f64>,
    /// `dW_e [hidden, visible] = Σ_b (h3 − h1)ᵀ v2 / batch`, `db_e`, `dW_d [visible, hidden] = Σ_b
    /// (v2 − x)ᵀ h1 / batch`, `db_d`: the weight changes with their sign flipped, so that an
    /// optimiser's descent step applies the rule.
    pub d_we: Vec<f64>,
    /// `db_e [hidden] = Σ_b (h3 − h1) / batch`.
    pub d_be: Vec<f64>,
    /// `dW_d [visible, hidden] = Σ_b (v2 − x)ᵀ h1 / batch`.
    pub d_wd: Vec<f64>,
    /// `db_d [visible] = Σ_b (v2 − x) / batch`.
    pub d_bd: Vec<f64>,
}

/// Visible `x` `[batch, v]` -> hidden σ(W_e x + b_e) -> visible λ·x + (1 − λ)·σ(W_d h + b_d) ->
/// hidden again; weights in PyTorch's `[out, in]` layout.
pub fn step(x: &[f32], we: &[f32], be: &[f32], wd: &[f32], bd: &[f32], batch: usize, lambda: f32) -> Step {
    let (h, v) = (be.len(), bd.len());
    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    let layer = |inp: &[f64], w: &[f32], b: &[f32], k: usize, m: usize| -> Vec<f64> {
        let mut out = vec![0.0; batch * m];
        for r in 0..batch {
            for j in 0..m {
                let z: f64 = (0..k).map(|i| inp[r * k + i] * w[j * k + i] as f64).sum::<f64>() + b[j] as f64;
                out[r * m + j] = z;
            }
        }
        out
    };
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let h1: Vec<f64> = layer(&x64, we, be, v, h).into_iter().map(sigmoid).collect();
    let logits = layer(&h1, wd, bd, h, v);
    let lam = lambda as f64;
    let v2: Vec<f64> = x64.iter().zip(&logits).map(|(&xi, &z)| lam * xi + (1.0 - lam) * sigmoid(z)).collect();
    let h3: Vec<f64> = layer(&v2, we, be, v, h).into_iter().map(sigmoid).collect();
    let inv = 1.0 / batch as f64;
    let (mut d_we, mut d_be) = (vec![0.0; h * v], vec![0.0; h]);
    let (mut d_wd, mut d_bd) = (vec![0.0; v * h], vec![0.0; v]);
    for r in 0..batch {
        for j in 0..h {
            let e = (h3[r * h + j] - h1[r * h + j]) * inv;
            d_be[j] += e;
            for i in 0..v {
                d_we[j * v + i] += e * v2[r * v + i];
            }
        }
        for i in 0..v {
            let e = (v2[r * v + i] - x64[r * v + i]) * inv;
            d_bd[i] += e;
            for j in 0..h {
                d_wd[i * h + j] += e * h1[r * h + j];
            }
        }
    }
    Step { h1, v2, h3, d_we, d_be, d_wd, d_bd }
}
