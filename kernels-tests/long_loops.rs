//! Kernels whose loops grow with the data, at sizes past lavapipe's loop limit: llvmpipe silently
//! ends an invocation's loops once they have run 65,535 iterations in total, so before the launchers
//! split such work (`kernels::MAX_LOOP_STEPS`) a product with K = 150,000 came back as if K were
//! 52,429-65,535 (every matmul variant) and a conv bias gradient over 40,000 2x2 samples summed a
//! seventh of them, all with no error. Each case here is past the limit and checked against the CPU
//! reference, so the tests fail on lavapipe if a launcher stops splitting; on other adapters they
//! check the split launches sum correctly.

mod common;

use aegpu::expert::cpu;
use aegpu::expert::runner::{Plan, View};
use aegpu::gpu::StorageBuffer;
use aegpu::kernels::conv::{self, Conv2dShape};
use aegpu::kernels::matmul::{Half, Matmul, MatmulVariant, Transpose};
use aegpu::kernels::{Activation, Launch, MAX_LOOP_STEPS};
use common::*;

fn upload(gpu: &aegpu::gpu::Gpu, label: &str, data: &[f32]) -> (StorageBuffer, View) {
    let b = StorageBuffer::from_slice(gpu, label, data).unwrap();
    let v = View::whole(&b);
    (b, v)
}

fn run(gpu: &aegpu::gpu::Gpu, launches: &[Launch]) {
    Plan::new(gpu, "long loops", launches).unwrap().run(gpu).unwrap();
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Every matmul variant and transpose form with K past two launch ranges (3 ranges, the last one
/// partial), M and N not tile multiples: with bias + sigmoid (the last range applies the epilogue to
/// the earlier ranges' sum), plain, and accumulating into C.
#[test]
fn matmul_with_a_long_inner_dimension_matches_reference() {
    let gpu = gpu();
    let (m, n, k) = (3, 5, 2 * MAX_LOOP_STEPS + 4_437);
    let a = random_vec(m * k, 1);
    let b = random_vec(k * n, 2);
    let bias = random_vec(n, 3);
    let c0 = random_vec(m * n, 4);
    let cases = [
        (Activation::Sigmoid, true, false),
        (Activation::Identity, false, false),
        (Activation::Identity, true, true),
    ];
    for variant in MatmulVariant::available(&gpu) {
        for trans in Transpose::ALL {
            for (act, with_bias, accumulate) in cases {
                let mut want = c0.clone();
                let bias_ref = with_bias.then_some(&bias[..]);
                cpu::matmul::matmul(&mut want, &a, &b, bias_ref, m, n, k, trans, act, accumulate);
                let (_ga, va) = upload(&gpu, "a", &a);
                let (_gb, vb) = upload(&gpu, "b", &b);
                let (_gbias, vbias) = upload(&gpu, "bias", &bias);
                let (gc, vc) = upload(&gpu, "c", &c0);
                let product = Matmul {
                    c: vc,
                    a: va,
                    b: vb,
                    bias: with_bias.then_some(vbias),
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
                let launches = product.launches();
                assert_eq!(launches.len(), 3, "K = {k} runs as three launches");
                run(&gpu, &launches);
                let got = gc.read_all_f32(&gpu).unwrap();
                let what =
                    format!("{variant:?} {trans:?} {m}x{n}x{k} {act:?} bias={with_bias} acc={accumulate}");
                assert_close(&what, &got, &want, 4e-5 * (k as f32).sqrt(), 1e-4);
            }
        }
    }
}

/// A product that fits one range is one launch, the same as `Matmul::launch` (so every model's
/// products, and the golden record, are unchanged).
#[test]
fn matmul_within_the_bound_is_one_launch() {
    let gpu = gpu();
    let (_g, v) = upload(&gpu, "x", &[0.0; 4]);
    let product = Matmul {
        c: v.clone(),
        a: v.clone(),
        b: v,
        bias: None,
        m: 1,
        n: 1,
        k: MAX_LOOP_STEPS,
        trans: Transpose::Nn,
        act: Activation::Identity,
        accumulate: false,
        variant: MatmulVariant::Reg,
        splits: 1,
        half: Half::NONE,
    };
    let launches = product.launches();
    assert_eq!(launches.len(), 1);
    assert_eq!(launches[0].uniform, product.launch().uniform);
    assert_eq!(Matmul { k: MAX_LOOP_STEPS + 1, ..product }.launches().len(), 2);
}

/// The direct conv reductions over a long batch: weight and bias gradients (plain and with the fused
/// activation derivative), for conv2d and the transposed convolution, many small samples so a lane's
/// loop is mostly the sample loop (25,000 samples of 3x3: 75,000 iterations for the weight gradient's
/// lanes, 50,000 for the bias's; 40,000 of 2x2 for the transposed layer).
#[test]
fn conv_weight_and_bias_gradients_over_a_long_batch_match_reference() {
    let gpu = gpu();
    let s = Conv2dShape { n: 25_000, c_in: 2, h: 3, w: 3, c_out: 3, kh: 3, kw: 3, stride: 1, padding: 1 };
    let (x, dy, y) =
        (random_vec(s.input_len(), 5), random_vec(s.output_len(), 6), random_vec(s.output_len(), 7));
    let (_gx, vx) = upload(&gpu, "x", &x);
    let (gdy, vdy) = upload(&gpu, "dy", &dy);
    let (_gy, vy) = upload(&gpu, "y", &y);
    let (gdw, vdw) = upload(&gpu, "dw", &random_vec(s.weight_len(), 8));
    let (gdb, vdb) = upload(&gpu, "db", &random_vec(s.bias_len(), 9));

    let weight_launches = conv::conv2d_backward_weight(&vdw, &vdy, &vx, &s);
    let bias_launches = conv::conv2d_backward_bias(&vdb, &vdy, &s);
    assert!(weight_launches.len() > 1 && bias_launches.len() > 1, "the batch is split");
    run(&gpu, &[weight_launches, bias_launches].concat());
    let mut want_dw = vec![0.0f64; s.weight_len()];
    cpu::conv::conv2d_backward_weight(&mut want_dw, &f64s(&dy), &f64s(&x), &s);
    let mut want_db = vec![0.0f64; s.bias_len()];
    cpu::conv::conv2d_backward_bias(&mut want_db, &f64s(&dy), &s);
    let terms = s.n * 9;
    let atol = 2.0 * terms as f32 * f32::EPSILON;
    assert_close("conv2d weight gradient", &gdw.read_all_f32(&gpu).unwrap(), &f32s(&want_dw), atol, 1e-5);
    assert_close("conv2d bias gradient", &gdb.read_all_f32(&gpu).unwrap(), &f32s(&want_db), atol, 1e-5);

    // The fused form: dy becomes dy ⊙ tanh'(y) in place, db its channel sums.
    run(&gpu, &conv::conv2d_backward_bias_act(&vdb, &vdy, &vy, &s, Activation::Tanh));
    let d: Vec<f64> =
        dy.iter().zip(&y).map(|(&g, &o)| f64::from(g) * (1.0 - f64::from(o) * f64::from(o))).collect();
    cpu::conv::conv2d_backward_bias(&mut want_db, &d, &s);
    assert_close("fused derivative", &gdy.read_all_f32(&gpu).unwrap(), &f32s(&d), 1e-6, 1e-6);
    assert_close("fused bias gradient", &gdb.read_all_f32(&gpu).unwrap(), &f32s(&want_db), atol, 1e-5);

    let t = transpose_shape(40_000, 2, (1, 1), 3, (2, 2), 2, 0, 0);
    let (x, dy) = (random_vec(t.input_len(), 10), random_vec(t.output_len(), 11));
    let (_gx, vx) = upload(&gpu, "x", &x);
    let (_gdy, vdy) = upload(&gpu, "dy", &dy);
    let (gdw, vdw) = upload(&gpu, "dw", &random_vec(t.weight_len(), 12));
    let (gdb, vdb) = upload(&gpu, "db", &random_vec(t.bias_len(), 13));
    run(
        &gpu,
        &[
            conv::conv_transpose2d_backward_weight(&vdw, &vdy, &vx, &t),
            conv::conv_transpose2d_backward_bias(&vdb, &vdy, &t),
        ]
        .concat(),
    );
    let mut want_dw = vec![0.0f64; t.weight_len()];
    cpu::conv::conv_transpose2d_backward_weight(&mut want_dw, &f64s(&dy), &f64s(&x), &t);
    let mut want_db = vec![0.0f64; t.bias_len()];
    cpu::conv::conv_transpose2d_backward_bias(&mut want_db, &f64s(&dy), &t);
    let atol = 2.0 * (t.n * 4) as f32 * f32::EPSILON;
    assert_close("transposed weight gradient", &gdw.read_all_f32(&gpu).unwrap(), &f32s(&want_dw), atol, 1e-5);
    assert_close("transposed bias gradient", &gdb.read_all_f32(&gpu).unwrap(), &f32s(&want_db), atol, 1e-5);
}

/// A batch that fits is one launch per reduction, with the parameters of before (sample range
/// 0..n, no accumulation): the models' conv gradients are unchanged.
#[test]
fn conv_reductions_within_the_bound_are_one_launch() {
    let gpu = gpu();
    let s = Conv2dShape { n: 128, c_in: 1, h: 28, w: 28, c_out: 16, kh: 3, kw: 3, stride: 1, padding: 1 };
    let big = StorageBuffer::zeroed(&gpu, "any", s.input_len().max(s.output_len())).unwrap();
    let v = View::whole(&big);
    assert_eq!(conv::conv2d_backward_weight(&v, &v, &v, &s).len(), 1);
    assert_eq!(conv::conv2d_backward_bias(&v, &v, &s).len(), 1);
}

/// The direct conv kernels loop over every input channel's taps (forward) or every output channel's
/// (input gradient) per invocation: past the bound the tuner does not consider them for a layer.
#[test]
fn the_direct_convolution_is_no_candidate_past_the_bound() {
    let small = Conv2dShape { n: 1, c_in: 16, h: 28, w: 28, c_out: 32, kh: 3, kw: 3, stride: 1, padding: 1 };
    assert_eq!(
        conv::direct_loop_steps(&small),
        32 * (2 + 3 * (2 + 3)),
        "the input gradient, over 32 channels"
    );
    let wide = Conv2dShape { c_in: 4096, c_out: 8, h: 3, w: 3, ..small };
    assert!(conv::direct_loop_steps(&wide) > MAX_LOOP_STEPS);
    let gpu = gpu();
    let chosen = gpu.conv_algorithm(&wide).unwrap();
    assert_ne!(chosen, aegpu::expert::tune::ConvAlgorithm::Direct);
}

/// The contractive penalty's weight gradient loops over the batch and then the encoder's inputs in
/// one invocation: a batch that would pass the bound is refused when the activations are laid
/// out, one within it is not.
#[test]
fn a_contractive_batch_past_the_bound_is_refused() {
    use aegpu::kernels::loss::LossKind;
    use aegpu::models::dense::{DenseConfig, Regularizers};
    use aegpu::models::{Autoencoder, Init};
    let gpu = gpu();
    let config = DenseConfig {
        sizes: vec![784, 16, 784],
        activations: vec![Activation::Sigmoid, Activation::Sigmoid],
        code_layer: 0,
        loss: LossKind::Bce,
        variational: None,
        regularize: Regularizers { contractive: Some(0.1), ..Default::default() },
    };
    let model = Autoencoder::new(&gpu, config, 1, Init::Glorot).unwrap();
    let fits = MAX_LOOP_STEPS - 784;
    assert!(model.activation_bytes(&gpu, fits).is_ok());
    let Err(e) = model.activation_bytes(&gpu, fits + 1) else { panic!("a batch past the bound accepted") };
    assert!(e.to_string().contains("use a smaller --batch"), "{e}");
}
