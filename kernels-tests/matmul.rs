//! Both matmul variants against the CPU reference, on awkward shapes, every transpose, several seeds.

mod common;

use aegpu::expert::cpu;
use aegpu::expert::runner::{Plan, View};
use aegpu::gpu::StorageBuffer;
use aegpu::kernels::Activation;
use aegpu::kernels::matmul::{Half, Matmul, MatmulVariant, Transpose};
use common::*;

/// Shapes that are not tile multiples, degenerate (1xN, K=1), and with a large K.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 37, 5),
    (37, 1, 5),
    (5, 7, 1),
    (13, 17, 19),
    (64, 64, 64),
    (65, 63, 67),
    (3, 130, 2049),
    (100, 33, 784),
];

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

    let ga = StorageBuffer::from_slice(&gpu, "a", &a).unwrap();
    let gb = StorageBuffer::from_slice(&gpu, "b", &b).unwrap();
    let gbias = StorageBuffer::from_slice(&gpu, "bias", &bias_v).unwrap();
    let gc = StorageBuffer::from_slice(&gpu, "c", &c0).unwrap();
    let launch = Matmul {
        c: View::whole(&gc),
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
        splits: 1,
        half: Half::NONE,
    }
    .launch();
    Plan::new(&gpu, "test", &[launch]).unwrap().run(&gpu).unwrap();
    let got = gc.read_all_f32(&gpu).unwrap();
    // f32 accumulation over K terms of size <= 1 against an f64 reference: error grows like sqrt(K)·ε.
    let atol = 1e-5 * (k as f32).sqrt() * 4.0;
    assert_close(
        &format!("{variant:?} {trans:?} {m}x{n}x{k} {act:?} bias={bias} acc={accumulate}"),
        &got,
        &want,
        atol,
        1e-4,
    );
}

#[test]
fn every_variant_and_transpose_matches_reference_on_awkward_shapes() {
    for variant in MatmulVariant::available(&gpu()) {
        for trans in Transpose::ALL {
            for (i, &shape) in SHAPES.iter().enumerate() {
                check(variant, trans, shape, Activation::Identity, false, false, 10 + i as u64);
            }
        }
    }
}

#[test]
fn fused_bias_and_activations_match_reference() {
    let acts = [
        Activation::Relu,
        Activation::LeakyRelu(0.1),
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Identity,
    ];
    for variant in MatmulVariant::available(&gpu()) {
        for (seed, act) in acts.into_iter().enumerate() {
            check(variant, Transpose::Nt, (33, 70, 29), act, true, false, 100 + seed as u64);
        }
    }
}

#[test]
fn accumulate_adds_to_existing_output() {
    for variant in MatmulVariant::available(&gpu()) {
        for seed in 0..3 {
            check(variant, Transpose::Tn, (17, 9, 40), Activation::Identity, false, true, 200 + seed);
        }
    }
}

/// Split-K: each of `splits` workgroup layers writes its partial product to its own [m, n] slice; the
/// slices sum to the whole product (including splits that get no k at all, which must write zeros).
#[test]
fn split_k_partial_products_sum_to_the_product() {
    let gpu = gpu();
    for variant in MatmulVariant::available(&gpu) {
        for (i, &(m, n, k, splits)) in
            [(5, 9, 100, 4), (16, 130, 1000, 7), (1, 3, 5, 8), (33, 17, 64, 64)].iter().enumerate()
        {
            for trans in Transpose::ALL {
                let seed = 300 + 10 * i as u64;
                let a = random_vec(m * k, seed);
                let b = random_vec(k * n, seed + 1);
                let mut want = vec![0.0f32; m * n];
                cpu::matmul::matmul(&mut want, &a, &b, None, m, n, k, trans, Activation::Identity, false);
                let ga = StorageBuffer::from_slice(&gpu, "a", &a).unwrap();
                let gb = StorageBuffer::from_slice(&gpu, "b", &b).unwrap();
                // Garbage in every slice: each must be overwritten.
                let gc = StorageBuffer::from_slice(&gpu, "c", &random_vec(splits * m * n, seed + 2)).unwrap();
                let launch = Matmul {
                    c: View::whole(&gc),
                    a: View::whole(&ga),
                    b: View::whole(&gb),
                    bias: None,
                    m,
                    n,
                    k,
                    trans,
                    act: Activation::Identity,
                    accumulate: false,
                    variant,
                    splits,
                    half: Half::NONE,
                }
                .launch();
                Plan::new(&gpu, "split-k", &[launch]).unwrap().run(&gpu).unwrap();
                let parts = gc.read_all_f32(&gpu).unwrap();
                let got: Vec<f32> =
                    (0..m * n).map(|e| (0..splits).map(|z| parts[z * m * n + e]).sum()).collect();
                let atol = 1e-5 * (k as f32).sqrt() * 4.0;
                assert_close(
                    &format!("{variant:?} {trans:?} {m}x{n}x{k} / {splits}"),
                    &got,
                    &want,
                    atol,
                    1e-4,
                );
            }
        }
    }
}
