//! Every non-matmul kernel against its CPU reference (src/cpu/*.rs): activation forward/backward,
//! colsum, the fused loss, the optimisers and the u8 gather, on awkward sizes and several seeds,
//! plus the pure `grid_1d` helper and the launchers' agreement with the shaders' bindings.
//!
//! Every output buffer is longer than the kernel's range and its tail is filled with a sentinel, so a
//! kernel that writes past `n` fails. Tolerances are exact (0) wherever the GPU performs the same
//! correctly rounded f32 operations as the reference; each looser one says why.

mod common;

use aegpu::expert::cpu;
use aegpu::expert::runner::{Plan, View};
use aegpu::gpu::{Gpu, StorageBuffer};
use aegpu::kernels::gather::{GatherParams, gather_u8, gather_u8_chunk, gather_u8_chunk_mapped};
use aegpu::kernels::loss::{self, LossKind};
use aegpu::kernels::optimizer::{Optimizer, optimizer_step};
use aegpu::kernels::{Activation, Launch, activation, grid_1d, reduce};
use common::guard::*;
use common::*;
use rand::RngExt;
use rand::seq::SliceRandom;

/// Sizes around the 256-wide workgroup and the 1024-element loss group.
const SIZES: &[usize] = &[1, 255, 256, 257, 1023, 1025];
const SEEDS: &[u64] = &[1, 2, 3];
const ACTS: [Activation; 5] = [
    Activation::Identity,
    Activation::Relu,
    Activation::LeakyRelu(0.2),
    Activation::Sigmoid,
    Activation::Tanh,
];
/// f32 unit roundoff, 2^-24.
const U: f32 = f32::EPSILON / 2.0;
/// Smallest n for which `grid_1d(n, 256)` must fold into y (more than 65535 workgroups of 256).
const FOLD_N: usize = 65535 * 256 + 257;

fn run(gpu: &Gpu, launches: &[Launch]) {
    Plan::new(gpu, "test", launches).unwrap().run(gpu).unwrap();
}

// ---------------------------------------------------------------------------------------------
// grid_1d
// ---------------------------------------------------------------------------------------------

#[test]
fn grid_1d_covers_n_and_respects_dispatch_limit() {
    let mut ns: Vec<usize> = vec![0, 1, 255, 256, 257, 1023, 1024, 1025, 65535, 65536];
    for per in [256usize, 1024] {
        for g in [65534usize, 65535, 65536, 65537, 131070, 131071, 65535 * 3 + 1, 1 << 20, 1 << 22] {
            ns.extend([g * per - 1, g * per, g * per + 1]);
        }
    }
    ns.extend([FOLD_N, u32::MAX as usize, 1 << 31]);
    for per in [1usize, 64, 256, 1024] {
        for &n in &ns {
            if per == 1 && n > 1 << 30 {
                continue; // one item per group: beyond 65535² groups there is no valid 2-D grid at all.
            }
            let [x, y, z] = grid_1d(n, per);
            let ctx = format!("grid_1d({n}, {per}) = [{x}, {y}, {z}]");
            let groups = n.div_ceil(per).max(1);
            assert!(x >= 1 && y >= 1 && z == 1, "{ctx}: empty or 3-D grid");
            assert!(x <= 65535 && y <= 65535, "{ctx}: exceeds 65535 workgroups per dimension");
            assert!(x as usize * y as usize >= groups, "{ctx}: covers fewer than {groups} groups");
            assert!(x as usize * y as usize * per >= n, "{ctx}: does not cover n");
            // No wasted row of workgroups, and no fold when one row is enough.
            assert!((x as usize) * (y as usize - 1) < groups, "{ctx}: a whole row of workgroups is idle");
            if groups <= 65535 {
                assert_eq!((x as usize, y), (groups, 1), "{ctx}: folded although {groups} groups fit in x");
            }
        }
    }
    // The size the 2-D tests below use does fold.
    assert_eq!(grid_1d(FOLD_N, 256), [32769, 2, 1]);
}

// ---------------------------------------------------------------------------------------------
// Activations
// ---------------------------------------------------------------------------------------------

/// Inputs in [-6, 6) (sigmoid and tanh saturate), with exact zeros, signed zero, tiny and huge values
/// planted at the start for odd seeds.
fn act_inputs(n: usize, seed: u64) -> Vec<f32> {
    let mut x: Vec<f32> = random_vec(n, seed).iter().map(|v| v * 6.0).collect();
    if seed % 2 == 1 {
        let special = [0.0, -0.0, 1e-30, -1e-30, 1e-3, -1e-3, 20.0, -20.0, 80.0, -80.0, 100.0, -100.0];
        for (xi, s) in x.iter_mut().zip(special) {
            *xi = s;
        }
    }
    x
}

/// (atol, rtol) for the forward pass.
fn forward_tol(act: Activation) -> (f32, f32) {
    match act {
        // max, select and one multiply: correctly rounded, so bit-exact.
        Activation::Identity | Activation::Relu | Activation::LeakyRelu(_) => (0.0, 0.0),
        // Vulkan bounds exp only to 3 + 2|x| ULP: for the |x| <= 6 bulk that is up to 15 ULP (1.8e-6)
        // of relative error passed on to 1/(1 + e^-x). Measured on lavapipe: 4.6e-7 at most, including
        // the planted |x| = 20, 80. So 2e-6 relative.
        Activation::Sigmoid => (0.0, 2e-6),
        // Vulkan's tanh precision is inherited from (e^x - e^-x)/(e^x + e^-x), which cancels near 0:
        // an absolute bound in ULP(1), not a relative one. Measured on lavapipe: 1 EPSILON absolute
        // (1.2e-5 relative on outputs ~1e-2), so 2 EPSILON absolute.
        Activation::Tanh => (2.0 * f32::EPSILON, 0.0),
    }
}

/// (atol, rtol) for the backward pass, per unit of |dout| <= 1.
fn backward_tol(act: Activation) -> (f32, f32) {
    match act {
        // dout * {1, 0, 1, slope}: one correctly rounded multiply.
        Activation::Identity | Activation::Relu | Activation::LeakyRelu(_) => (0.0, 0.0),
        // y(1-y) and 1-y²: WGSL lets a compiler contract 1 - y·y into an fma, which changes the
        // rounding of a result that cancels near |y| = 1 by up to ULP(y²)/2 <= EPSILON/2 absolute,
        // times |dout| <= 1; then two roundings of the products. (Bit-exact on lavapipe.)
        Activation::Sigmoid | Activation::Tanh => (f32::EPSILON / 2.0, 2.0 * f32::EPSILON),
    }
}

fn check_activation(gpu: &Gpu, n: usize, act: Activation, seed: u64, in_place: bool) {
    let ctx = format!("{act:?} n={n} seed={seed} in_place={in_place}");
    let x = act_inputs(n, seed);
    let dout = random_vec(n, seed + 1000);
    let mut y_ref = vec![0.0; n];
    cpu::activation::activation_forward(&mut y_ref, &x, act);
    // The backward is fed the reference forward output, so a forward bug cannot mask a backward one.
    let mut dx_ref = vec![0.0; n];
    cpu::activation::activation_backward(&mut dx_ref, &dout, &y_ref, act);

    let gx = upload_with_tail(gpu, "x", &x);
    let gy_in = upload_with_tail(gpu, "y_ref", &y_ref);
    let gdout = upload_with_tail(gpu, "dout", &dout);
    let (fwd_out, bwd_out) = if in_place {
        (gx.clone(), gdout.clone())
    } else {
        (upload_with_tail(gpu, "y", &vec![SENTINEL; n]), upload_with_tail(gpu, "dx", &vec![SENTINEL; n]))
    };
    run(
        gpu,
        &[
            activation::activation_forward(&View::whole(&fwd_out), &View::whole(&gx), n, act),
            activation::activation_backward(
                &View::whole(&bwd_out),
                &View::whole(&gdout),
                &View::whole(&gy_in),
                n,
                act,
            ),
        ],
    );
    let y = read_checked(gpu, &format!("forward {ctx}"), &fwd_out, n);
    let dx = read_checked(gpu, &format!("backward {ctx}"), &bwd_out, n);
    let (atol, rtol) = forward_tol(act);
    assert_close(&format!("forward {ctx}"), &y, &y_ref, atol, rtol);
    let (atol, rtol) = backward_tol(act);
    assert_close(&format!("backward {ctx}"), &dx, &dx_ref, atol, rtol);
    if !in_place {
        // Inputs are read-only for an out-of-place call.
        assert_bits_eq(&format!("x unchanged {ctx}"), &read_checked(gpu, "x", &gx, n), &x);
        assert_bits_eq(&format!("dout unchanged {ctx}"), &read_checked(gpu, "dout", &gdout, n), &dout);
    }
}

#[test]
fn activation_forward_backward_match_reference() {
    let gpu = gpu();
    for act in ACTS {
        for &n in SIZES {
            for &seed in SEEDS {
                check_activation(&gpu, n, act, seed, false);
            }
        }
    }
}

#[test]
fn activation_in_place_matches_reference() {
    let gpu = gpu();
    for act in ACTS {
        for &n in SIZES {
            check_activation(&gpu, n, act, 7 + n as u64, true);
        }
    }
}

/// Leaky ReLU forward and backward are bit-exact, so a wrong folded index anywhere in the second row
/// of workgroups (or an element computed twice / never) shows up exactly.
#[test]
fn activation_folded_2d_dispatch_matches_reference() {
    let gpu = gpu();
    let n = FOLD_N;
    assert!(grid_1d(n, 256)[1] > 1);
    let act = Activation::LeakyRelu(0.2);
    let x = random_vec(n, 41);
    let dout = random_vec(n, 42);
    let mut y_ref = vec![0.0; n];
    cpu::activation::activation_forward(&mut y_ref, &x, act);
    let mut dx_ref = vec![0.0; n];
    cpu::activation::activation_backward(&mut dx_ref, &dout, &y_ref, act);

    let gx = upload_with_tail(&gpu, "x", &x);
    let gy = upload_with_tail(&gpu, "y", &vec![SENTINEL; n]);
    let gdout = upload_with_tail(&gpu, "dout", &dout);
    run(
        &gpu,
        &[
            activation::activation_forward(&View::whole(&gy), &View::whole(&gx), n, act),
            // In place, from the GPU's own forward output.
            activation::activation_backward(
                &View::whole(&gdout),
                &View::whole(&gdout),
                &View::whole(&gy),
                n,
                act,
            ),
        ],
    );
    assert_bits_eq("folded forward", &read_checked(&gpu, "folded forward", &gy, n), &y_ref);
    assert_bits_eq("folded backward", &read_checked(&gpu, "folded backward", &gdout, n), &dx_ref);
}

// ---------------------------------------------------------------------------------------------
// colsum
// ---------------------------------------------------------------------------------------------

const COLSUM_SHAPES: &[(usize, usize)] =
    &[(1, 1), (1, 300), (300, 1), (7, 32), (8, 33), (9, 31), (257, 33), (1000, 7), (64, 65)];

/// Rigorous f32 bound: each column is a chain of at most ceil(rows/8) sequential adds, 3 tree levels
/// and the accumulate add, each rounding by <= u relative to a partial sum bounded by Σ|x|; the
/// reference adds one rounding of its own. A dropped or doubled row changes a sum by |x| ~ 0.5, far
/// more than this bound (~4e-3 for 1000 rows).
#[allow(clippy::too_many_arguments)]
fn check_colsum_bound(
    ctx: &str,
    got: &[f32],
    want: &[f32],
    inp: &[f32],
    init: &[f32],
    rows: usize,
    cols: usize,
    accumulate: bool,
) {
    let chain = rows.div_ceil(8) + 3 + 2;
    for j in 0..cols {
        let abs_sum: f64 = (0..rows).map(|i| inp[i * cols + j].abs() as f64).sum::<f64>()
            + if accumulate { init[j].abs() as f64 } else { 0.0 };
        let bound = 1.01 * chain as f64 * U as f64 * abs_sum;
        let err = (got[j] as f64 - want[j] as f64).abs();
        assert!(
            err <= bound,
            "{ctx}: column {j}: gpu {} ref {} (err {err:e} > bound {bound:e})",
            got[j],
            want[j]
        );
    }
}

/// Runs colsum on `inp` [rows, cols] into a buffer initialised with `init` (cols words + tail).
fn gpu_colsum(gpu: &Gpu, inp: &[f32], init: &[f32], rows: usize, cols: usize, accumulate: bool) -> Vec<f32> {
    let gin = upload_with_tail(gpu, "in", inp);
    let gout = upload_with_tail(gpu, "out", init);
    run(gpu, &[reduce::colsum(&View::whole(&gout), &View::whole(&gin), rows, cols, accumulate)]);
    read_checked(gpu, &format!("colsum {rows}x{cols} acc={accumulate}"), &gout, cols)
}

#[test]
fn colsum_matches_reference_with_and_without_accumulate() {
    let gpu = gpu();
    for &(rows, cols) in COLSUM_SHAPES {
        for accumulate in [false, true] {
            for &seed in SEEDS {
                let ctx = format!("colsum {rows}x{cols} acc={accumulate} seed={seed}");
                let inp = random_vec(rows * cols, seed * 100 + rows as u64);
                let init = if accumulate { random_vec(cols, seed + 7) } else { vec![SENTINEL; cols] };
                let mut want = init.clone();
                cpu::reduce::colsum(&mut want, &inp, rows, cols, accumulate);
                let got = gpu_colsum(&gpu, &inp, &init, rows, cols, accumulate);
                check_colsum_bound(&ctx, &got, &want, &inp, &init, rows, cols, accumulate);
            }
        }
    }
}

/// Multiples of 1/64 with small partial sums add exactly in f32 in any order: the GPU must then be
/// bit-identical to the f64 reference, so any dropped, doubled or misplaced element shows.
#[test]
fn colsum_is_exact_on_exactly_representable_values() {
    let gpu = gpu();
    for &(rows, cols) in COLSUM_SHAPES {
        for accumulate in [false, true] {
            let mut r = rng(rows as u64 * 31 + cols as u64);
            let mut q = |n: usize| -> Vec<f32> {
                (0..n).map(|_| r.random_range(-256i32..=256) as f32 / 64.0).collect()
            };
            let inp = q(rows * cols);
            let init = if accumulate { q(cols) } else { vec![SENTINEL; cols] };
            let mut want = init.clone();
            cpu::reduce::colsum(&mut want, &inp, rows, cols, accumulate);
            let got = gpu_colsum(&gpu, &inp, &init, rows, cols, accumulate);
            assert_bits_eq(&format!("exact colsum {rows}x{cols} acc={accumulate}"), &got, &want);
        }
    }
}

#[test]
fn colsum_is_deterministic() {
    let gpu = gpu();
    for &(rows, cols) in &[(1000usize, 7usize), (257, 33), (4096, 2)] {
        let inp: Vec<f32> = random_vec(rows * cols, 5).iter().map(|v| v * 1000.0).collect();
        let gin = upload_with_tail(&gpu, "in", &inp);
        let outs: Vec<StorageBuffer> =
            (0..2).map(|_| upload_with_tail(&gpu, "out", &vec![0.0; cols])).collect();
        // Two plans into two buffers, one of them run twice: three results, all bit-identical.
        let plans: Vec<Plan> = outs
            .iter()
            .map(|o| {
                Plan::new(
                    &gpu,
                    "colsum",
                    &[reduce::colsum(&View::whole(o), &View::whole(&gin), rows, cols, false)],
                )
                .unwrap()
            })
            .collect();
        plans[0].run(&gpu).unwrap();
        let first = read_checked(&gpu, "colsum run 1", &outs[0], cols);
        plans[0].run(&gpu).unwrap();
        plans[1].run(&gpu).unwrap();
        let again = read_checked(&gpu, "colsum run 2", &outs[0], cols);
        let other = read_checked(&gpu, "colsum other plan", &outs[1], cols);
        assert_bits_eq(&format!("colsum {rows}x{cols} run twice"), &again, &first);
        assert_bits_eq(&format!("colsum {rows}x{cols} two plans"), &other, &first);
        // And it is the right sum, not just a stable one.
        let mut want = vec![0.0; cols];
        cpu::reduce::colsum(&mut want, &inp, rows, cols, false);
        check_colsum_bound(
            &format!("colsum {rows}x{cols} value"),
            &first,
            &want,
            &inp,
            &[],
            rows,
            cols,
            false,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Loss
// ---------------------------------------------------------------------------------------------

const LOSS_SIZES: &[usize] = &[1, 255, 1000, 1023, 1024, 1025, 4097, 70001];
const LOSS_CASES: [(LossKind, Activation); 3] = [
    (LossKind::Mse, Activation::Identity),
    (LossKind::Mse, Activation::Sigmoid),
    (LossKind::Bce, Activation::Sigmoid),
];

/// Pixel-like targets: many exact zeros (MNIST background), some exact ones, the rest in [0, 1).
fn targets(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| match r.random_range(0..10) {
            0..4 => 0.0,
            4 => 1.0,
            _ => r.random::<f32>(),
        })
        .collect()
}

/// Logits for a sigmoid output in [-6, 6); reconstructions for an identity output near the target,
/// some of them outside [0, 1] so the cross-entropy clamp is exercised.
fn loss_inputs(n: usize, out_act: Activation, t: &[f32], seed: u64) -> Vec<f32> {
    let noise = random_vec(n, seed);
    match out_act {
        Activation::Sigmoid => noise.iter().map(|v| v * 6.0).collect(),
        _ => t.iter().zip(&noise).map(|(t, v)| t + 0.3 * v).collect(),
    }
}

struct LossResult {
    totals: [f32; 2],
    dz: Option<Vec<f32>>,
}

fn gpu_loss(
    gpu: &Gpu,
    z: &[f32],
    t: &[f32],
    kind: LossKind,
    out_act: Activation,
    grad_scale: f32,
    dz_buf: Option<&StorageBuffer>,
) -> LossResult {
    let n = z.len();
    let gz = upload_with_tail(gpu, "z", z);
    let gt = upload_with_tail(gpu, "t", t);
    let rows = loss::partial_rows(n);
    assert_eq!(rows, n.div_ceil(1024).max(1), "partial_rows({n})");
    let gpart = upload_with_tail(gpu, "partials", &vec![SENTINEL; 2 * rows]);
    let gtot = upload_with_tail(gpu, "totals", &[SENTINEL; 2]);
    let dz_view = dz_buf.map(View::whole);
    let launches = loss::loss_forward_backward(
        &View::whole(&gtot),
        &View::whole(&gpart),
        dz_view.as_ref(),
        &View::whole(&gz),
        &View::whole(&gt),
        n,
        kind,
        out_act,
        grad_scale,
    );
    run(gpu, &launches);
    let ctx = format!("{kind:?}/{out_act:?} n={n}");
    read_checked(gpu, &format!("partials {ctx}"), &gpart, 2 * rows);
    let tot = read_checked(gpu, &format!("totals {ctx}"), &gtot, 2);
    LossResult { totals: [tot[0], tot[1]], dz: dz_buf.map(|b| read_checked(gpu, &format!("dz {ctx}"), b, n)) }
}

/// Relative tolerance on the two totals. Every term is >= 0, so the f32 sums do not cancel: a
/// chain of 4 sequential adds, an 8-level tree and ceil(rows/8) + 3 adds in colsum costs at most
/// (16 + rows/8)·u relative, 1.5e-6 for the largest n here (69 rows). Per term, the sigmoid's and the
/// softplus' exp/log add well under 1e-6 (measured: totals within 2.5e-7 on lavapipe). 3e-6 still
/// catches one element in 70001 missing (1.4e-5); dz is checked element by element anyway.
const TOTAL_RTOL: f64 = 3e-6;

fn check_totals(ctx: &str, got: [f32; 2], want: (f64, f64), ce_slack: f64) {
    let (se, ce) = want;
    for (name, g, w, slack) in [("squared error", got[0], se, 0.0), ("cross-entropy", got[1], ce, ce_slack)] {
        assert!(g.is_finite(), "{ctx}: {name} total is {g}");
        let err = (g as f64 - w).abs();
        assert!(
            err <= TOTAL_RTOL * w.abs() + slack + 1e-30,
            "{ctx}: {name} total gpu {g} ref {w} (rel err {:e}, slack {slack:e})",
            err / w.abs().max(1e-30)
        );
    }
}

#[test]
fn loss_totals_and_gradient_match_reference() {
    let gpu = gpu();
    for (kind, out_act) in LOSS_CASES {
        loss::check(kind, out_act).unwrap();
        for &n in LOSS_SIZES {
            for seed in [11u64, 12] {
                let ctx = format!("{kind:?}/{out_act:?} n={n} seed={seed}");
                let t = targets(n, seed);
                let z = loss_inputs(n, out_act, &t, seed + 50);
                let grad_scale = 1.0 / n as f32;
                let mut dz_ref = vec![0.0; n];
                let want =
                    cpu::loss::loss_forward_backward(Some(&mut dz_ref), &z, &t, kind, out_act, grad_scale);
                let gdz = upload_with_tail(&gpu, "dz", &vec![SENTINEL; n]);
                let got = gpu_loss(&gpu, &z, &t, kind, out_act, grad_scale, Some(&gdz));
                check_totals(&ctx, got.totals, want, 0.0);
                // dz = s·g. y = sigmoid(z) carries the forward's exp error (<= 2e-6 relative, see
                // forward_tol), which y - t turns into an absolute error that is large relative to a
                // small y - t; hence an absolute floor of 1e-6·s (measured: 1.5e-8·s) and 2e-6
                // relative (measured: 3.3e-7).
                assert_close(
                    &format!("dz {ctx}"),
                    got.dz.as_ref().unwrap(),
                    &dz_ref,
                    1e-6 * grad_scale,
                    2e-6,
                );
            }
        }
    }
}

#[test]
fn loss_without_dz_writes_no_gradient_and_same_totals() {
    let gpu = gpu();
    for (kind, out_act) in LOSS_CASES {
        for n in [1000usize, 3001] {
            let t = targets(n, 21);
            let z = loss_inputs(n, out_act, &t, 22);
            let gdz = upload_with_tail(&gpu, "dz", &vec![SENTINEL; n]);
            let with = gpu_loss(&gpu, &z, &t, kind, out_act, 0.5, Some(&gdz));
            let untouched = upload_with_tail(&gpu, "dz unused", &vec![SENTINEL; n]);
            let without = gpu_loss(&gpu, &z, &t, kind, out_act, 0.5, None);
            let ctx = format!("{kind:?}/{out_act:?} n={n} dz=None");
            // Without dz the pass binds partials in its slot: write_grad = 0 must keep it from
            // scribbling over the partial sums, so the totals are bit-identical.
            assert_bits_eq(&ctx, &without.totals, &with.totals);
            assert!(without.dz.is_none());
            assert_bits_eq(&ctx, &read_checked(&gpu, &ctx, &untouched, n), &vec![SENTINEL; n]);
            check_totals(
                &ctx,
                without.totals,
                cpu::loss::loss_forward_backward(None, &z, &t, kind, out_act, 0.5),
                0.0,
            );
        }
    }
}

/// The contract says the sigmoid cross-entropy is "stable for any z": saturated logits must give
/// finite totals and gradients that match the f64 reference.
#[test]
fn loss_extreme_logits_stay_finite() {
    let gpu = gpu();
    let logits = [80.0f32, -80.0, 100.0, -100.0, 1000.0, -1000.0, 30.0, -30.0, 0.0];
    let tvals = [0.0f32, 1.0, 0.5, 0.25];
    let mut z = Vec::new();
    let mut t = Vec::new();
    for &zi in &logits {
        for &ti in &tvals {
            z.push(zi);
            t.push(ti);
        }
    }
    // Pad past one 1024-element group with ordinary values so the multi-group path is used too.
    let extra = 1500;
    z.extend(random_vec(extra, 31).iter().map(|v| v * 4.0));
    t.extend(targets(extra, 32));
    let n = z.len();
    for (kind, out_act) in [(LossKind::Bce, Activation::Sigmoid), (LossKind::Mse, Activation::Sigmoid)] {
        let ctx = format!("extreme logits {kind:?}/{out_act:?}");
        let grad_scale = 1.0 / n as f32;
        let mut dz_ref = vec![0.0; n];
        let want = cpu::loss::loss_forward_backward(Some(&mut dz_ref), &z, &t, kind, out_act, grad_scale);
        assert!(want.0.is_finite() && want.1.is_finite());
        let gdz = upload_with_tail(&gpu, "dz", &vec![SENTINEL; n]);
        let got = gpu_loss(&gpu, &z, &t, kind, out_act, grad_scale, Some(&gdz));
        let dz = got.dz.unwrap();
        if let Some(i) = dz.iter().position(|g| !g.is_finite()) {
            panic!("{ctx}: dz[{i}] = {} for z = {}, t = {}", dz[i], z[i], t[i]);
        }
        // |z| up to 1000: exp's 3 + 2|x| ULP bound only matters where exp(-|z|) is negligible
        // against max(z, 0) - z·t, so the tolerances above still hold.
        check_totals(&ctx, got.totals, want, 0.0);
        assert_close(&format!("dz {ctx}"), &dz, &dz_ref, 1e-6 * grad_scale, 2e-6);
    }
    // Just the ±80 logits alone: each BCE total is exactly 80 per saturated wrong answer.
    let z80 = [80.0f32, -80.0, 80.0, -80.0];
    let t80 = [0.0f32, 1.0, 1.0, 0.0];
    let got = gpu_loss(&gpu, &z80, &t80, LossKind::Bce, Activation::Sigmoid, 1.0, None);
    assert!((got.totals[1] - 160.0).abs() <= 160.0 * 1e-6, "BCE of ±80 logits: {} (want 160)", got.totals[1]);
}

#[test]
fn loss_check_accepts_only_valid_output_activations() {
    use Activation::*;
    for act in [Identity, Relu, LeakyRelu(0.2), Sigmoid, Tanh] {
        let mse_ok = matches!(act, Identity | Sigmoid);
        let bce_ok = matches!(act, Sigmoid);
        assert_eq!(loss::check(LossKind::Mse, act).is_ok(), mse_ok, "Mse with {act:?}");
        assert_eq!(loss::check(LossKind::Bce, act).is_ok(), bce_ok, "Bce with {act:?}");
    }
    let msg = loss::check(LossKind::Bce, Identity).unwrap_err().to_string();
    assert!(msg.to_lowercase().contains("sigmoid"), "error should name the fix: {msg}");
    assert!(loss::check(LossKind::Bce, Relu).is_err());
}

// ---------------------------------------------------------------------------------------------
// Optimizers
// ---------------------------------------------------------------------------------------------

const OPTIMIZERS: [Optimizer; 4] = [
    Optimizer::Sgd { lr: 0.05, momentum: 0.9, weight_decay: 0.0 },
    Optimizer::Sgd { lr: 0.05, momentum: 0.9, weight_decay: 1e-2 },
    Optimizer::Adam { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-2 },
    Optimizer::AdamW { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1 },
];

#[test]
fn optimizer_steps_match_reference() {
    let gpu = gpu();
    for opt in OPTIMIZERS {
        for n in [1000usize, 257] {
            let is_sgd = matches!(opt, Optimizer::Sgd { .. });
            let mut p = random_vec(n, 61);
            let mut m = vec![0.0f32; n];
            let mut v = vec![0.0f32; n];
            let gp = upload_with_tail(&gpu, "params", &p);
            let gg = upload_with_tail(&gpu, "grads", &vec![0.0; n]);
            let gm = upload_with_tail(&gpu, "m", &m);
            let gv = upload_with_tail(&gpu, "v", &v);
            for t in 1..=5u64 {
                let ctx = format!("{opt:?} n={n} t={t}");
                // Fresh gradients every step, of mixed scale: at 1e-8, sqrt(v̂) is comparable to Adam's
                // ε, so where ε goes (and whether it is there) changes the update by O(lr).
                let g: Vec<f32> = random_vec(n, 70 + t)
                    .iter()
                    .enumerate()
                    .map(|(i, x)| match i % 7 {
                        0 => x * 1e-4,
                        1 => x * 1e-8,
                        _ => *x,
                    })
                    .collect();
                gg.write(&gpu, 0, &g);
                cpu::optimizer::optimizer_step(&opt, &mut p, &g, &mut m, &mut v, t);
                // SGD has no second moment: the launcher's contract is to pass m again.
                let v_view = if is_sgd { View::whole(&gm) } else { View::whole(&gv) };
                run(
                    &gpu,
                    &[optimizer_step(
                        &opt,
                        &View::whole(&gp),
                        &View::whole(&gg),
                        &View::whole(&gm),
                        &v_view,
                        n,
                        t,
                    )],
                );
                let gp_now = read_checked(&gpu, &format!("params {ctx}"), &gp, n);
                let gm_now = read_checked(&gpu, &format!("m {ctx}"), &gm, n);
                let gv_now = read_checked(&gpu, &format!("v {ctx}"), &gv, n);
                assert_bits_eq(&format!("grads untouched {ctx}"), &read_checked(&gpu, "grads", &gg, n), &g);
                // GPU and reference evolve independently over five steps (bit-exact on lavapipe). Other
                // compilers may contract a·b + c into an fma: m and v can then drift by ~1 ULP of
                // |g| <= 1 per step where the sum cancels (5 steps: <= 3e-7 absolute on m, 5e-10 on
                // v ~ 1e-3·g²), and Vulkan bounds sqrt and divide only to a few ULP. The update is
                // lr·O(1), so those stay a few ULP of O(1) parameters: 1e-6 absolute.
                assert_close(&format!("params {ctx}"), &gp_now, &p, 1e-6, 1e-6);
                assert_close(&format!("m {ctx}"), &gm_now, &m, 5e-7, 1e-6);
                if is_sgd {
                    assert_bits_eq(&format!("v untouched by SGD {ctx}"), &gv_now, &vec![0.0; n]);
                } else {
                    assert_close(&format!("v {ctx}"), &gv_now, &v, 1e-9, 1e-6);
                }
            }
            // The run moved the parameters (the test is not comparing two no-ops).
            let start = random_vec(n, 61);
            assert!(
                p.iter().zip(&start).filter(|(a, b)| a != b).count() > n / 2,
                "{opt:?}: reference did not move"
            );
        }
    }
}

/// At t = 1 Adam's bias-corrected step is lr·sign(g) (up to ε): a closed form independent of the
/// reference implementation.
#[test]
fn adam_first_step_is_lr_times_sign() {
    let gpu = gpu();
    let n = 257;
    let lr = 1e-2;
    let opt = Optimizer::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
    let p0 = random_vec(n, 81);
    let g: Vec<f32> = random_vec(n, 82).iter().map(|x| x + if *x >= 0.0 { 0.1 } else { -0.1 }).collect();
    let gp = upload_with_tail(&gpu, "params", &p0);
    let gg = upload_with_tail(&gpu, "grads", &g);
    let gm = upload_with_tail(&gpu, "m", &vec![0.0; n]);
    let gv = upload_with_tail(&gpu, "v", &vec![0.0; n]);
    run(
        &gpu,
        &[optimizer_step(
            &opt,
            &View::whole(&gp),
            &View::whole(&gg),
            &View::whole(&gm),
            &View::whole(&gv),
            n,
            1,
        )],
    );
    let p = read_checked(&gpu, "params", &gp, n);
    let want: Vec<f32> = p0.iter().zip(&g).map(|(p, g)| p - lr * g.signum()).collect();
    // |g| >= 0.1 so ε/|g| <= 1e-7 and the step is lr·(1 ± ~1e-6) (f32 rounding of 1-β, of the
    // bias corrections, sqrt and divide): ~1e-8, plus an ULP of |p| <= 1 (6e-8) for the final
    // subtraction. Measured: 3.7e-9.
    assert_close("Adam t=1", &p, &want, 2e-7, 0.0);
}

// ---------------------------------------------------------------------------------------------
// gather_u8
// ---------------------------------------------------------------------------------------------

/// Random bytes, including 0 and 255.
fn dataset(examples: usize, dim: usize, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let mut d: Vec<u8> = (0..examples * dim).map(|_| r.random::<u8>()).collect();
    d[0] = 0;
    if d.len() > 1 {
        d[1] = 255;
    }
    let last = d.len() - 1;
    d[last] = 255; // the very last byte, in the zero-padded final word
    d
}

#[test]
fn gather_u8_matches_reference_exactly() {
    let gpu = gpu();
    // (examples, dim): byte counts 35, 65, 5005 and 999 are not multiples of 4; 784·37 is.
    for (examples, dim) in [(7usize, 5usize), (13, 5), (1001, 5), (333, 3), (37, 784), (1, 5)] {
        let bytes = dataset(examples, dim, examples as u64 * 7 + dim as u64);
        let gdata = StorageBuffer::from_slice(&gpu, "data", &bytes).unwrap();
        assert_eq!(gdata.len, bytes.len().div_ceil(4), "from_slice::<u8> packs 4 bytes per word");
        for seed in [1u64, 2] {
            let mut index: Vec<u32> = (0..examples as u32).collect();
            index.shuffle(&mut rng(seed));
            let offset = if examples > 2 { 1 + seed as usize % 2 } else { 0 };
            let batch = (examples - offset).min(64);
            // The last example (its bytes end in the padded word) is always in the batch.
            let pos = index.iter().position(|&e| e as usize == examples - 1).unwrap();
            index.swap(pos, offset + batch - 1);
            let ctx =
                format!("gather examples={examples} dim={dim} seed={seed} offset={offset} batch={batch}");
            let gindex = StorageBuffer::from_slice(&gpu, "index", &index).unwrap();
            let gout = upload_with_tail(&gpu, "out", &vec![SENTINEL; batch * dim]);
            run(
                &gpu,
                &[gather_u8(
                    &View::whole(&gout),
                    &View::whole(&gdata),
                    &View::whole(&gindex),
                    batch,
                    dim,
                    offset,
                )],
            );
            let mut want = vec![0.0; batch * dim];
            cpu::gather::gather_u8(&mut want, &bytes, &index, batch, dim, offset);
            // x / 255 is one correctly rounded division of an exact integer: bit-exact.
            assert_bits_eq(&ctx, &read_checked(&gpu, &ctx, &gout, batch * dim), &want);
        }
    }
}

/// The training loop builds the gather once and rewrites only its offset: do the same through
/// `Plan::set_uniform` and walk a whole shuffled epoch.
#[test]
fn gather_u8_offset_rewritten_in_place() {
    let gpu = gpu();
    let (examples, dim, batch) = (50usize, 5usize, 16usize);
    let bytes = dataset(examples, dim, 91);
    let mut index: Vec<u32> = (0..examples as u32).collect();
    index.shuffle(&mut rng(92));
    let gdata = StorageBuffer::from_slice(&gpu, "data", &bytes).unwrap();
    let gindex = StorageBuffer::from_slice(&gpu, "index", &index).unwrap();
    let gout = upload_with_tail(&gpu, "out", &vec![SENTINEL; batch * dim]);
    let plan = Plan::new(
        &gpu,
        "gather",
        &[gather_u8(&View::whole(&gout), &View::whole(&gdata), &View::whole(&gindex), batch, dim, 0)],
    )
    .unwrap();
    for offset in (0..=examples - batch).step_by(batch).chain([examples - batch, 3]) {
        let params = GatherParams {
            batch: batch as u32,
            dim: dim as u32,
            offset: offset as u32,
            first: 0,
            count: u32::MAX,
            zero: 0.0,
            scale: 255.0,
            _pad: 0,
        };
        plan.set_uniform(&gpu, 0, bytemuck::bytes_of(&params));
        plan.run(&gpu).unwrap();
        let mut want = vec![0.0; batch * dim];
        cpu::gather::gather_u8(&mut want, &bytes, &index, batch, dim, offset);
        let ctx = format!("gather offset={offset}");
        assert_bits_eq(&ctx, &read_checked(&gpu, &ctx, &gout, batch * dim), &want);
    }
}

/// Whitened patches are bytes around 127.5: the mapped gather gives `(byte - zero) / scale`, and
/// the unit map `(0, 255)` is the plain gather bit for bit.
#[test]
fn gather_u8_mapped_matches_reference_exactly() {
    let gpu = gpu();
    let (examples, dim, batch) = (9usize, 7usize, 6usize);
    let bytes = dataset(examples, dim, 93);
    let mut index: Vec<u32> = (0..examples as u32).collect();
    index.shuffle(&mut rng(94));
    let gdata = StorageBuffer::from_slice(&gpu, "data", &bytes).unwrap();
    let gindex = StorageBuffer::from_slice(&gpu, "index", &index).unwrap();
    for map in [(127.5f32, 39.3f32), (0.0, 255.0)] {
        let gout = upload_with_tail(&gpu, "out", &vec![SENTINEL; batch * dim]);
        let (out, data, idx) = (View::whole(&gout), View::whole(&gdata), View::whole(&gindex));
        let launch = gather_u8_chunk_mapped(&out, &data, &idx, batch, dim, 2, 0..examples, map);
        Plan::new(&gpu, "gather mapped", &[launch]).unwrap().run(&gpu).unwrap();
        let mut want = vec![0.0; batch * dim];
        cpu::gather::gather_u8_chunk_mapped(&mut want, &bytes, &index, batch, dim, 2, 0..examples, map);
        let ctx = format!("gather map {map:?}");
        assert_bits_eq(&ctx, &read_checked(&gpu, &ctx, &gout, batch * dim), &want);
        if map == (0.0, 255.0) {
            let mut plain = vec![0.0; batch * dim];
            cpu::gather::gather_u8(&mut plain, &bytes, &index, batch, dim, 2);
            assert_bits_eq("unit map vs plain", &want, &plain);
        }
    }
}

/// A dataset split into chunks of whole examples, one buffer and one launch each, in one plan: every
/// row is written by exactly its chunk's launch, bit-identical to the whole-dataset gather. Each
/// chunk alone writes only its own rows (the others keep SENTINEL).
#[test]
fn gather_u8_chunks_match_reference_exactly() {
    let gpu = gpu();
    // (examples, dim, examples per chunk): dims not a multiple of 4, odd chunk sizes, a short last
    // chunk, one example per chunk, and chunks of a single byte-misaligned example.
    for (examples, dim, per_chunk) in
        [(23usize, 5usize, 7usize), (40, 3, 3), (9, 7, 1), (30, 784, 11), (12, 1, 5)]
    {
        let bytes = dataset(examples, dim, 1000 + examples as u64 + dim as u64);
        let starts: Vec<usize> = (0..examples).step_by(per_chunk).collect();
        let chunks: Vec<(std::ops::Range<usize>, StorageBuffer)> = starts
            .iter()
            .map(|&s| {
                let r = s..(s + per_chunk).min(examples);
                let b = StorageBuffer::from_slice(&gpu, "chunk", &bytes[r.start * dim..r.end * dim]).unwrap();
                (r, b)
            })
            .collect();
        // A shuffled permutation after one position the batch skips: the batch spans every chunk.
        let mut index: Vec<u32> = (0..examples as u32).collect();
        index.shuffle(&mut rng(examples as u64));
        index.insert(0, 0);
        let (offset, batch) = (1, examples);
        let ctx = format!("chunked gather examples={examples} dim={dim} per_chunk={per_chunk}");
        let mut spanned: Vec<usize> = index[offset..].iter().map(|&e| e as usize / per_chunk).collect();
        spanned.sort();
        spanned.dedup();
        assert_eq!(spanned.len(), chunks.len(), "{ctx}: the batch spans every chunk");
        let gindex = StorageBuffer::from_slice(&gpu, "index", &index).unwrap();
        let gout = upload_with_tail(&gpu, "out", &vec![SENTINEL; batch * dim]);
        let launch = |(r, b): &(std::ops::Range<usize>, StorageBuffer)| {
            gather_u8_chunk(
                &View::whole(&gout),
                &View::whole(b),
                &View::whole(&gindex),
                batch,
                dim,
                offset,
                r.clone(),
            )
        };
        // One chunk alone: only its rows.
        let (r, b) = &chunks[chunks.len() / 2];
        run(&gpu, &[launch(&chunks[chunks.len() / 2])]);
        let mut want = vec![SENTINEL; batch * dim];
        let chunk_bytes = &bytes[r.start * dim..r.end * dim];
        cpu::gather::gather_u8_chunk(&mut want, chunk_bytes, &index, batch, dim, offset, r.clone());
        assert_eq!(b.len, chunk_bytes.len().div_ceil(4));
        assert_bits_eq(
            &format!("{ctx}, chunk {r:?} alone"),
            &read_checked(&gpu, &ctx, &gout, batch * dim),
            &want,
        );
        // Every chunk, as the training step runs them: the whole-dataset gather, bit for bit.
        run(&gpu, &chunks.iter().map(launch).collect::<Vec<_>>());
        let mut want = vec![SENTINEL; batch * dim];
        cpu::gather::gather_u8(&mut want, &bytes, &index, batch, dim, offset);
        assert_bits_eq(&ctx, &read_checked(&gpu, &ctx, &gout, batch * dim), &want);
    }
}

/// batch·dim past 65535·256: the folded index `gid.x + gid.y·nwg.x·256` then `/ dim`.
#[test]
fn gather_u8_folded_2d_dispatch() {
    let gpu = gpu();
    let (examples, dim) = (301usize, 784usize);
    let batch = FOLD_N.div_ceil(dim);
    assert!(grid_1d(batch * dim, 256)[1] > 1);
    let bytes = dataset(examples, dim, 93);
    let offset = 5;
    let mut r = rng(94);
    let index: Vec<u32> = (0..offset + batch).map(|_| r.random_range(0..examples as u32)).collect();
    let gdata = StorageBuffer::from_slice(&gpu, "data", &bytes).unwrap();
    let gindex = StorageBuffer::from_slice(&gpu, "index", &index).unwrap();
    let gout = upload_with_tail(&gpu, "out", &vec![SENTINEL; batch * dim]);
    run(
        &gpu,
        &[gather_u8(&View::whole(&gout), &View::whole(&gdata), &View::whole(&gindex), batch, dim, offset)],
    );
    let mut want = vec![0.0; batch * dim];
    cpu::gather::gather_u8(&mut want, &bytes, &index, batch, dim, offset);
    assert_bits_eq("folded gather", &read_checked(&gpu, "folded gather", &gout, batch * dim), &want);
}

// ---------------------------------------------------------------------------------------------
// Launchers vs shaders
// ---------------------------------------------------------------------------------------------

/// Each launcher's uniform bytes match the size of its shader's `Params` (binding 0), and its views
/// fill exactly the storage bindings 1..=k the shader declares, reaching every one its entry point
/// uses (a module may declare more for its other entry points: activation.wgsl's fused backward
/// has a fifth).
#[test]
fn launchers_match_shader_bindings() {
    let gpu = gpu();
    let b = StorageBuffer::zeroed(&gpu, "any", 16).unwrap();
    let v = View::whole(&b);
    let opt = Optimizer::parse("adam", 1e-3, 0.0).unwrap();
    let mut launches: Vec<Launch> = vec![
        activation::activation_forward(&v, &v, 4, Activation::Relu),
        activation::activation_backward(&v, &v, &v, 4, Activation::Tanh),
        activation::activation_backward_bias(&v, &v, &v, &v, 2, 2, Activation::Relu, false),
        reduce::colsum(&v, &v, 2, 2, false),
        optimizer_step(&opt, &v, &v, &v, &v, 4, 1),
        optimizer_step(&Optimizer::parse("sgd", 1e-3, 0.0).unwrap(), &v, &v, &v, &v, 4, 1),
        gather_u8(&v, &v, &v, 1, 4, 0),
    ];
    launches.extend(loss::loss_forward_backward(
        &v,
        &v,
        Some(&v),
        &v,
        &v,
        4,
        LossKind::Mse,
        Activation::Sigmoid,
        1.0,
    ));
    for l in &launches {
        let src = l.key.shader.source;
        let module =
            naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
        let ctx = format!("{} ({}::{})", l.label, l.key.shader.name, l.key.entry);
        let entry = module.entry_points.iter().position(|ep| ep.name == l.key.entry);
        let entry = entry.unwrap_or_else(|| panic!("{ctx}: no such entry point"));
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
        let used = info.get_entry_point(entry);
        // The entry's last used storage binding: the views must reach it.
        let last_used = module
            .global_variables
            .iter()
            .filter(|(h, g)| !used[*h].is_empty() && matches!(g.space, naga::AddressSpace::Storage { .. }))
            .filter_map(|(_, g)| g.binding.as_ref().map(|b| b.binding))
            .max()
            .unwrap_or(0);
        let mut storage = Vec::new();
        let mut uniform_size = None;
        for (_, g) in module.global_variables.iter() {
            let Some(rb) = &g.binding else { continue };
            if rb.binding > l.views.len() as u32 {
                continue; // another entry point's binding
            }
            assert_eq!(rb.group, 0, "{ctx}: everything lives in group 0");
            match g.space {
                naga::AddressSpace::Uniform => {
                    assert_eq!(rb.binding, 0, "{ctx}: the uniform is binding 0");
                    uniform_size = Some(module.types[g.ty].inner.size(module.to_ctx()));
                }
                naga::AddressSpace::Storage { .. } => storage.push(rb.binding),
                other => panic!("{ctx}: unexpected address space {other:?}"),
            }
        }
        assert!(last_used <= l.views.len() as u32, "{ctx}: uses binding {last_used}, past the views");
        storage.sort();
        assert_eq!(
            storage,
            (1..=l.views.len() as u32).collect::<Vec<_>>(),
            "{ctx}: storage bindings vs views"
        );
        assert_eq!(uniform_size, Some(l.uniform.len() as u32), "{ctx}: Params size, shader vs launcher");
    }
}
