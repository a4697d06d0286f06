// conv2d.wgsl: 2-D convolution (NCHW, f32, direct algorithm) and its gradients; the transposed convolution
// (Prepended on the host with shaders/activation_fns.wgsl: apply_activation and the ACT_* ids.)
// (ConvTranspose2d) reuses the same four entry points.
//
// Roles. Every entry point is written for one convolution y = act(b + conv2d(x, w)) with
//   x [N, C_IN, H, W]   w [C_OUT, C_IN, KH, KW] (PyTorch Conv2d layout)   b [C_OUT]   y [N, C_OUT, OH, OW]
//   y[n,oc,oy,ox] = Σ_{ic,ky,kx} x[n, ic, oy*S - P + ky, ox*S - P + kx] · w[oc,ic,ky,kx]   (x is 0 outside)
//   OH = (H + 2P - KH)/S + 1, OW likewise; the host passes H, W, OH, OW explicitly in Params.
// Bindings are by role, the same for every entry point (all storage read_write: views of one arena alias,
// see src/gpu/pipelines.rs); an entry point that does not touch a binding still gets a (dummy) view there:
//   0 uniform Params, 1 x side (x or dx), 2 w side (w or dw), 3 bias side (b or db), 4 y side (y or dy).
//
// Entry points (no atomics; every output element is written by exactly one invocation/workgroup, and every
// sum runs in an order fixed by the shape, so results are bit-identical run to run):
//   conv2d_forward          y[n,oc,oy,ox] = act(b[oc] + Σ_{ic,ky,kx} x·w) over the taps inside x.
//                           One invocation per (n, block of CHANNEL_BLOCK output channels, oy, ox).
//   conv2d_backward_input   x[n,ic,iy,ix] = act(b[ic] + Σ_{oc,ky,kx} y[n,oc,oy,ox] · w[oc,ic,ky,kx]) over the
//                           taps with iy = oy*S - P + ky, oy in [0, OH) (gather form: k ≡ (i+P) mod S, step S).
//                           One invocation per (n, block of CHANNEL_BLOCK input channels, iy, ix).
//                           As conv2d's dx: no bias (has_bias = 0), identity activation.
//   conv2d_backward_weight  w[oc,ic,ky,kx] = Σ_{n,oy,ox} y[n,oc,oy,ox] · x[n,ic,oy*S-P+ky, ox*S-P+kx]
//                           (dw from dy and x). One workgroup of 64 per (block of CHANNEL_BLOCK output
//                           channels, ic, ky, kx): lane (ly, lx) of an 8x8 grid sums the valid outputs
//                           oy ≡ ly, ox ≡ lx (mod 8) of sample 0, 1, ... in row-major order; a fixed tree in
//                           workgroup memory adds the 64 lanes.
//   conv2d_backward_bias    b[c] = Σ_{n,s} y[n,c,s] (db from dy): the per-channel sum of the [N, C_OUT,
//                           OH*OW] tensor at binding 4. One workgroup of 64 per channel: lane l sums
//                           s = l, l+64, ... of sample 0, 1, ...; the same tree. With a non-identity
//                           act it first applies the layer's activation derivative in place,
//                           y[i] = dy[i] * f'(x[i]) with the forward output at binding 1, and sums
//                           those: bit-identical to act_backward then this sum (each product is
//                           stored and added in the same order), one pass over dy fewer.
//   Both reductions sum samples [n_first, n) and, with `accumulate`, add to their output: the host
//   cuts a long batch into launches of consecutive samples (a lane loops over every sample, and
//   lavapipe silently ends an invocation's loops after 65,535 iterations).
// CHANNEL_BLOCK (override, 4 or 1): with 4, one load of x (forward), of y (backward_input) or of x
// (backward_weight) feeds 4 multiply-adds, one per channel of the block; the host uses 1 when the blocked
// dimension has fewer than 4 channels (src/kernels/conv.rs, channel_block). A partial last block clamps
// its loads to the last channel and stores only the real channels.
//
// Transposed convolution (PyTorch ConvTranspose2d: x_T [N, CI_T, H_T, W_T], w [CI_T, CO_T, KH, KW],
// y_T [N, CO_T, OH_T, OW_T], OH_T = (H_T-1)*S - 2P + KH + output_padding) is the adjoint of the conv2d with
// C_IN = CO_T, H = OH_T, W = OW_T, C_OUT = CI_T, OH = H_T, OW = W_T and the same weight buffer (its layout
// [CI_T, CO_T, ..] is exactly [C_OUT, C_IN, ..]). So, with y_T in the x role and x_T in the y role:
//   conv_transpose2d forward          = conv2d_backward_input  (with the transpose's bias and activation)
//   conv_transpose2d backward input   = conv2d_forward         (no bias, identity)
//   conv_transpose2d backward weight  = conv2d_backward_weight (x role := dy_T, y role := x_T)
//   conv_transpose2d backward bias    = conv2d_backward_bias   over dy_T, bound at binding 4
// src/kernels/conv.rs does the swap (ConvTranspose2dShape::adjoint). output_padding only adds rows/columns
// at the bottom/right of y_T; the gather in conv2d_backward_input handles them like any other pixel.
//
// Dispatch: forward / backward_input: 1-D over their invocations, 256 per workgroup, folded into (x, y) past
// 65535 workgroups (index = gid.x + gid.y * num_workgroups.x * 256; kernels::grid_1d(n, 256)).
// backward_weight / backward_bias: one workgroup per item, folded the same way
// (index = wid.x + wid.y * num_workgroups.x; kernels::grid_1d(n, 1)).
// CPU reference: src/cpu/conv.rs (conv2d_* and conv_transpose2d_*, written independently of this mapping).

// Invocations per workgroup of the 1-D entry points, and lanes of the reducing ones.
const WG: u32 = 256u;
const LANES: u32 = 64u;

// Activation ids and apply_activation come from activation_fns.wgsl (prepended on the host).

struct Params {
    n: u32,
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    padding: u32,
    act: u32,
    has_bias: u32,
    slope: f32, // leaky ReLU negative slope
    // The gradient reductions (weight, bias) sum samples [n_first, n) and, with `accumulate`, add to
    // their output: the host splits a long batch into launches so no invocation loops past lavapipe's
    // limit of 65,535 iterations (see MAX_LOOP_STEPS in src/kernels/mod.rs).
    n_first: u32,
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// Taps [lo, hi) of a kernel of size `k_size` whose input coordinate o*S - P + k lies in [0, in_size).
fn taps_of_output(o: u32, in_size: u32, k_size: u32) -> vec2<u32> {
    let start = i32(o * p.stride) - i32(p.padding);
    let lo = u32(clamp(-start, 0, i32(k_size)));
    let hi = u32(clamp(i32(in_size) - start, 0, i32(k_size)));
    return vec2<u32>(lo, max(lo, hi));
}

// Taps of input coordinate i that reach an output: k ≡ (i + P) mod S and o = (i + P - k)/S in
// [0, out_size). Returns [first, end); step S.
fn taps_of_input(i: u32, out_size: u32, k_size: u32) -> vec2<u32> {
    let t = i + p.padding;
    let span = (out_size - 1u) * p.stride;
    var lo = t % p.stride;
    if (t > span) {
        lo = t - span;
    }
    let hi = min(k_size, t + 1u);
    return vec2<u32>(lo, max(lo, hi));
}

// Outputs [lo, hi) whose tap k lands inside the input: o*S - P + k in [0, in_size).
fn outputs_of_tap(k: u32, in_size: u32, out_size: u32) -> vec2<u32> {
    var lo = 0u;
    if (p.padding > k) {
        lo = (p.padding - k + p.stride - 1u) / p.stride;
    }
    let top = in_size + p.padding; // o*S + k < top
    if (top <= k) {
        return vec2<u32>(0u, 0u);
    }
    let hi = min(out_size, (top - 1u - k) / p.stride + 1u);
    return vec2<u32>(lo, max(lo, hi));
}

// Channels per invocation (forward, backward_input) or workgroup (backward_weight): 4 or 1, chosen by
// the host per launch (see the header); no other value is supported.
override CHANNEL_BLOCK: u32 = 4u;

fn clamped_channels(c0: u32, count: u32) -> vec4<u32> {
    let last = count - 1u;
    return vec4<u32>(c0, min(c0 + 1u, last), min(c0 + 2u, last), min(c0 + 3u, last));
}

@compute @workgroup_size(256)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let blocks = (p.c_out + CHANNEL_BLOCK - 1u) / CHANNEL_BLOCK;
    if (i >= p.n * blocks * p.oh * p.ow) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let oc0 = ((i / (p.ow * p.oh)) % blocks) * CHANNEL_BLOCK;
    let n = i / (p.ow * p.oh * blocks);
    let oc = clamped_channels(oc0, p.c_out);
    let taps = p.kh * p.kw;
    let w_oc = oc * (p.c_in * taps); // start of each output channel's filter
    let ry = taps_of_output(oy, p.h, p.kh);
    let rx = taps_of_output(ox, p.w, p.kw);
    // Input coordinates are oy*S + ky - P; ky >= ry.x keeps them >= 0 without a signed index.
    let by = oy * p.stride;
    let bx = ox * p.stride;
    var acc = vec4<f32>(0.0);
    for (var ic = 0u; ic < p.c_in; ic++) {
        let x_plane = (n * p.c_in + ic) * p.h;
        for (var ky = ry.x; ky < ry.y; ky++) {
            let x_row = (x_plane + by + ky - p.padding) * p.w + bx;
            let t_row = ic * taps + ky * p.kw;
            for (var kx = rx.x; kx < rx.y; kx++) {
                let t = t_row + kx;
                var wv = vec4<f32>(weight[w_oc.x + t], 0.0, 0.0, 0.0);
                if (CHANNEL_BLOCK == 4u) {
                    wv = vec4<f32>(wv.x, weight[w_oc.y + t], weight[w_oc.z + t], weight[w_oc.w + t]);
                }
                acc += x[x_row + kx - p.padding] * wv;
            }
        }
    }
    if (p.has_bias != 0u) {
        acc += vec4<f32>(bias[oc.x], bias[oc.y], bias[oc.z], bias[oc.w]); // lanes past the block unused
    }
    let plane = p.oh * p.ow;
    let first = ((n * p.c_out + oc0) * p.oh + oy) * p.ow + ox;
    for (var j = 0u; j < CHANNEL_BLOCK; j++) {
        if (oc0 + j < p.c_out) {
            y[first + j * plane] = apply_activation(p.act, p.slope, acc[j]);
        }
    }
}

@compute @workgroup_size(256)
fn conv2d_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let blocks = (p.c_in + CHANNEL_BLOCK - 1u) / CHANNEL_BLOCK;
    if (i >= p.n * blocks * p.h * p.w) {
        return;
    }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let ic0 = ((i / (p.w * p.h)) % blocks) * CHANNEL_BLOCK;
    let n = i / (p.w * p.h * blocks);
    let ic = clamped_channels(ic0, p.c_in);
    let taps = p.kh * p.kw;
    let w_ic = ic * taps; // offset of each input channel inside one output channel's filter
    let ry = taps_of_input(iy, p.oh, p.kh);
    let rx = taps_of_input(ix, p.ow, p.kw);
    let ty = iy + p.padding;
    let tx = ix + p.padding;
    var acc = vec4<f32>(0.0);
    for (var oc = 0u; oc < p.c_out; oc++) {
        let y_plane = (n * p.c_out + oc) * p.oh;
        let w_filter = oc * p.c_in * taps;
        for (var ky = ry.x; ky < ry.y; ky += p.stride) {
            let y_row = (y_plane + (ty - ky) / p.stride) * p.ow;
            let w_row = w_filter + ky * p.kw;
            for (var kx = rx.x; kx < rx.y; kx += p.stride) {
                let t = w_row + kx;
                var wv = vec4<f32>(weight[w_ic.x + t], 0.0, 0.0, 0.0);
                if (CHANNEL_BLOCK == 4u) {
                    wv = vec4<f32>(wv.x, weight[w_ic.y + t], weight[w_ic.z + t], weight[w_ic.w + t]);
                }
                acc += y[y_row + (tx - kx) / p.stride] * wv;
            }
        }
    }
    if (p.has_bias != 0u) {
        acc += vec4<f32>(bias[ic.x], bias[ic.y], bias[ic.z], bias[ic.w]);
    }
    let plane = p.h * p.w;
    let first = ((n * p.c_in + ic0) * p.h + iy) * p.w + ix;
    for (var j = 0u; j < CHANNEL_BLOCK; j++) {
        if (ic0 + j < p.c_in) {
            x[first + j * plane] = apply_activation(p.act, p.slope, acc[j]);
        }
    }
}

var<workgroup> lane_sums: array<vec4<f32>, LANES>;

// Adds the 64 lane values in a fixed tree. Every invocation of the workgroup must call it (barriers).
fn workgroup_sum(lid: u32, v: vec4<f32>) -> vec4<f32> {
    lane_sums[lid] = v;
    workgroupBarrier();
    for (var width = LANES / 2u; width > 0u; width /= 2u) {
        if (lid < width) {
            lane_sums[lid] += lane_sums[lid + width];
        }
        workgroupBarrier();
    }
    return lane_sums[0];
}

@compute @workgroup_size(64)
fn conv2d_backward_weight(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let e = wid.x + wid.y * nwg.x;
    let blocks = (p.c_out + CHANNEL_BLOCK - 1u) / CHANNEL_BLOCK;
    let taps = p.kh * p.kw;
    // `valid` depends only on the workgroup id: uniform, so every lane reaches the barriers.
    let valid = e < blocks * p.c_in * taps;
    var s = vec4<f32>(0.0);
    let kx = e % p.kw;
    let ky = (e / p.kw) % p.kh;
    let ic = (e / taps) % p.c_in;
    let oc0 = (e / (taps * p.c_in)) * CHANNEL_BLOCK;
    if (valid) {
        let plane = p.oh * p.ow;
        let y_oc = clamped_channels(oc0, p.c_out) * plane; // offset of each channel's plane in a sample
        let ry = outputs_of_tap(ky, p.h, p.oh);
        let rx = outputs_of_tap(kx, p.w, p.ow);
        // Lane (ly, lx) of an 8x8 grid sums outputs oy = ry.x + ly + 8i, ox = rx.x + lx + 8j of every
        // sample, in order: no division in the loop, and 8 neighbouring lanes read neighbouring words.
        let ly = lid / 8u;
        let lx = lid % 8u;
        for (var n = p.n_first; n < p.n; n++) {
            let y_sample = n * p.c_out * plane;
            let x_plane = (n * p.c_in + ic) * p.h;
            for (var oy = ry.x + ly; oy < ry.y; oy += 8u) {
                let y_row = y_sample + oy * p.ow;
                let x_row = (x_plane + oy * p.stride + ky - p.padding) * p.w + kx;
                for (var ox = rx.x + lx; ox < rx.y; ox += 8u) {
                    let xv = x[x_row + ox * p.stride - p.padding];
                    var dy = vec4<f32>(y[y_oc.x + y_row + ox], 0.0, 0.0, 0.0);
                    if (CHANNEL_BLOCK == 4u) {
                        dy = vec4<f32>(dy.x, y[y_oc.y + y_row + ox], y[y_oc.z + y_row + ox], y[y_oc.w + y_row + ox]);
                    }
                    s += dy * xv;
                }
            }
        }
    }
    let total = workgroup_sum(lid, s);
    if (valid && lid == 0u) {
        let w_at = ic * taps + ky * p.kw + kx;
        for (var j = 0u; j < CHANNEL_BLOCK; j++) {
            if (oc0 + j < p.c_out) {
                let at = (oc0 + j) * p.c_in * taps + w_at;
                weight[at] = select(total[j], weight[at] + total[j], p.accumulate != 0u);
            }
        }
    }
}

@compute @workgroup_size(64)
fn conv2d_backward_bias(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let c = wid.x + wid.y * nwg.x;
    let valid = c < p.c_out;
    var s = 0.0;
    if (valid) {
        // Lane l sums elements l, l + 64, ... of each sample's plane, samples in order.
        let plane = p.oh * p.ow;
        for (var n = p.n_first; n < p.n; n++) {
            let start = (n * p.c_out + c) * plane;
            for (var r = lid; r < plane; r += LANES) {
                if (p.act == ACT_IDENTITY) {
                    s += y[start + r];
                } else {
                    let d = y[start + r] * activation_derivative_from_output(p.act, p.slope, x[start + r]);
                    y[start + r] = d;
                    s += d;
                }
            }
        }
    }
    let total = workgroup_sum(lid, vec4<f32>(s, 0.0, 0.0, 0.0));
    if (valid && lid == 0u) {
        bias[c] = select(total.x, bias[c] + total.x, p.accumulate != 0u);
    }
}
