//! The cooperative-matrix matmul (`shaders/matmul_coop.wgsl`) with every tile type the adapter
//! runs, each transpose form, on awkward shapes, with the bias + activation and accumulate
//! epilogues, split-K and a K past the loop bound, against the CPU reference (on f16-rounded
//! operands for the f16 tiles), with a guard band after C; the tuner's own verification of each;
//! a fresh tuning that leaves the f16 tiles alone; and a device a host lends.
//!
//! Needs an adapter with cooperative matrices and one subgroup width: CI runs this binary on
//! Debian sid's lavapipe (Mesa 26, 8x8 f16 tiles, at its default 8 lanes) through
//! `scripts/lavapipe-coop.sh`, with `AEGPU_REQUIRE_COOP=1` so that an adapter without them fails
//! instead of skipping (elsewhere each test skips with a note).

mod common;

use aegpu::expert::cpu;
use aegpu::expert::runner::{Plan, View};
use aegpu::expert::tune::{MatmulCandidate, verify_matmul};
use aegpu::gpu::{Gpu, GpuOptions, StorageBuffer};
use aegpu::kernels::Activation;
use aegpu::kernels::matmul::{Half, Matmul, MatmulVariant, Transpose};
use aegpu::kernels::matmul_coop;
use common::*;

const GUARD: usize = 37;
const GUARD_VALUE: f32 = 4321.0;

/// The device with cooperative matrices requested, and the cooperative variants it runs; `None`
/// (skipped, with a note) where there are none, unless `AEGPU_REQUIRE_COOP` is set.
fn coop_gpu() -> Option<(Gpu, Vec<MatmulVariant>)> {
    let gpu = Gpu::new(&GpuOptions { cooperative_matrix: true, ..GpuOptions::default() }).expect("a GPU");
    let variants: Vec<MatmulVariant> =
        MatmulVariant::available(&gpu).into_iter().filter(|v| matmul_coop::tile(*v).is_some()).collect();
    if variants.is_empty() {
        let why = matmul_coop::why_none(&gpu);
        assert!(std::env::var_os("AEGPU_REQUIRE_COOP").is_none(), "AEGPU_REQUIRE_COOP: {why}");
        eprintln!("note: no cooperative-matrix kernel runs on {} ({why}); skipped", gpu.info.name);
        return None;
    }
    Some((gpu, variants))
}

fn rounded(v: &[f32], variant: MatmulVariant) -> Vec<f32> {
    match variant.rounds_operands() {
        true => v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect(),
        false => v.to_vec(),
    }
}

/// The rounding of a sum of k products of values in [-1, 1) in another order grows like sqrt(k):
/// measured on sid's lavapipe at most 1.9e-6 for k = 100 and 2.3e-4 for k = 69,973 (8.7e-7·sqrt(k));
/// 2e-5·sqrt(k) leaves a margin of 20 for another adapter's accumulators, and still fails a product
/// that drops or repeats one term (one term is ~0.25 on average).
fn atol(k: usize) -> f32 {
    2e-5 * (k as f32).sqrt()
}

/// Runs one product (through `Matmul::launches`) and compares it with the CPU reference.
#[allow(clippy::too_many_arguments)]
fn check(
    gpu: &Gpu,
    variant: MatmulVariant,
    [m, n, k]: [usize; 3],
    trans: Transpose,
    bias: bool,
    act: Activation,
    accumulate: bool,
    splits: usize,
) {
    let what = format!(
        "{} {m}x{n}x{k} {trans:?} bias {bias} {act:?} acc {accumulate} splits {splits}",
        variant.name()
    );
    let (a, b, bv) = (random_vec(m * k, 1), random_vec(k * n, 2), random_vec(n, 3));
    let c_len = m * n * splits;
    let mut c = random_vec(c_len, 4);
    c.extend(std::iter::repeat_n(GUARD_VALUE, GUARD));
    let buf = |label: &str, v: &[f32]| StorageBuffer::from_slice(gpu, label, v).expect("upload");
    let (ga, gb, gbias, gc) = (buf("a", &a), buf("b", &b), buf("bias", &bv), buf("c", &c));
    let product = Matmul {
        c: View { buffer: gc.buffer.clone(), offset: 0, len: c_len },
        a: View::whole(&ga),
        b: View::whole(&gb),
        bias: bias.then(|| View::whole(&gbias)),
        m,
        n,
        k,
        trans,
        act,
        accumulate,
        variant,
        splits,
        half: Half::NONE,
    };
    Plan::new(gpu, "coop", &product.launches()).expect("plan").run(gpu).expect("run");
    let got = gc.read_all_f32(gpu).expect("read");
    assert!(got[c_len..].iter().all(|&g| g == GUARD_VALUE), "{what}: wrote past C");
    let (ra, rb) = (rounded(&a, variant), rounded(&b, variant));
    let mut want = c[..c_len].to_vec();
    if splits == 1 {
        let bias = bias.then_some(&bv[..]);
        cpu::matmul::matmul(&mut want, &ra, &rb, bias, m, n, k, trans, act, accumulate);
        assert_close(&what, &got[..c_len], &want, atol(k), 1e-4);
        return;
    }
    // Split-K: slice z holds the product over its chunk of k; the slices add up to the whole.
    let mut sum = vec![0.0f32; m * n];
    for z in 0..splits {
        for (s, g) in sum.iter_mut().zip(&got[z * m * n..(z + 1) * m * n]) {
            *s += g;
        }
    }
    let mut whole = vec![0.0f32; m * n];
    cpu::matmul::matmul(&mut whole, &ra, &rb, None, m, n, k, trans, Activation::Identity, false);
    assert_close(&what, &sum, &whole, atol(k), 1e-4);
}

/// Odd sizes, 1s, one past a block or a tile, a whole block, K not a multiple of the tile.
const SHAPES: [[usize; 3]; 8] = [
    [1, 1, 1],
    [7, 6, 3],
    [17, 33, 9],
    [37, 61, 29],
    [32, 32, 32],
    [33, 17, 16],
    [64, 48, 100],
    [130, 131, 11],
];

#[test]
fn cooperative_products_match_the_cpu_reference() {
    let Some((gpu, variants)) = coop_gpu() else { return };
    for &variant in &variants {
        for trans in Transpose::ALL {
            for shape in SHAPES {
                check(&gpu, variant, shape, trans, false, Activation::Identity, false, 1);
                check(&gpu, variant, shape, trans, true, Activation::Tanh, false, 1);
                check(&gpu, variant, shape, trans, false, Activation::Identity, true, 1);
            }
            check(&gpu, variant, [19, 23, 70], trans, false, Activation::Identity, false, 3);
        }
    }
}

#[test]
fn a_k_past_the_loop_bound_runs_as_several_launches() {
    let Some((gpu, variants)) = coop_gpu() else { return };
    for &variant in &variants {
        // Three launches over k; the last adds its range, then the bias and activation.
        check(&gpu, variant, [3, 5, 69_973], Transpose::Nt, true, Activation::Sigmoid, false, 1);
        check(&gpu, variant, [3, 5, 69_973], Transpose::Tn, false, Activation::Identity, true, 1);
    }
}

#[test]
fn the_tuner_verification_accepts_each_cooperative_variant() {
    let Some((gpu, variants)) = coop_gpu() else { return };
    for variant in variants {
        let verdict = verify_matmul(&gpu, &MatmulCandidate::variant(variant)).expect("runs");
        assert_eq!(verdict, Ok(()), "{}", variant.name());
    }
}

/// The f16-operand tiles are a precision path: the tuner neither times nor picks them (their
/// products pass the verification, which holds them to the rounded operands' product).
#[test]
fn the_tuner_never_picks_a_variant_that_rounds_its_operands() {
    let Some((gpu, _)) = coop_gpu() else { return };
    let tuning = gpu.tuning().expect("a tuning");
    assert_ne!(tuning.source, "env", "unset AEGPU_MATMUL for this test");
    assert!(!tuning.classes.is_empty());
    for class in &tuning.classes {
        let timed: Vec<String> = class.measured.iter().map(|m| m.0.name()).collect();
        assert!(class.measured.iter().all(|m| !m.0.rounds_operands()), "{}: timed {timed:?}", class.class);
    }
    for class in aegpu::kernels::matmul_policy::ShapeClass::ALL {
        assert!(!tuning.policy.class(class).rounds_operands(), "{}", tuning.policy.name());
    }
}

/// A host that created its device with the feature lends it, with the adapter's tile list: the
/// engine runs the cooperative variants on it and they verify; without the list it runs none.
#[test]
fn a_host_device_with_cooperative_matrices_runs_them() {
    let Some((_, variants)) = coop_gpu() else { return };
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
        .expect("the adapter coop_gpu found");
    let features = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
        | wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP;
    let desc = wgpu::DeviceDescriptor {
        required_features: features,
        // SAFETY: the host acknowledges wgpu's experimental feature, as `Gpu::new` does.
        experimental_features: unsafe { wgpu::ExperimentalFeatures::enabled() },
        ..Default::default()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&desc)).unwrap();
    let mut gpu = Gpu::from_device(device, queue, adapter.get_info());
    let coop = |gpu: &Gpu| -> Vec<MatmulVariant> {
        MatmulVariant::available(gpu).into_iter().filter(|v| matmul_coop::tile(*v).is_some()).collect()
    };
    assert!(coop(&gpu).is_empty(), "no tile list, no cooperative kernel");
    gpu.cooperative_matrices = adapter.cooperative_matrix_properties();
    assert_eq!(coop(&gpu), variants);
    for variant in variants {
        let verdict = verify_matmul(&gpu, &MatmulCandidate::variant(variant)).expect("runs");
        assert_eq!(verdict, Ok(()), "{} on the host's device", variant.name());
    }
}
