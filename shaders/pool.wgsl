// pool.wgsl: 2x2 max-pooling (stride 2) and nearest-neighbour 2x up-sampling, forward and backward (NCHW, f32).
//
//   maxpool2x2_forward   y[n,c,oy,ox] = max_{dy,dx in 0..2} x[n,c,2oy+dy,2ox+dx] over the taps inside x.
//                        The host picks OH, OW: H/2, W/2 (floor, like PyTorch MaxPool2d(2): with odd H or W the
//                        last row/column is never read) or ceil(H/2), ceil(W/2) (ceil_mode=True, Keras
//                        padding="same": the last window is cut short; its first tap is always inside).
//                        Also writes argmax[n,c,oy,ox] = iy*W + ix, the winner's index within its input plane
//                        (PyTorch's return_indices convention). Ties go to the first in row-major window order
//                        (strict >), as in PyTorch. NaN inputs are not handled specially.
//   maxpool2x2_backward  dx[n,c,iy,ix] = dy[n,c,iy/2,ix/2] if argmax there is iy*W + ix, else 0 (also 0 in the
//                        floored-off last row/column). One invocation per element of dx: the 2x2/stride-2
//                        windows do not overlap, so each dx is written exactly once, no atomics.
//   upsample2x_forward   y[n,c,oy,ox] = x[n,c,oy/2,ox/2], OH = 2H, OW = 2W.
//   upsample2x_backward  dx[n,c,iy,ix] = Σ of the 4 dy of its 2x2 block, in the fixed order (0,0) (0,1) (1,0) (1,1).
//
// Bindings: 0 uniform Params, 1 x side (x or dx), 2 y side (y or dy), 3 argmax (u32; max-pool only, the
// up-sampling pipelines have two storage bindings). All storage is read_write (views of one arena alias).
// Params: planes = N*C, (h, w) the input size, (oh, ow) the output size.
// Dispatch: 1-D, one invocation per output element of the entry point (y for forwards, dx for backwards),
// 256 per workgroup, folded into (x, y) past 65535 workgroups (index = gid.x + gid.y * num_workgroups.x * 256;
// kernels::grid_1d(n, 256)).
// CPU reference: src/cpu/pool.rs.

const WG: u32 = 256u;

struct Params {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>;

@compute @workgroup_size(256)
fn maxpool2x2_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.planes * p.oh * p.ow) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    let base = plane * p.h * p.w;
    var best_at = (2u * oy) * p.w + 2u * ox;
    var best = x[base + best_at];
    for (var k = 1u; k < 4u; k++) {
        let iy = 2u * oy + k / 2u;
        let ix = 2u * ox + k % 2u;
        if (iy >= p.h || ix >= p.w) {
            continue;
        }
        let at = iy * p.w + ix;
        let v = x[base + at];
        if (v > best) {
            best = v;
            best_at = at;
        }
    }
    y[i] = best;
    argmax[i] = best_at;
}

@compute @workgroup_size(256)
fn maxpool2x2_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.planes * p.h * p.w) {
        return;
    }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    let oy = iy / 2u;
    let ox = ix / 2u;
    var g = 0.0;
    if (oy < p.oh && ox < p.ow) {
        let o = (plane * p.oh + oy) * p.ow + ox;
        if (argmax[o] == iy * p.w + ix) {
            g = y[o];
        }
    }
    x[i] = g;
}

@compute @workgroup_size(256)
fn upsample2x_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.planes * p.oh * p.ow) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    y[i] = x[(plane * p.h + oy / 2u) * p.w + ox / 2u];
}

@compute @workgroup_size(256)
fn upsample2x_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.planes * p.h * p.w) {
        return;
    }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    let top = (plane * p.oh + 2u * iy) * p.ow + 2u * ix;
    let bottom = top + p.ow;
    x[i] = ((y[top] + y[top + 1u]) + y[bottom]) + y[bottom + 1u];
}
