//! Fused kernels against their CPU references and against the unfused launches they replace.
//!
//! `act_backward_colsum` (a dense layer's activation derivative and bias gradient in one pass) must
//! equal `act_backward` followed by `colsum` bit for bit (same products, same summation order:
//! that is what keeps training bit-identical to the unfused list), and the CPU reference within
//! the colsum bound, on awkward shapes (1 x N, N x 1, widths around the 32-column strip, rows
//! around the 8 lanes), every activation, in place and not, with a guard band past every output.
//! The conv layers' `conv2d_backward_bias` with an activation does the same per channel: it must
//! equal `act_backward` then the plain channel sum bit for bit.

mod common;

use aegpu::expert::cpu;
use aegpu::expert::runner::{Plan, View};
use aegpu::gpu::Gpu;
use aegpu::kernels::conv::{self, Conv2dShape, ConvTranspose2dShape};
use aegpu::kernels::{Activation, Launch, activation, reduce};
use common::guard::*;
use common::*;

const SHAPES: &[(usize, usize)] =
    &[(1, 1), (1, 300), (300, 1), (7, 32), (8, 33), (9, 31), (257, 33), (64, 65), (100, 784), (13, 97)];
const ACTS: [Activation; 5] = [
    Activation::Identity,
    Activation::Relu,
    Activation::LeakyRelu(0.2),
    Activation::Sigmoid,
    Activation::Tanh,
];

fn run(gpu: &Gpu, launches: &[Launch]) {
    Plan::new(gpu, "test", launches).unwrap().run(gpu).unwrap();
}

/// (dz, dbias) from the fused kernel (in place over dout, or into fresh buffers) and from
/// act_backward then colsum.
fn fused_and_unfused(
    gpu: &Gpu,
    dout: &[f32],
    y: &[f32],
    (rows, cols): (usize, usize),
    act: Activation,
    in_place: bool,
) -> [(Vec<f32>, Vec<f32>); 2] {
    let n = rows * cols;
    let (gdout, gy) = (upload_with_tail(gpu, "dout", dout), upload_with_tail(gpu, "y", y));
    let gdz = if in_place { gdout.clone() } else { upload_with_tail(gpu, "dz", &vec![SENTINEL; n]) };
    let gdb = upload_with_tail(gpu, "dbias", &vec![SENTINEL; cols]);
    let (dz, db, dy, yv) = (View::whole(&gdz), View::whole(&gdb), View::whole(&gdout), View::whole(&gy));
    run(gpu, &[activation::activation_backward_bias(&dz, &db, &dy, &yv, rows, cols, act, false)]);
    let fused = (read_checked(gpu, "fused dz", &gdz, n), read_checked(gpu, "fused dbias", &gdb, cols));
    if !in_place {
        assert_bits_eq("dout is read only", &read_checked(gpu, "dout", &gdout, n), dout);
    }
    let (udz, udb) = (
        upload_with_tail(gpu, "dz", &vec![SENTINEL; n]),
        upload_with_tail(gpu, "dbias", &vec![SENTINEL; cols]),
    );
    let (dz, db) = (View::whole(&udz), View::whole(&udb));
    let dout_view = View::whole(&upload_with_tail(gpu, "dout", dout));
    run(
        gpu,
        &[
            activation::activation_backward(&dz, &dout_view, &yv, n, act),
            reduce::bias_backward(&db, &dz, rows, cols),
        ],
    );
    [fused, (read_checked(gpu, "unfused dz", &udz, n), read_checked(gpu, "unfused dbias", &udb, cols))]
}

#[test]
fn act_backward_colsum_is_bit_identical_to_act_backward_then_colsum() {
    let gpu = gpu();
    for act in ACTS {
        for &(rows, cols) in SHAPES {
            for (seed, in_place) in [(1, false), (2, true)] {
                let ctx = format!("{act:?} {rows}x{cols} seed={seed} in_place={in_place}");
                let n = rows * cols;
                let x: Vec<f32> = random_vec(n, seed * 31 + n as u64).iter().map(|v| v * 6.0).collect();
                let mut y = vec![0.0; n];
                cpu::activation::activation_forward(&mut y, &x, act);
                let dout = random_vec(n, seed * 17 + cols as u64);
                let [(dz, db), (udz, udb)] = fused_and_unfused(&gpu, &dout, &y, (rows, cols), act, in_place);
                assert_bits_eq(&format!("dz {ctx}"), &dz, &udz);
                assert_bits_eq(&format!("dbias {ctx}"), &db, &udb);

                let (mut dz_ref, mut db_ref) = (vec![0.0; n], vec![0.0; cols]);
                cpu::activation::activation_backward_bias(
                    &mut dz_ref,
                    &mut db_ref,
                    &dout,
                    &y,
                    (rows, cols),
                    act,
                );
                // dz: one product of dout and a derivative in [0, 1] (y(1-y), 1-y² may be contracted
                // into an fma: EPSILON/2 absolute, then the product's rounding).
                assert_close(&format!("dz {ctx}"), &dz, &dz_ref, f32::EPSILON / 2.0, 2.0 * f32::EPSILON);
                // dbias: a chain of ceil(rows/8) adds and 3 tree levels, each rounding by <= u of a
                // partial sum bounded by Σ|dz|, plus the dz errors above; a dropped or doubled row
                // moves a sum by ~|dz| ~ 0.1, far past this.
                let chain = rows.div_ceil(8) + 4;
                for j in 0..cols {
                    let abs: f64 = (0..rows).map(|i| dz_ref[i * cols + j].abs() as f64).sum();
                    let bound = (chain as f64 * 0.5 + 2.0) * f32::EPSILON as f64 * abs
                        + rows as f64 * f32::EPSILON as f64 * 0.5;
                    let err = (db[j] as f64 - db_ref[j] as f64).abs();
                    assert!(
                        err <= bound,
                        "dbias {ctx}: column {j}: gpu {} ref {} (err {err:e} > {bound:e})",
                        db[j],
                        db_ref[j]
                    );
                }
            }
        }
    }
}

/// Multiples of 1/64 times a derivative of 1 (leaky ReLU's positive side) or 1/4 (its slope) add
/// exactly in any order: the fused kernel must then equal the f64 reference bit for bit, so any
/// dropped, doubled or misplaced element shows.
#[test]
fn act_backward_colsum_is_exact_on_exactly_representable_values() {
    let gpu = gpu();
    let act = Activation::LeakyRelu(0.25);
    for &(rows, cols) in SHAPES {
        let n = rows * cols;
        // No zeros: a column of -0.0 sums to +0.0 on the GPU (from 0.0) and -0.0 in Rust's f64 sum.
        let dout: Vec<f32> = random_vec(n, n as u64)
            .iter()
            .map(|v| match (v * 256.0).round() / 64.0 {
                0.0 => 1.0 / 64.0,
                q => q,
            })
            .collect();
        let y: Vec<f32> = random_vec(n, n as u64 + 5).iter().map(|v| v.signum()).collect();
        let [(dz, db), _] = fused_and_unfused(&gpu, &dout, &y, (rows, cols), act, false);
        let (mut dz_ref, mut db_ref) = (vec![0.0; n], vec![0.0; cols]);
        cpu::activation::activation_backward_bias(&mut dz_ref, &mut db_ref, &dout, &y, (rows, cols), act);
        assert_bits_eq(&format!("exact dz {rows}x{cols}"), &dz, &dz_ref);
        assert_bits_eq(&format!("exact dbias {rows}x{cols}"), &db, &db_ref);
    }
}

/// (n, channels, h, w) of a conv layer's output: planes under and over the 64 lanes, one channel,
/// more channels than a row of workgroups would suggest, a single pixel.
const CONV_SHAPES: &[(usize, usize, usize, usize)] =
    &[(1, 1, 1, 1), (3, 5, 7, 9), (2, 4, 9, 9), (5, 70, 3, 3), (2, 3, 8, 8), (1, 2, 13, 11)];

#[test]
fn conv_bias_with_activation_is_bit_identical_to_act_backward_then_bias() {
    let gpu = gpu();
    for act in ACTS {
        for (i, &(n, c, h, w)) in CONV_SHAPES.iter().enumerate() {
            for transposed in [false, true] {
                let ctx = format!("{act:?} n={n} c={c} {h}x{w} transposed={transposed}");
                let len = n * c * h * w;
                let x: Vec<f32> = random_vec(len, i as u64 * 7 + 1).iter().map(|v| v * 6.0).collect();
                let mut y = vec![0.0; len];
                cpu::activation::activation_forward(&mut y, &x, act);
                let dout = random_vec(len, i as u64 * 7 + 2);
                // A 1x1 kernel with stride 1 keeps the plane: the output is [n, c, h, w].
                let s2 = Conv2dShape { n, c_in: 1, h, w, c_out: c, kh: 1, kw: 1, stride: 1, padding: 0 };
                let st = ConvTranspose2dShape {
                    n,
                    c_in: 1,
                    h,
                    w,
                    c_out: c,
                    kh: 1,
                    kw: 1,
                    stride: 1,
                    padding: 0,
                    output_padding: 0,
                };
                let (gy, fused_dz, fused_db) = (
                    upload_with_tail(&gpu, "y", &y),
                    upload_with_tail(&gpu, "dz", &dout),
                    upload_with_tail(&gpu, "db", &vec![SENTINEL; c]),
                );
                let (plain_dz, plain_db) =
                    (upload_with_tail(&gpu, "dz", &dout), upload_with_tail(&gpu, "db", &vec![SENTINEL; c]));
                let v = View::whole;
                let (fused, plain) = if transposed {
                    (
                        conv::conv_transpose2d_backward_bias_act(
                            &v(&fused_db),
                            &v(&fused_dz),
                            &v(&gy),
                            &st,
                            act,
                        ),
                        conv::conv_transpose2d_backward_bias(&v(&plain_db), &v(&plain_dz), &st),
                    )
                } else {
                    (
                        conv::conv2d_backward_bias_act(&v(&fused_db), &v(&fused_dz), &v(&gy), &s2, act),
                        conv::conv2d_backward_bias(&v(&plain_db), &v(&plain_dz), &s2),
                    )
                };
                run(&gpu, &fused);
                let mut plain_launches =
                    vec![activation::activation_backward(&v(&plain_dz), &v(&plain_dz), &v(&gy), len, act)];
                plain_launches.extend(plain);
                run(&gpu, &plain_launches);
                let (dz, db) = (
                    read_checked(&gpu, "fused dz", &fused_dz, len),
                    read_checked(&gpu, "fused db", &fused_db, c),
                );
                assert_bits_eq(&format!("dz {ctx}"), &dz, &read_checked(&gpu, "dz", &plain_dz, len));
                assert_bits_eq(&format!("dbias {ctx}"), &db, &read_checked(&gpu, "db", &plain_db, c));

                let mut dz_ref = vec![0.0; len];
                cpu::activation::activation_backward(&mut dz_ref, &dout, &y, act);
                let mut db_ref = vec![0.0f32; c];
                cpu::conv::channel_sum(&mut db_ref, &dz_ref, n, c, h, w);
                assert_close(&format!("dz {ctx}"), &dz, &dz_ref, f32::EPSILON / 2.0, 2.0 * f32::EPSILON);
                // A chain of n·ceil(h·w/64) adds and a 6-level tree per channel.
                let chain = n * (h * w).div_ceil(64) + 8;
                for ch in 0..c {
                    let abs: f64 = (0..n)
                        .flat_map(|b| (0..h * w).map(move |p| (b * c + ch) * h * w + p))
                        .map(|i| dz_ref[i].abs() as f64)
                        .sum();
                    let bound = (chain as f64 * 0.5 + 2.0) * f32::EPSILON as f64 * abs
                        + (n * h * w) as f64 * f32::EPSILON as f64 * 0.5;
                    let err = (db[ch] as f64 - db_ref[ch] as f64).abs();
                    assert!(
                        err <= bound,
                        "dbias {ctx}: channel {ch}: gpu {} ref {} (err {err:e} > {bound:e})",
                        db[ch],
                        db_ref[ch]
                    );
                }
            }
        }
    }
}
