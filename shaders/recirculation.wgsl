// recirculation.wgsl: the element-wise steps of recirculation (Hinton & McClelland 1988), which
// trains an autoencoder from differences of activities instead of back-propagated errors.
//
//   recirc_mix:  out[i] = λ·a[i] + (1 − λ)·σ(b[i])   the visible units' second state: the input a
//                                                    (x) regressed towards the reconstruction σ(b)
//                                                    (b: the decoder's logits); p.value = λ
//   recirc_diff: out[i] = s·(a[i] − b[i])            a difference of two states, scaled (s = 1 / batch
//                                                    for a mean over the batch); p.value = s
//
// Bindings: 0 uniform Params, 1 a, 2 b, 3 out. Dispatch: ceil(n / 256) workgroups of 256, folded
// into (x, y) past 65535 (i = gid.x + gid.y * num_workgroups.x * 256).
// CPU reference: src/cpu/recirculation.rs.

const WG: u32 = 256u;

struct Params {
    n: u32,
    value: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn recirc_mix(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i < p.n) {
        let r = 1.0 / (1.0 + exp(-b[i]));
        out[i] = p.value * a[i] + (1.0 - p.value) * r;
    }
}

@compute @workgroup_size(256)
fn recirc_diff(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i < p.n) {
        out[i] = p.value * (a[i] - b[i]);
    }
}
