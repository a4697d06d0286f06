//! The tuner picks only kernels that are right: every engine variant passes verification against
//! the CPU reference on this adapter, and a planted candidate that is faster but wrong (it skips
//! half the inner dimension, or ignores the accumulate epilogue) is excluded with its reason and
//! never chosen; with no correct candidate left, selection is an error, not a guess.

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
