// activation.wgsl: element-wise activations, forward and backward.
// (Prepended on the host with shaders/activation_fns.wgsl: apply_activation and the ACT_* ids.)
//
//   act_forward   y[i]  = f(x[i])
//   act_backward  dx[i] = dy[i] * f'(x[i]), with f' written in terms of the output y = f(x), so the
//                 forward pass keeps only its outputs. In place is allowed (dx may be dy, y may be x).
// Activations: 0 identity, 1 ReLU, 2 leaky ReLU (slope in Params), 3 sigmoid, 4 tanh.
//
// Bindings: 0 uniform Params, 1 input (x or dy), 2 y (act_backward only; unused by act_forward), 3 output.
// Dispatch: 1-D over n elements, 256 per workgroup, folded into (x, y) when n > 65535*256
// (index = gid.x + gid.y * num_workgroups.x * 256).
// CPU reference: src/cpu/activation.rs.

struct Params {
    n: u32,
    act: u32,
    slope: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(256)
fn act_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    output[i] = apply_activation(p.act, p.slope, input[i]);
}

@compute @workgroup_size(256)
fn act_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    output[i] = input[i] * activation_derivative_from_output(p.act, p.slope, y[i]);
}
