// matmul_subgroup.wgsl: the same contract as matmul.wgsl (C = act(op(A)·op(B) + bias), or C += that),
// (Prepended on the host with shaders/activation_fns.wgsl: apply_activation and the ACT_* ids.)
// for adapters with subgroups of at least 8 invocations. Only built when the device has
// Features::SUBGROUP and subgroup_min_size >= 8 (src/kernels/matmul.rs), so it lives in its own file
// (naga 30 takes subgroup builtins without `enable subgroups;`, and rejects that directive).
//
// Why: on CPU adapters every load whose address differs between invocations is a gather of scalar
// loads, and a register-blocked kernel is bound by those gathers. Here the 8 rows of A a workgroup
// needs at step k are loaded once per subgroup (invocation l loads row l % 8, one gather) and handed
// to every invocation with subgroupBroadcast (a register permute). Each invocation owns 16 rows x 4
// columns (two 8-row halves; columns strided by 64, so neighbouring invocations read neighbouring
// words of B): per k, 6 gathers feed 64 multiply-adds, against 8 gathers for 16 in matmul_reg.
//
// Bindings: 0 uniform Params, 1 A, 2 B, 3 bias, 4 C (as matmul.wgsl). Workgroup 64 covers 16 rows x 256
// columns of C. Dispatch (ceil(N/256), ceil(M/16), splits; see k_chunk). No early return: subgroupBroadcast needs every
// invocation of the subgroup active, so out-of-range columns are clamped and their stores skipped.
// CPU reference: src/cpu/matmul.rs.

override TRANS_A: bool = false;
override TRANS_B: bool = false;


struct Params {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    has_bias: u32,
    accumulate: u32, // 0: C = act(acc + bias); 1: C += act(acc + bias); 2: C = act(C + acc + bias)
    slope: f32,
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

fn load_a(i: u32, kk: u32) -> f32 {
    if (TRANS_A) {
        return a[kk * p.m + i];
    }
    return a[i * p.k + kk];
}

fn load_b(kk: u32, j: u32) -> f32 {
    if (TRANS_B) {
        return b[j * p.k + kk];
    }
    return b[kk * p.n + j];
}

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

fn store_row(i: u32, col0: u32, v: vec4<f32>) {
    store(i, col0, v.x);
    store(i, col0 + 64u, v.y);
    store(i, col0 + 128u, v.z);
    store(i, col0 + 192u, v.w);
}

@compute @workgroup_size(64)
fn matmul_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                   @builtin(subgroup_invocation_id) lane: u32) {
    set_split(wid.z);
    let row0 = wid.y * 16u;
    let col0 = wid.x * 256u + lid.x;
    let last_r = p.m - 1u;
    let last_c = p.n - 1u;
    // The rows of A this invocation fetches for the whole subgroup (rows l % 8 and 8 + l % 8).
    let row_lo = min(row0 + lane % 8u, last_r);
    let row_hi = min(row0 + 8u + lane % 8u, last_r);
    let cl = vec4<u32>(min(col0, last_c), min(col0 + 64u, last_c), min(col0 + 128u, last_c), min(col0 + 192u, last_c));
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    var acc8 = vec4<f32>(0.0);
    var acc9 = vec4<f32>(0.0);
    var acc10 = vec4<f32>(0.0);
    var acc11 = vec4<f32>(0.0);
    var acc12 = vec4<f32>(0.0);
    var acc13 = vec4<f32>(0.0);
    var acc14 = vec4<f32>(0.0);
    var acc15 = vec4<f32>(0.0);
    for (var kk = k_lo; kk < k_hi; kk++) {
        let lo = load_a(row_lo, kk);
        let hi = load_a(row_hi, kk);
        let bv = vec4<f32>(load_b(kk, cl.x), load_b(kk, cl.y), load_b(kk, cl.z), load_b(kk, cl.w));
        acc0 += subgroupBroadcast(lo, 0u) * bv;
        acc1 += subgroupBroadcast(lo, 1u) * bv;
        acc2 += subgroupBroadcast(lo, 2u) * bv;
        acc3 += subgroupBroadcast(lo, 3u) * bv;
        acc4 += subgroupBroadcast(lo, 4u) * bv;
        acc5 += subgroupBroadcast(lo, 5u) * bv;
        acc6 += subgroupBroadcast(lo, 6u) * bv;
        acc7 += subgroupBroadcast(lo, 7u) * bv;
        acc8 += subgroupBroadcast(hi, 0u) * bv;
        acc9 += subgroupBroadcast(hi, 1u) * bv;
        acc10 += subgroupBroadcast(hi, 2u) * bv;
        acc11 += subgroupBroadcast(hi, 3u) * bv;
        acc12 += subgroupBroadcast(hi, 4u) * bv;
        acc13 += subgroupBroadcast(hi, 5u) * bv;
        acc14 += subgroupBroadcast(hi, 6u) * bv;
        acc15 += subgroupBroadcast(hi, 7u) * bv;
    }
    store_row(row0 + 0u, col0, acc0);
    store_row(row0 + 1u, col0, acc1);
    store_row(row0 + 2u, col0, acc2);
    store_row(row0 + 3u, col0, acc3);
    store_row(row0 + 4u, col0, acc4);
    store_row(row0 + 5u, col0, acc5);
    store_row(row0 + 6u, col0, acc6);
    store_row(row0 + 7u, col0, acc7);
    store_row(row0 + 8u, col0, acc8);
    store_row(row0 + 9u, col0, acc9);
    store_row(row0 + 10u, col0, acc10);
    store_row(row0 + 11u, col0, acc11);
    store_row(row0 + 12u, col0, acc12);
    store_row(row0 + 13u, col0, acc13);
    store_row(row0 + 14u, col0, acc14);
    store_row(row0 + 15u, col0, acc15);
}
