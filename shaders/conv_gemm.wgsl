// conv_gemm.wgsl: the data movement that turns a 2-D convolution (NCHW, f32) into matrix products, so
// (Prepended on the host with shaders/activation_fns.wgsl: apply_activation and the ACT_* ids.)
// the tuned matmul kernels do the arithmetic (src/kernels/conv_gemm.rs composes them):
//
//   conv2d forward        col = im2col(x);  yc = W · col;  y = cnhw_to_nchw(yc) + bias, activation
//   conv2d dW             dyc = nchw_to_cnhw(dy);  dW = dyc · colᵀ (split over columns, then summed)
//   conv2d dx             dcol = Wᵀ · dyc;  dx = col2im(dcol)
//   (the transposed convolution runs the same steps on its adjoint conv2d, see conv2d.wgsl)
//
// Geometry is one conv2d, as in conv2d.wgsl: x [N, C_IN, H, W], w [C_OUT, C_IN, KH, KW],
// y [N, C_OUT, OH, OW], y[n,oc,oy,ox] = Σ_{ic,ky,kx} x[n, ic, oy*S - P + ky, ox*S - P + kx] · w[oc,ic,ky,kx].
// Matrices: K = C_IN*KH*KW rows of taps (k = (ic*KH + ky)*KW + kx, the order of w's last three axes) and
// J = N*OH*OW columns of output pixels (j = (n*OH + oy)*OW + ox); col [K, J], yc/dyc [C_OUT, J].
//
// Entry points (one invocation per element written; every sum in a fixed order: deterministic):
//   im2col        col[k, j] = x at tap k of output pixel j, 0 where the tap falls on padding.
//   col2im        x[n,ic,iy,ix] = act(b[ic] + Σ col[(ic,ky,kx), (n,oy,ox)]) over the taps with
//                 iy = oy*S - P + ky, ix likewise (gather form, ky ≡ (iy+P) mod S), bias and activation
//                 optional (has_bias, act). The adjoint of im2col.
//   cnhw_to_nchw  y[n,c,s] = act(b[c] + src[c, n*PLANE + s]) with PLANE = OH*OW and c < C_OUT.
//   nchw_to_cnhw  dst[c, n*PLANE + s] = src[n,c,s].
//
// Bindings: 0 uniform Params (the same struct as conv2d.wgsl), 1 the NCHW side (x, dx or y), 2 the matrix
// side (col, yc or dyc), 3 bias (dummy when has_bias = 0). All storage read_write (views of one arena
// alias).
// Dispatch: 2-D, (ceil(N*PLANE/256), C) with 256 invocations per workgroup along x: x walks the pixels of
// all samples (PLANE = OH*OW for im2col and the permutations, H*W for col2im), y is the input channel
// (im2col, col2im) or the channel of the permuted tensor; an im2col invocation writes the KH*KW taps of
// its channel. Why: on lavapipe each workgroup costs about a microsecond and each per-invocation integer
// division is a scalar loop, so a flat one-element-per-invocation im2col (five divisions, K*N*OH*OW/256
// workgroups) ran at 25 M elements/s, 4x slower than the matmul it feeds.
// CPU reference: src/cpu/conv_gemm.rs.



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
    slope: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> img: array<f32>;
@group(0) @binding(2) var<storage, read_write> mat: array<f32>;
@group(0) @binding(3) var<storage, read_write> bias: array<f32>;

@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>) {
    let plane = p.oh * p.ow;
    let cols = p.n * plane;
    let j = gid.x;
    if (j >= cols) {
        return;
    }
    let ic = gid.y;
    let n = j / plane;
    let px = j - n * plane;
    let oy = px / p.ow;
    let ox = px - oy * p.ow;
    let x_plane = (n * p.c_in + ic) * p.h;
    // Signed: a tap may fall on the padding above or left of the image.
    let y0 = i32(oy * p.stride) - i32(p.padding);
    let x0 = i32(ox * p.stride) - i32(p.padding);
    var row = ic * p.kh * p.kw * cols + j; // col[(ic, 0, 0), j]
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = y0 + i32(ky);
        let y_ok = iy >= 0 && iy < i32(p.h);
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = x0 + i32(kx);
            var v = 0.0;
            if (y_ok && ix >= 0 && ix < i32(p.w)) {
                v = img[(x_plane + u32(iy)) * p.w + u32(ix)];
            }
            // Consecutive invocations write consecutive columns.
            mat[row] = v;
            row += cols;
        }
    }
}

// Taps of input coordinate i that reach an output: k ≡ (i + P) mod S and o = (i + P - k)/S in
// [0, out_size). Returns [first, end); step S. (As conv2d.wgsl's taps_of_input.)
fn taps_of_input(i: u32, out_size: u32, k_size: u32) -> vec2<u32> {
    let t = i + p.padding;
    let span = (out_size - 1u) * p.stride;
    var lo = t % p.stride;
    if (t > span) {
        lo = t - span; // still ≡ t (mod S): span is a multiple of S
    }
    let hi = min(k_size, t + 1u);
    return vec2<u32>(lo, max(lo, hi));
}

@compute @workgroup_size(256)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>) {
    let plane = p.h * p.w;
    let j = gid.x;
    if (j >= p.n * plane) {
        return;
    }
    let ic = gid.y;
    let n = j / plane;
    let px = j - n * plane;
    let iy = px / p.w;
    let ix = px - iy * p.w;
    let i = (n * p.c_in + ic) * plane + px;
    let cols = p.n * p.oh * p.ow;
    let ry = taps_of_input(iy, p.oh, p.kh);
    let rx = taps_of_input(ix, p.ow, p.kw);
    let ty = iy + p.padding;
    let tx = ix + p.padding;
    var acc = 0.0;
    for (var ky = ry.x; ky < ry.y; ky += p.stride) {
        let oy = (ty - ky) / p.stride;
        let row = (ic * p.kh + ky) * p.kw;
        for (var kx = rx.x; kx < rx.y; kx += p.stride) {
            let ox = (tx - kx) / p.stride;
            acc += mat[(row + kx) * cols + (n * p.oh + oy) * p.ow + ox];
        }
    }
    if (p.has_bias != 0u) {
        acc += bias[ic];
    }
    img[i] = apply_activation(p.act, p.slope, acc);
}

@compute @workgroup_size(256)
fn cnhw_to_nchw(@builtin(global_invocation_id) gid: vec3<u32>) {
    let plane = p.oh * p.ow;
    let j = gid.x;
    if (j >= p.n * plane) {
        return;
    }
    let c = gid.y;
    let n = j / plane;
    var v = mat[c * (p.n * plane) + j];
    if (p.has_bias != 0u) {
        v += bias[c];
    }
    img[(n * p.c_out + c) * plane + (j - n * plane)] = apply_activation(p.act, p.slope, v);
}

@compute @workgroup_size(256)
fn nchw_to_cnhw(@builtin(global_invocation_id) gid: vec3<u32>) {
    let plane = p.oh * p.ow;
    let j = gid.x;
    if (j >= p.n * plane) {
        return;
    }
    let c = gid.y;
    let n = j / plane;
    mat[c * (p.n * plane) + j] = img[(n * p.c_out + c) * plane + (j - n * plane)];
}
