//! conv_implicit_gemm.wgsl (the implicit-GEMM convolution) against the CPU reference (src/cpu/conv.rs,
//! evaluated in f64): conv2d and conv_transpose2d forward with every activation epilogue, input,
//! weight and bias gradients on awkward shapes (odd sizes, 1x1/3x3/5x5 and non-square kernels, stride
//! 1/2/3, padding 0/1/2, C_IN = 1, C_OUT = 1, batch 1 and odd batches, outputs that are not multiples
//! of the 16x64 tile, split-K weight gradients), every output written inside a guard band
//! (common::guard); the deterministic split-K; a batch whose column tiles exceed 65,535 workgroups
//! unless folded; and a short MNIST training run whose test loss matches the direct algorithm's.

mod common;

use aegpu::expert::cpu;
use aegpu::expert::runner::{Plan, View};
use aegpu::expert::tune::{ConvAlgorithm, verify_conv_algorithm};
use aegpu::gpu::{Gpu, StorageBuffer};
use aegpu::kernels::conv::{self, Conv2dShape, ConvTranspose2dShape};
use aegpu::kernels::conv_implicit_gemm::{self as implicit, TILE_N, parts_len, weight_splits};
use aegpu::kernels::{Activation, Launch, grid_1d};
use common::guard::{SENTINEL, read_checked, upload_with_tail};
use common::*;

/// Awkward conv2d shapes. Some have more than 1024 output pixels, so their weight gradient runs in
/// 2-4 split-K chunks; channels 17 and 33 leave partial 16-row tiles; 1x1 and 1x3 kernels at stride 2
/// and 2x4 at stride 3 leave input pixels (stride phases) that no tap reaches.
const CONV_SHAPES: &[Conv2dShape] = &[
    conv_shape(1, 1, (7, 5), 1, (3, 3), 1, 1),
    conv_shape(3, 3, (9, 9), 5, (3, 3), 2, 1),
    conv_shape(1, 5, (7, 5), 3, (1, 1), 1, 0),
    conv_shape(3, 1, (9, 9), 3, (5, 5), 2, 0),
    conv_shape(1, 3, (5, 7), 5, (5, 5), 1, 2),
    conv_shape(5, 5, (8, 6), 1, (3, 3), 2, 0),
    conv_shape(1, 3, (9, 7), 17, (5, 5), 2, 2),
    conv_shape(3, 2, (6, 7), 3, (3, 5), 1, 1),
    conv_shape(1, 2, (10, 11), 2, (3, 3), 3, 1),
    conv_shape(1, 1, (1, 1), 1, (1, 1), 1, 0),
    conv_shape(3, 4, (13, 11), 33, (3, 3), 1, 1),
    conv_shape(3, 1, (28, 28), 4, (3, 3), 1, 1),
    conv_shape(5, 7, (30, 29), 3, (3, 3), 1, 1),
    conv_shape(7, 3, (17, 15), 2, (5, 5), 1, 2),
    conv_shape(3, 2, (7, 6), 3, (1, 1), 2, 0),
    conv_shape(1, 1, (1, 9), 3, (1, 3), 2, 0),
    conv_shape(2, 3, (11, 10), 4, (2, 4), 3, 1),
];

/// The same variety for the transpose (output_padding 0, 1, 2).
const TRANSPOSE_SHAPES: &[ConvTranspose2dShape] = &[
    transpose_shape(1, 1, (4, 3), 1, (3, 3), 2, 1, 1),
    transpose_shape(3, 3, (5, 5), 5, (3, 3), 2, 1, 0),
    transpose_shape(1, 5, (7, 5), 3, (1, 1), 1, 0, 0),
    transpose_shape(3, 1, (3, 4), 3, (5, 5), 2, 0, 1),
    transpose_shape(1, 3, (4, 5), 5, (5, 5), 1, 2, 0),
    transpose_shape(3, 4, (3, 3), 3, (3, 3), 3, 1, 2),
    transpose_shape(5, 3, (5, 3), 1, (3, 3), 2, 0, 1),
    transpose_shape(1, 1, (1, 1), 1, (1, 1), 1, 0, 0),
    transpose_shape(3, 17, (7, 7), 9, (3, 3), 2, 1, 1),
    transpose_shape(3, 4, (14, 13), 1, (3, 3), 2, 1, 1),
    transpose_shape(2, 3, (4, 3), 2, (1, 1), 3, 0, 2),
    transpose_shape(1, 2, (3, 5), 3, (2, 2), 2, 0, 1),
];

const ACTS: [Activation; 5] = [
    Activation::Identity,
    Activation::Relu,
    Activation::LeakyRelu(0.1),
    Activation::Sigmoid,
    Activation::Tanh,
];

/// Absolute tolerance for an f32 sum of `terms` products of values in [-1, 1) against an f64
/// reference: 2·terms·ε, as kernels-tests/conv.rs argues (the error grows like terms·ε at worst).
fn atol(terms: usize) -> f32 {
    2.0 * terms.max(1) as f32 * f32::EPSILON
}

const RTOL: f32 = 1e-5;

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// A guarded buffer (data + sentinels) and the view of its data.
fn guarded(gpu: &Gpu, label: &str, data: &[f32]) -> (StorageBuffer, View) {
    let b = upload_with_tail(gpu, label, data);
    let v = View { buffer: b.buffer.clone(), offset: 0, len: data.len() };
    (b, v)
}

fn run(gpu: &Gpu, launches: &[Launch]) {
    Plan::new(gpu, "implicit gemm test", launches).unwrap().run(gpu).unwrap();
}

/// The reference results of one layer, in f64.
struct Want {
    out: Vec<f64>,
    dinp: Vec<f64>,
    dweight: Vec<f64>,
    dbias: Vec<f64>,
}

/// Inputs of one case: x, w, b, dout (uniform in [-1, 1)).
struct Case {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    dout: Vec<f32>,
}

impl Case {
    fn new(lens: [usize; 4], seed: u64) -> Case {
        Case {
            x: random_vec(lens[0], seed),
            w: random_vec(lens[1], seed + 1),
            b: random_vec(lens[2], seed + 2),
            dout: random_vec(lens[3], seed + 3),
        }
    }
}

/// Outputs start as garbage (a skipped element is caught), with a guard band past each.
struct Outputs {
    bufs: [StorageBuffer; 5],
    views: [View; 5],
}

impl Outputs {
    /// out, dinp, dweight, dbias and the split partials (at least one word).
    fn new(gpu: &Gpu, lens: [usize; 5], seed: u64) -> Outputs {
        let mk = |i: usize| guarded(gpu, "out", &random_vec(lens[i].max(1), seed + 100 + i as u64));
        let [a, b, c, d, e] = [mk(0), mk(1), mk(2), mk(3), mk(4)];
        Outputs { views: [a.1, b.1, c.1, d.1, e.1], bufs: [a.0, b.0, c.0, d.0, e.0] }
    }

    fn read(&self, gpu: &Gpu, i: usize, what: &str) -> Vec<f32> {
        read_checked(gpu, what, &self.bufs[i], self.views[i].len)
    }
}

/// Runs `launches` and compares the four results with `want` (the reduction lengths give the
/// tolerances: forward, input gradient, weight and bias gradients).
/// `with_bias`: whether to check the bias gradient too (see [`column_tiles_fold_past_65535_workgroups`]).
fn check(gpu: &Gpu, what: &str, o: &Outputs, want: &Want, terms: [usize; 4], with_bias: bool) {
    let results = [
        ("forward", &want.out),
        ("input gradient", &want.dinp),
        ("weight gradient", &want.dweight),
        ("bias gradient", &want.dbias),
    ];
    for (i, (name, w)) in results.into_iter().enumerate().take(if with_bias { 4 } else { 3 }) {
        let got = o.read(gpu, i, &format!("{name} {what}"));
        assert_close(&format!("{name} {what}"), &got, &f32s(w), atol(terms[i]), RTOL);
    }
}

fn conv2d_case(gpu: &Gpu, s: &Conv2dShape, act: Activation, has_bias: bool, seed: u64, check_db: bool) {
    let c = Case::new([s.input_len(), s.weight_len(), s.bias_len(), s.output_len()], seed);
    let o =
        Outputs::new(gpu, [s.output_len(), s.input_len(), s.weight_len(), s.bias_len(), parts_len(s)], seed);
    let (_bufs, [vx, vw, vb, vdo]) = inputs(gpu, &c);
    let [vout, vdx, vdw, vdb, vparts] = &o.views;
    let mut launches = vec![implicit::conv2d_forward(vout, &vx, &vw, has_bias.then_some(&vb), s, act)];
    launches.push(implicit::conv2d_backward_input(vdx, &vdo, &vw, s));
    launches.extend(implicit::conv2d_backward_weight(vdw, &vdo, &vx, vparts, s));
    launches.extend(conv::conv2d_backward_bias(vdb, &vdo, s));
    run(gpu, &launches);

    let (x, w, b, dout) = (f64s(&c.x), f64s(&c.w), f64s(&c.b), f64s(&c.dout));
    let mut want = Want {
        out: vec![0.0; s.output_len()],
        dinp: vec![0.0; s.input_len()],
        dweight: vec![0.0; s.weight_len()],
        dbias: vec![0.0; s.bias_len()],
    };
    cpu::conv::conv2d_forward(&mut want.out, &x, &w, has_bias.then_some(&b[..]), s, act);
    cpu::conv::conv2d_backward_input(&mut want.dinp, &dout, &w, s);
    cpu::conv::conv2d_backward_weight(&mut want.dweight, &dout, &x, s);
    cpu::conv::conv2d_backward_bias(&mut want.dbias, &dout, s);
    let pixels = s.n * s.out_h() * s.out_w();
    let what = format!("{s:?} {act:?} bias={has_bias} seed {seed}");
    check(gpu, &what, &o, &want, [s.c_in * s.kh * s.kw, s.c_out * s.kh * s.kw, pixels, pixels], check_db);
}

fn inputs(gpu: &Gpu, c: &Case) -> (Vec<StorageBuffer>, [View; 4]) {
    let (bx, vx) = guarded(gpu, "x", &c.x);
    let (bw, vw) = guarded(gpu, "w", &c.w);
    let (bb, vb) = guarded(gpu, "b", &c.b);
    let (bd, vd) = guarded(gpu, "dout", &c.dout);
    (vec![bx, bw, bb, bd], [vx, vw, vb, vd])
}

#[test]
fn conv2d_forward_and_gradients_match_reference_on_awkward_shapes() {
    let gpu = gpu();
    for (i, s) in CONV_SHAPES.iter().enumerate() {
        s.validate().unwrap();
        for (j, act) in ACTS.iter().enumerate() {
            // Every shape meets every activation epilogue; bias off for one in four.
            conv2d_case(&gpu, s, *act, (i + j) % 4 != 3, 1000 * i as u64 + 10 * j as u64, true);
        }
    }
    // The split-K path is exercised (and so is the one-split path).
    assert!(CONV_SHAPES.iter().any(|s| weight_splits(s) >= 4));
    assert!(CONV_SHAPES.iter().any(|s| weight_splits(s) == 1));
}

fn transpose_case(
    gpu: &Gpu,
    s: &ConvTranspose2dShape,
    act: Activation,
    has_bias: bool,
    seed: u64,
    check_db: bool,
) {
    let c = Case::new([s.input_len(), s.weight_len(), s.bias_len(), s.output_len()], seed);
    let lens = [s.output_len(), s.input_len(), s.weight_len(), s.bias_len(), parts_len(&s.adjoint())];
    let o = Outputs::new(gpu, lens, seed);
    let (_bufs, [vx, vw, vb, vdo]) = inputs(gpu, &c);
    let [vout, vdx, vdw, vdb, vparts] = &o.views;
    let mut launches =
        vec![implicit::conv_transpose2d_forward(vout, &vx, &vw, has_bias.then_some(&vb), s, act)];
    launches.push(implicit::conv_transpose2d_backward_input(vdx, &vdo, &vw, s));
    launches.extend(implicit::conv_transpose2d_backward_weight(vdw, &vdo, &vx, vparts, s));
    launches.extend(conv::conv_transpose2d_backward_bias(vdb, &vdo, s));
    run(gpu, &launches);

    let (x, w, b, dout) = (f64s(&c.x), f64s(&c.w), f64s(&c.b), f64s(&c.dout));
    let mut want = Want {
        out: vec![0.0; s.output_len()],
        dinp: vec![0.0; s.input_len()],
        dweight: vec![0.0; s.weight_len()],
        dbias: vec![0.0; s.bias_len()],
    };
    cpu::conv::conv_transpose2d_forward(&mut want.out, &x, &w, has_bias.then_some(&b[..]), s, act);
    cpu::conv::conv_transpose2d_backward_input(&mut want.dinp, &dout, &w, s);
    cpu::conv::conv_transpose2d_backward_weight(&mut want.dweight, &dout, &x, s);
    cpu::conv::conv_transpose2d_backward_bias(&mut want.dbias, &dout, s);
    let what = format!("{s:?} {act:?} bias={has_bias} seed {seed}");
    let terms =
        [s.c_in * s.kh * s.kw, s.c_out * s.kh * s.kw, s.input_len() / s.c_in, s.output_len() / s.c_out];
    check(gpu, &what, &o, &want, terms, check_db);
}

#[test]
fn conv_transpose2d_forward_and_gradients_match_reference_on_awkward_shapes() {
    let gpu = gpu();
    for (i, s) in TRANSPOSE_SHAPES.iter().enumerate() {
        s.validate().unwrap();
        for (j, act) in ACTS.iter().enumerate() {
            transpose_case(&gpu, s, *act, (i + j) % 4 != 3, 5000 + 1000 * i as u64 + 10 * j as u64, true);
        }
    }
}

/// The split-K weight gradient sums its partials in split order: the same bits run to run.
#[test]
fn split_weight_gradient_is_bit_identical_run_to_run() {
    let gpu = gpu();
    let s = conv_shape(5, 7, (30, 29), 3, (3, 3), 1, 1);
    assert!(weight_splits(&s) > 1);
    let c = Case::new([s.input_len(), s.weight_len(), s.bias_len(), s.output_len()], 77);
    let (_bufs, [vx, _, _, vdo]) = inputs(&gpu, &c);
    let o = Outputs::new(&gpu, [1, 1, s.weight_len(), 1, parts_len(&s)], 78);
    let launches = implicit::conv2d_backward_weight(&o.views[2], &vdo, &vx, &o.views[4], &s);
    assert_eq!(launches.len(), 2, "partials, then their sum");
    run(&gpu, &launches);
    let first = o.read(&gpu, 2, "dweight");
    run(&gpu, &launches);
    common::guard::assert_bits_eq("dweight run to run", &o.read(&gpu, 2, "dweight"), &first);
}

/// A batch of 2x2 images whose 4·N output (and input) pixels make more than 65,535 column tiles of
/// 64: the grid folds into (x, y); every result is checked, so a tile the fold skips or repeats
/// fails. 3x3 kernel, padding 1, so most taps of every pixel fall on padding. Its weight gradient runs
/// 4,097 k steps per split: the implicit GEMM's only loops are its k loops, since lavapipe silently
/// ends an invocation's loops once their iterations total 65,535 (with the 16-step tile product as
/// an inner loop this case came out 15-30% wrong). The bias gradient is not checked here: the direct
/// kernel all algorithms share loops N·ceil(OH·OW/64) times per lane, past that limit at this batch.
#[test]
fn column_tiles_fold_past_65535_workgroups() {
    let gpu = gpu();
    let n = 65_536 * TILE_N / 4 + 37;
    let s = conv_shape(n, 1, (2, 2), 1, (3, 3), 1, 1);
    let tiles = (s.n * s.out_h() * s.out_w()).div_ceil(TILE_N);
    assert!(tiles > 65535, "{tiles} column tiles");
    assert!(grid_1d(tiles, 1)[1] > 1, "the grid folds");
    let limit = gpu.limits.max_compute_workgroups_per_dimension as usize;
    assert!(limit >= 65535, "adapter limit {limit}");
    conv2d_case(&gpu, &s, Activation::Tanh, true, 4242, false);
    // The transpose's forward (the adjoint's input gradient) on the same geometry.
    let t = transpose_shape(n, 1, (2, 2), 1, (3, 3), 1, 1, 0);
    transpose_case(&gpu, &t, Activation::Sigmoid, true, 4343, false);
}

/// The tuner verifies every algorithm, the implicit GEMM included, against the CPU reference on the
/// conv presets' layer shapes before timing it; all three pass here. `implicit_gemm` is the serde name.
#[test]
fn the_tuner_verifies_the_implicit_gemm() {
    let gpu = gpu();
    for s in [
        conv_shape(2, 1, (28, 28), 32, (3, 3), 2, 1),
        conv_shape(2, 32, (14, 14), 64, (3, 3), 2, 1),
        conv_shape(2, 16, (28, 28), 1, (3, 3), 1, 1),
    ] {
        for algo in ConvAlgorithm::ALL {
            if let Err(why) = verify_conv_algorithm(&gpu, algo, &s).unwrap() {
                panic!("{algo:?} on {s:?}: {why}");
            }
        }
    }
    assert_eq!(serde_json::to_string(&ConvAlgorithm::ImplicitGemm).unwrap(), "\"implicit_gemm\"");
    let old: Vec<ConvAlgorithm> = serde_json::from_str(r#"["direct", "gemm"]"#).unwrap();
    assert_eq!(old, [ConvAlgorithm::Direct, ConvAlgorithm::Gemm]);
}

/// The guard band is there: a sentinel past a view survives a launch that writes the view.
#[test]
fn outputs_keep_their_guard_band() {
    let gpu = gpu();
    let s = conv_shape(1, 1, (3, 3), 1, (3, 3), 1, 1);
    let o = Outputs::new(&gpu, [s.output_len(), 1, 1, 1, 1], 5);
    let c = Case::new([s.input_len(), s.weight_len(), 1, 1], 6);
    let (_bufs, [vx, vw, _, _]) = inputs(&gpu, &c);
    run(&gpu, &[implicit::conv2d_forward(&o.views[0], &vx, &vw, None, &s, Activation::Identity)]);
    let all = o.bufs[0].read_all_f32(&gpu).unwrap();
    assert_eq!(all[s.output_len()].to_bits(), SENTINEL.to_bits());
}

/// The strided preset trained for one short epoch on real MNIST with AEGPU_CONV=implicit_gemm matches
/// the direct algorithm to float tolerance (a different summation order: not the same bits): the test
/// loss, and every checkpoint tensor.
#[test]
fn training_with_implicit_gemm_matches_direct() {
    let Some(data) = data_dir() else { return };
    let train = |algo: &str| -> (f64, cli::Tensors) {
        let home = cli::TempDir::new(&format!("implicit-{algo}"));
        let out = home.path().join("run");
        let args = [
            "train",
            "--quiet",
            "--data",
            data.to_str().unwrap(),
            "--model",
            "conv",
            "--preset",
            "strided",
            "--code-dim",
            "8",
            "--train-limit",
            "200",
            "--test-limit",
            "200",
            "--batch",
            "20",
            "--epochs",
            "1",
            "--seed",
            "5",
            "--out",
            out.to_str().unwrap(),
        ];
        let run = cli::command(home.path(), &args).env("AEGPU_CONV", algo).output().unwrap();
        cli::ok(run, &format!("training with AEGPU_CONV={algo}"));
        let (metrics, tensors) = cli::result_of(&out);
        let meta = std::fs::read(out.join("model.safetensors")).unwrap();
        let recorded = format!("\\\"{algo}\\\"");
        assert!(String::from_utf8_lossy(&meta).contains(&recorded), "the checkpoint records {recorded}");
        (metrics[0]["test_loss"].as_f64().expect("test_loss"), tensors)
    };
    let (direct, direct_w) = train("direct");
    let (implicit, implicit_w) = train("implicit_gemm");
    assert!(direct.is_finite() && direct > 0.0);
    let diff = (direct - implicit).abs();
    // Ten Adam steps from the same start. The loss is summed in f32 per batch, so rounding-level
    // weight differences barely reach it; the weights are the sharper check: Adam moves each by up
    // to lr = 1e-3 per step whatever the gradient's size, so a wrong gradient moves some weight by
    // ~1e-3..1e-2, while the summation order moved them by under 1e-5 on lavapipe.
    assert!(diff <= 1e-4 * direct, "test loss: direct {direct}, implicit_gemm {implicit} (diff {diff:e})");
    assert_eq!(direct_w.len(), implicit_w.len());
    for ((name, shape, a), (_, _, b)) in direct_w.iter().zip(&implicit_w) {
        let floats = |v: &[u8]| -> Vec<f32> {
            v.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        };
        let (a, b) = (floats(a), floats(b));
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(
            worst <= 2e-4,
            "{name} {shape:?}: direct and implicit_gemm weights differ by up to {worst:e}"
        );
    }
}
