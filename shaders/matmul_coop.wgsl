// matmul_coop.wgsl: the contract of matmul.wgsl (C[M,N] = act(op(A)·op(B) + bias), or C += that;
// TRANS_A / TRANS_B; split-K through k_chunk; k ranges through k_first) on cooperative matrices
// (tensor cores on NVIDIA, simdgroup matrices on Apple), where the adapter offers them.
// (The host puts one of matmul_coop_{8_f32,8_f16,16_f16}.wgsl first: it enables the extension and
// declares the tile edge T, the element type Elem of the staged operands and the A / B / C tile types:
// 8x8 f32, or 8x8 / 16x16 with f16 operands and f32 accumulators, a precision path. Then
// shaders/activation_fns.wgsl.)
//
// A cooperative matrix belongs to one subgroup, so a workgroup is one subgroup: SUBGROUP_SIZE
// invocations, the adapter's width, which the pipeline cache sets (the host runs these kernels only
// where every subgroup has the same width). It computes an RT x RT block of C in R x R = 16
// accumulator tiles (64x64 with NVIDIA's 16x16 tiles, a warp's usual share), T values of k at a time:
//  - the invocations copy op(A)'s RT x T and op(B)'s T x RT pieces into workgroup memory, row-major,
//    converted to Elem, zero outside the matrix (any M, N, K), consecutive invocations reading
//    consecutive words of each operand as stored;
//  - the subgroup loads R A tiles and R B tiles from there and multiply-adds the R x R products, so
//    each staged element feeds R products;
//  - at the end each accumulator tile goes through workgroup memory, where each invocation applies
//    the bias, activation and accumulate to its elements of C as matmul.wgsl does.
// All control flow around the cooperative operations is uniform (no early return; constant trip
// counts).
//
// Bindings: 0 uniform Params, 1 A, 2 B, 3 bias (length N; any buffer when has_bias = 0), 4 C.
// Dispatch (ceil(N/RT), ceil(M/RT), splits). CPU reference: src/cpu/matmul.rs.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
// Invocations per workgroup: exactly one subgroup (set by the pipeline cache from the adapter).
override SUBGROUP_SIZE: u32 = 32u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    has_bias: u32,
    accumulate: u32, // 0: C = act(acc + bias); 1: C += act(acc + bias); 2: C = act(C + acc + bias)
    slope: f32,
    // Split-K: workgroup z sums k in [k_first + z*k_chunk, min(k, k_first + (z+1)*k_chunk)) and
    // writes C + z*M*N.
    k_chunk: u32,
    // The first k of this launch (a K past lavapipe's loop bound runs as several launches).
    k_first: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// Accumulator tiles along each side of a workgroup's block: R x R of them, a block of RT x RT.
const R: u32 = 4u;

// op(A)[row0 + i, k0 + kk] at word i*T + kk (RT x T); op(B)[k0 + kk, col0 + j] at word kk*RT + j
// (T x RT).
var<workgroup> a_sh: array<Elem, R * T * T>;
var<workgroup> b_sh: array<Elem, R * T * T>;
// One accumulator tile on its way to the epilogue: [row][column] at word row*T + column.
var<workgroup> c_sh: array<f32, T * T>;

// op(A)[i, k], zero outside [0, M) x [k_lo, k_hi).
fn a_at(i: u32, k: u32, k_lo: u32, k_hi: u32) -> Elem {
    if (i >= p.m || k < k_lo || k >= k_hi) {
        return Elem(0.0);
    }
    if (TRANS_A) {
        return Elem(a[k * p.m + i]); // A stored [K, M]
    }
    return Elem(a[i * p.k + k]);
}

// op(B)[k, j], zero outside [k_lo, k_hi) x [0, N).
fn b_at(k: u32, j: u32, k_lo: u32, k_hi: u32) -> Elem {
    if (j >= p.n || k < k_lo || k >= k_hi) {
        return Elem(0.0);
    }
    if (TRANS_B) {
        return Elem(b[j * p.k + k]); // B stored [N, K]
    }
    return Elem(b[k * p.n + j]);
}

// Bias, activation, and the optional accumulate, for one element of C (dropped outside C).
fn store(c_base: u32, i: u32, j: u32, acc: f32) {
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

@compute @workgroup_size(SUBGROUP_SIZE)
fn matmul_coop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let bt = R * T;
    let row0 = wid.y * bt;
    let col0 = wid.x * bt;
    let k_lo = p.k_first + wid.z * p.k_chunk;
    let k_hi = min(p.k, k_lo + p.k_chunk);
    let tt = T * T;
    var acc: array<TileC, R * R>;
    for (var q = 0u; q < R * R; q++) {
        acc[q] = TileC();
    }
    var a: array<TileA, R>;
    var b: array<TileB, R>;
    for (var k0 = k_lo; k0 < k_hi; k0 += T) {
        // RT·T elements of each operand, a subgroup's width at a time, in the order each is stored.
        for (var e = t; e < R * tt; e += SUBGROUP_SIZE) {
            if (TRANS_A) {
                let kk = e / bt;
                let i = e % bt;
                a_sh[i * T + kk] = a_at(row0 + i, k0 + kk, k_lo, k_hi);
            } else {
                let i = e / T;
                let kk = e % T;
                a_sh[i * T + kk] = a_at(row0 + i, k0 + kk, k_lo, k_hi);
            }
            if (TRANS_B) {
                let j = e / T;
                let kk = e % T;
                b_sh[kk * bt + j] = b_at(k0 + kk, col0 + j, k_lo, k_hi);
            } else {
                let kk = e / bt;
                let j = e % bt;
                b_sh[kk * bt + j] = b_at(k0 + kk, col0 + j, k_lo, k_hi);
            }
        }
        workgroupBarrier();
        for (var i = 0u; i < R; i++) {
            let at = i * tt;
            a[i] = coopLoadT<TileA>(&a_sh[at], T);
            let bj = i * T;
            b[i] = coopLoadT<TileB>(&b_sh[bj], bt);
        }
        for (var q = 0u; q < R * R; q++) {
            acc[q] = coopMultiplyAdd(a[q / R], b[q % R], acc[q]);
        }
        workgroupBarrier();
    }
    // Each accumulator tile through workgroup memory to the per-element epilogue.
    let c_base = wid.z * p.m * p.n;
    for (var q = 0u; q < R * R; q++) {
        coopStoreT(acc[q], &c_sh[0], T);
        workgroupBarrier();
        let r0 = row0 + (q / R) * T;
        let c0 = col0 + (q % R) * T;
        for (var e = t; e < tt; e += SUBGROUP_SIZE) {
            store(c_base, r0 + e / T, c0 + e % T, c_sh[e]);
        }
        workgroupBarrier();
    }
}
