// matmul.wgsl: C[M,N] = act(op(A) · op(B) + bias)   (or C += that, when `accumulate` is set)
// (Prepended on the host with shaders/activation_fns.wgsl: apply_activation and the ACT_* ids.)
//
// op(A) is A[M,K] or, with TRANS_A, A stored as [K,M]; op(B) is B[K,N] or, with TRANS_B, B stored as [N,K].
// The dense layers use three forms (W is [out,in], as PyTorch stores it):
//   forward          Y  = X · Wᵀ + b     TRANS_B   (M=batch, N=out, K=in), fused bias + activation
//   backward data    dX = dZ · W                   (M=batch, N=in,  K=out)
//   backward weight  dW = dZᵀ · X        TRANS_A   (M=out,   N=in,  K=batch)
//
// Bindings: 0 uniform Params, 1 A, 2 B, 3 bias (length N; any buffer when has_bias = 0), 4 C.
// All storage is read_write: A, B and C may be views of one arena (see src/gpu/pipelines.rs).
//
// Two entry points, same contract; the host measures both and keeps the faster (src/kernels/matmul.rs):
//   matmul_reg    register-blocked, no workgroup memory: each invocation owns a 4x4 block of C.
//                 Workgroup 16x16 covers 64x64 of C. Dispatch (ceil(N/64), ceil(M/64), splits).
//                 Wins on CPU adapters (lavapipe), where barriers are expensive.
//   matmul_tiled  64x64 block of C per workgroup staged through workgroup memory in K-steps of 16;
//                 each of the 256 invocations owns a 4x4 block. Dispatch (ceil(N/64), ceil(M/64), splits).
//                 Wins on real GPUs.
// CPU reference: src/cpu/matmul.rs.

override TRANS_A: bool = false;
override TRANS_B: bool = false;

// Block of C per invocation is 4x4; per workgroup 64x64; K-step of the tiled kernel.
const TILE: u32 = 64u;
const KSTEP: u32 = 16u;

// Activation ids and apply_activation come from activation_fns.wgsl (prepended on the host).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    has_bias: u32,
    accumulate: u32, // 0: C = act(acc + bias); 1: C += act(acc + bias); 2: C = act(C + acc + bias)
    slope: f32, // leaky ReLU negative slope
    // Split-K: workgroup z sums k in [z*k_chunk, min(k, (z+1)*k_chunk)) and writes C + z*M*N (the host
    // then sums the partial products; it splits only without bias, activation or accumulate).
    k_chunk: u32,
    // The first k of this launch: a product whose K is too long for one launch (lavapipe ends an
    // invocation's loops after 65,535 iterations) runs as launches over consecutive k ranges.
    k_first: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Offset of this workgroup's partial product in C (split-K), and its range of k; set at entry.
var<private> c_base: u32;
var<private> k_lo: u32;
var<private> k_hi: u32;

fn set_split(z: u32) {
    c_base = z * p.m * p.n;
    k_lo = p.k_first + z * p.k_chunk;
    k_hi = min(p.k, k_lo + p.k_chunk);
}
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// op(A)[i, kk]; the caller keeps i < M and kk < K.
fn load_a(i: u32, kk: u32) -> f32 {
    if (TRANS_A) {
        return a[kk * p.m + i];
    }
    return a[i * p.k + kk];
}

// op(B)[kk, j]; the caller keeps kk < K and j < N.
fn load_b(kk: u32, j: u32) -> f32 {
    if (TRANS_B) {
        return b[j * p.k + kk];
    }
    return b[kk * p.n + j];
}

// Bias, activation, and the optional accumulate, for one element of C.
fn store(i: u32, j: u32, acc: f32) {
    if (i >= p.m || j >= p.n) {
        return;
    }
    let idx = c_base + i * p.n + j;
    var v = acc;
    if (p.accumulate == 2u) {
        v = c[idx] + v; // the sum of the earlier k ranges, then this one's
    }
    if (p.has_bias != 0u) {
        v += bias[j];
    }
    v = apply_activation(p.act, p.slope, v);
    if (p.accumulate == 1u) {
        v += c[idx];
    }
    c[idx] = v;
}

@compute @workgroup_size(16, 16)
fn matmul_reg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    set_split(wid.z);
    // Rows row0..row0+3 are this invocation's own; columns are strided by 16 so that neighbouring
    // invocations (one SIMD vector on a CPU adapter) touch neighbouring words of B and C.
    let row0 = wid.y * 64u + lid.y * 4u;
    let col0 = wid.x * 64u + lid.x;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    // Out-of-range rows/columns are clamped to the last valid one: the loads stay in bounds without a
    // branch in the inner loop, and store() drops the duplicates.
    let last_r = p.m - 1u;
    let last_c = p.n - 1u;
    let r = vec4<u32>(row0, min(row0 + 1u, last_r), min(row0 + 2u, last_r), min(row0 + 3u, last_r));
    let cl = vec4<u32>(col0, min(col0 + 16u, last_c), min(col0 + 32u, last_c), min(col0 + 48u, last_c));
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = k_lo; kk < k_hi; kk++) {
        let bv = vec4<f32>(load_b(kk, cl.x), load_b(kk, cl.y), load_b(kk, cl.z), load_b(kk, cl.w));
        acc0 += load_a(r.x, kk) * bv;
        acc1 += load_a(r.y, kk) * bv;
        acc2 += load_a(r.z, kk) * bv;
        acc3 += load_a(r.w, kk) * bv;
    }
    let rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let v = rows[i];
        store(row0 + i, col0, v.x);
        store(row0 + i, col0 + 16u, v.y);
        store(row0 + i, col0 + 32u, v.z);
        store(row0 + i, col0 + 48u, v.w);
    }
}

// Workgroup tiles: a_tile[kk][i] holds op(A)[tile_row + i, k0 + kk], b_tile[kk][j] holds op(B)[k0 + kk, tile_col + j].
var<workgroup> a_tile: array<array<f32, TILE>, KSTEP>;
var<workgroup> b_tile: array<array<f32, TILE>, KSTEP>;

@compute @workgroup_size(16, 16)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    set_split(wid.z);
    let tile_row = wid.y * TILE;
    let tile_col = wid.x * TILE;
    let flat = lid.y * 16u + lid.x; // 0..256
    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var k0 = k_lo; k0 < k_hi; k0 += KSTEP) {
        // 16x64 = 1024 elements per tile, 4 per invocation. Zero outside the matrix.
        for (var e = 0u; e < 4u; e++) {
            let idx = flat + e * 256u;
            let kk = idx / TILE;
            let x = idx % TILE;
            let gk = k0 + kk;
            var av = 0.0;
            if (gk < k_hi && tile_row + x < p.m) {
                av = load_a(tile_row + x, gk);
            }
            a_tile[kk][x] = av;
            var bv = 0.0;
            if (gk < k_hi && tile_col + x < p.n) {
                bv = load_b(gk, tile_col + x);
            }
            b_tile[kk][x] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KSTEP; kk++) {
            // Rows lid.y + 16*i and columns lid.x + 16*j: neighbouring invocations read neighbouring words.
            let bv = vec4<f32>(b_tile[kk][lid.x], b_tile[kk][lid.x + 16u], b_tile[kk][lid.x + 32u], b_tile[kk][lid.x + 48u]);
            for (var i = 0u; i < 4u; i++) {
                acc[i] += a_tile[kk][lid.y + 16u * i] * bv;
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = tile_row + lid.y + 16u * i;
        let v = acc[i];
        store(row, tile_col + lid.x, v.x);
        store(row, tile_col + lid.x + 16u, v.y);
        store(row, tile_col + lid.x + 32u, v.z);
        store(row, tile_col + lid.x + 48u, v.w);
    }
}
