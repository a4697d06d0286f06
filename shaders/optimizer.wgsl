// optimizer.wgsl: one fused update over the whole parameter arena (every weight and bias at once).
//
//   sgd_momentum  v = μ v + (g + λ p);  p -= lr v                       (PyTorch SGD, dampening 0)
//   adam          g' = g + λ p (L2, coupled) or p -= lr λ p first (AdamW, decoupled)
//                 m = β1 m + (1-β1) g';  v = β2 v + (1-β2) g'²
//                 p -= lr · (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + ε)   (PyTorch Adam/AdamW)
// The bias corrections 1/(1-β^t) are computed on the host each step and passed in Params.
// Arena padding between views has zero gradients and zero parameters, so it stays zero.
//
// Bindings: 0 uniform Params, 1 params, 2 grads, 3 m (momentum / first moment), 4 v (second moment;
// unused by SGD). Dispatch: 1-D over n, 256 per workgroup, folded into (x, y) like activation.wgsl.
// CPU reference: src/cpu/optimizer.rs.

struct Params {
    n: u32,
    decoupled: u32,   // 1: AdamW
    lr: f32,
    weight_decay: f32,
    beta1: f32,       // Adam β1, or SGD momentum μ
    beta2: f32,
    eps: f32,
    inv_bias1: f32,   // 1 / (1 - β1^t)
    inv_bias2: f32,   // 1 / (1 - β2^t)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn sgd_momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    let g = grad[i] + p.weight_decay * param[i];
    let mi = p.beta1 * m[i] + g;
    m[i] = mi;
    param[i] -= p.lr * mi;
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    var w = param[i];
    var g = grad[i];
    if (p.decoupled != 0u) {
        w -= p.lr * p.weight_decay * w;
    } else {
        g += p.weight_decay * w;
    }
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = w - p.lr * (mi * p.inv_bias1) / (sqrt(vi * p.inv_bias2) + p.eps);
}
