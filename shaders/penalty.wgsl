// penalty.wgsl: regularisers on a layer's activations h [batch, width], their value and their
// gradient, written into the gradient buffers the backward pass is building.
//
//   activity_penalty      sparse autoencoder: P = λ/B · Σ_b Σ_j |h| (L1) or h² (L2).
//                         dh[b,j] += λ/B · sign(h) (L1) or 2h (L2); per-workgroup partial sums of
//                         Σ|h| or Σh² (unscaled) for the loss log, reduced by reduce.wgsl's colsum.
//   contractive_rows      s[j] = Σ_i W[j,i]², the squared norms of the rows of W [width, in].
//   contractive_h         for h = sigmoid(W x + b): g = h(1-h); ‖J_b‖²_F = Σ_j g² s_j.
//                         Writes jf2[b] = ‖J_b‖²_F (one invocation per example, fixed order), and
//                         dh[b,j] += λ/B · 2 g (1 - 2h) s_j   (the path through h).
//   contractive_weight    G_j = Σ_b g_bj² (one invocation per row, fixed order), then
//                         dW[j,i] += λ/B · 2 G_j W[j,i]        (the path through s_j).
// P_contractive = λ/B · Σ_b ‖J_b‖²_F. λ is per example: the reconstruction term is a per-pixel mean.
//
// Bindings (all read_write, see src/gpu/pipelines.rs):
//   activity_penalty:    0 Params, 1 h, 2 dh, 3 partials [groups]
//   contractive_rows:    0 Params, 1 W, 2 s
//   contractive_h:       0 Params, 1 h, 2 dh, 3 s, 4 jf2 [batch]
//   contractive_weight:  0 Params, 1 h, 2 W, 3 dW
// Dispatch: activity_penalty ceil(n/1024) groups of 256 (4 elements each, folded like loss.wgsl);
// contractive_rows and contractive_weight one invocation per row j (64 per group) — the weight pass
// loops over the row's inputs; contractive_h one invocation per example (64 per group).
// CPU reference: src/cpu/penalty.rs.

const WG: u32 = 256u;
const ITEMS: u32 = 4u;

struct Params {
    batch: u32,
    width: u32,    // units in the layer (j)
    inputs: u32,   // inputs of the layer (i), contractive only
    l2: u32,       // activity_penalty: 0 = L1, 1 = L2
    scale: f32,    // λ / B
    write_grad: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> b1: array<f32>;
@group(0) @binding(2) var<storage, read_write> b2: array<f32>;
@group(0) @binding(3) var<storage, read_write> b3: array<f32>;
@group(0) @binding(4) var<storage, read_write> b4: array<f32>;

var<workgroup> sums: array<f32, WG>;

@compute @workgroup_size(256)
fn activity_penalty(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    // b1 = h, b2 = dh, b3 = partials
    let group = wid.x + wid.y * nwg.x;
    let n = p.batch * p.width;
    var acc = 0.0;
    for (var e = 0u; e < ITEMS; e++) {
        let i = group * WG * ITEMS + e * WG + lid.x;
        if (i < n) {
            let h = b1[i];
            if (p.l2 != 0u) {
                acc += h * h;
                if (p.write_grad != 0u) {
                    b2[i] += p.scale * 2.0 * h;
                }
            } else {
                acc += abs(h);
                if (p.write_grad != 0u) {
                    b2[i] += p.scale * sign(h);
                }
            }
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
        b3[group] = sums[0];
    }
}

@compute @workgroup_size(64)
fn contractive_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    // b1 = W [width, inputs], b2 = s [width]
    let j = gid.x;
    if (j >= p.width) {
        return;
    }
    var s = 0.0;
    for (var i = 0u; i < p.inputs; i++) {
        let w = b1[j * p.inputs + i];
        s += w * w;
    }
    b2[j] = s;
}

@compute @workgroup_size(64)
fn contractive_h(@builtin(global_invocation_id) gid: vec3<u32>) {
    // b1 = h [batch, width], b2 = dh, b3 = s [width], b4 = jf2 [batch]
    let b = gid.x;
    if (b >= p.batch) {
        return;
    }
    var total = 0.0;
    for (var j = 0u; j < p.width; j++) {
        let idx = b * p.width + j;
        let h = b1[idx];
        let g = h * (1.0 - h);
        total += g * g * b3[j];
        if (p.write_grad != 0u) {
            b2[idx] += p.scale * 2.0 * g * (1.0 - 2.0 * h) * b3[j];
        }
    }
    b4[b] = total;
}

@compute @workgroup_size(64)
fn contractive_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    // b1 = h [batch, width], b2 = W [width, inputs], b3 = dW [width, inputs]
    let j = gid.x;
    if (j >= p.width) {
        return;
    }
    var g2 = 0.0;
    for (var b = 0u; b < p.batch; b++) {
        let h = b1[b * p.width + j];
        let g = h * (1.0 - h);
        g2 += g * g;
    }
    let f = p.scale * 2.0 * g2;
    for (var i = 0u; i < p.inputs; i++) {
        let idx = j * p.inputs + i;
        b3[idx] += f * b2[idx];
    }
}
