//! Launcher for `shaders/random.wgsl`: Philox4x32-10 random numbers, input corruption for denoising
//! autoencoders, and inverted-dropout masks. CPU reference: `src/cpu/random.rs`.
//!
//! Every launch carries one [`RandomParams`] uniform. A training step wants fresh numbers without
//! rebuilding its plan: keep the launch's index in the [`crate::runner::Plan`] and, before each
//! submit, write [`restream`]`(&launch, stream_for(step, slot))` with [`crate::runner::Plan::set_uniform`].

use super::{Launch, grid_1d};
use crate::gpu::View;
use crate::gpu::{PerStep, PipelineKey, Shader, StepState};

/// `shaders/random.wgsl`.
pub const SHADER: Shader = Shader { name: "random", source: include_str!("../../shaders/random.wgsl") };

/// The factor kept elements of an inverted-dropout mask carry: 1 / (1 − p), rounded once. The
/// launcher passes this value to the shader and the CPU reference uses the same function, so GPU
/// and CPU masks are bit-identical.
pub fn dropout_scale(p: f32) -> f32 {
    (1.0 / (1.0 - p as f64)) as f32
}

/// The uniform block of every entry point of `random.wgsl` (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RandomParams {
    /// Elements to write (f32 values of the output).
    pub n: u32,
    /// Low 32 bits of the u64 seed (Philox key word 0).
    pub seed_lo: u32,
    /// High 32 bits of the seed (key word 1).
    pub seed_hi: u32,
    /// The stream (counter words 1 and 2); rewritten every step.
    pub stream_lo: u32,
    /// High 32 bits of the stream (counter word 2).
    pub stream_hi: u32,
    /// Masking, salt-and-pepper or dropout probability.
    pub prob: f32,
    /// Gaussian noise standard deviation.
    pub sigma: f32,
    /// Dropout's 1 / (1 - prob), computed on the host so GPU and CPU masks agree bit-for-bit.
    pub scale: f32,
}

impl RandomParams {
    /// Parameters for `n` elements of stream `stream` under `seed`; no noise (`prob` 0, `sigma` 0,
    /// `scale` 1) until the launcher sets its own.
    pub fn new(n: usize, seed: u64, stream: u64) -> RandomParams {
        let n = u32::try_from(n).expect("random.wgsl: n must fit in u32");
        RandomParams {
            n,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            stream_lo: stream as u32,
            stream_hi: (stream >> 32) as u32,
            prob: 0.0,
            sigma: 0.0,
            scale: 1.0,
        }
    }

    /// Decodes the uniform of a launch built by this module.
    pub fn of(launch: &Launch) -> RandomParams {
        assert_eq!(
            launch.key.shader.name, "random",
            "RandomParams::of: '{}' is not a random.wgsl launch",
            launch.label
        );
        bytemuck::pod_read_unaligned(&launch.uniform)
    }

    /// The u64 seed, reassembled from its two words.
    pub fn seed(&self) -> u64 {
        self.seed_lo as u64 | (self.seed_hi as u64) << 32
    }

    /// The u64 stream, reassembled from its two words.
    pub fn stream(&self) -> u64 {
        self.stream_lo as u64 | (self.stream_hi as u64) << 32
    }

    /// Replaces the stream (both words).
    pub fn set_stream(&mut self, stream: u64) {
        self.stream_lo = stream as u32;
        self.stream_hi = (stream >> 32) as u32;
    }

    /// These parameters with another stream.
    pub fn with_stream(mut self, stream: u64) -> RandomParams {
        self.set_stream(stream);
        self
    }

    /// The 32 uniform bytes, as the shader reads them.
    pub fn bytes(&self) -> Vec<u8> {
        bytemuck::bytes_of(self).to_vec()
    }
}

/// The uniform bytes of `launch` (from this module) with its stream replaced: what the training loop
/// writes with `Plan::set_uniform` to draw fresh numbers each step.
pub fn restream(launch: &Launch, stream: u64) -> Vec<u8> {
    RandomParams::of(launch).with_stream(stream).bytes()
}

/// A stream id for step `step` and noise source `slot` (one slot per random launch in a step, e.g.
/// 0 for the input corruption, 1.. for dropout layers, one for the VAE's ε): distinct (step, slot)
/// pairs give distinct streams for steps below 2^48.
pub fn stream_for(step: u64, slot: u16) -> u64 {
    step << 16 | slot as u64
}

/// Every step, a drawing launch gets the stream `stream_for(step, k)`, k its ordinal among the plan's
/// drawing launches: each step draws new numbers and the same step redraws the same ones.
fn restream_for_step(uniform: &[u8], step: &StepState) -> Vec<u8> {
    let p: RandomParams = bytemuck::pod_read_unaligned(uniform);
    p.with_stream(stream_for(step.step, step.random_slot)).bytes()
}

fn block_launch(entry: &'static str, p: RandomParams, views: Vec<View>) -> Launch {
    Launch {
        key: PipelineKey::new(SHADER, entry, &[]),
        uniform: p.bytes(),
        views,
        workgroups: grid_1d((p.n as usize).div_ceil(4), 256),
        label: entry,
        per_step: Some(PerStep { draws_random: true, rewrite: restream_for_step }),
    }
}

fn check_prob(what: &str, p: f32, allow_one: bool) {
    let ok = if allow_one { (0.0..=1.0).contains(&p) } else { (0.0..1.0).contains(&p) };
    assert!(ok, "{what}: probability {p} outside [0, {}", if allow_one { "1]" } else { "1)" });
}

/// `out[i]` = the raw u32 word i of the stream, stored bit-for-bit (read it back as u32).
pub fn random_bits(out: &View, n: usize, seed: u64, stream: u64) -> Launch {
    block_launch("random_bits", RandomParams::new(n, seed, stream), vec![out.clone()])
}

/// `out[i]` ~ U[0, 1): `(w >> 8) · 2^-24`, never 1, 0 with probability 2^-24.
pub fn random_uniform(out: &View, n: usize, seed: u64, stream: u64) -> Launch {
    block_launch("random_uniform", RandomParams::new(n, seed, stream), vec![out.clone()])
}

/// `out[i]` ~ N(0, 1) by Box–Muller (|out| ≤ 5.77).
pub fn random_normal(out: &View, n: usize, seed: u64, stream: u64) -> Launch {
    block_launch("random_normal", RandomParams::new(n, seed, stream), vec![out.clone()])
}

/// `out = clamp(inp + sigma · N(0, 1), 0, 1)`. `out` may be `inp`.
pub fn corrupt_gaussian(out: &View, inp: &View, n: usize, sigma: f32, seed: u64, stream: u64) -> Launch {
    assert!(sigma >= 0.0 && sigma.is_finite(), "corrupt_gaussian: sigma {sigma}");
    let p = RandomParams { sigma, ..RandomParams::new(n, seed, stream) };
    block_launch("corrupt_gaussian", p, vec![out.clone(), inp.clone()])
}

/// Masking noise: `out = 0` with probability `p`, else `inp`. `out` may be `inp`.
pub fn corrupt_masking(out: &View, inp: &View, n: usize, p: f32, seed: u64, stream: u64) -> Launch {
    check_prob("corrupt_masking", p, true);
    let params = RandomParams { prob: p, ..RandomParams::new(n, seed, stream) };
    block_launch("corrupt_masking", params, vec![out.clone(), inp.clone()])
}

/// Salt-and-pepper noise: with probability `p` the element becomes 0 or 1 with equal odds, else it
/// is kept. `out` may be `inp`.
pub fn corrupt_salt_pepper(out: &View, inp: &View, n: usize, p: f32, seed: u64, stream: u64) -> Launch {
    check_prob("corrupt_salt_pepper", p, true);
    let params = RandomParams { prob: p, ..RandomParams::new(n, seed, stream) };
    block_launch("corrupt_salt_pepper", params, vec![out.clone(), inp.clone()])
}

/// Inverted-dropout mask: `mask[i] = 1/(1-p)` with probability `1-p`, else 0 (mean 1). Apply it with
/// [`multiply`]: forward `y = x · mask`, backward `dx = dy · mask`. `p` must be in [0, 1).
pub fn dropout_mask(mask: &View, n: usize, p: f32, seed: u64, stream: u64) -> Launch {
    check_prob("dropout_mask", p, false);
    let params = RandomParams { prob: p, scale: dropout_scale(p), ..RandomParams::new(n, seed, stream) };
    block_launch("dropout_mask", params, vec![mask.clone()])
}

/// `out = a · b` element-wise (dropout forward and backward). `out` may be `a` or `b`.
pub fn multiply(out: &View, a: &View, b: &View, n: usize) -> Launch {
    let p = RandomParams::new(n, 0, 0);
    Launch {
        key: PipelineKey::new(SHADER, "multiply", &[]),
        uniform: p.bytes(),
        views: vec![out.clone(), a.clone(), b.clone()],
        workgroups: grid_1d(n, 256),
        label: "multiply",
        per_step: None,
    }
}
