// matmul_sgemm.wgsl: the contract of matmul.wgsl (C[M,N] = act(op(A)·op(B) + bias), or C += that;
// TRANS_A / TRANS_B; split-K through k_chunk) as a GPU-grade tiled SGEMM, the variant for real GPUs.
// (The host prepends shaders/activation_fns.wgsl and appends one of matmul_sgemm_a_{vec4,scalar,half}.wgsl,
// one of matmul_sgemm_b_{vec4,scalar,half}.wgsl and one of matmul_sgemm_c_{f32,half}.wgsl: they declare
// bindings 1, 2 and 4, the quad loaders and C's element access. With a half operand or C, the host
// puts `enable f16;` first: f16 storage, f32 arithmetic.)
//
// A workgroup of 256 invocations computes a BM x BN block of C, BK values of k at a time:
//  - op(A) and op(B) tiles are read in quads, 4 consecutive words along each operand's contiguous
//    dimension: one vec4 load when the host bound the operand as array<vec4<f32>> (its contiguous
//    dimension a multiple of 4, its view 16-byte aligned), else 4 guarded scalar loads. Each quad is
//    zero outside the matrix (any M, N, K), and stored k-major into workgroup memory, transposed (one
//    word into each of 4 tile rows) when the contiguous dimension is K;
//  - the next k-tile's quads load into registers while the current tile is multiplied (prefetch);
//  - each invocation owns a MICRO x MICRO block of C in named vec4 accumulators (llvmpipe, and some GPU
//    compilers, spill dynamically indexed private arrays to memory) and reads the 4-row / 4-column
//    pieces of the tiles it needs as vec4. sgemm_8x8: rows 4ty..4ty+3 and BM/2 + 4ty..+3, columns
//    4tx..4tx+3 and BN/2 + 4tx..+3 (two half-blocks apart, so neighbouring invocations read
//    neighbouring words); sgemm_4x4: rows 4ty..4ty+3, columns 4tx..4tx+3.
// Tile shapes are override constants (src/kernels/matmul_sgemm.rs): 128x128x8 with 8x8 per invocation,
// 64x64x16 and 32x128x16 with 4x4. BK·BM and BK·BN must be at most 2048 (16 KiB of workgroup memory).
//
// Bindings: 0 uniform Params, 1 A, 2 B, 3 bias (length N; any buffer when has_bias = 0), 4 C.
// Dispatch (ceil(N/BN), ceil(M/BM), splits). No early return: every invocation reaches the barriers.
// CPU reference: src/cpu/matmul.rs.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
// Invocations across the columns of the block; the other 256 / WG_X go across the rows.
override WG_X: u32 = 16u;
// Edge of an invocation's block of C: 8 for sgemm_8x8, 4 for sgemm_4x4 (the host passes the entry's).
override MICRO: u32 = 8u;
// Depth of a k-tile (a multiple of 4).
override BK: u32 = 8u;
override BM: u32 = (256u / WG_X) * MICRO;
override BN: u32 = WG_X * MICRO;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    has_bias: u32,
    accumulate: u32, // 0: C = act(acc + bias); 1: C += act(acc + bias); 2: C = act(C + acc + bias)
    slope: f32,
    // Split-K: workgroup z sums k in [z*k_chunk, min(k, (z+1)*k_chunk)) and writes C + z*M*N. The host
    // keeps k_chunk a multiple of 4, so a quad along K never straddles two chunks.
    k_chunk: u32,
    // The first k of this launch: a product whose K is too long for one launch (lavapipe ends an
    // invocation's loops after 65,535 iterations) runs as launches over consecutive k ranges.
    k_first: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read_write> bias: array<f32>;

// Tiles, k-major in vec4s: word kk*BM + i of a_sh is op(A)[row0 + i, k0 + kk], word kk*BN + j of b_sh
// is op(B)[k0 + kk, col0 + j].
var<workgroup> a_sh: array<vec4<f32>, 512>;
var<workgroup> b_sh: array<vec4<f32>, 512>;

// Offset of this workgroup's partial product in C (split-K), and its range of k; set at entry.
var<private> c_base: u32;
var<private> k_lo: u32;
var<private> k_hi: u32;

fn set_split(z: u32) {
    c_base = z * p.m * p.n;
    k_lo = p.k_first + z * p.k_chunk;
    k_hi = min(p.k, k_lo + p.k_chunk);
}

// Quad q of the A tile at depth k0 for the block starting at row row0 (zero past the tile's quads).
fn fetch_a(q: u32, k0: u32, row0: u32) -> vec4<f32> {
    if (q >= BK * BM / 4u) {
        return vec4<f32>(0.0);
    }
    if (TRANS_A) {
        // A stored [K, M]: a quad is 4 rows of op(A) at one k.
        let kk = q / (BM / 4u);
        let i = (q % (BM / 4u)) * 4u;
        return quad_a(k0 + kk, row0 + i, p.m, k_hi, p.m);
    }
    // A stored [M, K]: a quad is 4 values of k in one row.
    let i = q / (BK / 4u);
    let kk = (q % (BK / 4u)) * 4u;
    return quad_a(row0 + i, k0 + kk, p.k, p.m, k_hi);
}

// Stores quad q (placed as fetch_a placed it) into a_sh.
fn put_a(q: u32, v: vec4<f32>) {
    if (q >= BK * BM / 4u) {
        return;
    }
    if (TRANS_A) {
        let kk = q / (BM / 4u);
        let i = (q % (BM / 4u)) * 4u;
        a_sh[(kk * BM + i) / 4u] = v;
        return;
    }
    let i = q / (BK / 4u);
    let kk = (q % (BK / 4u)) * 4u;
    // The quad runs along k: one word into each of 4 tile rows.
    let w = (kk * BM + i) / 4u;
    let lane = i % 4u;
    a_sh[w][lane] = v.x;
    a_sh[w + BM / 4u][lane] = v.y;
    a_sh[w + BM / 2u][lane] = v.z;
    a_sh[w + 3u * BM / 4u][lane] = v.w;
}

// Quad q of the B tile at depth k0 for the block starting at column col0.
fn fetch_b(q: u32, k0: u32, col0: u32) -> vec4<f32> {
    if (q >= BK * BN / 4u) {
        return vec4<f32>(0.0);
    }
    if (TRANS_B) {
        // B stored [N, K]: a quad is 4 values of k in one column of op(B).
        let j = q / (BK / 4u);
        let kk = (q % (BK / 4u)) * 4u;
        return quad_b(col0 + j, k0 + kk, p.k, p.n, k_hi);
    }
    // B stored [K, N]: a quad is 4 columns at one k.
    let kk = q / (BN / 4u);
    let j = (q % (BN / 4u)) * 4u;
    return quad_b(k0 + kk, col0 + j, p.n, k_hi, p.n);
}

fn put_b(q: u32, v: vec4<f32>) {
    if (q >= BK * BN / 4u) {
        return;
    }
    if (TRANS_B) {
        let j = q / (BK / 4u);
        let kk = (q % (BK / 4u)) * 4u;
        let w = (kk * BN + j) / 4u;
        let lane = j % 4u;
        b_sh[w][lane] = v.x;
        b_sh[w + BN / 4u][lane] = v.y;
        b_sh[w + BN / 2u][lane] = v.z;
        b_sh[w + 3u * BN / 4u][lane] = v.w;
        return;
    }
    let kk = q / (BN / 4u);
    let j = (q % (BN / 4u)) * 4u;
    b_sh[(kk * BN + j) / 4u] = v;
}

// Bias, activation, and the optional accumulate, for one element of C (dropped outside C).
fn store(i: u32, j: u32, acc: f32) {
    if (i >= p.m || j >= p.n) {
        return;
    }
    let idx = c_base + i * p.n + j;
    var v = acc;
    if (p.accumulate == 2u) {
        v = c_get(idx) + v; // the sum of the earlier k ranges, then this one's
    }
    if (p.has_bias != 0u) {
        v += bias[j];
    }
    v = apply_activation(p.act, p.slope, v);
    if (p.accumulate == 1u) {
        v += c_get(idx);
    }
    c_set(idx, v);
}

fn store4(i: u32, j: u32, v: vec4<f32>) {
    store(i, j, v.x);
    store(i, j + 1u, v.y);
    store(i, j + 2u, v.z);
    store(i, j + 3u, v.w);
}

@compute @workgroup_size(256)
fn sgemm_8x8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    set_split(wid.z);
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let tx = t % WG_X;
    let ty = t / WG_X;
    // Up to 2 quads of each operand per invocation and k-tile (BK·BM/4 <= 512).
    var pa0 = fetch_a(t, k_lo, row0);
    var pa1 = fetch_a(t + 256u, k_lo, row0);
    var pb0 = fetch_b(t, k_lo, col0);
    var pb1 = fetch_b(t + 256u, k_lo, col0);
    // accRh: row R of the invocation's 8 (0-3: 4ty + R, 4-7: BM/2 + 4ty + R - 4), h: column half.
    var acc0a = vec4<f32>(0.0);
    var acc0b = vec4<f32>(0.0);
    var acc1a = vec4<f32>(0.0);
    var acc1b = vec4<f32>(0.0);
    var acc2a = vec4<f32>(0.0);
    var acc2b = vec4<f32>(0.0);
    var acc3a = vec4<f32>(0.0);
    var acc3b = vec4<f32>(0.0);
    var acc4a = vec4<f32>(0.0);
    var acc4b = vec4<f32>(0.0);
    var acc5a = vec4<f32>(0.0);
    var acc5b = vec4<f32>(0.0);
    var acc6a = vec4<f32>(0.0);
    var acc6b = vec4<f32>(0.0);
    var acc7a = vec4<f32>(0.0);
    var acc7b = vec4<f32>(0.0);
    for (var k0 = k_lo; k0 < k_hi; k0 += BK) {
        put_a(t, pa0);
        put_a(t + 256u, pa1);
        put_b(t, pb0);
        put_b(t + 256u, pb1);
        workgroupBarrier();
        // The next k-tile's loads are in flight during the arithmetic below (zeros past k_hi).
        pa0 = fetch_a(t, k0 + BK, row0);
        pa1 = fetch_a(t + 256u, k0 + BK, row0);
        pb0 = fetch_b(t, k0 + BK, col0);
        pb1 = fetch_b(t + 256u, k0 + BK, col0);
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = a_sh[kk * (BM / 4u) + ty];
            let a1 = a_sh[kk * (BM / 4u) + BM / 8u + ty];
            let b0 = b_sh[kk * (BN / 4u) + tx];
            let b1 = b_sh[kk * (BN / 4u) + BN / 8u + tx];
            acc0a += a0.x * b0;
            acc0b += a0.x * b1;
            acc1a += a0.y * b0;
            acc1b += a0.y * b1;
            acc2a += a0.z * b0;
            acc2b += a0.z * b1;
            acc3a += a0.w * b0;
            acc3b += a0.w * b1;
            acc4a += a1.x * b0;
            acc4b += a1.x * b1;
            acc5a += a1.y * b0;
            acc5b += a1.y * b1;
            acc6a += a1.z * b0;
            acc6b += a1.z * b1;
            acc7a += a1.w * b0;
            acc7b += a1.w * b1;
        }
        workgroupBarrier();
    }
    let r0 = row0 + 4u * ty;
    let r1 = row0 + BM / 2u + 4u * ty;
    let ca = col0 + 4u * tx;
    let cb = col0 + BN / 2u + 4u * tx;
    store4(r0, ca, acc0a);
    store4(r0, cb, acc0b);
    store4(r0 + 1u, ca, acc1a);
    store4(r0 + 1u, cb, acc1b);
    store4(r0 + 2u, ca, acc2a);
    store4(r0 + 2u, cb, acc2b);
    store4(r0 + 3u, ca, acc3a);
    store4(r0 + 3u, cb, acc3b);
    store4(r1, ca, acc4a);
    store4(r1, cb, acc4b);
    store4(r1 + 1u, ca, acc5a);
    store4(r1 + 1u, cb, acc5b);
    store4(r1 + 2u, ca, acc6a);
    store4(r1 + 2u, cb, acc6b);
    store4(r1 + 3u, ca, acc7a);
    store4(r1 + 3u, cb, acc7b);
}

@compute @workgroup_size(256)
fn sgemm_4x4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    set_split(wid.z);
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let tx = t % WG_X;
    let ty = t / WG_X;
    var pa0 = fetch_a(t, k_lo, row0);
    var pa1 = fetch_a(t + 256u, k_lo, row0);
    var pb0 = fetch_b(t, k_lo, col0);
    var pb1 = fetch_b(t + 256u, k_lo, col0);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = k_lo; k0 < k_hi; k0 += BK) {
        put_a(t, pa0);
        put_a(t + 256u, pa1);
        put_b(t, pb0);
        put_b(t + 256u, pb1);
        workgroupBarrier();
        pa0 = fetch_a(t, k0 + BK, row0);
        pa1 = fetch_a(t + 256u, k0 + BK, row0);
        pb0 = fetch_b(t, k0 + BK, col0);
        pb1 = fetch_b(t + 256u, k0 + BK, col0);
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = a_sh[kk * (BM / 4u) + ty];
            let b0 = b_sh[kk * (BN / 4u) + tx];
            acc0 += a0.x * b0;
            acc1 += a0.y * b0;
            acc2 += a0.z * b0;
            acc3 += a0.w * b0;
        }
        workgroupBarrier();
    }
    let r0 = row0 + 4u * ty;
    let c0 = col0 + 4u * tx;
    store4(r0, c0, acc0);
    store4(r0 + 1u, c0, acc1);
    store4(r0 + 2u, c0, acc2);
    store4(r0 + 3u, c0, acc3);
}
