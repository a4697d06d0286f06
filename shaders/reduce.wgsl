// reduce.wgsl: deterministic column sums, out[j] (+)= Σ_i in[i, j] for in of shape [rows, cols].
//
// Used for bias gradients (Σ over the batch of dZ) and as the second pass of every scalar reduction
// (the loss kernel writes one row of partial sums per workgroup; colsum adds the rows). No atomics:
// the order of additions is fixed by the dispatch geometry, so results are bit-identical run to run.
//
// Geometry: workgroup 32 x 8. lid.x picks a column of a 32-column strip (neighbouring invocations read
// neighbouring words); the 8 lanes in y each sum rows lid.y, lid.y + 8, ... in order, then a fixed
// tree in workgroup memory adds the 8 lane sums. Dispatch (ceil(cols/32), 1).
//
// Bindings: 0 uniform Params, 1 input, 2 output (length cols).
// CPU reference: src/cpu/reduce.rs.

const COLS: u32 = 32u;
const LANES: u32 = 8u;

struct Params {
    rows: u32,
    cols: u32,
    accumulate: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

var<workgroup> lane_sums: array<array<f32, COLS>, LANES>;

@compute @workgroup_size(32, 8)
fn colsum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let col = wid.x * COLS + lid.x;
    var s = 0.0;
    if (col < p.cols) {
        for (var r = lid.y; r < p.rows; r += LANES) {
            s += input[r * p.cols + col];
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
        var v = lane_sums[0][lid.x];
        if (p.accumulate != 0u) {
            v += output[col];
        }
        output[col] = v;
    }
}
