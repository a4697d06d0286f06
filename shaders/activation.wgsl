// activation.wgsl: element-wise activations, forward and backward.
// (Prepended on the host with shaders/activation_fns.wgsl: apply_activation and the ACT_* ids; followed
// by shaders/activation_y_f32.wgsl or activation_y_half.wgsl: binding 2 and y_at, how the backward
// reads the forward's output, f32 or f16 (the opt-in f16 activation storage, after `enable f16;`).)
//
//   act_forward   y[i]  = f(x[i])
//   act_backward  dx[i] = dy[i] * f'(x[i]), with f' written in terms of the output y = f(x), so the
//                 forward pass keeps only its outputs. In place is allowed (dx may be dy, y may be x).
//   act_backward_colsum  the same on a [rows, cols] matrix (rows = n / cols), and in the same pass
//                 the bias gradient dbias[j] = Σ_i dx[i, j]: a layer's activation derivative and bias
//                 gradient without a second pass over dx. The sum runs in reduce.wgsl's colsum order
//                 (lane lid.y adds rows lid.y, lid.y + 8, ... in order, then the same fixed tree), so
//                 dx and dbias are bit-identical to act_backward followed by colsum. Each product is
//                 stored and also added: used twice, it is not contracted into an fma with the sum.
// Activations: 0 identity, 1 ReLU, 2 leaky ReLU (slope in Params), 3 sigmoid, 4 tanh.
//
// Bindings: 0 uniform Params, 1 input (x or dy), 2 y (backward only; unused by act_forward), 3 output,
// 4 dbias (act_backward_colsum only, cols words).
// Dispatch: act_forward / act_backward 1-D over n elements, 256 per workgroup, folded into (x, y) when
// n > 65535*256 (index = gid.x + gid.y * num_workgroups.x * 256); act_backward_colsum workgroups of
// 32 x 8, (ceil(cols/32), 1): lid.x picks a column, the 8 lanes in y split its rows.
// CPU reference: src/cpu/activation.rs.

struct Params {
    n: u32,
    act: u32,
    slope: f32,
    // act_backward_colsum only: the columns of the [n / cols, cols] matrix.
    cols: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> input: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
@group(0) @binding(4) var<storage, read_write> dbias: array<f32>;

const COLS: u32 = 32u;
const LANES: u32 = 8u;

var<workgroup> lane_sums: array<array<f32, COLS>, LANES>;

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
    output[i] = input[i] * activation_derivative_from_output(p.act, p.slope, y_at(i));
}

@compute @workgroup_size(32, 8)
fn act_backward_colsum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let col = wid.x * COLS + lid.x;
    let rows = p.n / max(p.cols, 1u);
    var s = 0.0;
    if (col < p.cols) {
        for (var r = lid.y; r < rows; r += LANES) {
            let i = r * p.cols + col;
            let d = input[i] * activation_derivative_from_output(p.act, p.slope, y_at(i));
            output[i] = d;
            s += d;
        }
    }
    lane_sums[lid.y][lid.x] = s;
    workgroupBarrier();
    for (var width = LANES / 2u; width > 0u; width /= 2u) {
        if (lid.y < width) {
            lane_sums[lid.y][lid.x] += lane_sums[lid.y + width][lid.x];
        }
        workgroupBarrier();
    }
    if (lid.y == 0u && col < p.cols) {
        dbias[col] = lane_sums[0][lid.x];
    }
}
