//! The tiled SGEMM (shaders/matmul_sgemm.wgsl), every tile configuration against the CPU reference:
//! shapes around its tiles (M, N or K = 1, odd sizes, one past a block or a k-tile), each transpose
//! form, operands read a vec4 at a time and one word at a time (and mixed), bias + activation and
//! accumulate epilogues, with the operands as views at aligned offsets inside one buffer and a guard
//! band after C that must stay untouched. (kernels-tests/matmul.rs runs the shared awkward shapes and
//! split-K on every variant, the SGEMM's included.)

mod common;

use aegpu::expert::cpu;
use aegpu::expert::runner::{Plan, View};
use aegpu::gpu::StorageBuffer;
use aegpu::kernels::Activation;
use aegpu::kernels::matmul::{Half, Matmul, MatmulVariant, Transpose};
use aegpu::kernels::matmul_sgemm::{self, Load, SgemmConfig};
use common::*;

const SGEMM: [MatmulVariant; 3] =
    [MatmulVariant::Sgemm128x128, MatmulVariant::Sgemm64x64, MatmulVariant::Sgemm32x128];

/// Shapes (M, N, K) around the three configurations' blocks (128x128, 64x64, 32x128) and k-tiles
/// (8, 16): degenerate, odd, one or two past a block or a k-tile, multiples of 4 that are not tile
/// multiples; each of M, N and K takes every remainder mod 4 (a quad's last 1, 2 or 3 words past
/// the edge).
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 36, 8),
    (36, 1, 12),
    (4, 4, 1),
    (37, 61, 29),
    (38, 63, 31),
    (7, 6, 3),
    (129, 129, 9),
    (130, 131, 11),
    (65, 66, 17),
    (33, 129, 18),
    (35, 130, 15),
    (128, 128, 16),
    (36, 68, 20),
    (36, 61, 12),
    (37, 64, 12),
];

const GUARD: usize = 64;
const GUARD_VALUE: f32 = 4321.0;

/// Whether each operand of this product is read a vec4 at a time (its contiguous dimension a
/// multiple of 4: the views here start at aligned offsets).
fn vec4_loads(trans: Transpose, (m, n, k): (usize, usize, usize)) -> (bool, bool) {
    let (ta, tb) = trans.flags();
    let a = if ta { m } else { k };
    let b = if tb { k } else { n };
    (a.is_multiple_of(4), b.is_multiple_of(4))
}

#[allow(clippy::too_many_arguments)]
fn check(
    variant: MatmulVariant,
    trans: Transpose,
    (m, n, k): (usize, usize, usize),
    act: Activation,
    bias: bool,
    accumulate: bool,
    seed: u64,
) {
    let gpu = gpu();
    let a = random_vec(m * k, seed);
    let b = random_vec(k * n, seed + 1);
    let bias_v = random_vec(n, seed + 2);
    let c0 = random_vec(m * n, seed + 3);
    let mut want = c0.clone();
    cpu::matmul::matmul(&mut want, &a, &b, bias.then_some(&bias_v[..]), m, n, k, trans, act, accumulate);

    // One buffer, as an arena: [A | B | bias | C + guard], each at the next aligned offset after the
    // first (so no view starts at word 0).
    let align = (gpu.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
    let mut words = Vec::new();
    let mut place = |data: &[f32]| {
        let at = (words.len() + 1).next_multiple_of(align);
        words.resize(at, -7.0);
        words.extend_from_slice(data);
        at
    };
    let (at_a, at_b, at_bias) = (place(&a), place(&b), place(&bias_v));
    let mut c_guarded = c0.clone();
    c_guarded.extend(std::iter::repeat_n(GUARD_VALUE, GUARD));
    let at_c = place(&c_guarded);
    let arena = StorageBuffer::from_slice(&gpu, "arena", &words).unwrap();
    let view = |offset, len| View { buffer: arena.buffer.clone(), offset, len };
    let product = Matmul {
        c: view(at_c, m * n),
        a: view(at_a, m * k),
        b: view(at_b, k * n),
        bias: bias.then(|| view(at_bias, n)),
        m,
        n,
        k,
        trans,
        act,
        accumulate,
        variant,
        splits: 1,
        half: Half::NONE,
    };
    let launch = product.launch();
    // The loads the host chose are the ones this shape allows.
    let (va, vb) = vec4_loads(trans, (m, n, k));
    let config = matmul_sgemm::config(variant).unwrap();
    let load = |vec4: bool| if vec4 { Load::Vec4 } else { Load::Scalar };
    let key = matmul_sgemm::pipeline_key(config, trans, load(va), load(vb), false);
    assert_eq!(launch.key, key, "{variant:?} {trans:?}");
    Plan::new(&gpu, "test", &[launch]).unwrap().run(&gpu).unwrap();
    let all = arena.read_all_f32(&gpu).unwrap();
    let what =
        format!("{variant:?} {trans:?} {m}x{n}x{k} vec4 a={va} b={vb} {act:?} bias={bias} acc={accumulate}");
    let guard = &all[at_c + m * n..at_c + m * n + GUARD];
    assert!(guard.iter().all(|&g| g == GUARD_VALUE), "{what}: wrote past C");
    assert_eq!(&all[at_a..at_a + m * k], &a[..], "{what}: A was written");
    // f32 accumulation over K terms of size <= 1 against an f64 reference: error grows like sqrt(K)·ε.
    let atol = 1e-5 * (k as f32).sqrt() * 4.0;
    assert_close(&what, &all[at_c..at_c + m * n], &want, atol, 1e-4);
}

#[test]
fn every_configuration_and_transpose_matches_reference_around_its_tiles() {
    for variant in SGEMM {
        for trans in Transpose::ALL {
            for (i, &shape) in SHAPES.iter().enumerate() {
                check(variant, trans, shape, Activation::Identity, false, false, 10 + i as u64);
            }
        }
    }
}

/// The shapes above reach every load-width combination, and every remainder mod 4 in M, N and K.
#[test]
fn the_shapes_cover_every_load_width_and_remainder() {
    let mut seen = std::collections::BTreeSet::new();
    for trans in Transpose::ALL {
        for &shape in SHAPES {
            seen.insert(vec4_loads(trans, shape));
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    for dim in 0..3 {
        let rems: std::collections::BTreeSet<usize> =
            SHAPES.iter().map(|&(m, n, k)| [m, n, k][dim] % 4).collect();
        assert_eq!(rems.len(), 4, "dimension {dim}: remainders {rems:?}");
    }
}

#[test]
fn bias_activation_and_accumulate_epilogues_match_reference() {
    for variant in SGEMM {
        for trans in Transpose::ALL {
            for (i, shape) in [(37, 61, 29), (38, 63, 31), (36, 68, 20)].into_iter().enumerate() {
                let seed = 100 + i as u64;
                check(variant, trans, shape, Activation::Relu, true, false, seed);
                check(variant, trans, shape, Activation::LeakyRelu(0.1), true, false, seed + 10);
                check(variant, trans, shape, Activation::Sigmoid, false, false, seed + 20);
                check(variant, trans, shape, Activation::Tanh, true, true, seed + 30);
                check(variant, trans, shape, Activation::Identity, false, true, seed + 40);
            }
        }
    }
}

/// A large K through many k-tiles (the register prefetch of the next tile on every step).
#[test]
fn long_inner_dimension_matches_reference() {
    for variant in SGEMM {
        for trans in Transpose::ALL {
            check(variant, trans, (40, 72, 1000), Activation::Identity, false, false, 400);
            check(variant, trans, (10, 11, 519), Activation::Identity, false, false, 401);
        }
    }
}

/// Operand views that do not start at a multiple of 4 words are read one word at a time.
#[test]
fn unaligned_views_fall_back_to_scalar_loads() {
    let gpu = gpu();
    let buf = StorageBuffer::zeroed(&gpu, "x", 64).unwrap();
    let at = |offset| View { buffer: buf.buffer.clone(), offset, len: 16 };
    assert!(matmul_sgemm::vec4_ok(&at(0), 8));
    assert!(matmul_sgemm::vec4_ok(&at(4), 8));
    assert!(!matmul_sgemm::vec4_ok(&at(2), 8), "view at word 2");
    assert!(!matmul_sgemm::vec4_ok(&at(0), 6), "rows of 6 words");
    assert!(!matmul_sgemm::vec4_ok(&at(0), 0), "empty rows");
}

/// The workgroup tiles fit the shader's 2 x 512 vec4s of workgroup memory, and the blocks are what
/// the variants' names say.
#[test]
fn configurations_fit_workgroup_memory() {
    for (variant, block) in SGEMM.into_iter().zip([(128, 128), (64, 64), (128, 32)]) {
        let c: SgemmConfig = matmul_sgemm::config(variant).unwrap();
        let (cols, rows) = c.block();
        assert_eq!((cols, rows), block, "{variant:?}");
        assert!(c.bk as usize * rows <= 2048 && c.bk as usize * cols <= 2048, "{variant:?}");
        assert!(c.bk.is_multiple_of(4) && rows.is_multiple_of(4), "{variant:?}");
    }
}
