//! The matmul rows of `aegpu bench`: every variant this device can run, verified against the CPU
//! reference first (a wrong one is reported, not timed), on each product `--shape M x N x K` names
//! (default the deep model's 256x784x512), in each transpose form, beside the CPU baseline; with
//! `--f16`, each SGEMM also with A and C stored as f16.

use super::{BenchArgs, KernelRow, buf, time_cpu, time_gpu_list, values};
use crate::cpu;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer, View};
use crate::kernels::Activation;
use crate::kernels::matmul::{Half, Matmul, MatmulVariant, Transpose};
use crate::kernels::matmul_policy::MatmulPolicy;
use crate::kernels::matmul_sgemm;
use crate::tune::{MatmulCandidate, verify_f16_products, verify_matmul};

/// The product the matmul rows measure when no `--shape` is given.
pub const DEFAULT_SHAPE: [usize; 3] = [256, 784, 512];

/// `MxNxK` (e.g. `4096x4096x4096`) as [M, N, K], each at least 1.
pub fn parse_shape(s: &str) -> std::result::Result<[usize; 3], String> {
    let dims: Vec<&str> = s.split(['x', 'X']).collect();
    let parsed: Vec<usize> = dims.iter().filter_map(|d| d.trim().parse().ok()).filter(|&d| d > 0).collect();
    match parsed[..] {
        [m, n, k] if dims.len() == 3 => Ok([m, n, k]),
        _ => Err(format!("'{s}': expected MxNxK with three positive integers, e.g. 256x784x512")),
    }
}

/// The matmul rows, and the variants excluded because they computed a wrong result here
/// (name, first difference).
pub struct MatmulRows {
    /// One row per shape, transpose form and verified variant (GFLOP/s, GPU against the CPU
    /// baseline), shapes in the order given.
    pub rows: Vec<KernelRow>,
    /// (variant name, its first difference from the CPU reference) for each variant left out.
    pub failed: Vec<(String, String)>,
}

/// Every verified variant on every shape of `args` (in the order given), the variant `chosen` runs
/// for that shape marked.
pub fn matmul_rows(gpu: &Gpu, args: &BenchArgs, chosen: impl Into<MatmulPolicy>) -> Result<MatmulRows> {
    let chosen = chosen.into();
    let mut verified = Vec::new();
    let mut failed = Vec::new();
    for variant in MatmulVariant::available(gpu) {
        match verify_matmul(gpu, &MatmulCandidate::variant(variant))? {
            Ok(()) => verified.push(variant),
            Err(why) => failed.push((variant.name(), why)),
        }
    }
    if args.f16 {
        if !gpu.has_f16() {
            return Err(Error::Config(format!(
                "--f16 needs an adapter with shader-f16, and {} does not offer it",
                gpu.info.name
            )));
        }
        for &variant in verified.iter().filter(|v| matmul_sgemm::config(**v).is_some()) {
            if let Err(why) = verify_f16_products(gpu, variant)? {
                return Err(Error::Config(format!(
                    "the f16 products of {} are wrong here: {why}",
                    variant.name()
                )));
            }
        }
    }
    let shapes = if args.shapes.is_empty() { vec![DEFAULT_SHAPE] } else { args.shapes.clone() };
    let mut rows = Vec::new();
    for [m, n, k] in shapes {
        let a = values(m * k, 1);
        let b = values(k * n, 2);
        let mut c = vec![0.0f32; m * n];
        let (ga, gb, gc) = (buf(gpu, "a", &a)?, buf(gpu, "b", &b)?, buf(gpu, "c", &c)?);
        // With --f16: A and C as f16 (A's values rounded, so no NaN or denormal slows a kernel).
        let f16_views = match args.f16 {
            true => Some((
                View::whole(&StorageBuffer::from_f32_as_f16(gpu, "a f16", &a)?),
                View::whole(&StorageBuffer::from_f32_as_f16(gpu, "c f16", &c)?),
            )),
            false => None,
        };
        let flops = Matmul::flops(m, n, k);
        for trans in Transpose::ALL {
            // The baseline once per product, not once per variant: at 4096^3 it takes seconds.
            let cpu_s = time_cpu(args.seconds, || cpu::baseline::sgemm(&mut c, &a, &b, m, n, k, trans));
            let row = |variant: MatmulVariant, what: &str, gpu_s: f64| KernelRow {
                kernel: format!("matmul {} {}{what}", variant.name(), format!("{trans:?}").to_lowercase()),
                shape: format!("{m}x{n}x{k}"),
                unit: "GFLOP/s",
                gpu: flops / gpu_s / 1e9,
                cpu: flops / cpu_s / 1e9,
                gpu_ms: gpu_s * 1e3,
                cpu_ms: cpu_s * 1e3,
            };
            for &variant in &verified {
                let product = Matmul {
                    c: gc.clone(),
                    a: ga.clone(),
                    b: gb.clone(),
                    bias: None,
                    m,
                    n,
                    k,
                    trans,
                    act: Activation::Identity,
                    accumulate: false,
                    variant,
                    splits: 1,
                    half: Half::NONE,
                };
                let gpu_s = time_gpu_list(gpu, &product.launches(), args.seconds)?;
                let mark = if variant == chosen.pick(m, n) { " (chosen)" } else { "" };
                rows.push(row(variant, mark, gpu_s));
                if let Some((a16, c16)) = &f16_views
                    && matmul_sgemm::config(variant).is_some()
                {
                    let half = Half { a: true, b: false, c: true };
                    let f16 = Matmul { a: a16.clone(), c: c16.clone(), half, ..product };
                    rows.push(row(variant, " f16 a,c", time_gpu_list(gpu, &f16.launches(), args.seconds)?));
                }
            }
        }
    }
    Ok(MatmulRows { rows, failed })
}
