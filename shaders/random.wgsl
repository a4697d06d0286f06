// random.wgsl: counter-based random numbers (Philox4x32-10) and the noise kernels built on them.
//
// Generator: Philox4x32-10 (Salmon, Moraes, Dror, Shaw 2011, "Parallel random numbers: as easy as
// 1, 2, 3"), with the 32x32 -> 64-bit products done in 16-bit halves since WGSL has no u64.
//   key     = (seed lo, seed hi)                          from the u64 seed
//   counter = (block = i / 4, stream lo, stream hi, tag)  stream: u64 chosen by the host per step
// Each block gives four u32 words; element i uses word i % 4 of block i / 4 (normals: the pair
// (0, 1) or (2, 3)). An element depends only on (seed, stream, tag, i), never on the dispatch
// geometry, and everything up to the final float conversion is integer arithmetic, so the u32
// stream is bit-identical on every adapter. The tag is fixed per entry point (TAG_* below) so two
// kernels given the same (seed, stream) draw independent numbers.
//
// Entry points (each invocation fills one block of 4 elements, except multiply: 1 element):
//   random_bits          result[i] = raw u32 word, stored bit-for-bit in the f32 array     (tag 0)
//   random_uniform       result[i] = (w >> 8) · 2^-24 ∈ [0, 1 - 2^-24]; 0 can occur (p = 2^-24) (tag 0)
//   random_normal        result[i] ~ N(0, 1), Box–Muller from u1 = ((w0 >> 8) + 1) · 2^-24 ∈ (0, 1]
//                        (never log 0; |r| ≤ 5.77) and θ = π·s, s ∈ [-1, 1) exact  (tag 1)
//   corrupt_gaussian     out = clamp(x + sigma · N(0, 1), 0, 1)                         (tag 2)
//   corrupt_masking      out = 0 if u < prob else x                                     (tag 3)
//   corrupt_salt_pepper  out = f32(w & 1) if u < prob else x (u from bits 8..31, the
//                        salt/pepper coin is bit 0 of the same word)                    (tag 4)
//   dropout_mask         mask = 0 if u < prob else scale, scale = 1/(1-prob) from host  (tag 5)
//   multiply             out = x · factor (dropout forward y = x·mask, backward dx = dy·mask)
//
// Bindings: 0 uniform Params, 1 result (out / mask), 2 x (input of corrupt_* and multiply),
// 3 factor (multiply's second operand).
// Dispatch: grid_1d(ceil(n / 4), 256) for the block kernels, grid_1d(n, 256) for multiply; the
// flat index is gid.x + gid.y * num_workgroups.x * 256.
// CPU reference: src/cpu/random.rs.

const WG: u32 = 256u;

const M0: u32 = 0xD2511F53u;
const M1: u32 = 0xCD9E8D57u;
const W0: u32 = 0x9E3779B9u;
const W1: u32 = 0xBB67AE85u;

const TAG_RAW: u32 = 0u;
const TAG_NORMAL: u32 = 1u;
const TAG_GAUSSIAN: u32 = 2u;
const TAG_MASKING: u32 = 3u;
const TAG_SALT_PEPPER: u32 = 4u;
const TAG_DROPOUT: u32 = 5u;

const UNIFORM_STEP: f32 = 5.9604644775390625e-8; // 2^-24
const PI: f32 = 3.14159265358979323846;

struct Params {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    stream_lo: u32,
    stream_hi: u32,
    prob: f32,  // masking / salt-and-pepper / dropout probability
    sigma: f32, // Gaussian noise standard deviation
    scale: f32, // dropout: 1 / (1 - prob), computed on the host
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> result: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> factor: array<f32>;

// (hi, lo) of the 64-bit product a·b, from 16-bit halves (every partial product fits in 32 bits).
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let al = a & 0xffffu;
    let ah = a >> 16u;
    let bl = b & 0xffffu;
    let bh = b >> 16u;
    let ll = al * bl;
    let lh = al * bh;
    let hl = ah * bl;
    let hh = ah * bh;
    let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu); // < 3·2^16
    let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox4x32_10(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = ctr;
    var k = key;
    for (var r = 0u; r < 10u; r++) {
        if (r > 0u) {
            k += vec2<u32>(W0, W1);
        }
        let p0 = mulhilo(M0, c.x);
        let p1 = mulhilo(M1, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    }
    return c;
}

fn block_words(block: u32, tag: u32) -> vec4<u32> {
    return philox4x32_10(vec4<u32>(block, p.stream_lo, p.stream_hi, tag), vec2<u32>(p.seed_lo, p.seed_hi));
}

// [0, 1 - 2^-24], exact.
fn to_uniform(w: u32) -> f32 {
    return f32(w >> 8u) * UNIFORM_STEP;
}

// (r cos θ, r sin θ) from two words; see the header.
fn box_muller(w0: u32, w1: u32) -> vec2<f32> {
    let u1 = f32((w0 >> 8u) + 1u) * UNIFORM_STEP;          // (0, 1], exact
    let s = (f32(w1 >> 8u) - 8388608.0) * (1.0 / 8388608.0); // [-1, 1), exact
    let theta = PI * s;
    // max(): an adapter's log may be off by 2^-21 absolute near 1, where -2 ln u1 is tiny.
    let r = sqrt(max(-2.0 * log(u1), 0.0));
    return r * vec2<f32>(cos(theta), sin(theta));
}

fn normals(w: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(box_muller(w.x, w.y), box_muller(w.z, w.w));
}

fn block_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(256)
fn random_bits(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let blk = block_index(gid, nwg);
    let w = block_words(blk, TAG_RAW);
    for (var k = 0u; k < 4u; k++) {
        let i = 4u * blk + k;
        if (i < p.n) {
            result[i] = bitcast<f32>(w[k]);
        }
    }
}

@compute @workgroup_size(256)
fn random_uniform(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let blk = block_index(gid, nwg);
    let w = block_words(blk, TAG_RAW);
    for (var k = 0u; k < 4u; k++) {
        let i = 4u * blk + k;
        if (i < p.n) {
            result[i] = to_uniform(w[k]);
        }
    }
}

@compute @workgroup_size(256)
fn random_normal(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let blk = block_index(gid, nwg);
    if (4u * blk >= p.n) {
        return;
    }
    let v = normals(block_words(blk, TAG_NORMAL));
    for (var k = 0u; k < 4u; k++) {
        let i = 4u * blk + k;
        if (i < p.n) {
            result[i] = v[k];
        }
    }
}

@compute @workgroup_size(256)
fn corrupt_gaussian(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let blk = block_index(gid, nwg);
    if (4u * blk >= p.n) {
        return;
    }
    let v = normals(block_words(blk, TAG_GAUSSIAN));
    for (var k = 0u; k < 4u; k++) {
        let i = 4u * blk + k;
        if (i < p.n) {
            result[i] = clamp(x[i] + p.sigma * v[k], 0.0, 1.0);
        }
    }
}

@compute @workgroup_size(256)
fn corrupt_masking(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let blk = block_index(gid, nwg);
    let w = block_words(blk, TAG_MASKING);
    for (var k = 0u; k < 4u; k++) {
        let i = 4u * blk + k;
        if (i < p.n) {
            result[i] = select(x[i], 0.0, to_uniform(w[k]) < p.prob);
        }
    }
}

@compute @workgroup_size(256)
fn corrupt_salt_pepper(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let blk = block_index(gid, nwg);
    let w = block_words(blk, TAG_SALT_PEPPER);
    for (var k = 0u; k < 4u; k++) {
        let i = 4u * blk + k;
        if (i < p.n) {
            result[i] = select(x[i], f32(w[k] & 1u), to_uniform(w[k]) < p.prob);
        }
    }
}

@compute @workgroup_size(256)
fn dropout_mask(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let blk = block_index(gid, nwg);
    let w = block_words(blk, TAG_DROPOUT);
    for (var k = 0u; k < 4u; k++) {
        let i = 4u * blk + k;
        if (i < p.n) {
            result[i] = select(p.scale, 0.0, to_uniform(w[k]) < p.prob);
        }
    }
}

@compute @workgroup_size(256)
fn multiply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i < p.n) {
        result[i] = x[i] * factor[i];
    }
}
