//! The tuner picks only kernels that are right: every engine variant passes verification against
//! the CPU reference on this adapter, and a planted candidate that is faster but wrong (it skips
//! half the inner dimension, or ignores the accumulate epilogue) is excluded with its reason and
//! never chosen; with no correct candidate left, selection is an error, not a guess. `aegpu bench
//! --shape` times only verified variants.

use aegpu::expert::tune::{MatmulCandidate, select_matmul, verify_matmul};
use aegpu::kernels::matmul::{Matmul, MatmulVariant};

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
/// product in each transpose form (the chosen one marked), and with `--f16` each SGEMM with f16
/// A and C too; a malformed shape is an error.
#[test]
fn bench_shapes_time_every_verified_variant() {
    use aegpu::bench::{BenchArgs, matmul_rows, parse_shape};
    assert_eq!(parse_shape("4096x4096x4096"), Ok([4096, 4096, 4096]));
    assert_eq!(parse_shape("37X61x29"), Ok([37, 61, 29]));
    for bad in ["", "2x3", "1x2x3x4", "0x4x4", "ax4x4", "4x-1x4"] {
        assert!(parse_shape(bad).is_err(), "{bad:?} accepted");
    }
    let gpu = gpu();
    let shapes = vec![[37, 61, 29], [8, 4, 12]];
    let args = BenchArgs { json: true, kernels_only: true, seconds: 0.01, shapes, f16: false, coop: false };
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
    // --f16: each SGEMM configuration again with A and C stored as f16, after the same rows.
    let with_f16 = matmul_rows(&gpu, &BenchArgs { f16: true, ..args }, chosen).unwrap();
    let (f16_rows, rest): (Vec<_>, Vec<_>) =
        with_f16.rows.iter().partition(|row| row.kernel.ends_with(" f16 a,c"));
    assert_eq!(rest.len(), r.rows.len());
    assert_eq!(f16_rows.len(), 2 * 3 * 3, "3 SGEMM configurations x 3 transpose forms x 2 shapes");
    assert!(f16_rows.iter().all(|row| row.kernel.contains("sgemm") && row.gpu > 0.0 && row.gpu.is_finite()));
}

/// Each product runs the variant its shape class chose: the launches of a dense layer's three
/// products use the narrow, wide or large class's pipeline by the product's output shape.
#[test]
fn every_product_runs_its_shape_class_variant() {
    use aegpu::expert::runner::View;
    use aegpu::gpu::StorageBuffer;
    use aegpu::kernels::Activation;
    use aegpu::kernels::matmul::{
        Half, Transpose, linear_backward_input, linear_backward_weight, linear_forward,
    };
    use aegpu::kernels::matmul_policy::MatmulPolicy;
    let gpu = gpu();
    let buf = StorageBuffer::zeroed(&gpu, "any", 4).unwrap();
    let v = View::whole(&buf);
    let policy = MatmulPolicy {
        narrow: MatmulVariant::Reg,
        wide: MatmulVariant::Tiled,
        large: MatmulVariant::Sgemm64x64,
    };
    let key = |variant, trans| Matmul::pipeline_keys(variant, trans);
    let id = Activation::Identity;
    // (batch, in, out): the forward's output is batch x out, the input gradient's batch x in, the
    // weight gradient's out x in.
    for ((batch, inp, out), [fwd, input, weight]) in [
        ((256, 784, 10), [MatmulVariant::Reg, MatmulVariant::Tiled, MatmulVariant::Reg]),
        ((256, 784, 512), [MatmulVariant::Tiled; 3]),
        ((2048, 1024, 512), [MatmulVariant::Sgemm64x64, MatmulVariant::Sgemm64x64, MatmulVariant::Tiled]),
    ] {
        let f = linear_forward(&v, &v, &v, &v, batch, inp, out, id, policy, Half::NONE);
        let i = linear_backward_input(&v, &v, &v, batch, inp, out, policy);
        let w = linear_backward_weight(&v, &v, &v, batch, inp, out, policy, false);
        assert!(key(fwd, Transpose::Nt).contains(&f[0].key), "forward {batch}x{inp}->{out}");
        assert!(key(input, Transpose::Nn).contains(&i[0].key), "input gradient {batch}x{inp}->{out}");
        assert!(key(weight, Transpose::Tn).contains(&w[0].key), "weight gradient {batch}x{inp}->{out}");
    }
}

/// A fresh tuning (private cache) times every verified variant on each class's shape and keeps
/// the fastest for each; `aegpu info` shows the three; a second run reads the cache.
#[test]
fn tuning_chooses_the_fastest_verified_variant_per_shape_class() {
    use common::cli::{TempDir, aegpu_tuned, ok};
    let home = TempDir::new("tuner-classes");
    let first = ok(aegpu_tuned(home.path(), &["info"]), "aegpu info");
    let policy_line = first.lines().find(|l| l.starts_with("matmul:")).expect("a matmul line");
    assert!(policy_line.ends_with("(measured)"), "{policy_line}");
    let name = policy_line.trim_start_matches("matmul:").trim().split(' ').next().unwrap().to_string();
    let chosen = |class: &str| -> String {
        if !name.contains('=') {
            return name.clone();
        }
        let entry = name.split(',').find(|e| e.starts_with(&format!("{class}="))).expect("every class named");
        entry.split('=').nth(1).unwrap().to_string()
    };
    for class in ["narrow", "wide", "large"] {
        let line = first.lines().find(|l| l.trim_start().starts_with(&format!("{class} "))).expect(class);
        let timed: Vec<(String, f64)> = line
            .split("GFLOP/s:")
            .nth(1)
            .unwrap()
            .split(',')
            .map(|t| {
                let (v, g) = t.trim().rsplit_once(' ').unwrap();
                (v.to_lowercase(), g.parse().unwrap())
            })
            .collect();
        assert!(!timed.is_empty(), "{line}");
        // The chosen variant was timed, and no variant was faster (as printed: ties may round alike).
        let best = timed.iter().map(|t| t.1).fold(f64::MIN, f64::max);
        let of_chosen =
            timed.iter().find(|t| t.0 == chosen(class)).unwrap_or_else(|| panic!("{class}: {line}"));
        assert_eq!(of_chosen.1, best, "{class}: {line}");
    }
    let again = ok(aegpu_tuned(home.path(), &["info"]), "aegpu info (cached)");
    assert!(again.contains(&format!("matmul:    {name} (cache)")), "{again}");
}
