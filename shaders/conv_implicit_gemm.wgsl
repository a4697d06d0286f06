// conv_implicit_gemm.wgsl: 2-D convolution (NCHW, f32) and its input and weight gradients as tiled
// matrix products whose loaders compute the im2col element on the fly from the NCHW tensor (0 on a
// padding tap), so no im2col matrix is ever stored (compare conv_gemm.wgsl, which materialises it).
// (Prepended on the host with shaders/activation_fns.wgsl: apply_activation and the ACT_* ids.)
//
// Geometry is one conv2d, as in conv2d.wgsl: x [N, C_IN, H, W], w [C_OUT, C_IN, KH, KW],
// y [N, C_OUT, OH, OW], y[n,oc,oy,ox] = Σ_{ic,ky,kx} x[n, ic, oy*S - P + ky, ox*S - P + kx] · w[oc,ic,ky,kx].
// The transposed convolution runs these entry points on its adjoint conv2d (src/kernels/
// conv_implicit_gemm.rs swaps the roles exactly as conv2d.wgsl's header describes).
//
// Entry points, each C[M, J] = Σ_k A[M, k] · B[k, J] in tiles of TM x TN, k in steps of TK:
//   forward          M = C_OUT rows, J = N*OH*OW columns (n, oy, ox), k = (ic, ky, kx) over C_IN*KH*KW.
//                    A = w (row-major [C_OUT, C_IN*KH*KW]); B[k, j] = x at tap k of output pixel j.
//                    y[n,oc,oy,ox] = act(b[oc] + C[oc, j]) (has_bias, act).
//   backward_input   one product per stride phase (ry, rx) in [0, S)² (grid z = phase * row tiles +
//                    row tile): M = C_IN rows, J = the N*ceil(H/S)*ceil(W/S) (at most) input pixels with
//                    iy = qy*S + ry - P, ix = qx*S + rx - P, k = (oc, t_y, t_x) over the taps
//                    ky = ry + S*t_y, kx = rx + S*t_x: A[ic, k] = w[oc, ic, ky, kx], B[k, j] =
//                    dy[n, oc, qy - t_y, qx - t_x] (0 outside [0, OH) x [0, OW)). The gather form of
//                    the transposed convolution without its zero taps. dx[n,ic,iy,ix] = act(b[ic] +
//                    C[ic, j]) (bias and act for the transposed convolution's forward; none for dx).
//   backward_weight  M = C_OUT rows, J = C_IN*KH*KW tap columns, the sum runs over the output pixels
//                    q = (n, oy, ox) of split z only: q in [z*CHUNK, min(N*OH*OW, (z+1)*CHUNK)).
//                    A[oc, q] = dy[n, oc, oy, ox]; B[q, k] = x at tap k of output pixel q.
//                    out[z, oc, k] = Σ over the split. The host sums the splits with reduce.wgsl's colsum
//                    in split order (deterministic split-K), or binds dw itself when there is one split.
//
// Tiles: TM = 16 rows x TN = 64 columns per workgroup of 64 invocations (16 along the columns x 4 along
// the rows); invocation (tx, ty) owns rows 4*ty .. 4*ty+3 and columns 4*tx .. 4*tx+3 of the tile, held
// in four named vec4 accumulators (no dynamically indexed private arrays). Per k-step the workgroup
// stages A [TK x TM] and B [TK x TN] in workgroup memory (vec4 per 4 rows / 4 columns, 5 KiB): each
// invocation loads one vec4 of A and four of B, and the B columns it loads are the ones it computes,
// so each invocation decodes its four columns once, before the k loop. Every sum runs in k order:
// deterministic. Rows, columns and k past the matrix load 0 and store nothing. The only loop of an
// entry point is its k loop (the tile product and the staging are written out): lavapipe ends every
// loop of an invocation silently once their iterations total 65,535, so the host keeps the k steps
// per invocation below that (MAX_STEPS in the launcher; the weight gradient splits further).
//
// Bindings: 0 uniform Params, 1 the B side (x for forward and backward_weight, dy for backward_input),
// 2 the A side (w, or dy for backward_weight), 3 bias (dummy when has_bias = 0), 4 the output (y, dx, dw
// or the split partials). All storage read_write (views of one arena alias).
// Dispatch: forward and backward_input: (x, y) fold ceil(J/TN) column tiles (tile = wid.x + wid.y *
// num_workgroups.x; surplus workgroups of the fold return at once), z = ceil(M/TM) row tiles (times
// S² phases for backward_input, J its largest phase's).
// backward_weight: x = ceil(C_IN*KH*KW/TN), y = ceil(C_OUT/TM), z = splits.
// CPU reference: src/cpu/conv.rs (conv2d_forward, conv2d_backward_input, conv2d_backward_weight).

const TM: u32 = 16u;
const TN: u32 = 64u;
const TK: u32 = 16u;

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
    chunk: u32, // backward_weight: output pixels per split (a multiple of TK)
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> bsrc: array<f32>;
@group(0) @binding(2) var<storage, read_write> asrc: array<f32>;
@group(0) @binding(3) var<storage, read_write> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

// a_tile[kk * (TM/4) + r4] = A rows 4*r4 .. 4*r4+3 at k-step row kk; b_tile likewise with TN/4.
var<workgroup> a_tile: array<vec4<f32>, 64>;
var<workgroup> b_tile: array<vec4<f32>, 256>;

struct Acc {
    r0: vec4<f32>,
    r1: vec4<f32>,
    r2: vec4<f32>,
    r3: vec4<f32>,
}

// One column of the product as an invocation sees it: whether it exists, where its NCHW image starts
// (base, for the B loader), where its outputs go (out + row * plane) and its top-left tap (y0, x0).
// backward_input keeps the phase coordinates (qy, qx) as (y0, x0).
struct Column {
    valid: bool,
    base: u32,
    out: u32,
    y0: i32,
    x0: i32,
}

// A column of the product's tap axis (backward_weight): tap k = (ic, ky, kx).
struct Tap {
    valid: bool,
    ic: u32,
    ky: u32,
    kx: u32,
}

// acc + the outer product of A rows a and B columns b (one k).
fn mac(acc: Acc, a: vec4<f32>, b: vec4<f32>) -> Acc {
    return Acc(acc.r0 + a.x * b, acc.r1 + a.y * b, acc.r2 + a.z * b, acc.r3 + a.w * b);
}

// acc += A tile · B tile for this invocation's 4x4 outputs, k in order. Written out (TK = 16 steps),
// not looped: lavapipe stops every loop of an invocation once their iterations total 65,535 (the
// loop limiter of gallivm), and an inner loop here would spend that budget 16 times faster.
fn multiply_tile(tx: u32, ty: u32, acc_in: Acc) -> Acc {
    var acc = acc_in;
    acc = mac(acc, a_tile[0u * 4u + ty], b_tile[0u * 16u + tx]);
    acc = mac(acc, a_tile[1u * 4u + ty], b_tile[1u * 16u + tx]);
    acc = mac(acc, a_tile[2u * 4u + ty], b_tile[2u * 16u + tx]);
    acc = mac(acc, a_tile[3u * 4u + ty], b_tile[3u * 16u + tx]);
    acc = mac(acc, a_tile[4u * 4u + ty], b_tile[4u * 16u + tx]);
    acc = mac(acc, a_tile[5u * 4u + ty], b_tile[5u * 16u + tx]);
    acc = mac(acc, a_tile[6u * 4u + ty], b_tile[6u * 16u + tx]);
    acc = mac(acc, a_tile[7u * 4u + ty], b_tile[7u * 16u + tx]);
    acc = mac(acc, a_tile[8u * 4u + ty], b_tile[8u * 16u + tx]);
    acc = mac(acc, a_tile[9u * 4u + ty], b_tile[9u * 16u + tx]);
    acc = mac(acc, a_tile[10u * 4u + ty], b_tile[10u * 16u + tx]);
    acc = mac(acc, a_tile[11u * 4u + ty], b_tile[11u * 16u + tx]);
    acc = mac(acc, a_tile[12u * 4u + ty], b_tile[12u * 16u + tx]);
    acc = mac(acc, a_tile[13u * 4u + ty], b_tile[13u * 16u + tx]);
    acc = mac(acc, a_tile[14u * 4u + ty], b_tile[14u * 16u + tx]);
    acc = mac(acc, a_tile[15u * 4u + ty], b_tile[15u * 16u + tx]);
    return acc;
}

fn zero_acc() -> Acc {
    return Acc(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
}

// Stores act(bias[m] + v) at the four columns of row m (NCHW: out + m * plane), when m < rows.
fn store_row(m: u32, rows: u32, plane: u32, v: vec4<f32>, c0: Column, c1: Column, c2: Column, c3: Column) {
    if (m >= rows) {
        return;
    }
    var b = 0.0;
    if (p.has_bias != 0u) {
        b = bias[m];
    }
    if (c0.valid) { dst[c0.out + m * plane] = apply_activation(p.act, p.slope, b + v.x); }
    if (c1.valid) { dst[c1.out + m * plane] = apply_activation(p.act, p.slope, b + v.y); }
    if (c2.valid) { dst[c2.out + m * plane] = apply_activation(p.act, p.slope, b + v.z); }
    if (c3.valid) { dst[c3.out + m * plane] = apply_activation(p.act, p.slope, b + v.w); }
}

fn store_tile(m0: u32, ty: u32, rows: u32, plane: u32, acc: Acc, c0: Column, c1: Column, c2: Column, c3: Column) {
    store_row(m0 + 4u * ty, rows, plane, acc.r0, c0, c1, c2, c3);
    store_row(m0 + 4u * ty + 1u, rows, plane, acc.r1, c0, c1, c2, c3);
    store_row(m0 + 4u * ty + 2u, rows, plane, acc.r2, c0, c1, c2, c3);
    store_row(m0 + 4u * ty + 3u, rows, plane, acc.r3, c0, c1, c2, c3);
}

// ---- forward -------------------------------------------------------------------------------------

// Output pixel j = (n, oy, ox) of the forward product.
fn forward_column(j: u32) -> Column {
    let plane = p.oh * p.ow;
    if (j >= p.n * plane) {
        return Column(false, 0u, 0u, 0, 0);
    }
    let n = j / plane;
    let px = j - n * plane;
    let oy = px / p.ow;
    let ox = px - oy * p.ow;
    let y0 = i32(oy * p.stride) - i32(p.padding);
    let x0 = i32(ox * p.stride) - i32(p.padding);
    return Column(true, n * p.c_in * p.h * p.w, n * p.c_out * plane + px, y0, x0);
}

// im2col(x)[(ic, ky, kx), column c]: 0 when the tap falls on padding.
fn x_at_tap(c: Column, ic: u32, ky: u32, kx: u32) -> f32 {
    let iy = c.y0 + i32(ky);
    let ix = c.x0 + i32(kx);
    if (!c.valid || iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w)) {
        return 0.0;
    }
    return bsrc[c.base + (ic * p.h + u32(iy)) * p.w + u32(ix)];
}

// Stages B row kk (tap k0 + kk) at this invocation's four columns.
fn stage_x_taps(tx: u32, kk: u32, k0: u32, c0: Column, c1: Column, c2: Column, c3: Column) {
    let k = k0 + kk;
    var v = vec4<f32>(0.0);
    if (k < p.c_in * p.kh * p.kw) {
        let khw = p.kh * p.kw;
        let ic = k / khw;
        let rem = k - ic * khw;
        let ky = rem / p.kw;
        let kx = rem - ky * p.kw;
        v = vec4<f32>(x_at_tap(c0, ic, ky, kx), x_at_tap(c1, ic, ky, kx), x_at_tap(c2, ic, ky, kx), x_at_tap(c3, ic, ky, kx));
    }
    b_tile[kk * 16u + tx] = v;
}

// A[m, k] of a row-major [rows, taps] matrix, 0 outside.
fn a_at(m: u32, k: u32, rows: u32, taps: u32) -> f32 {
    if (m >= rows || k >= taps) {
        return 0.0;
    }
    return asrc[m * taps + k];
}

@compute @workgroup_size(64)
fn forward(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let j0 = (wid.x + wid.y * nwg.x) * TN;
    if (j0 >= p.n * p.oh * p.ow) {
        return; // a surplus workgroup of the folded grid (uniform across the workgroup)
    }
    let m0 = wid.z * TM;
    let taps = p.c_in * p.kh * p.kw;
    let tx = t % 16u;
    let ty = t / 16u;
    let c0 = forward_column(j0 + 4u * tx);
    let c1 = forward_column(j0 + 4u * tx + 1u);
    let c2 = forward_column(j0 + 4u * tx + 2u);
    let c3 = forward_column(j0 + 4u * tx + 3u);
    // The A element this invocation stages: row block a_r4 at k-step row a_kk.
    let a_kk = t / 4u;
    let a_r4 = t % 4u;
    let am = m0 + 4u * a_r4;
    var acc = zero_acc();
    for (var k0 = 0u; k0 < taps; k0 += TK) {
        let ka = k0 + a_kk;
        a_tile[a_kk * 4u + a_r4] = vec4<f32>(
            a_at(am, ka, p.c_out, taps),
            a_at(am + 1u, ka, p.c_out, taps),
            a_at(am + 2u, ka, p.c_out, taps),
            a_at(am + 3u, ka, p.c_out, taps),
        );
        stage_x_taps(tx, ty, k0, c0, c1, c2, c3);
        stage_x_taps(tx, ty + 4u, k0, c0, c1, c2, c3);
        stage_x_taps(tx, ty + 8u, k0, c0, c1, c2, c3);
        stage_x_taps(tx, ty + 12u, k0, c0, c1, c2, c3);
        workgroupBarrier();
        acc = multiply_tile(tx, ty, acc);
        workgroupBarrier();
    }
    store_tile(m0, ty, p.c_out, p.oh * p.ow, acc, c0, c1, c2, c3);
}

// ---- backward_input ------------------------------------------------------------------------------

// One stride phase (ry, rx) of the input gradient: the input pixels with (iy + P) mod S = ry and
// (ix + P) mod S = rx, iy = qy * S + ry - P for qy in [qy0, qy0 + ny) (likewise x), and the taps
// ky = ry + S * t, t in [0, ty_n) (likewise x) that reach them: the only taps that do, so the phase
// is a dense product with no zero taps (a plain gather would multiply (S²-1)/S² of them by 0).
struct Phase {
    ry: u32,
    rx: u32,
    qy0: u32,
    qx0: u32,
    ny: u32,
    nx: u32,
    ty_n: u32,
    tx_n: u32,
}

// First q with q * S + r - P >= 0, and how many q keep it below `size`.
fn phase_range(r: u32, size: u32) -> vec2<u32> {
    var q0 = 0u;
    if (p.padding > r) {
        q0 = (p.padding - r + p.stride - 1u) / p.stride;
    }
    var q_end = 0u;
    if (size + p.padding > r) {
        q_end = (size + p.padding - r + p.stride - 1u) / p.stride;
    }
    return vec2<u32>(q0, max(q0, q_end) - q0);
}

fn phase_of(ph: u32) -> Phase {
    let ry = ph / p.stride;
    let rx = ph - ry * p.stride;
    let y = phase_range(ry, p.h);
    let x = phase_range(rx, p.w);
    var ty_n = 0u;
    if (p.kh > ry) {
        ty_n = (p.kh - ry + p.stride - 1u) / p.stride;
    }
    var tx_n = 0u;
    if (p.kw > rx) {
        tx_n = (p.kw - rx + p.stride - 1u) / p.stride;
    }
    return Phase(ry, rx, y.x, x.x, y.y, x.y, ty_n, tx_n);
}

// Column j = (n, a, b) of phase f: input pixel (qy0 + a) * S + ry - P, likewise x; base is dy's
// sample, (y0, x0) = (qy, qx).
fn input_column(f: Phase, j: u32) -> Column {
    let cells = f.ny * f.nx;
    if (j >= p.n * cells) {
        return Column(false, 0u, 0u, 0, 0);
    }
    let n = j / cells;
    let r = j - n * cells;
    let a = r / f.nx;
    let qy = f.qy0 + a;
    let qx = f.qx0 + (r - a * f.nx);
    let iy = qy * p.stride + f.ry - p.padding;
    let ix = qx * p.stride + f.rx - p.padding;
    let out = n * p.c_in * p.h * p.w + iy * p.w + ix;
    return Column(true, n * p.c_out * p.oh * p.ow, out, i32(qy), i32(qx));
}

// dy[n, oc, qy - t_y, qx - t_x]: the output pixel tap (t_y, t_x) of the phase reads; 0 outside.
fn dy_at_tap(c: Column, oc: u32, t_y: u32, t_x: u32) -> f32 {
    let oy = c.y0 - i32(t_y);
    let ox = c.x0 - i32(t_x);
    if (!c.valid || oy < 0 || ox < 0 || oy >= i32(p.oh) || ox >= i32(p.ow)) {
        return 0.0;
    }
    return bsrc[c.base + (oc * p.oh + u32(oy)) * p.ow + u32(ox)];
}

// Stages B row kk (phase tap k0 + kk = (oc, t_y, t_x)) at this invocation's four columns.
fn stage_dy_taps(f: Phase, tx: u32, kk: u32, k0: u32, c0: Column, c1: Column, c2: Column, c3: Column) {
    let k = k0 + kk;
    let per_oc = f.ty_n * f.tx_n;
    var v = vec4<f32>(0.0);
    if (k < p.c_out * per_oc) {
        let oc = k / per_oc;
        let rem = k - oc * per_oc;
        let t_y = rem / f.tx_n;
        let t_x = rem - t_y * f.tx_n;
        v = vec4<f32>(dy_at_tap(c0, oc, t_y, t_x), dy_at_tap(c1, oc, t_y, t_x), dy_at_tap(c2, oc, t_y, t_x), dy_at_tap(c3, oc, t_y, t_x));
    }
    b_tile[kk * 16u + tx] = v;
}

// A[ic, (oc, t_y, t_x)] = w[oc, ic, ry + S t_y, rx + S t_x], 0 outside.
fn wt_at(f: Phase, ic: u32, k: u32, taps: u32) -> f32 {
    if (ic >= p.c_in || k >= taps) {
        return 0.0;
    }
    let per_oc = f.ty_n * f.tx_n;
    let oc = k / per_oc;
    let rem = k - oc * per_oc;
    let t_y = rem / f.tx_n;
    let ky = f.ry + p.stride * t_y;
    let kx = f.rx + p.stride * (rem - t_y * f.tx_n);
    return asrc[((oc * p.c_in + ic) * p.kh + ky) * p.kw + kx];
}

@compute @workgroup_size(64)
fn backward_input(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row_tiles = (p.c_in + TM - 1u) / TM;
    let ph = wid.z / row_tiles;
    let f = phase_of(ph);
    let j0 = (wid.x + wid.y * nwg.x) * TN;
    if (j0 >= p.n * f.ny * f.nx) {
        return; // a surplus workgroup of the folded grid, or of a phase with fewer pixels
    }
    let m0 = (wid.z - ph * row_tiles) * TM;
    let taps = p.c_out * f.ty_n * f.tx_n;
    let tx = t % 16u;
    let ty = t / 16u;
    let c0 = input_column(f, j0 + 4u * tx);
    let c1 = input_column(f, j0 + 4u * tx + 1u);
    let c2 = input_column(f, j0 + 4u * tx + 2u);
    let c3 = input_column(f, j0 + 4u * tx + 3u);
    let a_kk = t / 4u;
    let a_r4 = t % 4u;
    let am = m0 + 4u * a_r4;
    var acc = zero_acc();
    for (var k0 = 0u; k0 < taps; k0 += TK) {
        let ka = k0 + a_kk;
        a_tile[a_kk * 4u + a_r4] =
            vec4<f32>(wt_at(f, am, ka, taps), wt_at(f, am + 1u, ka, taps), wt_at(f, am + 2u, ka, taps), wt_at(f, am + 3u, ka, taps));
        stage_dy_taps(f, tx, ty, k0, c0, c1, c2, c3);
        stage_dy_taps(f, tx, ty + 4u, k0, c0, c1, c2, c3);
        stage_dy_taps(f, tx, ty + 8u, k0, c0, c1, c2, c3);
        stage_dy_taps(f, tx, ty + 12u, k0, c0, c1, c2, c3);
        workgroupBarrier();
        acc = multiply_tile(tx, ty, acc);
        workgroupBarrier();
    }
    store_tile(m0, ty, p.c_in, p.h * p.w, acc, c0, c1, c2, c3);
}

// ---- backward_weight -----------------------------------------------------------------------------

fn tap_column(k: u32) -> Tap {
    if (k >= p.c_in * p.kh * p.kw) {
        return Tap(false, 0u, 0u, 0u);
    }
    let khw = p.kh * p.kw;
    let ic = k / khw;
    let rem = k - ic * khw;
    let ky = rem / p.kw;
    return Tap(true, ic, ky, rem - ky * p.kw);
}

// x at tap c of output pixel q (decoded into sample base and top-left tap), 0 on padding.
fn x_at(c: Tap, q_ok: bool, base: u32, y0: i32, x0: i32) -> f32 {
    let iy = y0 + i32(c.ky);
    let ix = x0 + i32(c.kx);
    if (!c.valid || !q_ok || iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w)) {
        return 0.0;
    }
    return bsrc[base + (c.ic * p.h + u32(iy)) * p.w + u32(ix)];
}

// Stages B row kk (output pixel q0 + kk) at this invocation's four tap columns.
fn stage_pixel(tx: u32, kk: u32, q0: u32, q_end: u32, c0: Tap, c1: Tap, c2: Tap, c3: Tap) {
    let q = q0 + kk;
    let q_ok = q < q_end;
    let plane = p.oh * p.ow;
    let n = q / plane;
    let px = q - n * plane;
    let oy = px / p.ow;
    let ox = px - oy * p.ow;
    let base = n * p.c_in * p.h * p.w;
    let y0 = i32(oy * p.stride) - i32(p.padding);
    let x0 = i32(ox * p.stride) - i32(p.padding);
    b_tile[kk * 16u + tx] = vec4<f32>(x_at(c0, q_ok, base, y0, x0), x_at(c1, q_ok, base, y0, x0), x_at(c2, q_ok, base, y0, x0), x_at(c3, q_ok, base, y0, x0));
}

fn store_weight_row(m: u32, v: vec4<f32>, out0: u32, k0: u32, taps: u32) {
    if (m >= p.c_out) {
        return;
    }
    let row = out0 + m * taps;
    if (k0 < taps) { dst[row + k0] = v.x; }
    if (k0 + 1u < taps) { dst[row + k0 + 1u] = v.y; }
    if (k0 + 2u < taps) { dst[row + k0 + 2u] = v.z; }
    if (k0 + 3u < taps) { dst[row + k0 + 3u] = v.w; }
}

@compute @workgroup_size(64)
fn backward_weight(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let taps = p.c_in * p.kh * p.kw;
    let plane = p.oh * p.ow;
    let pixels = p.n * plane;
    let kt0 = wid.x * TN;
    let m0 = wid.y * TM;
    let q_begin = wid.z * p.chunk;
    let q_end = min(pixels, q_begin + p.chunk);
    let tx = t % 16u;
    let ty = t / 16u;
    let c0 = tap_column(kt0 + 4u * tx);
    let c1 = tap_column(kt0 + 4u * tx + 1u);
    let c2 = tap_column(kt0 + 4u * tx + 2u);
    let c3 = tap_column(kt0 + 4u * tx + 3u);
    let a_kk = t / 4u;
    let a_r4 = t % 4u;
    let am = m0 + 4u * a_r4;
    var acc = zero_acc();
    for (var q0 = q_begin; q0 < q_end; q0 += TK) {
        // A: dy[n, oc, oy, ox] for pixel q0 + a_kk and the 4 rows oc = am .. am+3.
        let qa = q0 + a_kk;
        var av = vec4<f32>(0.0);
        if (qa < q_end) {
            let n = qa / plane;
            let at = n * p.c_out * plane + (qa - n * plane);
            if (am < p.c_out) { av.x = asrc[at + am * plane]; }
            if (am + 1u < p.c_out) { av.y = asrc[at + (am + 1u) * plane]; }
            if (am + 2u < p.c_out) { av.z = asrc[at + (am + 2u) * plane]; }
            if (am + 3u < p.c_out) { av.w = asrc[at + (am + 3u) * plane]; }
        }
        a_tile[a_kk * 4u + a_r4] = av;
        stage_pixel(tx, ty, q0, q_end, c0, c1, c2, c3);
        stage_pixel(tx, ty + 4u, q0, q_end, c0, c1, c2, c3);
        stage_pixel(tx, ty + 8u, q0, q_end, c0, c1, c2, c3);
        stage_pixel(tx, ty + 12u, q0, q_end, c0, c1, c2, c3);
        workgroupBarrier();
        acc = multiply_tile(tx, ty, acc);
        workgroupBarrier();
    }
    let out0 = wid.z * p.c_out * taps;
    let k0 = kt0 + 4u * tx;
    store_weight_row(m0 + 4u * ty, acc.r0, out0, k0, taps);
    store_weight_row(m0 + 4u * ty + 1u, acc.r1, out0, k0, taps);
    store_weight_row(m0 + 4u * ty + 2u, acc.r2, out0, k0, taps);
    store_weight_row(m0 + 4u * ty + 3u, acc.r3, out0, k0, taps);
}
