//! The f16 activation storage's products are verified on the adapter before a run uses them, as
//! every matmul candidate is: the four products a training step runs with f16 tensors (forwards
//! with bias + activation from f16 to f16, f16 to f32 and f32 to f16; a weight gradient reading
//! f16 activations), on awkward shapes, against the CPU reference on
//! the same f16-rounded values, with a guard band after the result. A wrong one refuses the run
//! with the first wrong value instead of training on it.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer};
use crate::kernels::Activation;
use crate::kernels::matmul::{Half, Matmul, MatmulVariant, Transpose};
use crate::kernels::matmul_policy::MatmulPolicy;
use crate::kernels::matmul_sgemm;
use crate::runner::{Plan, View};
use half::f16;

/// Odd sizes (f16 operands read one value at a time) and multiples of 4 (a vec4<f16> at a time).
const SHAPES: [[usize; 3]; 4] = [[1, 1, 1], [17, 3, 33], [67, 45, 129], [36, 68, 20]];
const GUARD: usize = 33;
/// Exact in f16 and f32.
const GUARD_VALUE: f32 = 4320.0;

/// The products an f16 training step runs, as (transpose form, which matrices are f16, bias +
/// activation): forwards f16 to f16, f16 to f32 (into the code or the output), f32 to f16 (from the
/// code), and a weight gradient reading f16 activations.
const PRODUCTS: [(Transpose, Half, bool); 4] = [
    (Transpose::Nt, Half { a: true, b: false, c: true }, true),
    (Transpose::Nt, Half { a: true, b: false, c: false }, true),
    (Transpose::Nt, Half { a: false, b: false, c: true }, true),
    (Transpose::Tn, Half { a: false, b: true, c: false }, false),
];

/// Verifies the SGEMMs the f16 products of `policy`'s shape classes run ([`Matmul::runs`]); a wrong
/// one is an error that names it and the first wrong value.
pub fn check_f16_policy(gpu: &Gpu, policy: MatmulPolicy) -> Result<()> {
    let mut variants: Vec<MatmulVariant> = [policy.narrow, policy.wide, policy.large]
        .into_iter()
        .map(|v| matmul_sgemm::config(v).map_or(MatmulVariant::Sgemm64x64, |_| v))
        .collect();
    variants.sort_by_key(|v| v.name());
    variants.dedup();
    for v in variants {
        if let Err(why) = verify_f16_products(gpu, v)? {
            return Err(Error::Config(format!(
                "the f16 products of {} compute wrong results on {} ({why}); use --activations f32",
                v.name(),
                gpu.info.name
            )));
        }
    }
    Ok(())
}

/// `Ok(())` when `variant` (an SGEMM, or what runs in its place: [`Matmul::runs`]) computes every
/// f16 product of a training step as the CPU reference does; else the first difference.
pub fn verify_f16_products(gpu: &Gpu, variant: MatmulVariant) -> Result<Result<(), String>> {
    for [m, n, k] in SHAPES {
        for (trans, half, epilogue) in PRODUCTS {
            if let Err(why) = check(gpu, variant, [m, n, k], trans, half, epilogue)? {
                return Ok(Err(format!("{m}x{n}x{k} {trans:?} {half:?}: {why}")));
            }
        }
    }
    Ok(Ok(()))
}

/// Values in [-1, 1) from a fixed sequence, rounded to f16 when `half`.
fn values(len: usize, salt: usize, half: bool) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.5) - 1.0)
        .map(|v| if half { f16::from_f32(v).to_f32() } else { v })
        .collect()
}

/// A buffer of `data`, as f16 (two per word) when `half`.
fn upload(gpu: &Gpu, label: &str, data: &[f32], half: bool) -> Result<StorageBuffer> {
    match half {
        true => StorageBuffer::from_f32_as_f16(gpu, label, data),
        false => StorageBuffer::from_slice(gpu, label, data),
    }
}

fn read(gpu: &Gpu, buffer: &StorageBuffer, len: usize, half: bool) -> Result<Vec<f32>> {
    match half {
        true => buffer.read_f16(gpu, len),
        false => buffer.read_f32(gpu, 0..len),
    }
}

fn check(
    gpu: &Gpu,
    variant: MatmulVariant,
    [m, n, k]: [usize; 3],
    trans: Transpose,
    half: Half,
    epilogue: bool,
) -> Result<Result<(), String>> {
    let act = if epilogue { Activation::Tanh } else { Activation::Identity };
    let (a, b, bias) = (values(m * k, 1, half.a), values(k * n, 2, half.b), values(n, 3, false));
    let mut c = values(m * n, 4, half.c);
    c.extend(std::iter::repeat_n(GUARD_VALUE, GUARD));
    let gpu_a = upload(gpu, "verify f16 a", &a, half.a)?;
    let gpu_b = upload(gpu, "verify f16 b", &b, half.b)?;
    let gpu_bias = upload(gpu, "verify f16 bias", &bias, false)?;
    let gpu_c = upload(gpu, "verify f16 c", &c, half.c)?;
    let c_words = if half.c { (m * n).div_ceil(2) } else { m * n };
    let product = Matmul {
        c: View { buffer: gpu_c.buffer.clone(), offset: 0, len: c_words },
        a: View::whole(&gpu_a),
        b: View::whole(&gpu_b),
        bias: epilogue.then(|| View::whole(&gpu_bias)),
        m,
        n,
        k,
        trans,
        act,
        accumulate: false,
        variant,
        splits: 1,
        half,
    };
    Plan::new(gpu, "verify f16 matmul", &product.launches())?.run(gpu)?;
    let got = read(gpu, &gpu_c, m * n + GUARD, half.c)?;
    let mut want = c[..m * n].to_vec();
    crate::cpu::matmul::matmul(&mut want, &a, &b, epilogue.then_some(&bias[..]), m, n, k, trans, act, false);
    if let Some(i) = (m * n..m * n + GUARD).find(|&i| got[i] != GUARD_VALUE) {
        return Ok(Err(format!("wrote past the result (value {i} of a {}-value product)", m * n)));
    }
    // f32 sums as the f32 check allows, plus one f16 rounding of a stored result (2^-10 relative).
    Ok(super::verify::first_difference(&got[..m * n], &want, 1e-3, 1e-3))
}
