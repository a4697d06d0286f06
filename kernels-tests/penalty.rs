//! The penalty kernels (shaders/penalty.wgsl): the sparse activity penalty and the contractive
//! penalty's three passes, against the CPU reference (src/cpu/penalty.rs) on awkward shapes, and
//! against finite differences (f64, computed here independently of both) of the penalties they claim
//! to differentiate: Σ|h|, Σh², P(W, b) = Σ_b ‖∂h/∂x‖²_F for h = σ(Wx + b), and ‖∂h/∂x‖²_F itself
//! from central differences of the encoder.
//!
//! Every output buffer is bound with a tail of sentinels past the kernel's range, so a kernel that
//! writes past its range fails; inputs are bound with the same tail, so one that reads past its range
//! picks up a huge value and fails the comparison. Gradient buffers start non-zero: the kernels add.
#![allow(clippy::neg_cmp_op_on_partial_ord, clippy::needless_range_loop)] // negations so that NaN fails

mod common;

use aegpu::expert::cpu;
use aegpu::expert::runner::{Plan, View};
use aegpu::gpu::{Gpu, StorageBuffer};
use aegpu::kernels::Launch;
use aegpu::kernels::penalty::{
    SparseNorm, activity_partial_rows, activity_penalty, contractive_h, contractive_rows, contractive_weight,
};
use common::*;

/// Words past the kernel's range in every buffer; they must keep SENTINEL.
const TAIL: usize = 37;
const SENTINEL: f32 = -12345.5;
/// f32 unit roundoff, 2^-24.
const U: f64 = (f32::EPSILON / 2.0) as f64;
const EPS: f64 = f32::EPSILON as f64;

fn run(gpu: &Gpu, launches: &[Launch]) {
    Plan::new(gpu, "t", launches).unwrap().run(gpu).unwrap();
}

/// `v` followed by TAIL sentinels, uploaded.
fn upload(gpu: &Gpu, label: &str, v: &[f32]) -> StorageBuffer {
    let mut padded = v.to_vec();
    padded.resize(v.len() + TAIL, SENTINEL);
    StorageBuffer::from_slice(gpu, label, &padded).unwrap()
}

/// Reads the first `n` words and checks that the rest of the buffer still holds SENTINEL.
fn read_checked(gpu: &Gpu, what: &str, b: &StorageBuffer, n: usize) -> Vec<f32> {
    let all = b.read_all_f32(gpu).unwrap();
    assert_eq!(all.len(), n + TAIL, "{what}: buffer length");
    if let Some(i) = all[n..].iter().position(|x| x.to_bits() != SENTINEL.to_bits()) {
        panic!("{what}: word {} past n = {n} was overwritten with {}", n + i, all[n + i]);
    }
    all[..n].to_vec()
}

fn assert_bits_eq(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{what}: first difference at [{i}]: {} vs {}", got[i], want[i]);
    }
}

/// Asserts |got[i] - want[i]| <= bound[i] for every i; on failure shows the worst offenders.
fn assert_within(what: &str, got: &[f64], want: &[f64], bound: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length vs reference");
    assert_eq!(got.len(), bound.len(), "{what}: length vs bounds");
    let bad: Vec<usize> = (0..got.len()).filter(|&i| !((got[i] - want[i]).abs() <= bound[i])).collect();
    if !bad.is_empty() {
        let worst = bad
            .iter()
            .copied()
            .max_by(|&a, &b| {
                let ra = (got[a] - want[a]).abs() / bound[a].max(1e-300);
                let rb = (got[b] - want[b]).abs() / bound[b].max(1e-300);
                ra.total_cmp(&rb)
            })
            .unwrap();
        let first: Vec<String> = bad
            .iter()
            .take(6)
            .map(|&i| {
                format!(
                    "[{i}] got {:e} want {:e} (err {:e}, bound {:e})",
                    got[i],
                    want[i],
                    (got[i] - want[i]).abs(),
                    bound[i]
                )
            })
            .collect();
        panic!(
            "{what}: {} of {} values out of bounds; worst [{worst}] got {:e} want {:e} bound {:e}; first: {}",
            bad.len(),
            got.len(),
            got[worst],
            want[worst],
            bound[worst],
            first.join(", ")
        );
    }
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Sigmoid activations in (0, 1) from pre-activations spread over [-5, 5), as f32; when `planted`,
/// the exact values 0, 1 (g = 0) and 0.5 (1 - 2h = 0) and near-saturated ones lead the array.
fn sigmoid_acts(n: usize, seed: u64, planted: bool) -> Vec<f32> {
    let mut h: Vec<f32> = random_vec(n, seed).iter().map(|&r| sigmoid(5.0 * r as f64) as f32).collect();
    if planted {
        let special = [0.0f32, 1.0, 0.5, 1e-6, 1.0 - f32::EPSILON / 2.0, 0.25];
        for (v, s) in h.iter_mut().zip(special) {
            *v = s;
        }
    }
    h
}

// ---------------------------------------------------------------------------------------------
// Sparse activity penalty vs the CPU reference
// ---------------------------------------------------------------------------------------------

/// Relative bound on the GPU's total Σ|h| or Σh² for n activations, against the exact sum. All terms
/// are non-negative, so any summation order with at most k roundings on the path of each term errs by
/// at most γ_k·Σ (Higham 4.2 applied to |terms|). Path: 3 in-thread adds (4 items), 8 levels of the
/// 256-wide tree, ceil(rows/8) sequential adds in a colsum lane and its 3-level lane tree, plus the
/// square's rounding for L2. The reference is an f64 sum of the same f32 terms, exact to ~1e-16.
fn activity_total_rtol(n: usize) -> f64 {
    let rows = activity_partial_rows(n);
    let k = 3 + 8 + rows.div_ceil(8) + 3 + 1;
    k as f64 * U * 1.01
}

/// Activations in [-1, 1); with `zeros`, every third one is an exact zero (alternately +0 and -0).
fn sparse_acts(n: usize, seed: u64, zeros: bool) -> Vec<f32> {
    let mut h = random_vec(n, seed);
    if zeros {
        for (i, v) in h.iter_mut().enumerate() {
            if i % 3 == 1 {
                *v = if i % 2 == 0 { 0.0 } else { -0.0 };
            }
        }
    }
    h
}

fn check_activity(
    gpu: &Gpu,
    batch: usize,
    width: usize,
    norm: SparseNorm,
    seed: u64,
    zeros: bool,
    with_dh: bool,
) {
    let n = batch * width;
    let ctx = format!("{norm:?} batch={batch} width={width} seed={seed} zeros={zeros} dh={with_dh}");
    let h = sparse_acts(n, seed, zeros);
    let dh0 = random_vec(n, seed + 500);
    let scale = 0.75 / batch as f32;
    let rows = activity_partial_rows(n);

    let gh = upload(gpu, "h", &h);
    let gdh = upload(gpu, "dh", &dh0);
    let gpart = upload(gpu, "partials", &vec![SENTINEL; rows]);
    let gtotal = upload(gpu, "total", &[SENTINEL]);
    let dh_view = View::whole(&gdh);
    run(
        gpu,
        &activity_penalty(
            &View::whole(&gtotal),
            &View::whole(&gpart),
            with_dh.then_some(&dh_view),
            &View::whole(&gh),
            batch,
            width,
            norm,
            scale,
        ),
    );

    // Reference: the CPU's total and gradient.
    let mut dh_ref = dh0.clone();
    let total_ref = cpu::penalty::activity_penalty(Some(&mut dh_ref), &h, norm, scale);
    let mut term = vec![0.0f32; n];
    cpu::penalty::activity_penalty(Some(&mut term), &h, norm, scale);

    let total = read_checked(gpu, &format!("total {ctx}"), &gtotal, 1)[0] as f64;
    let rtol = activity_total_rtol(n);
    assert_within(&format!("total {ctx}"), &[total], &[total_ref], &[rtol * total_ref]);

    // The per-workgroup partials: Σ over the workgroup's 1024 activations, same bound without the
    // colsum's share.
    let partials = read_checked(gpu, &format!("partials {ctx}"), &gpart, rows);
    let chunk_ref: Vec<f64> = h
        .chunks(1024)
        .map(|c| {
            c.iter()
                .map(|&v| match norm {
                    SparseNorm::L1 => (v as f64).abs(),
                    SparseNorm::L2 => (v as f64) * (v as f64),
                })
                .sum()
        })
        .collect();
    assert_eq!(chunk_ref.len(), rows, "{ctx}: one partial per 1024 activations");
    let bound: Vec<f64> = chunk_ref.iter().map(|&s| 13.0 * U * 1.01 * s).collect();
    assert_within(&format!("partials {ctx}"), &f64s(&partials), &chunk_ref, &bound);

    assert_bits_eq(&format!("h unchanged {ctx}"), &read_checked(gpu, &format!("h {ctx}"), &gh, n), &h);
    let dh = read_checked(gpu, &format!("dh {ctx}"), &gdh, n);
    if with_dh {
        // dh + scale·{sign(h), 2h}: scale·sign is exact and scale·2·h one rounding in either
        // association, then one add, so bit-exact unless the compiler contracts the add into an fma,
        // which moves the result by at most u·|term| + u·|result| <= EPS·(|dh0| + |term|).
        let bound: Vec<f64> = (0..n).map(|i| EPS * (dh0[i].abs() as f64 + term[i].abs() as f64)).collect();
        assert_within(&format!("dh {ctx}"), &f64s(&dh), &f64s(&dh_ref), &bound);
        if norm == SparseNorm::L1 {
            // The subgradient at an exact zero (either sign) is 0: dh is left exactly as it was.
            for i in (0..n).filter(|&i| h[i] == 0.0) {
                assert_eq!(
                    dh[i].to_bits(),
                    dh0[i].to_bits(),
                    "{ctx}: L1 at h[{i}] = {} changed dh from {} to {}",
                    h[i],
                    dh0[i],
                    dh[i]
                );
            }
        }
    } else {
        assert_bits_eq(&format!("dh untouched without dh {ctx}"), &dh, &dh0);
    }
}

/// (batch, width): n = 1, 255, 256, 1025 (two partials), 3 x 33, and 9217 = 9·1024 + 1 (ten
/// partials, more than the colsum's 8 lanes).
const ACTIVITY_SHAPES: &[(usize, usize)] = &[(1, 1), (1, 255), (16, 16), (1, 1025), (3, 33), (13, 709)];

#[test]
fn activity_penalty_matches_reference() {
    let gpu = gpu();
    for norm in [SparseNorm::L1, SparseNorm::L2] {
        for (k, &(batch, width)) in ACTIVITY_SHAPES.iter().enumerate() {
            let seed = 11 + k as u64;
            check_activity(&gpu, batch, width, norm, seed, false, true);
            check_activity(&gpu, batch, width, norm, seed, true, true);
            check_activity(&gpu, batch, width, norm, seed, true, false);
        }
    }
}

/// Exact zeros only: Σ|h| = Σh² = 0 and the L1 subgradient leaves dh bit-identical; the L2 gradient
/// 2·0 adds zero as well.
#[test]
fn activity_penalty_all_zero_activations() {
    let gpu = gpu();
    for norm in [SparseNorm::L1, SparseNorm::L2] {
        for n in [1usize, 255, 1025] {
            let h: Vec<f32> = (0..n).map(|i| if i % 2 == 0 { 0.0 } else { -0.0 }).collect();
            let dh0 = random_vec(n, 3 + n as u64);
            let rows = activity_partial_rows(n);
            let gh = upload(&gpu, "h", &h);
            let gdh = upload(&gpu, "dh", &dh0);
            let gpart = upload(&gpu, "partials", &vec![SENTINEL; rows]);
            let gtotal = upload(&gpu, "total", &[SENTINEL]);
            run(
                &gpu,
                &activity_penalty(
                    &View::whole(&gtotal),
                    &View::whole(&gpart),
                    Some(&View::whole(&gdh)),
                    &View::whole(&gh),
                    1,
                    n,
                    norm,
                    0.5,
                ),
            );
            let ctx = format!("{norm:?} n={n}");
            assert_eq!(read_checked(&gpu, &ctx, &gtotal, 1)[0], 0.0, "{ctx}: total of zeros");
            assert_bits_eq(&format!("dh {ctx}"), &read_checked(&gpu, &ctx, &gdh, n), &dh0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Contractive passes vs the CPU reference
// ---------------------------------------------------------------------------------------------

fn check_contractive(gpu: &Gpu, width: usize, inputs: usize, batch: usize, seed: u64, with_dh: bool) {
    let ctx = format!("width={width} inputs={inputs} batch={batch} seed={seed} dh={with_dh}");
    let n = batch * width;
    let w = random_vec(width * inputs, seed);
    let h = sigmoid_acts(n, seed + 1, true);
    let dh0 = random_vec(n, seed + 2);
    let dw0 = random_vec(width * inputs, seed + 3);
    let scale = 0.3 / batch as f32;
    let s_ref = cpu::penalty::contractive_rows(&w, width, inputs);

    let gw = upload(gpu, "W", &w);
    let gh = upload(gpu, "h", &h);
    let gs = upload(gpu, "s", &vec![SENTINEL; width]);
    // contractive_h reads the reference's row norms, so its check does not depend on the rows pass.
    let gs_ref = upload(gpu, "s_ref", &s_ref);
    let gdh = upload(gpu, "dh", &dh0);
    let gjf2 = upload(gpu, "jf2", &vec![SENTINEL; batch]);
    let gdw = upload(gpu, "dW", &dw0);
    let dh_view = View::whole(&gdh);
    run(
        gpu,
        &[
            contractive_rows(&View::whole(&gs), &View::whole(&gw), width, inputs),
            contractive_h(
                &View::whole(&gjf2),
                with_dh.then_some(&dh_view),
                &View::whole(&gh),
                &View::whole(&gs_ref),
                batch,
                width,
                scale,
            ),
            contractive_weight(
                &View::whole(&gdw),
                &View::whole(&gh),
                &View::whole(&gw),
                batch,
                width,
                inputs,
                scale,
            ),
        ],
    );

    // Row norms: a sequential f32 sum of `inputs` squares (non-negative terms; one multiply and at
    // most inputs - 1 adds on each term's path: γ_inputs), against the reference's f64 sum rounded
    // once to f32 (u/2).
    let s = read_checked(gpu, &format!("s {ctx}"), &gs, width);
    let s_exact: Vec<f64> = (0..width)
        .map(|j| w[j * inputs..(j + 1) * inputs].iter().map(|&x| (x as f64) * (x as f64)).sum())
        .collect();
    let rtol = (inputs as f64 + 1.0) * U * 1.01;
    assert_within(
        &format!("s {ctx}"),
        &f64s(&s),
        &f64s(&s_ref),
        &s_exact.iter().map(|&v| rtol * v).collect::<Vec<_>>(),
    );

    // ‖J_b‖²: terms g²·s >= 0 with g = h(1-h) (1-h: one rounding, exact for h >= 1/2), g·g and ·s:
    // at most 4 roundings per term, then width - 1 adds: γ_{width+4} of the exact sum; the
    // reference sums the same terms in f64.
    let mut dh_ref = dh0.clone();
    let jf2_ref = cpu::penalty::contractive_h(Some(&mut dh_ref), &h, &s_ref, batch, width, scale);
    let jf2 = read_checked(gpu, &format!("jf2 {ctx}"), &gjf2, batch);
    let rtol = (width as f64 + 4.0) * U * 1.01;
    assert_within(
        &format!("jf2 {ctx}"),
        &f64s(&jf2),
        &jf2_ref,
        &jf2_ref.iter().map(|&v| rtol * v).collect::<Vec<_>>(),
    );

    let dh = read_checked(gpu, &format!("dh {ctx}"), &gdh, n);
    if with_dh {
        // The shader evaluates the same f32 expression in the same order as the reference; a compiler
        // may contract the final add (or 1 - 2h) into an fma, which moves the result by at most
        // u·|term| + u·|result|. 2·EPS·(|dh0| + |term|) covers that with room to spare.
        let mut term = vec![0.0f32; n];
        cpu::penalty::contractive_h(Some(&mut term), &h, &s_ref, batch, width, scale);
        let bound: Vec<f64> =
            (0..n).map(|i| 2.0 * EPS * (dh0[i].abs() as f64 + term[i].abs() as f64)).collect();
        assert_within(&format!("dh {ctx}"), &f64s(&dh), &f64s(&dh_ref), &bound);
        // g = 0 at h = 0 and h = 1, and 1 - 2h = 0 at h = 1/2: nothing is added there.
        for i in (0..n).filter(|&i| [0.0, 0.5, 1.0].contains(&h[i])) {
            assert_eq!(dh[i], dh0[i], "{ctx}: dh[{i}] at h = {} changed", h[i]);
        }
    } else {
        assert_bits_eq(&format!("dh untouched without dh {ctx}"), &dh, &dh0);
    }

    // dW += scale·2·G_j·W: G_j = Σ_b g² in f32 (terms >= 0, 4 roundings each, batch - 1 adds:
    // γ_{batch+4}) against the reference's f64 sum rounded to f32, then 3 multiplies: the two terms
    // differ by at most (batch + 8)·u·|term|. Adding them to the same dW0 (the GPU's add possibly an
    // fma) can then round to neighbouring floats: one ULP of the result, i.e. up to 2u·|result|, which
    // lavapipe does hit (|dW| ~ 0.5, tiny terms). 2·EPS·(|dW0| + |term|) covers two ULPs.
    let mut dw_ref = dw0.clone();
    cpu::penalty::contractive_weight(&mut dw_ref, &h, &w, batch, width, inputs, scale);
    let mut term = vec![0.0f32; width * inputs];
    cpu::penalty::contractive_weight(&mut term, &h, &w, batch, width, inputs, scale);
    let dw = read_checked(gpu, &format!("dW {ctx}"), &gdw, width * inputs);
    let bound: Vec<f64> = (0..width * inputs)
        .map(|i| {
            let t = term[i].abs() as f64;
            (batch as f64 + 8.0) * U * 1.01 * t + 2.0 * EPS * (dw0[i].abs() as f64 + t)
        })
        .collect();
    assert_within(&format!("dW {ctx}"), &f64s(&dw), &f64s(&dw_ref), &bound);

    // Inputs are read-only.
    assert_bits_eq(&format!("W unchanged {ctx}"), &read_checked(gpu, "W", &gw, width * inputs), &w);
    assert_bits_eq(&format!("h unchanged {ctx}"), &read_checked(gpu, "h", &gh, n), &h);
}

#[test]
fn contractive_passes_match_reference() {
    let gpu = gpu();
    let mut seed = 100;
    // Width 65 and batch 65 cross the 64-invocation workgroups.
    for width in [1usize, 7, 33, 65] {
        for inputs in [5usize, 784] {
            for batch in [1usize, 3, 65] {
                seed += 10;
                check_contractive(&gpu, width, inputs, batch, seed, true);
            }
        }
    }
    for (width, inputs, batch) in [(1, 5, 1), (33, 784, 3), (7, 5, 65)] {
        seed += 10;
        check_contractive(&gpu, width, inputs, batch, seed, false);
    }
}

// ---------------------------------------------------------------------------------------------
// Finite differences (f64, independent of the reference)
// ---------------------------------------------------------------------------------------------

/// A sigmoid layer h = σ(Wx + b): W [width, inputs], b [width], x [batch, inputs].
struct Layer {
    inputs: usize,
    width: usize,
    batch: usize,
    w: Vec<f64>,
    b: Vec<f64>,
    x: Vec<f64>,
}

impl Layer {
    /// Weights scaled by 2/√inputs so pre-activations stay within about ±4 (no saturation, where
    /// the penalty's derivatives vanish and would test nothing). All values are f32-representable so
    /// the GPU sees exactly the layer the f64 code differentiates.
    fn new(inputs: usize, width: usize, batch: usize, seed: u64) -> Layer {
        let ws = 2.0 / (inputs as f32).sqrt();
        let f = |v: Vec<f32>, k: f32| v.iter().map(|&x| (x * k) as f64).collect::<Vec<f64>>();
        Layer {
            inputs,
            width,
            batch,
            w: f(random_vec(width * inputs, seed), ws),
            b: f(random_vec(width, seed + 1), 0.5),
            x: f(random_vec(batch * inputs, seed + 2), 1.0),
        }
    }

    fn h_of(&self, w: &[f64], b: &[f64], x: &[f64]) -> Vec<f64> {
        let (ni, nw) = (self.inputs, self.width);
        let nb = x.len() / ni;
        let mut h = vec![0.0; nb * nw];
        for e in 0..nb {
            for j in 0..nw {
                let z: f64 = b[j] + (0..ni).map(|i| w[j * ni + i] * x[e * ni + i]).sum::<f64>();
                h[e * nw + j] = sigmoid(z);
            }
        }
        h
    }

    fn h(&self) -> Vec<f64> {
        self.h_of(&self.w, &self.b, &self.x)
    }

    /// P(W, b) = Σ_b Σ_j (h(1-h))² Σ_i W_ji², written from the definition.
    fn penalty(&self, w: &[f64], b: &[f64]) -> f64 {
        let h = self.h_of(w, b, &self.x);
        let mut p = 0.0;
        for e in 0..self.batch {
            for j in 0..self.width {
                let v = h[e * self.width + j];
                let s: f64 = (0..self.inputs).map(|i| w[j * self.inputs + i].powi(2)).sum();
                p += (v * (1.0 - v)).powi(2) * s;
            }
        }
        p
    }
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// GPU rows → contractive_h (scale 1, dh from zero) → contractive_weight (scale 1, dW from zero) for
/// the layer's activations rounded to f32. Returns (jf2, dh, dW from the row-norm path).
fn gpu_contractive(gpu: &Gpu, l: &Layer, h: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (nb, nw, ni) = (l.batch, l.width, l.inputs);
    let gw = upload(gpu, "W", &to_f32(&l.w));
    let gh = upload(gpu, "h", h);
    let gs = upload(gpu, "s", &vec![SENTINEL; nw]);
    let gdh = upload(gpu, "dh", &vec![0.0; nb * nw]);
    let gjf2 = upload(gpu, "jf2", &vec![SENTINEL; nb]);
    let gdw = upload(gpu, "dW", &vec![0.0; nw * ni]);
    run(
        gpu,
        &[
            contractive_rows(&View::whole(&gs), &View::whole(&gw), nw, ni),
            contractive_h(
                &View::whole(&gjf2),
                Some(&View::whole(&gdh)),
                &View::whole(&gh),
                &View::whole(&gs),
                nb,
                nw,
                1.0,
            ),
            contractive_weight(&View::whole(&gdw), &View::whole(&gh), &View::whole(&gw), nb, nw, ni, 1.0),
        ],
    );
    (
        read_checked(gpu, "jf2", &gjf2, nb),
        read_checked(gpu, "dh", &gdh, nb * nw),
        read_checked(gpu, "dW", &gdw, nw * ni),
    )
}

/// The kernels composed the way the model composes them give ∂P/∂W and ∂P/∂b for
/// P(W, b) = Σ_b ‖J_b‖²_F: dh from contractive_h, dz = dh·h(1-h) (sigmoid backward), dW = dzᵀx and
/// db = Σ_b dz (on the CPU here), then dW += contractive_weight's row-norm path. Checked against
/// central differences of P in f64 with eps 1e-4.
///
/// Tolerance: the FD truncation error is eps²/6·|P'''| ~ 1e-9 and its rounding error ~1e-16·P/eps
/// ~ 1e-12; the kernel side works on h rounded to f32 (relative error u/(1-h) <= 1e-6 in g for
/// |z| <= 4) and f32 arithmetic over a handful of terms, ~1e-6 relative. So 1e-4 of the largest
/// gradient component absolute plus 1e-4 relative: two orders above the noise, while dropping
/// either path, the factor 2 or the (1 - 2h) would be off by O(1).
#[test]
fn contractive_gradient_matches_finite_differences() {
    let gpu = gpu();
    for (inputs, width, batch, seed) in [(5, 4, 3, 7u64), (5, 4, 3, 8), (9, 6, 5, 9)] {
        let ctx = format!("inputs={inputs} width={width} batch={batch} seed={seed}");
        let l = Layer::new(inputs, width, batch, seed);
        let h64 = l.h();
        let h = to_f32(&h64);
        let (jf2, dh, dw_rows) = gpu_contractive(&gpu, &l, &h);

        // Σ_b jf2 is the penalty itself.
        let p = l.penalty(&l.w, &l.b);
        let p_gpu: f64 = jf2.iter().map(|&v| v as f64).sum();
        assert!((p_gpu - p).abs() <= 1e-5 * p, "{ctx}: Σ jf2 = {p_gpu} vs P = {p}");

        // Compose.
        let dz: Vec<f64> = (0..batch * width)
            .map(|k| {
                let v = h[k] as f64;
                dh[k] as f64 * v * (1.0 - v)
            })
            .collect();
        let mut dw = vec![0.0f64; width * inputs];
        let mut db = vec![0.0f64; width];
        for e in 0..batch {
            for j in 0..width {
                let d = dz[e * width + j];
                db[j] += d;
                for i in 0..inputs {
                    dw[j * inputs + i] += d * l.x[e * inputs + i];
                }
            }
        }
        for (a, &r) in dw.iter_mut().zip(&dw_rows) {
            *a += r as f64;
        }

        // Central differences.
        let eps = 1e-4;
        let mut fd_w = vec![0.0; width * inputs];
        for (k, fd) in fd_w.iter_mut().enumerate() {
            let (mut wp, mut wm) = (l.w.clone(), l.w.clone());
            wp[k] += eps;
            wm[k] -= eps;
            *fd = (l.penalty(&wp, &l.b) - l.penalty(&wm, &l.b)) / (2.0 * eps);
        }
        let mut fd_b = vec![0.0; width];
        for (j, fd) in fd_b.iter_mut().enumerate() {
            let (mut bp, mut bm) = (l.b.clone(), l.b.clone());
            bp[j] += eps;
            bm[j] -= eps;
            *fd = (l.penalty(&l.w, &bp) - l.penalty(&l.w, &bm)) / (2.0 * eps);
        }

        let gmax = fd_w.iter().chain(&fd_b).fold(0.0f64, |m, &v| m.max(v.abs()));
        assert!(gmax > 1e-2, "{ctx}: degenerate layer, max |∂P| = {gmax}");
        let tol = |fd: &[f64]| -> Vec<f64> { fd.iter().map(|&v| 1e-4 * (gmax + v.abs())).collect() };
        assert_within(&format!("∂P/∂W {ctx}"), &dw, &fd_w, &tol(&fd_w));
        assert_within(&format!("∂P/∂b {ctx}"), &db, &fd_b, &tol(&fd_b));

        // Both paths matter on this layer: without the row-norm term ∂P/∂W is visibly wrong (guards
        // against a test that would pass with contractive_weight doing nothing).
        let without: f64 = dw
            .iter()
            .zip(&dw_rows)
            .zip(&fd_w)
            .map(|((&a, &r), &f)| (a - r as f64 - f).abs())
            .fold(0.0, f64::max);
        assert!(without > 100.0 * 1e-4 * gmax, "{ctx}: the row-norm path is negligible here ({without:e})");
    }
}

/// jf2[b] from the GPU equals ‖∂h/∂x‖²_F of the encoder h(x) = σ(Wx + b) at example b, with the
/// Jacobian built column by column from central differences in x (f64, eps 1e-4).
///
/// Tolerance 1e-3 relative: FD truncation is ~eps²·|h'''| ~ 1e-8 relative, the GPU side rounds h to
/// f32 (≤ 1e-6 relative in g = h(1-h) for |z| ≤ 4) and sums ≤ 40 f32 terms (~1e-6). Any error in the
/// formula (a missing square, g instead of g², s_j of the wrong row) is O(1) relative.
#[test]
fn jacobian_norm_matches_finite_differences_of_encoder() {
    let gpu = gpu();
    for (inputs, width, batch, seed) in [(5, 4, 3, 21u64), (33, 17, 65, 22), (1, 7, 2, 23)] {
        let ctx = format!("inputs={inputs} width={width} batch={batch} seed={seed}");
        let l = Layer::new(inputs, width, batch, seed);
        let h = to_f32(&l.h());
        let (jf2, _, _) = gpu_contractive(&gpu, &l, &h);
        let eps = 1e-4;
        for e in 0..batch {
            let x0 = &l.x[e * inputs..(e + 1) * inputs];
            let mut fro = 0.0;
            for i in 0..inputs {
                let (mut xp, mut xm) = (x0.to_vec(), x0.to_vec());
                xp[i] += eps;
                xm[i] -= eps;
                let hp = l.h_of(&l.w, &l.b, &xp);
                let hm = l.h_of(&l.w, &l.b, &xm);
                for j in 0..width {
                    let d = (hp[j] - hm[j]) / (2.0 * eps);
                    fro += d * d;
                }
            }
            let got = jf2[e] as f64;
            assert!(
                (got - fro).abs() <= 1e-3 * fro && fro > 1e-4,
                "{ctx}: example {e}: jf2 {got} vs ‖J‖²_F from finite differences {fro}"
            );
        }
    }
}

/// The sparse penalty's dh (scale 1, from zero) is the gradient of Σ|h| (L1, activations at least
/// 0.01 away from 0 so |·| is smooth across ±eps) and of Σh² (L2), by central differences in f64
/// with eps 1e-4. For |h| and h² central differences are exact up to rounding (~1e-16·P/eps ≈ 1e-10),
/// and the kernel's sign(h) and 2h are exact in f32, so the tolerance is 1e-6.
#[test]
fn activity_gradient_matches_finite_differences() {
    let gpu = gpu();
    let (batch, width) = (3usize, 33usize);
    let n = batch * width;
    let h: Vec<f32> =
        random_vec(n, 31).iter().map(|&v| if v.abs() < 0.01 { 0.01f32.copysign(v) + v } else { v }).collect();
    assert!(h.iter().all(|v| v.abs() >= 0.01));
    for norm in [SparseNorm::L1, SparseNorm::L2] {
        let p = |h: &[f64]| -> f64 {
            h.iter()
                .map(|&v| match norm {
                    SparseNorm::L1 => v.abs(),
                    SparseNorm::L2 => v * v,
                })
                .sum()
        };
        let h64 = f64s(&h);
        let eps = 1e-4;
        let fd: Vec<f64> = (0..n)
            .map(|k| {
                let (mut hp, mut hm) = (h64.clone(), h64.clone());
                hp[k] += eps;
                hm[k] -= eps;
                (p(&hp) - p(&hm)) / (2.0 * eps)
            })
            .collect();

        let rows = activity_partial_rows(n);
        let gh = upload(&gpu, "h", &h);
        let gdh = upload(&gpu, "dh", &vec![0.0; n]);
        let gpart = upload(&gpu, "partials", &vec![SENTINEL; rows]);
        let gtotal = upload(&gpu, "total", &[SENTINEL]);
        run(
            &gpu,
            &activity_penalty(
                &View::whole(&gtotal),
                &View::whole(&gpart),
                Some(&View::whole(&gdh)),
                &View::whole(&gh),
                batch,
                width,
                norm,
                1.0,
            ),
        );
        let dh = read_checked(&gpu, "dh", &gdh, n);
        let ctx = format!("{norm:?}");
        assert_within(&format!("dh vs finite differences {ctx}"), &f64s(&dh), &fd, &vec![1e-6; n]);
        let total = read_checked(&gpu, "total", &gtotal, 1)[0] as f64;
        let want = p(&h64);
        assert!((total - want).abs() <= activity_total_rtol(n) * want, "{ctx}: total {total} vs {want}");
    }
}
