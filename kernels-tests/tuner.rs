//! The tuner picks only kernels that are right: every engine variant passes verification against
//! the CPU reference on this adapter, and a planted candidate that is faster but wrong (it skips
//! half the inner dimension, or ignores the accumulate epilogue) is excluded with its reason and
//! never chosen; with no correct candidate left, selection is an error, not a guess. `aegpu bench
//! --shape` times only verified variants.

use aegpu::kernels::matmul::{Matmul, MatmulVariant};
use aegpu::tune::{MatmulCandidate, select_matmul, verify_matmul};

mod common;
use common::gpu;

/// Computes only the first half of the inner dimension: half the work, so faster, and wrong
/// everywhere but K = 1.
fn half_k() -> MatmulCandidate {
    MatmulCandidate::custom("half-k", |p: &Matmul| {
        Matmul { k: p.k.div_ceil(2), variant: MatmulVariant::Reg, ..p.clone() }.launch()
    })
}

/// Overwrites where it should add: right on every product except the accumulating ones.
fn no_accumulate() -> MatmulCandidate {
    MatmulCandidate::custom("no-accumulate", |p: &Matmul| {
        Matmul { accumulate: false, variant: MatmulVariant::Reg, ..p.clone() }.launch()
    })
}

#[test]
fn every_engine_variant_verifies_on_this_adapter() {
    let gpu = gpu();
    for v in MatmulVariant::available(&gpu) {
        let verdict = verify_matmul(&gpu, &MatmulCandidate::variant(v)).unwrap();
        assert_eq!(verdict, Ok(()), "{v:?}");
    }
}

#[test]
fn a_planted_wrong_candidate_is_never_chosen() {
    let gpu = gpu();
    let candidates = vec![half_k(), no_accumulate(), MatmulCandidate::variant(MatmulVariant::Reg)];
    let sel = select_matmul(&gpu, &candidates, [64, 64, 64]).unwrap();
    assert_eq!(sel.chosen, 2, "chose {}", candidates[sel.chosen].name);
    let failed: Vec<usize> = sel.failed.iter().map(|f| f.0).collect();
    assert_eq!(failed, [0, 1]);
    assert!(sel.failed[1].1.contains("accumulating"), "{}", sel.failed[1].1);
    assert_eq!(
        sel.measured.iter().map(|m| m.0).collect::<Vec<_>>(),
        [2],
        "wrong candidates are not even timed"
    );
    let Err(e) = select_matmul(&gpu, &candidates[..2], [64, 64, 64]) else { panic!("chose a wrong kernel") };
    assert!(e.to_string().contains("no matmul kernel computes correct results"), "{e}");
}

/// `aegpu bench --shape MxNxK`: every variant this device runs is verified, then timed on that
/// product in each transpose form (the chosen one marked); a malformed shape is an error.
#[test]
fn bench_shapes_time_every_verified_variant() {
    use aegpu::bench::{BenchArgs, matmul_rows, parse_shape};
    assert_eq!(parse_shape("4096x4096x4096"), Ok([4096, 4096, 4096]));
    assert_eq!(parse_shape("37X61x29"), Ok([37, 61, 29]));
    for bad in ["", "2x3", "1x2x3x4", "0x4x4", "ax4x4", "4x-1x4"] {
        assert!(parse_shape(bad).is_err(), "{bad:?} accepted");
    }
    let gpu = gpu();
    let args =
        BenchArgs { json: true, kernels_only: true, seconds: 0.01, shapes: vec![[37, 61, 29], [8, 4, 12]] };
    let chosen = MatmulVariant::Reg;
    let r = matmul_rows(&gpu, &args, chosen).unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    let variants = MatmulVariant::available(&gpu);
    assert_eq!(r.rows.len(), 2 * 3 * variants.len());
    for v in &variants {
        let of_v: Vec<_> =
            r.rows.iter().filter(|row| row.kernel.split(' ').nth(1) == Some(v.name().as_str())).collect();
        assert_eq!(of_v.len(), 6, "{v:?}");
        assert!(of_v.iter().all(|row| row.gpu > 0.0 && row.gpu.is_finite() && row.unit == "GFLOP/s"));
        assert!(of_v.iter().all(|row| row.kernel.ends_with("(chosen)") == (*v == chosen)), "{v:?}");
    }
    assert_eq!(r.rows.iter().filter(|row| row.shape == "8x4x12").count(), 3 * variants.len());
}
