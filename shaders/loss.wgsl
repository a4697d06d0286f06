// loss.wgsl: reconstruction loss and its gradient in one pass, with per-workgroup partial sums.
//
// Input z are the decoder's last pre-activations (logits); y = out_act(z) is the reconstruction
// (identity or sigmoid). For every element, both metrics are summed so evaluation reports both:
//   squared error  (y - t)²
//   cross-entropy  -(t log y + (1 - t) log(1 - y)), computed from the logit as
//                  max(z, 0) - z t + log(1 + exp(-|z|)) when out_act is sigmoid (stable for any z),
//                  and on y clamped to [1e-7, 1 - 1e-7] when the output is linear.
// When write_grad is set, dz[i] = grad_scale * ∂loss_i/∂z_i for the chosen loss (kind):
//   MSE: 2 (y - t) f'(z);  BCE with sigmoid output: y - t.
// grad_scale is 1 / (batch · dim) for a per-pixel mean (the host sets it).
//
// Bindings: 0 uniform Params, 1 z, 2 target, 3 dz (written when write_grad), 4 partials [groups, 2]
// (squared-error sum, cross-entropy sum), reduced by reduce.wgsl's colsum afterwards.
// Dispatch: groups = ceil(n / 1024) workgroups of 256, 4 elements per invocation, folded into (x, y)
// when groups > 65535 (group = wid.x + wid.y * num_workgroups.x). The in-group tree is fixed: deterministic.
// CPU reference: src/cpu/loss.rs.

const ITEMS: u32 = 4u;
const WG: u32 = 256u;
const KIND_MSE: u32 = 0u;
const OUT_SIGMOID: u32 = 3u;

struct Params {
    n: u32,
    kind: u32,
    out_act: u32,
    write_grad: u32,
    grad_scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> z: array<f32>;
@group(0) @binding(2) var<storage, read_write> target_: array<f32>;
@group(0) @binding(3) var<storage, read_write> dz: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;

var<workgroup> sums: array<vec2<f32>, WG>;

@compute @workgroup_size(256)
fn loss_forward_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = wid.x + wid.y * nwg.x;
    var acc = vec2<f32>(0.0);
    for (var e = 0u; e < ITEMS; e++) {
        let i = group * WG * ITEMS + e * WG + lid.x;
        if (i < p.n) {
            let zi = z[i];
            let t = target_[i];
            var y = zi;
            var bce = 0.0;
            var dy_dz = 1.0;
            if (p.out_act == OUT_SIGMOID) {
                y = 1.0 / (1.0 + exp(-zi));
                bce = max(zi, 0.0) - zi * t + log(1.0 + exp(-abs(zi)));
                dy_dz = y * (1.0 - y);
            } else {
                let yc = clamp(y, 1e-7, 1.0 - 1e-7);
                bce = -(t * log(yc) + (1.0 - t) * log(1.0 - yc));
            }
            let err = y - t;
            acc += vec2<f32>(err * err, bce);
            if (p.write_grad != 0u) {
                var g = err; // BCE on logits with a sigmoid output
                if (p.kind == KIND_MSE) {
                    g = 2.0 * err * dy_dz;
                }
                dz[i] = p.grad_scale * g;
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
        partials[2u * group] = sums[0].x;
        partials[2u * group + 1u] = sums[0].y;
    }
}
