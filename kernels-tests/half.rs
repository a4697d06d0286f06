//! The opt-in f16 activation storage, kernel by kernel: the SGEMM with any of A, B and C stored as
//! f16 (f32 arithmetic; f16 operands read a vec4<f16> at a time where their rows allow, else one
//! value at a time), every tile configuration and transpose form, on awkward shapes, with the
//! bias + activation and accumulate epilogues, against the CPU reference run on the same
//! f16-rounded values; a guard band of f16 after C that must stay untouched (C's last value may be
//! the low half of a word). And the activation derivative reading its layer's output as f16.

mod common;

use aegpu::expert::cpu;
use aegpu::expert::runner::{Plan, View};
use aegpu::gpu::{Gpu, StorageBuffer};
use aegpu::kernels::Activation;
use aegpu::kernels::activation::activation_backward_bias;
use aegpu::kernels::matmul::{Half, Matmul, MatmulVariant, Transpose};
use common::*;
use half::f16;

const SGEMM: [MatmulVariant; 3] =
    [MatmulVariant::Sgemm128x128, MatmulVariant::Sgemm64x64, MatmulVariant::Sgemm32x128];

/// Odd sizes, 1s, one past a block or a k-tile, multiples of 4 (vec4 loads for the f32 operand).
const SHAPES: &[(usize, usize, usize)] =
    &[(1, 1, 1), (7, 6, 3), (37, 61, 29), (130, 131, 11), (36, 68, 20), (33, 129, 18)];

const GUARD: usize = 33;
// Exact in f16 too.
const GUARD_VALUE: f32 = 4320.0;

fn round(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| f16::from_f32(x).to_f32()).collect()
}

/// An arena of u32 words: f32 tensors one value per word, f16 tensors two per word (value 2i in the
/// low half of word i, as `array<f16>` reads them), each at the next aligned offset.
struct Words {
    words: Vec<u32>,
    align: usize,
}

impl Words {
    /// Places `data` (as f16 when `half`); returns (offset, words).
    fn place(&mut self, data: &[f32], half: bool) -> (usize, usize) {
        let at = (self.words.len() + 1).next_multiple_of(self.align);
        self.words.resize(at, 0xdead_beef);
        if half {
            for pair in data.chunks(2) {
                let lo = f16::from_f32(pair[0]).to_bits() as u32;
                let hi = pair.get(1).map_or(0, |&v| f16::from_f32(v).to_bits() as u32);
                self.words.push(lo | hi << 16);
            }
        } else {
            self.words.extend(data.iter().map(|v| v.to_bits()));
        }
        (at, self.words.len() - at)
    }
}

/// The values of a tensor placed by [`Words::place`], read back from `all`.
fn values(all: &[u32], at: usize, len: usize, half: bool) -> Vec<f32> {
    if !half {
        return all[at..at + len].iter().map(|&w| f32::from_bits(w)).collect();
    }
    (0..len)
        .map(|i| {
            let w = all[at + i / 2];
            f16::from_bits((if i % 2 == 0 { w & 0xffff } else { w >> 16 }) as u16).to_f32()
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn check(
    gpu: &Gpu,
    variant: MatmulVariant,
    trans: Transpose,
    (m, n, k): (usize, usize, usize),
    half: Half,
    act: Activation,
    bias: bool,
    accumulate: bool,
    seed: u64,
) {
    assert!(gpu.has_f16(), "this test needs an adapter with shader-f16 (lavapipe has it)");
    let keep = |v: Vec<f32>, h: bool| if h { round(&v) } else { v };
    let a = keep(random_vec(m * k, seed), half.a);
    let b = keep(random_vec(k * n, seed + 1), half.b);
    let bias_v = random_vec(n, seed + 2);
    let c0 = keep(random_vec(m * n, seed + 3), half.c);
    let mut want = c0.clone();
    cpu::matmul::matmul(&mut want, &a, &b, bias.then_some(&bias_v[..]), m, n, k, trans, act, accumulate);

    let align = (gpu.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
    let mut arena = Words { words: Vec::new(), align };
    let (at_a, len_a) = arena.place(&a, half.a);
    let (at_b, len_b) = arena.place(&b, half.b);
    let (at_bias, len_bias) = arena.place(&bias_v, false);
    let mut c_guarded = c0.clone();
    c_guarded.extend(std::iter::repeat_n(GUARD_VALUE, GUARD));
    let (at_c, _) = arena.place(&c_guarded, half.c);
    let len_c = if half.c { (m * n).div_ceil(2) } else { m * n };
    let buffer = StorageBuffer::from_slice(gpu, "arena", &arena.words).unwrap();
    let view = |offset, len| View { buffer: buffer.buffer.clone(), offset, len };
    let product = Matmul {
        c: view(at_c, len_c),
        a: view(at_a, len_a),
        b: view(at_b, len_b),
        bias: bias.then(|| view(at_bias, len_bias)),
        m,
        n,
        k,
        trans,
        act,
        accumulate,
        variant,
        splits: 1,
        half,
    };
    // An f16 operand whose rows hold a multiple of 4 values is read a vec4<f16> at a time (the
    // views here start at aligned offsets), else one value at a time.
    let launches = product.launches();
    let (ta, tb) = trans.flags();
    let quads = |row_len: usize| if row_len.is_multiple_of(4) { "4" } else { "" };
    let name = launches[0].key.shader.name;
    if half.a {
        assert!(
            name.contains(&format!("_ah{}_", quads(if ta { m } else { k }))),
            "{name} for {m}x{n}x{k} {trans:?}"
        );
    }
    if half.b {
        assert!(
            name.contains(&format!("_bh{}", quads(if tb { k } else { n }))),
            "{name} for {m}x{n}x{k} {trans:?}"
        );
    }
    Plan::new(gpu, "test", &launches).unwrap().run(gpu).unwrap();
    let all = buffer.read_u32(gpu, 0..arena.words.len()).unwrap();
    let what = format!("{variant:?} {trans:?} {m}x{n}x{k} {half:?} {act:?} bias={bias} acc={accumulate}");
    let got = values(&all, at_c, m * n + GUARD, half.c);
    assert!(got[m * n..].iter().all(|&g| g == GUARD_VALUE), "{what}: wrote past C");
    assert_eq!(values(&all, at_a, m * k, half.a), a, "{what}: A was written");
    // f32 sums as in sgemm.rs; a C stored as f16 adds its rounding: half an f16 ulp (2^-11
    // relative), one ulp for a rounding mode other than to nearest.
    let atol = 1e-5 * (k as f32).sqrt() * 4.0;
    let rtol = if half.c { 1.0 / 1024.0 } else { 1e-4 };
    assert_close(&what, &got[..m * n], &want, atol, rtol);
}

/// Each matrix as f16 alone, and the pairs a training step runs (a hidden layer's forward reads and
/// writes f16; the weight gradient reads its input as f16).
const HALVES: [Half; 5] = [
    Half { a: true, b: false, c: false },
    Half { a: false, b: true, c: false },
    Half { a: false, b: false, c: true },
    Half { a: true, b: false, c: true },
    Half { a: true, b: true, c: true },
];

#[test]
fn every_configuration_transpose_and_f16_placement_matches_reference() {
    let gpu = gpu();
    for variant in SGEMM {
        for trans in Transpose::ALL {
            for half in HALVES {
                for (i, &shape) in SHAPES.iter().enumerate() {
                    check(
                        &gpu,
                        variant,
                        trans,
                        shape,
                        half,
                        Activation::Identity,
                        false,
                        false,
                        40 + i as u64,
                    );
                }
            }
        }
    }
}

#[test]
fn f16_products_keep_the_bias_activation_and_accumulate_epilogues() {
    let gpu = gpu();
    let forward = Half { a: true, b: false, c: true };
    for variant in SGEMM {
        for (i, &shape) in SHAPES.iter().enumerate() {
            let seed = 70 + i as u64;
            check(&gpu, variant, Transpose::Nt, shape, forward, Activation::Sigmoid, true, false, seed);
            check(
                &gpu,
                variant,
                Transpose::Nt,
                shape,
                forward,
                Activation::LeakyRelu(0.1),
                true,
                false,
                seed,
            );
            check(
                &gpu,
                variant,
                Transpose::Tn,
                shape,
                Half { a: false, b: true, c: false },
                Activation::Identity,
                false,
                true,
                seed,
            );
        }
    }
}

/// Only the SGEMM reads f16: a product the policy gives to another variant runs the 64x64 SGEMM.
#[test]
fn an_f16_product_of_another_variant_runs_the_sgemm() {
    let gpu = gpu();
    for variant in [MatmulVariant::Reg, MatmulVariant::Tiled, MatmulVariant::Subgroup] {
        check(
            &gpu,
            variant,
            Transpose::Nt,
            (37, 61, 29),
            Half { a: true, b: false, c: true },
            Activation::Tanh,
            true,
            false,
            5,
        );
        let buf = StorageBuffer::zeroed(&gpu, "any", 4).unwrap();
        let v = View::whole(&buf);
        let product = Matmul {
            c: v.clone(),
            a: v.clone(),
            b: v.clone(),
            bias: None,
            m: 3,
            n: 3,
            k: 3,
            trans: Transpose::Nn,
            act: Activation::Identity,
            accumulate: false,
            variant,
            splits: 1,
            half: Half { a: false, b: false, c: true },
        };
        assert_eq!(product.runs(), MatmulVariant::Sgemm64x64);
        assert_eq!(product.launch().key.shader.name, "matmul_sgemm_a1_b1_ch");
        assert_eq!(Matmul { half: Half::NONE, ..product }.runs(), variant);
    }
}

/// dZ = dY ⊙ act'(Y) and db = Σ dZ with Y stored as f16: the same as the f32 kernel on the rounded Y.
#[test]
fn activation_derivative_reads_its_output_as_f16() {
    let gpu = gpu();
    for act in [Activation::Relu, Activation::Sigmoid, Activation::Tanh, Activation::LeakyRelu(0.2)] {
        for (rows, cols) in [(1, 1), (7, 33), (130, 5), (3, 64)] {
            let y = round(&random_vec(rows * cols, 3).iter().map(|v| v * 0.9).collect::<Vec<_>>());
            let dy = random_vec(rows * cols, 4);
            let align = (gpu.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
            let mut arena = Words { words: Vec::new(), align };
            let (at_dy, len_dy) = arena.place(&dy, false);
            let (at_y, len_y) = arena.place(&y, true);
            let (at_db, len_db) = arena.place(&vec![0.0; cols], false);
            let buffer = StorageBuffer::from_slice(&gpu, "arena", &arena.words).unwrap();
            let view = |offset, len| View { buffer: buffer.buffer.clone(), offset, len };
            let (dyv, yv, dbv) = (view(at_dy, len_dy), view(at_y, len_y), view(at_db, len_db));
            let launch = activation_backward_bias(&dyv, &dbv, &dyv, &yv, rows, cols, act, true);
            Plan::new(&gpu, "test", &[launch]).unwrap().run(&gpu).unwrap();
            let all = buffer.read_u32(&gpu, 0..arena.words.len()).unwrap();
            let mut want_dz = dy.clone();
            cpu::activation::activation_backward(&mut want_dz, &dy, &y, act);
            let want_db: Vec<f32> = (0..cols)
                .map(|j| (0..rows).map(|r| want_dz[r * cols + j] as f64).sum::<f64>() as f32)
                .collect();
            let what = format!("{act:?} {rows}x{cols}");
            assert_close(&what, &values(&all, at_dy, rows * cols, false), &want_dz, 1e-6, 1e-5);
            assert_close(&what, &values(&all, at_db, cols, false), &want_db, 1e-5, 1e-4);
        }
    }
}

/// What a run checks before it trains with f16 activations: every SGEMM configuration computes the
/// f16 products of a training step right on this adapter (and a Reg product runs the 64x64 SGEMM).
#[test]
fn the_f16_products_of_every_configuration_verify() {
    let gpu = gpu();
    for variant in SGEMM {
        assert_eq!(aegpu::expert::tune::verify_f16_products(&gpu, variant).unwrap(), Ok(()), "{variant:?}");
    }
    assert_eq!(aegpu::expert::tune::verify_f16_products(&gpu, MatmulVariant::Reg).unwrap(), Ok(()));
}
