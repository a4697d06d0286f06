// activation.wgsl: element-wise activations, forward and backward.
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

const ACT_RELU: u32 = 1u;
const ACT_LEAKY_RELU: u32 = 2u;
const ACT_SIGMOID: u32 = 3u;
const ACT_TANH: u32 = 4u;

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

fn activate(x: f32) -> f32 {
    switch p.act {
        case ACT_RELU: { return max(x, 0.0); }
        case ACT_LEAKY_RELU: { return select(p.slope * x, x, x > 0.0); }
        case ACT_SIGMOID: { return 1.0 / (1.0 + exp(-x)); }
        case ACT_TANH: { return tanh(x); }
        default: { return x; }
    }
}

// f'(x) from y = f(x). ReLU and leaky ReLU: y > 0 exactly when x > 0.
fn derivative_from_output(out: f32) -> f32 {
    switch p.act {
        case ACT_RELU: { return select(0.0, 1.0, out > 0.0); }
        case ACT_LEAKY_RELU: { return select(p.slope, 1.0, out > 0.0); }
        case ACT_SIGMOID: { return out * (1.0 - out); }
        case ACT_TANH: { return 1.0 - out * out; }
        default: { return 1.0; }
    }
}

@compute @workgroup_size(256)
fn act_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    output[i] = activate(input[i]);
}

@compute @workgroup_size(256)
fn act_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    output[i] = input[i] * derivative_from_output(y[i]);
}
