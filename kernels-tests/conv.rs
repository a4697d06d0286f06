//! conv2d.wgsl and pool.wgsl against their CPU references (src/cpu/conv.rs, src/cpu/pool.rs): conv2d
//! and conv_transpose2d forward and all three gradients on awkward shapes (odd sizes, stride 1/2/3,
//! padding 0/1/2, kernels 1/3/4/5/19 and non-square, channels 1/2/3 and 4/5/8/9 (both CHANNEL_BLOCK
//! specialisations, full and clamped blocks), batch 1/2/3, output_padding 0/1/2), finite-difference
//! checks of every gradient, determinism of the reductions, the folded weight-gradient dispatch,
//! max-pool / up-sample forward and backward, entry points and specialisations, and shape validation.

mod common;

use aegpu::expert::cpu;
use aegpu::expert::runner::{Plan, View};
use aegpu::gpu::{Gpu, StorageBuffer};
use aegpu::kernels::conv::{self, Conv2dShape, ConvTranspose2dShape};
use aegpu::kernels::conv_gemm::{self, GemmScratch, ScratchLens};
use aegpu::kernels::matmul::MatmulVariant;
use aegpu::kernels::{Activation, Launch, grid_1d, pool};
use common::*;

/// Odd and non-square inputs, stride 1/2/3, padding 0/1/2, kernels 1/3/5 and non-square, channels
/// 1/2/3 (one channel per invocation) and 4/5/8/9 (blocks of 4, full and clamped), batch 1/2/3, and
/// kernels as large as the input.
const CONV_SHAPES: &[Conv2dShape] = &[
    conv_shape(1, 1, (7, 5), 1, (3, 3), 1, 1),
    conv_shape(3, 3, (9, 9), 5, (3, 3), 2, 1),
    conv_shape(1, 5, (7, 5), 3, (1, 1), 1, 0),
    conv_shape(3, 1, (9, 9), 3, (5, 5), 2, 0),
    conv_shape(1, 3, (5, 7), 5, (5, 5), 1, 1),
    conv_shape(3, 5, (8, 6), 1, (3, 3), 2, 0),
    conv_shape(1, 3, (9, 7), 4, (5, 5), 2, 2),
    conv_shape(3, 2, (6, 7), 3, (3, 5), 1, 1),
    conv_shape(1, 2, (10, 11), 2, (3, 3), 3, 1),
    conv_shape(3, 3, (5, 5), 5, (5, 5), 1, 0),
    conv_shape(1, 1, (1, 1), 1, (1, 1), 1, 0),
    conv_shape(1, 1, (1, 9), 3, (1, 3), 2, 0),
    conv_shape(2, 9, (5, 6), 8, (3, 3), 2, 1),
];

/// The same variety for the transpose, with output_padding 0, 1 and 2 (it must stay below the stride).
const TRANSPOSE_SHAPES: &[ConvTranspose2dShape] = &[
    transpose_shape(1, 1, (4, 3), 1, (3, 3), 2, 1, 1),
    transpose_shape(3, 3, (5, 5), 5, (3, 3), 2, 1, 0),
    transpose_shape(1, 5, (7, 5), 3, (1, 1), 1, 0, 0),
    transpose_shape(3, 1, (3, 4), 3, (5, 5), 2, 0, 1),
    transpose_shape(1, 3, (4, 5), 5, (5, 5), 1, 1, 0),
    transpose_shape(3, 4, (3, 3), 3, (3, 3), 3, 1, 2),
    transpose_shape(2, 3, (4, 4), 2, (4, 4), 2, 1, 0),
    transpose_shape(1, 2, (7, 5), 3, (3, 5), 1, 1, 0),
    transpose_shape(3, 5, (5, 3), 1, (3, 3), 2, 0, 1),
    transpose_shape(1, 1, (1, 1), 1, (1, 1), 1, 0, 0),
    transpose_shape(1, 3, (1, 4), 2, (1, 3), 2, 0, 1),
    transpose_shape(2, 8, (3, 4), 9, (3, 3), 2, 1, 1),
];

const ACTS: [Activation; 5] = [
    Activation::Identity,
    Activation::Relu,
    Activation::LeakyRelu(0.1),
    Activation::Sigmoid,
    Activation::Tanh,
];

/// A buffer holding `data` and its whole view (outputs start as `data` too: random garbage, so a
/// kernel that skips an element is caught).
fn upload(gpu: &Gpu, label: &str, data: &[f32]) -> (StorageBuffer, View) {
    let b = StorageBuffer::from_slice(gpu, label, data).unwrap();
    let v = View::whole(&b);
    (b, v)
}

fn run(gpu: &Gpu, launches: &[Launch]) {
    Plan::new(gpu, "conv test", launches).unwrap().run(gpu).unwrap();
}

/// Absolute tolerance for an f32 sum of `terms` products of values in [-1, 1), checked against an f64
/// reference. The partial sums grow like sqrt(terms) and so does the accumulated rounding, so the error
/// grows like terms·ε: allow 2·terms·ε (ε = 2^-23), plus RTOL. On lavapipe the observed errors stay
/// below 15% of this; the slack is for adapters that contract to FMA or reorder differently.
fn atol(terms: usize) -> f32 {
    2.0 * terms.max(1) as f32 * f32::EPSILON
}

const RTOL: f32 = 1e-5;

/// The algorithms under test: the direct kernels (`None`) and the GEMM formulation on every matmul
/// variant this device runs.
fn algorithms(gpu: &Gpu) -> Vec<Option<MatmulVariant>> {
    std::iter::once(None).chain(MatmulVariant::available(gpu).into_iter().map(Some)).collect()
}

/// Scratch for the GEMM formulation of `s`, filled with garbage (every use must overwrite it).
fn scratch(gpu: &Gpu, s: &Conv2dShape) -> (Vec<StorageBuffer>, GemmScratch) {
    let l = ScratchLens::of(s);
    let (bc, col) = upload(gpu, "col", &random_vec(l.col, 91));
    let (bn, cn) = upload(gpu, "cn", &random_vec(l.cn, 92));
    let (bp, parts) = upload(gpu, "parts", &random_vec(l.parts, 93));
    (vec![bc, bn, bp], GemmScratch { col, cn, parts })
}

/// GPU results of one conv2d shape: forward, and the three gradients given `dout`.
struct ConvResults {
    out: Vec<f32>,
    dinp: Vec<f32>,
    dweight: Vec<f32>,
    dbias: Vec<f32>,
}

#[allow(clippy::too_many_arguments)]
fn gpu_conv2d(
    gpu: &Gpu,
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    dout: &[f32],
    act: Activation,
    seed: u64,
    algo: Option<MatmulVariant>,
) -> ConvResults {
    let (_bx, vx) = upload(gpu, "x", x);
    let (_bw, vw) = upload(gpu, "w", w);
    let (_bb, vb) = upload(gpu, "b", b.unwrap_or(&[0.0]));
    let (_bdo, vdo) = upload(gpu, "dout", dout);
    let (bout, vout) = upload(gpu, "out", &random_vec(s.output_len(), seed + 100));
    let (bdx, vdx) = upload(gpu, "dx", &random_vec(s.input_len(), seed + 101));
    let (bdw, vdw) = upload(gpu, "dw", &random_vec(s.weight_len(), seed + 102));
    let (bdb, vdb) = upload(gpu, "db", &random_vec(s.bias_len(), seed + 103));
    let (_scratch, gs) = scratch(gpu, s);
    let mut launches = match algo {
        None => vec![
            conv::conv2d_forward(&vout, &vx, &vw, b.map(|_| &vb), s, act),
            conv::conv2d_backward_input(&vdx, &vdo, &vw, s),
            one(conv::conv2d_backward_weight(&vdw, &vdo, &vx, s)),
        ],
        Some(v) => {
            let mut l = conv_gemm::conv2d_forward(&vout, &vx, &vw, b.map(|_| &vb), s, act, &gs, v.into());
            l.extend(conv_gemm::conv2d_backward(&vdw, Some(&vdx), &vdo, &vx, &vw, s, &gs, v.into()));
            l
        }
    };
    launches.extend(conv::conv2d_backward_bias(&vdb, &vdo, s));
    run(gpu, &launches);
    ConvResults {
        out: bout.read_all_f32(gpu).unwrap(),
        dinp: bdx.read_all_f32(gpu).unwrap(),
        dweight: bdw.read_all_f32(gpu).unwrap(),
        dbias: bdb.read_all_f32(gpu).unwrap(),
    }
}

#[allow(clippy::too_many_arguments)]
fn gpu_conv_transpose2d(
    gpu: &Gpu,
    s: &ConvTranspose2dShape,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    dout: &[f32],
    act: Activation,
    seed: u64,
    algo: Option<MatmulVariant>,
) -> ConvResults {
    let (_bx, vx) = upload(gpu, "x", x);
    let (_bw, vw) = upload(gpu, "w", w);
    let (_bb, vb) = upload(gpu, "b", b.unwrap_or(&[0.0]));
    let (_bdo, vdo) = upload(gpu, "dout", dout);
    let (bout, vout) = upload(gpu, "out", &random_vec(s.output_len(), seed + 100));
    let (bdx, vdx) = upload(gpu, "dx", &random_vec(s.input_len(), seed + 101));
    let (bdw, vdw) = upload(gpu, "dw", &random_vec(s.weight_len(), seed + 102));
    let (bdb, vdb) = upload(gpu, "db", &random_vec(s.bias_len(), seed + 103));
    let (_scratch, gs) = scratch(gpu, &s.adjoint());
    let mut launches = match algo {
        None => vec![
            conv::conv_transpose2d_forward(&vout, &vx, &vw, b.map(|_| &vb), s, act),
            conv::conv_transpose2d_backward_input(&vdx, &vdo, &vw, s),
            one(conv::conv_transpose2d_backward_weight(&vdw, &vdo, &vx, s)),
        ],
        Some(v) => {
            let mut l =
                conv_gemm::conv_transpose2d_forward(&vout, &vx, &vw, b.map(|_| &vb), s, act, &gs, v.into());
            l.extend(conv_gemm::conv_transpose2d_backward(
                &vdw,
                Some(&vdx),
                &vdo,
                &vx,
                &vw,
                s,
                &gs,
                v.into(),
            ));
            l
        }
    };
    launches.extend(conv::conv_transpose2d_backward_bias(&vdb, &vdo, s));
    run(gpu, &launches);
    ConvResults {
        out: bout.read_all_f32(gpu).unwrap(),
        dinp: bdx.read_all_f32(gpu).unwrap(),
        dweight: bdw.read_all_f32(gpu).unwrap(),
        dbias: bdb.read_all_f32(gpu).unwrap(),
    }
}

#[test]
fn conv2d_forward_and_gradients_match_reference_on_awkward_shapes() {
    let gpu = gpu();
    for (i, s) in CONV_SHAPES.iter().enumerate() {
        s.validate().unwrap();
        for (seed, algo) in (0..3u64).flat_map(|seed| algorithms(&gpu).into_iter().map(move |a| (seed, a))) {
            let seed = 1000 * i as u64 + 10 * seed;
            let act = ACTS[(i + seed as usize) % ACTS.len()];
            let has_bias = (i + seed as usize) % 4 != 3;
            let x = random_vec(s.input_len(), seed);
            let w = random_vec(s.weight_len(), seed + 1);
            let b = random_vec(s.bias_len(), seed + 2);
            let dout = random_vec(s.output_len(), seed + 3);
            let bias = has_bias.then_some(&b[..]);
            let got = gpu_conv2d(&gpu, s, &x, &w, bias, &dout, act, seed, algo);

            let mut out = vec![0.0f32; s.output_len()];
            cpu::conv::conv2d_forward(&mut out, &x, &w, bias, s, act);
            let mut dinp = vec![0.0f32; s.input_len()];
            cpu::conv::conv2d_backward_input(&mut dinp, &dout, &w, s);
            let mut dweight = vec![0.0f32; s.weight_len()];
            cpu::conv::conv2d_backward_weight(&mut dweight, &dout, &x, s);
            let mut dbias = vec![0.0f32; s.bias_len()];
            cpu::conv::conv2d_backward_bias(&mut dbias, &dout, s);

            let what = format!("{s:?} {act:?} bias={has_bias} seed {seed} algorithm {algo:?}");
            let reduction = s.n * s.out_h() * s.out_w();
            assert_close(&format!("conv2d_forward {what}"), &got.out, &out, atol(s.c_in * s.kh * s.kw), RTOL);
            assert_close(
                &format!("conv2d_backward_input {what}"),
                &got.dinp,
                &dinp,
                atol(s.c_out * s.kh * s.kw),
                RTOL,
            );
            assert_close(
                &format!("conv2d_backward_weight {what}"),
                &got.dweight,
                &dweight,
                atol(reduction),
                RTOL,
            );
            assert_close(&format!("conv2d_backward_bias {what}"), &got.dbias, &dbias, atol(reduction), RTOL);
        }
    }
}

#[test]
fn conv_transpose2d_forward_and_gradients_match_reference_on_awkward_shapes() {
    let gpu = gpu();
    for (i, s) in TRANSPOSE_SHAPES.iter().enumerate() {
        s.validate().unwrap();
        for (seed, algo) in (0..3u64).flat_map(|seed| algorithms(&gpu).into_iter().map(move |a| (seed, a))) {
            let seed = 5000 + 1000 * i as u64 + 10 * seed;
            let act = ACTS[(i + seed as usize) % ACTS.len()];
            let has_bias = (i + seed as usize) % 4 != 3;
            let x = random_vec(s.input_len(), seed);
            let w = random_vec(s.weight_len(), seed + 1);
            let b = random_vec(s.bias_len(), seed + 2);
            let dout = random_vec(s.output_len(), seed + 3);
            let bias = has_bias.then_some(&b[..]);
            let got = gpu_conv_transpose2d(&gpu, s, &x, &w, bias, &dout, act, seed, algo);

            let mut out = vec![0.0f32; s.output_len()];
            cpu::conv::conv_transpose2d_forward(&mut out, &x, &w, bias, s, act);
            let mut dinp = vec![0.0f32; s.input_len()];
            cpu::conv::conv_transpose2d_backward_input(&mut dinp, &dout, &w, s);
            let mut dweight = vec![0.0f32; s.weight_len()];
            cpu::conv::conv_transpose2d_backward_weight(&mut dweight, &dout, &x, s);
            let mut dbias = vec![0.0f32; s.bias_len()];
            cpu::conv::conv_transpose2d_backward_bias(&mut dbias, &dout, s);

            let what = format!("{s:?} {act:?} bias={has_bias} seed {seed} algorithm {algo:?}");
            assert_close(
                &format!("conv_transpose2d_forward {what}"),
                &got.out,
                &out,
                atol(s.c_in * s.kh * s.kw),
                RTOL,
            );
            assert_close(
                &format!("conv_transpose2d_backward_input {what}"),
                &got.dinp,
                &dinp,
                atol(s.c_out * s.kh * s.kw),
                RTOL,
            );
            assert_close(
                &format!("conv_transpose2d_backward_weight {what}"),
                &got.dweight,
                &dweight,
                atol(s.input_len() / s.c_in),
                RTOL,
            );
            assert_close(
                &format!("conv_transpose2d_backward_bias {what}"),
                &got.dbias,
                &dbias,
                atol(s.output_len() / s.c_out),
                RTOL,
            );
        }
    }
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Central differences of `loss` with respect to every element of `params[which]`.
fn finite_differences(
    params: &mut [Vec<f64>; 3],
    which: usize,
    loss: &dyn Fn(&[Vec<f64>; 3]) -> f64,
) -> Vec<f64> {
    // L is linear in each parameter tensor (bilinear in x and w), so central differences are exact up
    // to rounding; a large step keeps the rounding error small (~1e-16 / 1e-2).
    let h = 1e-2;
    (0..params[which].len())
        .map(|i| {
            let v = params[which][i];
            params[which][i] = v + h;
            let up = loss(params);
            params[which][i] = v - h;
            let down = loss(params);
            params[which][i] = v;
            (up - down) / (2.0 * h)
        })
        .collect()
}

fn assert_close_f64(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}: [{i}] {g} vs finite difference {w}");
    }
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Tiny shapes for the gradient checks (every parameter is perturbed twice); the first of each list
/// has >= 4 channels on both sides, so the 4-channel blocks (one clamped) are checked too.
const FD_CONV: &[Conv2dShape] = &[
    conv_shape(2, 4, (5, 4), 5, (3, 3), 2, 1),
    conv_shape(1, 3, (4, 5), 2, (3, 1), 1, 0),
    conv_shape(3, 1, (6, 5), 2, (5, 3), 2, 2),
];

const FD_TRANSPOSE: &[ConvTranspose2dShape] = &[
    transpose_shape(2, 5, (3, 2), 4, (3, 3), 2, 1, 1),
    transpose_shape(1, 3, (4, 3), 2, (3, 1), 1, 0, 0),
    transpose_shape(3, 1, (3, 3), 2, (5, 3), 3, 2, 2),
];

/// With L = Σ y·r for a random r (so dL/dy = r, no activation), the CPU gradients (f64) equal central
/// differences of the CPU forward (f64), and the GPU gradients (f32) equal both.
#[test]
fn conv2d_gradients_match_finite_differences() {
    let gpu = gpu();
    for (i, s) in FD_CONV.iter().enumerate() {
        let seed = 300 + 10 * i as u64;
        let x = random_vec(s.input_len(), seed);
        let w = random_vec(s.weight_len(), seed + 1);
        let b = random_vec(s.bias_len(), seed + 2);
        let r = random_vec(s.output_len(), seed + 3);
        let r64 = to_f64(&r);
        let loss = |p: &[Vec<f64>; 3]| {
            let mut y = vec![0.0f64; s.output_len()];
            cpu::conv::conv2d_forward(&mut y, &p[0], &p[1], Some(&p[2]), s, Activation::Identity);
            dot(&y, &r64)
        };
        let mut params = [to_f64(&x), to_f64(&w), to_f64(&b)];
        let fd: Vec<Vec<f64>> = (0..3).map(|k| finite_differences(&mut params, k, &loss)).collect();

        let mut dx = vec![0.0f64; s.input_len()];
        cpu::conv::conv2d_backward_input(&mut dx, &r64, &params[1], s);
        let mut dw = vec![0.0f64; s.weight_len()];
        cpu::conv::conv2d_backward_weight(&mut dw, &r64, &params[0], s);
        let mut db = vec![0.0f64; s.bias_len()];
        cpu::conv::conv2d_backward_bias(&mut db, &r64, s);
        let what = format!("conv2d {s:?}");
        assert_close_f64(&format!("{what} cpu dx"), &dx, &fd[0], 1e-9);
        assert_close_f64(&format!("{what} cpu dw"), &dw, &fd[1], 1e-9);
        assert_close_f64(&format!("{what} cpu db"), &db, &fd[2], 1e-9);

        let got = gpu_conv2d(&gpu, s, &x, &w, Some(&b), &r, Activation::Identity, seed, None);
        let reduction = s.n * s.out_h() * s.out_w();
        let dx_tol = atol(s.c_out * s.kh * s.kw);
        assert_close(&format!("{what} gpu dx vs cpu"), &got.dinp, &f32s(&dx), dx_tol, RTOL);
        assert_close(&format!("{what} gpu dx vs fd"), &got.dinp, &f32s(&fd[0]), dx_tol, RTOL);
        let dw_tol = atol(reduction);
        assert_close(&format!("{what} gpu dw vs cpu"), &got.dweight, &f32s(&dw), dw_tol, RTOL);
        assert_close(&format!("{what} gpu dw vs fd"), &got.dweight, &f32s(&fd[1]), dw_tol, RTOL);
        assert_close(&format!("{what} gpu db vs cpu"), &got.dbias, &f32s(&db), dw_tol, RTOL);
        assert_close(&format!("{what} gpu db vs fd"), &got.dbias, &f32s(&fd[2]), dw_tol, RTOL);
    }
}

#[test]
fn conv_transpose2d_gradients_match_finite_differences() {
    let gpu = gpu();
    for (i, s) in FD_TRANSPOSE.iter().enumerate() {
        let seed = 400 + 10 * i as u64;
        let x = random_vec(s.input_len(), seed);
        let w = random_vec(s.weight_len(), seed + 1);
        let b = random_vec(s.bias_len(), seed + 2);
        let r = random_vec(s.output_len(), seed + 3);
        let r64 = to_f64(&r);
        let loss = |p: &[Vec<f64>; 3]| {
            let mut y = vec![0.0f64; s.output_len()];
            cpu::conv::conv_transpose2d_forward(&mut y, &p[0], &p[1], Some(&p[2]), s, Activation::Identity);
            dot(&y, &r64)
        };
        let mut params = [to_f64(&x), to_f64(&w), to_f64(&b)];
        let fd: Vec<Vec<f64>> = (0..3).map(|k| finite_differences(&mut params, k, &loss)).collect();

        let mut dx = vec![0.0f64; s.input_len()];
        cpu::conv::conv_transpose2d_backward_input(&mut dx, &r64, &params[1], s);
        let mut dw = vec![0.0f64; s.weight_len()];
        cpu::conv::conv_transpose2d_backward_weight(&mut dw, &r64, &params[0], s);
        let mut db = vec![0.0f64; s.bias_len()];
        cpu::conv::conv_transpose2d_backward_bias(&mut db, &r64, s);
        let what = format!("conv_transpose2d {s:?}");
        assert_close_f64(&format!("{what} cpu dx"), &dx, &fd[0], 1e-9);
        assert_close_f64(&format!("{what} cpu dw"), &dw, &fd[1], 1e-9);
        assert_close_f64(&format!("{what} cpu db"), &db, &fd[2], 1e-9);

        let got = gpu_conv_transpose2d(&gpu, s, &x, &w, Some(&b), &r, Activation::Identity, seed, None);
        let dx_tol = atol(s.c_out * s.kh * s.kw);
        assert_close(&format!("{what} gpu dx vs cpu"), &got.dinp, &f32s(&dx), dx_tol, RTOL);
        assert_close(&format!("{what} gpu dx vs fd"), &got.dinp, &f32s(&fd[0]), dx_tol, RTOL);
        let dw_tol = atol(s.n * s.h * s.w);
        assert_close(&format!("{what} gpu dw vs cpu"), &got.dweight, &f32s(&dw), dw_tol, RTOL);
        assert_close(&format!("{what} gpu dw vs fd"), &got.dweight, &f32s(&fd[1]), dw_tol, RTOL);
        let db_tol = atol(s.n * s.out_h() * s.out_w());
        assert_close(&format!("{what} gpu db vs cpu"), &got.dbias, &f32s(&db), db_tol, RTOL);
        assert_close(&format!("{what} gpu db vs fd"), &got.dbias, &f32s(&fd[2]), db_tol, RTOL);
    }
}

/// The identity the GPU launchers rely on, checked on the CPU references alone: with shared weights,
/// ⟨conv2d(x), y⟩ = ⟨x, conv_transpose2d(y)⟩ for the adjoint shape, whose output size is the transpose's
/// input size.
#[test]
fn conv_transpose2d_is_the_adjoint_of_conv2d() {
    for (i, t) in TRANSPOSE_SHAPES.iter().chain(FD_TRANSPOSE).enumerate() {
        let c = t.adjoint();
        c.validate().unwrap();
        assert_eq!((c.out_h(), c.out_w()), (t.h, t.w), "{t:?}");
        assert_eq!((c.input_len(), c.output_len()), (t.output_len(), t.input_len()));
        let seed = 600 + i as u64;
        let x = to_f64(&random_vec(c.input_len(), seed));
        let y = to_f64(&random_vec(c.output_len(), seed + 1));
        let w = to_f64(&random_vec(c.weight_len(), seed + 2));
        let mut cx = vec![0.0f64; c.output_len()];
        cpu::conv::conv2d_forward(&mut cx, &x, &w, None, &c, Activation::Identity);
        let mut ty = vec![0.0f64; t.output_len()];
        cpu::conv::conv_transpose2d_forward(&mut ty, &y, &w, None, t, Activation::Identity);
        let (a, b) = (dot(&cx, &y), dot(&x, &ty));
        assert!((a - b).abs() <= 1e-9 * (1.0 + a.abs()), "{t:?}: {a} vs {b}");
    }
}

/// The weight and bias gradients are fixed-order sums: two runs of one plan, and a second plan, give
/// the same bits (and so do the forwards).
#[test]
fn reductions_are_bit_identical_run_to_run() {
    let gpu = gpu();
    // 4·16·16 = 1024 terms per weight: 16 per lane, then the 64-lane tree.
    let s = conv_shape(4, 2, (16, 16), 3, (3, 3), 1, 1);
    let t = transpose_shape(4, 2, (8, 8), 3, (3, 3), 2, 1, 1);
    let (_a, vx) = upload(&gpu, "x", &random_vec(s.input_len(), 1));
    let (_b, vw) = upload(&gpu, "w", &random_vec(s.weight_len(), 2));
    let (_c, vbias) = upload(&gpu, "b", &random_vec(s.bias_len(), 3));
    let (_d, vdo) = upload(&gpu, "dout", &random_vec(s.output_len(), 4));
    let (_e, vtx) = upload(&gpu, "tx", &random_vec(t.input_len(), 5));
    let (_f, vtw) = upload(&gpu, "tw", &random_vec(t.weight_len(), 6));
    let (_g, vtdo) = upload(&gpu, "tdout", &random_vec(t.output_len(), 7));
    let outs: Vec<(StorageBuffer, View)> =
        [s.output_len(), s.weight_len(), s.bias_len(), t.weight_len(), t.bias_len(), t.output_len()]
            .iter()
            .map(|&n| upload(&gpu, "out", &vec![0.0; n]))
            .collect();
    let launches = [
        conv::conv2d_forward(&outs[0].1, &vx, &vw, Some(&vbias), &s, Activation::Tanh),
        one(conv::conv2d_backward_weight(&outs[1].1, &vdo, &vx, &s)),
        one(conv::conv2d_backward_bias(&outs[2].1, &vdo, &s)),
        one(conv::conv_transpose2d_backward_weight(&outs[3].1, &vtdo, &vtx, &t)),
        one(conv::conv_transpose2d_backward_bias(&outs[4].1, &vtdo, &t)),
        conv::conv_transpose2d_forward(&outs[5].1, &vtx, &vtw, None, &t, Activation::Sigmoid),
    ];
    let read = || -> Vec<Vec<u32>> {
        outs.iter()
            .map(|(b, _)| b.read_all_f32(&gpu).unwrap().iter().map(|v| v.to_bits()).collect())
            .collect()
    };
    let plan = Plan::new(&gpu, "determinism", &launches).unwrap();
    plan.run(&gpu).unwrap();
    let first = read();
    plan.run(&gpu).unwrap();
    assert_eq!(read(), first, "second run of the same plan");
    for (b, _) in &outs {
        b.write(&gpu, 0, &vec![7.0f32; b.len]);
    }
    Plan::new(&gpu, "determinism 2", &launches).unwrap().run(&gpu).unwrap();
    assert_eq!(read(), first, "a fresh plan");
}

/// A weight gradient needing more than 65535 workgroups (2 blocks of 4 output channels, the second
/// clamped, x 100 x 19 x 19): the one-workgroup-per-block dispatch folds into y.
#[test]
fn weight_gradient_dispatch_folds_past_65535_workgroups() {
    let gpu = gpu();
    let s = conv_shape(1, 100, (19, 19), 5, (19, 19), 1, 0);
    let groups = s.c_out.div_ceil(conv::channel_block(s.c_out)) * s.c_in * s.kh * s.kw;
    assert!(groups > 65535);
    assert!(grid_1d(groups, 1)[1] > 1);
    let x = random_vec(s.input_len(), 11);
    let w = random_vec(s.weight_len(), 12);
    let b = random_vec(s.bias_len(), 13);
    let dout = random_vec(s.output_len(), 14);
    let got = gpu_conv2d(&gpu, &s, &x, &w, Some(&b), &dout, Activation::Identity, 15, None);
    let mut out = vec![0.0f32; s.output_len()];
    cpu::conv::conv2d_forward(&mut out, &x, &w, Some(&b), &s, Activation::Identity);
    let mut dweight = vec![0.0f32; s.weight_len()];
    cpu::conv::conv2d_backward_weight(&mut dweight, &dout, &x, &s);
    let mut dinp = vec![0.0f32; s.input_len()];
    cpu::conv::conv2d_backward_input(&mut dinp, &dout, &w, &s);
    let terms = s.c_in * s.kh * s.kw;
    assert_close("folded forward", &got.out, &out, atol(terms), RTOL);
    assert_close("folded dweight", &got.dweight, &dweight, atol(1), RTOL);
    assert_close("folded dinp", &got.dinp, &dinp, atol(s.c_out), RTOL);
}

#[test]
fn shape_validation_rejects_impossible_shapes() {
    // PyTorch's sizes: Conv2d(k3, s2, p1) on 28x28 gives 14x14; ConvTranspose2d(k3, s2, p1, op1) on 7x7
    // gives 14x14; the Keras-style 'same' conv keeps 7x5.
    let c = conv_shape(2, 1, (28, 28), 16, (3, 3), 2, 1);
    c.validate().unwrap();
    assert_eq!((c.out_h(), c.out_w()), (14, 14));
    let t = transpose_shape(2, 32, (7, 7), 16, (3, 3), 2, 1, 1);
    t.validate().unwrap();
    assert_eq!((t.out_h(), t.out_w()), (14, 14));
    let same = conv_shape(1, 1, (7, 5), 1, (3, 3), 1, 1);
    assert_eq!((same.out_h(), same.out_w()), (7, 5));

    let bad_convs = [
        (conv_shape(0, 1, (5, 5), 1, (3, 3), 1, 0), "n must be at least 1"),
        (conv_shape(1, 0, (5, 5), 1, (3, 3), 1, 0), "c_in must be"),
        (conv_shape(1, 1, (0, 5), 1, (1, 1), 1, 0), "h must be"),
        (conv_shape(1, 1, (5, 5), 0, (3, 3), 1, 0), "c_out must be"),
        (conv_shape(1, 1, (5, 5), 1, (0, 3), 1, 0), "kh must be"),
        (conv_shape(1, 1, (5, 5), 1, (3, 3), 0, 0), "stride must be"),
        (conv_shape(1, 1, (5, 5), 1, (3, 3), 1, 3), "padding must be smaller"),
        (conv_shape(1, 1, (5, 5), 1, (3, 1), 1, 1), "padding must be smaller"),
        (conv_shape(1, 1, (2, 5), 1, (5, 3), 1, 1), "output would be empty"),
        (conv_shape(1, 1, (5, 1), 1, (3, 5), 1, 1), "output would be empty"),
        (conv_shape(1 << 16, 1 << 8, (1 << 8, 1), 1, (1, 1), 1, 0), "32-bit"),
    ];
    for (s, want) in bad_convs {
        let err = s.validate().expect_err(&format!("{s:?} accepted")).to_string();
        assert!(err.contains(want), "{s:?}: '{err}' does not mention '{want}'");
    }
    let bad_transposes = [
        (transpose_shape(1, 1, (4, 4), 1, (3, 3), 2, 1, 2), "output_padding"),
        (transpose_shape(1, 1, (4, 4), 1, (3, 3), 1, 0, 1), "output_padding"),
        (transpose_shape(1, 1, (4, 4), 1, (3, 3), 2, 3, 0), "padding must be smaller"),
        (transpose_shape(1, 1, (1, 1), 1, (2, 2), 1, 1, 0), "output would be empty"),
        (transpose_shape(1, 0, (4, 4), 1, (3, 3), 1, 0, 0), "c_in must be"),
        (transpose_shape(1, 1, (4, 4), 1, (3, 3), 0, 0, 0), "stride must be"),
    ];
    for (s, want) in bad_transposes {
        let err = s.validate().expect_err(&format!("{s:?} accepted")).to_string();
        assert!(err.contains(want), "{s:?}: '{err}' does not mention '{want}'");
    }

    assert!(pool::maxpool2x2_validate(1, 1, 2, 2, false).is_ok());
    assert!(pool::maxpool2x2_validate(1, 1, 1, 4, false).is_err());
    assert!(pool::maxpool2x2_validate(1, 1, 1, 4, true).is_ok());
    assert!(pool::maxpool2x2_validate(1, 0, 4, 4, true).is_err());
    assert_eq!(pool::maxpool2x2_out(7, 5, false), (3, 2));
    assert_eq!(pool::maxpool2x2_out(7, 5, true), (4, 3));
    assert!(pool::upsample2x_validate(1, 1, 1, 1).is_ok());
    assert!(pool::upsample2x_validate(0, 1, 1, 1).is_err());
}

/// (n, c, h, w) for the pooling tests: odd and even, 1-pixel-wide outputs, channels not multiples of 4.
const POOL_SHAPES: &[(usize, usize, usize, usize)] =
    &[(1, 1, 2, 2), (3, 5, 7, 5), (2, 3, 9, 9), (1, 3, 4, 6), (2, 1, 3, 2), (3, 2, 8, 3)];

#[test]
fn maxpool2x2_forward_and_backward_match_reference() {
    let gpu = gpu();
    for (i, &(n, c, h, w)) in POOL_SHAPES.iter().enumerate() {
        for seed in 0..4u64 {
            // Odd seeds round up (ceil mode, cut-short edge windows), even ones floor.
            let ceil = seed % 2 == 1;
            let seed = 700 + 10 * i as u64 + seed;
            let (oh, ow) = pool::maxpool2x2_out(h, w, ceil);
            let mut x = random_vec(n * c * h * w, seed);
            if seed % 3 == 2 {
                // Coarse values: many ties, which must go to the first element in window order.
                for v in &mut x {
                    *v = (*v * 2.0).round();
                }
            }
            let dout = random_vec(n * c * oh * ow, seed + 1);
            let (_a, vx) = upload(&gpu, "x", &x);
            let (_b, vdo) = upload(&gpu, "dout", &dout);
            let (by, vy) = upload(&gpu, "y", &random_vec(n * c * oh * ow, seed + 2));
            let barg = StorageBuffer::from_slice(&gpu, "argmax", &vec![u32::MAX; n * c * oh * ow]).unwrap();
            let varg = View::whole(&barg);
            let (bdx, vdx) = upload(&gpu, "dx", &random_vec(n * c * h * w, seed + 3));
            run(
                &gpu,
                &[
                    pool::maxpool2x2_forward(&vy, &varg, &vx, n, c, h, w, ceil),
                    pool::maxpool2x2_backward(&vdx, &vdo, &varg, n, c, h, w, ceil),
                ],
            );
            let mut y = vec![0.0f32; n * c * oh * ow];
            let mut arg = vec![0u32; n * c * oh * ow];
            cpu::pool::maxpool2x2_forward(&mut y, &mut arg, &x, n, c, h, w, ceil);
            let mut dx = vec![0.0f32; n * c * h * w];
            cpu::pool::maxpool2x2_backward(&mut dx, &dout, &arg, n, c, h, w, ceil);
            let what = format!("maxpool2x2 [{n}, {c}, {h}x{w}] ceil {ceil} seed {seed}");
            // Max and routing copy values: exact.
            assert_close(&format!("{what} forward"), &by.read_all_f32(&gpu).unwrap(), &y, 0.0, 0.0);
            assert_eq!(barg.read_u32(&gpu, 0..barg.len).unwrap(), arg, "{what} argmax");
            assert_close(&format!("{what} backward"), &bdx.read_all_f32(&gpu).unwrap(), &dx, 0.0, 0.0);
        }
    }
}

/// The reference max-pool backward against central differences of the reference forward (distinct
/// values spaced 1/64 apart, step 1/512, so the argmax never changes).
#[test]
fn maxpool2x2_reference_gradient_matches_finite_differences() {
    for (&(n, c, h, w), ceil) in POOL_SHAPES.iter().flat_map(|s| [(s, false), (s, true)]) {
        let len = n * c * h * w;
        let mut r = rng(800 + len as u64);
        let mut x: Vec<f32> = (0..len).map(|i| i as f32 / 64.0).collect();
        use rand::seq::SliceRandom;
        x.shuffle(&mut r);
        let (oh, ow) = pool::maxpool2x2_out(h, w, ceil);
        let rr = random_vec(n * c * oh * ow, 801);
        let loss = |x: &[f32]| {
            let mut y = vec![0.0f32; rr.len()];
            let mut a = vec![0u32; rr.len()];
            cpu::pool::maxpool2x2_forward(&mut y, &mut a, x, n, c, h, w, ceil);
            y.iter().zip(&rr).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>()
        };
        let mut y = vec![0.0f32; rr.len()];
        let mut arg = vec![0u32; rr.len()];
        cpu::pool::maxpool2x2_forward(&mut y, &mut arg, &x, n, c, h, w, ceil);
        let mut dx = vec![0.0f32; len];
        cpu::pool::maxpool2x2_backward(&mut dx, &rr, &arg, n, c, h, w, ceil);
        let step = 1.0 / 512.0;
        for i in 0..len {
            let mut xp = x.clone();
            xp[i] += step;
            let mut xm = x.clone();
            xm[i] -= step;
            let fd = (loss(&xp) - loss(&xm)) / (2.0 * step as f64);
            assert!(
                (fd - dx[i] as f64).abs() < 1e-5,
                "maxpool [{n}, {c}, {h}x{w}] ceil {ceil} [{i}]: {} vs finite difference {fd}",
                dx[i]
            );
        }
    }
}

#[test]
fn upsample2x_forward_and_backward_match_reference() {
    let gpu = gpu();
    for (i, &(n, c, h, w)) in POOL_SHAPES.iter().chain(&[(1, 1, 1, 1)]).enumerate() {
        for seed in 0..2u64 {
            let seed = 900 + 10 * i as u64 + seed;
            let len = n * c * h * w;
            let x = random_vec(len, seed);
            let dout = random_vec(4 * len, seed + 1);
            let (_a, vx) = upload(&gpu, "x", &x);
            let (_b, vdo) = upload(&gpu, "dout", &dout);
            let (by, vy) = upload(&gpu, "y", &random_vec(4 * len, seed + 2));
            let (bdx, vdx) = upload(&gpu, "dx", &random_vec(len, seed + 3));
            run(
                &gpu,
                &[
                    pool::upsample2x_forward(&vy, &vx, n, c, h, w),
                    pool::upsample2x_backward(&vdx, &vdo, n, c, h, w),
                ],
            );
            let mut y = vec![0.0f32; 4 * len];
            cpu::pool::upsample2x_forward(&mut y, &x, n, c, h, w);
            let mut dx = vec![0.0f32; len];
            cpu::pool::upsample2x_backward(&mut dx, &dout, n, c, h, w);
            let what = format!("upsample2x [{n}, {c}, {h}x{w}] seed {seed}");
            assert_close(&format!("{what} forward"), &by.read_all_f32(&gpu).unwrap(), &y, 0.0, 0.0);
            // Three f32 additions against an f64 sum rounded once.
            assert_close(&format!("{what} backward"), &bdx.read_all_f32(&gpu).unwrap(), &dx, atol(4), RTOL);
            // The backward is the adjoint of the forward: ⟨up(x), r⟩ = ⟨x, up_backward(r)⟩.
            let lhs: f64 = y.iter().zip(&dout).map(|(&a, &b)| a as f64 * b as f64).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(&a, &b)| a as f64 * b as f64).sum();
            assert!((lhs - rhs).abs() < 1e-5 * (1.0 + lhs.abs()), "{what}: adjoint {lhs} vs {rhs}");
        }
    }
}

/// Every entry point of conv2d.wgsl / pool.wgsl is one a launcher uses, with the workgroup size its
/// dispatch assumes (naga, no GPU), and the launchers name exactly those.
#[test]
fn entry_points_and_workgroup_sizes_match_the_launchers() {
    for (shader, expected) in [("conv2d", &conv::ENTRY_POINTS), ("pool", &pool::ENTRY_POINTS)] {
        let module =
            naga::front::wgsl::parse_str(aegpu::kernels::shader_source(shader).expect("a registered shader"))
                .unwrap();
        let mut found: Vec<(String, [u32; 3])> =
            module.entry_points.iter().map(|ep| (ep.name.clone(), ep.workgroup_size)).collect();
        found.sort();
        let mut want: Vec<(String, [u32; 3])> = expected.iter().map(|&(e, s)| (e.to_string(), s)).collect();
        want.sort();
        assert_eq!(found, want, "{shader}.wgsl entry points");
    }
    // Both CHANNEL_BLOCK specialisations the host builds resolve and validate.
    use naga::back::pipeline_constants::process_overrides;
    use naga::valid::{Capabilities, ValidationFlags, Validator};
    let source = aegpu::kernels::shader_source("conv2d").expect("a registered shader");
    let module = naga::front::wgsl::parse_str(source).unwrap();
    let info = Validator::new(ValidationFlags::all(), Capabilities::default()).validate(&module).unwrap();
    for entry in ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight"] {
        for block in [1usize, 4] {
            let key = conv::pipeline_key(entry, Some(block));
            let constants = key.constants.iter().map(|&(k, v)| (k.to_string(), f64::from_bits(v))).collect();
            let (special, _) =
                process_overrides(&module, &info, Some((naga::ShaderStage::Compute, entry)), &constants)
                    .unwrap();
            Validator::new(ValidationFlags::all(), Capabilities::default())
                .validate_resolved_overrides(&special)
                .unwrap_or_else(|e| panic!("{entry} CHANNEL_BLOCK={block}: {e}"));
        }
    }
    assert_eq!((1..=9).map(conv::channel_block).collect::<Vec<_>>(), [1, 1, 1, 4, 4, 4, 4, 4, 4]);

    // The launchers name exactly those entry points (all four of each shader).
    let gpu = gpu();
    let (_b, v) = upload(&gpu, "any", &[0.0; 256]);
    let s = conv_shape(1, 2, (4, 4), 2, (3, 3), 1, 1);
    let t = transpose_shape(1, 2, (2, 2), 2, (3, 3), 2, 1, 1);
    let launches = [
        conv::conv2d_forward(&v, &v, &v, Some(&v), &s, Activation::Relu),
        conv::conv2d_backward_input(&v, &v, &v, &s),
        one(conv::conv2d_backward_weight(&v, &v, &v, &s)),
        one(conv::conv2d_backward_bias(&v, &v, &s)),
        conv::conv_transpose2d_forward(&v, &v, &v, None, &t, Activation::Relu),
        conv::conv_transpose2d_backward_input(&v, &v, &v, &t),
        one(conv::conv_transpose2d_backward_weight(&v, &v, &v, &t)),
        one(conv::conv_transpose2d_backward_bias(&v, &v, &t)),
        pool::maxpool2x2_forward(&v, &v, &v, 1, 2, 4, 4, false),
        pool::maxpool2x2_backward(&v, &v, &v, 1, 2, 4, 4, false),
        pool::upsample2x_forward(&v, &v, 1, 2, 4, 4),
        pool::upsample2x_backward(&v, &v, 1, 2, 4, 4),
    ];
    let mut used: Vec<(&str, &str)> = launches.iter().map(|l| (l.key.shader.name, l.key.entry)).collect();
    used.sort();
    used.dedup();
    let mut all: Vec<(&str, &str)> = conv::ENTRY_POINTS
        .iter()
        .map(|e| ("conv2d", e.0))
        .chain(pool::ENTRY_POINTS.iter().map(|e| ("pool", e.0)))
        .collect();
    all.sort();
    assert_eq!(used, all);
}

/// conv_gemm.wgsl's data movement against src/cpu/conv_gemm.rs: im2col, col2im (with bias and every
/// activation), and both permutations, on the awkward conv shapes. Pure copies are exact; col2im sums.
#[test]
fn conv_gemm_kernels_match_reference() {
    let gpu = gpu();
    for (i, s) in CONV_SHAPES.iter().enumerate() {
        let seed = 9000 + 10 * i as u64;
        let act = ACTS[i % ACTS.len()];
        let l = ScratchLens::of(s);
        let x = random_vec(s.input_len(), seed);
        let col = random_vec(l.col, seed + 1);
        let cn = random_vec(s.output_len(), seed + 2);
        let y = random_vec(s.output_len(), seed + 3);
        let b_in = random_vec(s.c_in, seed + 4);
        let b_out = random_vec(s.c_out, seed + 5);
        let (_a, vx) = upload(&gpu, "x", &x);
        let (_b, vcol) = upload(&gpu, "col", &col);
        let (_c, vcn) = upload(&gpu, "cn", &cn);
        let (_d, vy) = upload(&gpu, "y", &y);
        let (_e, vbi) = upload(&gpu, "b_in", &b_in);
        let (_f, vbo) = upload(&gpu, "b_out", &b_out);
        let (g_col, v_col) = upload(&gpu, "im2col out", &random_vec(l.col, seed + 6));
        let (g_img, v_img) = upload(&gpu, "col2im out", &random_vec(s.input_len(), seed + 7));
        let (g_nchw, v_nchw) = upload(&gpu, "nchw out", &random_vec(s.output_len(), seed + 8));
        let (g_cn, v_cn) = upload(&gpu, "cnhw out", &random_vec(s.output_len(), seed + 9));
        run(
            &gpu,
            &[
                conv_gemm::im2col(&v_col, &vx, s),
                conv_gemm::col2im(&v_img, &vcol, Some(&vbi), s, act),
                conv_gemm::cnhw_to_nchw(&v_nchw, &vcn, Some(&vbo), s, act),
                conv_gemm::nchw_to_cnhw(&v_cn, &vy, s),
            ],
        );
        let mut want_col = vec![0.0f32; l.col];
        cpu::conv_gemm::im2col(&mut want_col, &x, s);
        let mut want_img = vec![0.0f32; s.input_len()];
        cpu::conv_gemm::col2im(&mut want_img, &col, Some(&b_in), s, act);
        let mut want_nchw = vec![0.0f32; s.output_len()];
        cpu::conv_gemm::cnhw_to_nchw(&mut want_nchw, &cn, Some(&b_out), s, act);
        let mut want_cn = vec![0.0f32; s.output_len()];
        cpu::conv_gemm::nchw_to_cnhw(&mut want_cn, &y, s);
        let what = format!("{s:?} {act:?}");
        assert_close(&format!("im2col {what}"), &g_col.read_all_f32(&gpu).unwrap(), &want_col, 0.0, 0.0);
        assert_close(&format!("col2im {what}"), &g_img.read_all_f32(&gpu).unwrap(), &want_img, 1e-6, 1e-6);
        assert_close(
            &format!("cnhw_to_nchw {what}"),
            &g_nchw.read_all_f32(&gpu).unwrap(),
            &want_nchw,
            1e-6,
            1e-6,
        );
        assert_close(&format!("nchw_to_cnhw {what}"), &g_cn.read_all_f32(&gpu).unwrap(), &want_cn, 0.0, 0.0);
    }
}

/// col2im is im2col's adjoint: <im2col(x), c> = <x, col2im(c)> for random x and c (CPU reference).
#[test]
fn reference_col2im_is_the_adjoint_of_im2col() {
    for (i, s) in CONV_SHAPES.iter().enumerate() {
        let l = ScratchLens::of(s);
        let x = random_vec(s.input_len(), 9500 + i as u64);
        let c = random_vec(l.col, 9600 + i as u64);
        let mut col = vec![0.0f32; l.col];
        cpu::conv_gemm::im2col(&mut col, &x, s);
        let mut back = vec![0.0f32; s.input_len()];
        cpu::conv_gemm::col2im(&mut back, &c, None, s, Activation::Identity);
        let (lhs, rhs) = (dot(&to_f64(&col), &to_f64(&c)), dot(&to_f64(&x), &to_f64(&back)));
        assert!((lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()), "{s:?}: {lhs} vs {rhs}");
    }
}
