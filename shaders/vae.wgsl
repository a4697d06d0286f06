// vae.wgsl: the variational autoencoder's reparameterisation and KL term, forward and backward.
//
// The encoder's last layer writes h of shape [batch, 2d]: columns 0..d are μ, columns d..2d are
// log σ² (lv). ε [batch, d] comes from random.wgsl's random_normal.
//   reparam_forward   z[b, j] = μ + exp(½ lv) · ε
//   reparam_mean      z[b, j] = μ (the deterministic code, for evaluation at z = μ)
//   reparam_backward  dh[b, j]     = dz + β·kl_scale·μ
//                     dh[b, d + j] = dz · ½ exp(½ lv) · ε + β·kl_scale · ½ (exp(lv) − 1)
//                     (the gradient of β·kl_scale·KL is added in the same dispatch; the host sets
//                     kl_scale = 1/batch for a per-image mean)
//   kl_partials       partials[g] = Σ over workgroup g's elements of ½ (μ² + exp(lv) − 1 − lv), so
//                     colsum(partials) = KL = −½ Σ_{b,j} (1 + lv − μ² − σ²), summed over the batch.
//                     Reported separately from the reconstruction loss (nats/image = (ΣBCE + KL)/B).
//
// Bindings: 0 uniform Params, 1 result (z, dh or partials), 2 h, 3 eps, 4 dz.
//   reparam_forward uses 1-3, reparam_backward 1-4, reparam_mean and kl_partials 1-2.
// Dispatch: reparam_*: grid_1d(batch·d, 256), one (b, j) per invocation; kl_partials: like loss.wgsl,
// groups = grid_1d(batch·d, 1024), 256 invocations x 4 elements, fixed in-group tree, one partial per
// group (group = wid.x + wid.y · num_workgroups.x), reduced by reduce.wgsl's colsum: deterministic.
// CPU reference: src/cpu/vae.rs.

const WG: u32 = 256u;
const ITEMS: u32 = 4u;

struct Params {
    batch: u32,
    d: u32,
    beta: f32,
    kl_scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> result: array<f32>;
@group(0) @binding(2) var<storage, read_write> h: array<f32>;
@group(0) @binding(3) var<storage, read_write> eps: array<f32>;
@group(0) @binding(4) var<storage, read_write> dz: array<f32>;

var<workgroup> sums: array<f32, WG>;

// Flat index i = b·d + j of an element of z; its μ sits at h[b·2d + j], its lv d words later.
fn mu_index(i: u32) -> u32 {
    let b = i / p.d;
    return i + b * p.d;
}

@compute @workgroup_size(256)
fn reparam_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.batch * p.d) {
        return;
    }
    let m = mu_index(i);
    result[i] = h[m] + exp(0.5 * h[m + p.d]) * eps[i];
}

@compute @workgroup_size(256)
fn reparam_mean(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.batch * p.d) {
        return;
    }
    result[i] = h[mu_index(i)];
}

@compute @workgroup_size(256)
fn reparam_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.batch * p.d) {
        return;
    }
    let m = mu_index(i);
    let mu = h[m];
    let lv = h[m + p.d];
    let g = dz[i];
    let k = p.beta * p.kl_scale;
    result[m] = g + k * mu;
    result[m + p.d] = g * 0.5 * exp(0.5 * lv) * eps[i] + k * 0.5 * (exp(lv) - 1.0);
}

@compute @workgroup_size(256)
fn kl_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = wid.x + wid.y * nwg.x;
    let n = p.batch * p.d;
    var acc = 0.0;
    for (var e = 0u; e < ITEMS; e++) {
        let i = group * WG * ITEMS + e * WG + lid.x;
        if (i < n) {
            let m = mu_index(i);
            let mu = h[m];
            let lv = h[m + p.d];
            acc += 0.5 * (mu * mu + (exp(lv) - 1.0) - lv);
        }
    }
    sums[lid.x] = acc;
    workgroupBarrier();
    for (var width = WG / 2u; width > 0u; width /= 2u) {
        if (lid.x < width) {
            sums[lid.x] += sums[lid.x + width];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        result[group] = sums[0];
    }
}
