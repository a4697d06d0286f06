//! Reference for `shaders/random.wgsl`: Philox4x32-10 in u64 arithmetic, and the same conversions
//! to uniforms, normals, corruption noise and dropout masks.
//!
//! Element `i` of every fill uses the Philox block `i / 4` and, within it, word `i % 4` (normals: the
//! pair (0, 1) or (2, 3), see [`box_muller`]), with
//! counter = (i / 4, stream lo, stream hi, purpose tag) and key = (seed lo, seed hi). So an element
//! depends on (seed, stream, purpose, i) only, never on how the work is split into workgroups, and the
//! integer stream is bit-identical on every adapter.

/// Philox4x32 round multipliers and Weyl key increments (Salmon et al. 2011; Random123).
pub const M0: u32 = 0xD251_1F53;
/// Multiplier of counter word 2 in each round.
pub const M1: u32 = 0xCD9E_8D57;
/// Added to key word 0 after each round (the golden ratio, 2^32/φ).
pub const W0: u32 = 0x9E37_79B9;
/// Added to key word 1 after each round (√3 − 1, times 2^32).
pub const W1: u32 = 0xBB67_AE85;

/// Purpose tags (counter word 3), one per entry point, so two kernels given the same (seed, stream)
/// still draw independent numbers. `random_bits` and `random_uniform` share tag 0 on purpose: the
/// uniforms are exactly the top 24 bits of the raw stream.
pub const TAG_RAW: u32 = 0;
/// `random_normal`.
pub const TAG_NORMAL: u32 = 1;
/// `corrupt_gaussian`.
pub const TAG_GAUSSIAN: u32 = 2;
/// `corrupt_masking`.
pub const TAG_MASKING: u32 = 3;
/// `corrupt_salt_pepper`.
pub const TAG_SALT_PEPPER: u32 = 4;
/// `dropout_mask`.
pub const TAG_DROPOUT: u32 = 5;

/// 2^-24: the spacing of the uniforms.
pub const UNIFORM_STEP: f32 = 1.0 / 16_777_216.0;

/// π rounded to f32, as the shader's constant.
pub const PI_F32: f32 = std::f32::consts::PI;

fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// One Philox4x32 round.
fn round(c: [u32; 4], k: [u32; 2]) -> [u32; 4] {
    let (hi0, lo0) = mulhilo(M0, c[0]);
    let (hi1, lo1) = mulhilo(M1, c[2]);
    [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0]
}

/// Philox4x32-10: ten rounds, the key bumped by (W0, W1) between rounds.
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    for r in 0..10 {
        if r > 0 {
            k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        }
        c = round(c, k);
    }
    c
}

/// The four words of block `block` of the stream (seed, stream, tag).
pub fn block(seed: u64, stream: u64, tag: u32, block: u32) -> [u32; 4] {
    philox4x32_10([block, stream as u32, (stream >> 32) as u32, tag], [seed as u32, (seed >> 32) as u32])
}

/// Word `i` of the stream (seed, stream, tag).
pub fn word(seed: u64, stream: u64, tag: u32, i: usize) -> u32 {
    block(seed, stream, tag, (i / 4) as u32)[i % 4]
}

/// U[0, 1) from the top 24 bits: `(w >> 8) · 2^-24`, exact in f32. Never 1; 0 occurs (when the top
/// 24 bits are all zero, probability 2^-24).
pub fn to_uniform(w: u32) -> f32 {
    (w >> 8) as f32 * UNIFORM_STEP
}

/// U(0, 1] from the top 24 bits: `((w >> 8) + 1) · 2^-24`, exact in f32. Never 0 (so log is finite).
pub fn to_uniform_open0(w: u32) -> f32 {
    ((w >> 8) + 1) as f32 * UNIFORM_STEP
}

/// Two N(0, 1) from two words by Box–Muller: r = √(max(−2 ln u1, 0)) with u1 ∈ (0, 1], so
/// r ≤ √(2 · 24 ln 2) ≈ 5.77 (the tail beyond 5.77σ, probability 8e-9, is cut off); θ = π·s with
/// s = ((w1 >> 8) − 2^23) · 2^-23 ∈ [−1, 1), exact, so θ lies where WGSL bounds sin and cos.
/// Returns (r cos θ, r sin θ). The shader computes u1, s and θ with the same f32 operations
/// (bit-identical); here log, sqrt, cos and sin are taken in f64 and the results rounded once, so
/// this is the correctly rounded value the GPU's built-ins approximate.
pub fn box_muller(w0: u32, w1: u32) -> (f32, f32) {
    let u1 = to_uniform_open0(w0) as f64;
    let s = ((w1 >> 8) as f32 - 8_388_608.0) * (1.0 / 8_388_608.0);
    let theta = (PI_F32 * s) as f64;
    let r = (-2.0 * u1.ln()).max(0.0).sqrt();
    ((r * theta.cos()) as f32, (r * theta.sin()) as f32)
}

/// The standard normal of element `i % 4` of a block: words (0, 1) give elements 0 (cos) and 1 (sin),
/// words (2, 3) give elements 2 and 3.
pub fn normal_of_block(b: [u32; 4], k: usize) -> f32 {
    let (c, s) = if k < 2 { box_muller(b[0], b[1]) } else { box_muller(b[2], b[3]) };
    if k.is_multiple_of(2) { c } else { s }
}

/// The factor kept elements of an inverted-dropout mask carry (defined beside the launcher, which
/// passes it to the shader, so GPU and CPU masks are bit-identical).
pub use crate::kernels::random::dropout_scale;

fn fill(out: &mut [f32], seed: u64, stream: u64, tag: u32, f: impl Fn(usize, [u32; 4]) -> f32) {
    for (b, chunk) in out.chunks_mut(4).enumerate() {
        let words = block(seed, stream, tag, b as u32);
        for (k, o) in chunk.iter_mut().enumerate() {
            *o = f(4 * b + k, words);
        }
    }
}

/// The raw u32 stream (tag 0).
pub fn random_bits(out: &mut [u32], seed: u64, stream: u64) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = word(seed, stream, TAG_RAW, i);
    }
}

/// U[0, 1) (tag 0): the top 24 bits of [`random_bits`] times 2^-24.
pub fn random_uniform(out: &mut [f32], seed: u64, stream: u64) {
    fill(out, seed, stream, TAG_RAW, |i, w| to_uniform(w[i % 4]));
}

/// N(0, 1) by Box–Muller (tag 1).
pub fn random_normal(out: &mut [f32], seed: u64, stream: u64) {
    fill(out, seed, stream, TAG_NORMAL, |i, w| normal_of_block(w, i % 4));
}

/// `out = clamp(inp + sigma · N(0, 1), 0, 1)` (tag 2), the sum and clamp in f32 as on the GPU.
pub fn corrupt_gaussian(out: &mut [f32], inp: &[f32], sigma: f32, seed: u64, stream: u64) {
    fill(out, seed, stream, TAG_GAUSSIAN, |i, w| {
        (inp[i] + sigma * normal_of_block(w, i % 4)).clamp(0.0, 1.0)
    });
}

/// Masking noise (tag 3): element i is zeroed when its uniform is below p, so with probability p
/// (exactly ⌈p·2^24⌉ / 2^24), else kept.
pub fn corrupt_masking(out: &mut [f32], inp: &[f32], p: f32, seed: u64, stream: u64) {
    fill(out, seed, stream, TAG_MASKING, |i, w| if to_uniform(w[i % 4]) < p { 0.0 } else { inp[i] });
}

/// Salt-and-pepper noise (tag 4): when the uniform from the top 24 bits is below p the element
/// becomes the lowest bit of the same word (0 or 1, an independent fair coin), else it is kept.
pub fn corrupt_salt_pepper(out: &mut [f32], inp: &[f32], p: f32, seed: u64, stream: u64) {
    fill(out, seed, stream, TAG_SALT_PEPPER, |i, w| {
        let word = w[i % 4];
        if to_uniform(word) < p { (word & 1) as f32 } else { inp[i] }
    });
}

/// Inverted-dropout mask (tag 5): 0 when the uniform is below p, else [`dropout_scale`]`(p)`, so the
/// mask's mean is 1. Dropout forward is `y = x · mask`, backward `dx = dy · mask` ([`multiply`]).
pub fn dropout_mask(mask: &mut [f32], p: f32, seed: u64, stream: u64) {
    let scale = dropout_scale(p);
    fill(mask, seed, stream, TAG_DROPOUT, |i, w| if to_uniform(w[i % 4]) < p { 0.0 } else { scale });
}

/// `out = a · b` element-wise.
pub fn multiply(out: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x * y;
    }
}
