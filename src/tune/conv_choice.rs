//! The convolution algorithms and how the tuner checks and times them for one layer shape: each
//! is verified against the CPU reference at batch 2, then the correct ones are timed on the layer's
//! forward and backward (the caller's batch); the direct kernels are no candidate where their
//! per-invocation loops would pass lavapipe's bound.

use super::log_line;
use super::verify::{self, ConvBuffers};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer};
use crate::kernels::Activation;
use crate::kernels::conv::{self, Conv2dShape};
use crate::kernels::conv_gemm::{self, GemmScratch, ScratchLens};
use crate::kernels::conv_implicit_gemm as implicit;
use crate::kernels::matmul_policy::MatmulPolicy;
use crate::runner::{Plan, View};
use std::time::Instant;

/// How convolutions run: the direct kernels of conv2d.wgsl, im2col + matmul (conv_gemm.wgsl), or the
/// implicit GEMM of conv_implicit_gemm.wgsl (serde names `direct`, `gemm`, `implicit_gemm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvAlgorithm {
    /// conv2d.wgsl: one invocation per pixel and block of channels summing its taps (forward, input
    /// gradient), one workgroup per weight tap (weight gradient); no scratch. No candidate where its
    /// per-invocation loops would pass lavapipe's bound.
    Direct,
    /// conv_gemm.wgsl's im2col (a `[C_IN·KH·KW, N·OH·OW]` matrix in scratch), then the tuned matmul.
    Gemm,
    /// conv_implicit_gemm.wgsl: tiled products reading the im2col elements straight from NCHW; only
    /// the weight gradient's split-K partials as scratch.
    ImplicitGemm,
}

impl ConvAlgorithm {
    /// Every algorithm, in the order the tuner tries them.
    pub const ALL: [ConvAlgorithm; 3] =
        [ConvAlgorithm::Direct, ConvAlgorithm::Gemm, ConvAlgorithm::ImplicitGemm];

    /// The serde / `AEGPU_CONV` name.
    pub fn name(self) -> &'static str {
        match self {
            ConvAlgorithm::Direct => "direct",
            ConvAlgorithm::Gemm => "gemm",
            ConvAlgorithm::ImplicitGemm => "implicit_gemm",
        }
    }
}

/// The faster of the convolution algorithms that compute the CPU reference's result for this
/// layer shape (at batch 2); an error when neither does.
pub(super) fn choose_conv(gpu: &Gpu, shape: &Conv2dShape) -> Result<ConvAlgorithm> {
    let policy = gpu.matmul_policy()?;
    let small = Conv2dShape { n: 2, ..*shape };
    let mut times = Vec::new();
    let mut wrong = Vec::new();
    for algo in ConvAlgorithm::ALL {
        if algo == ConvAlgorithm::Direct && !direct_fits(shape) {
            continue; // its loops pass the bound for these channels, whatever the batch
        }
        match verify_conv_algorithm(gpu, algo, &small)? {
            Ok(()) => times.push((algo, measure_conv(gpu, algo, policy, shape)?)),
            Err(why) => {
                log_line(&format!(
                    "aegpu: the {algo:?} convolution is wrong on this adapter for {shape:?}: {why}"
                ));
                wrong.push(format!("{algo:?}: {why}"));
            }
        }
    }
    times.iter().min_by(|a, b| a.1.total_cmp(&b.1)).map(|&(a, _)| a).ok_or_else(|| {
        Error::Config(format!("no convolution algorithm is correct on this adapter: {}", wrong.join("; ")))
    })
}

/// Whether the direct kernels' loops stay within [`crate::kernels::MAX_LOOP_STEPS`] for this layer.
pub(super) fn direct_fits(s: &Conv2dShape) -> bool {
    conv::direct_loop_steps(s) <= crate::kernels::MAX_LOOP_STEPS
}

/// The tuner's check of `algo` on shape `s`: `Ok(())` when a conv2d layer's forward (bias + ReLU),
/// input and weight gradients match the CPU reference, else the first difference.
pub fn verify_conv_algorithm(gpu: &Gpu, algo: ConvAlgorithm, s: &Conv2dShape) -> Result<Result<(), String>> {
    let bufs = ConvBuffers::new(gpu, s)?;
    let launches = conv_launches(gpu, algo, gpu.matmul_policy()?, s, &bufs)?;
    verify::verify_conv(gpu, &launches, &bufs, s)
}

/// Milliseconds of a conv2d layer's forward and backward with `algo` (best of three runs, after a
/// warm-up).
pub fn measure_conv(gpu: &Gpu, algo: ConvAlgorithm, policy: MatmulPolicy, s: &Conv2dShape) -> Result<f64> {
    let bufs = ConvBuffers::new(gpu, s)?;
    let plan = Plan::new(gpu, "tune conv", &conv_launches(gpu, algo, policy, s, &bufs)?)?;
    plan.run(gpu)?;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        plan.run(gpu)?;
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

/// A conv2d layer's forward (bias + ReLU), weight, input and bias gradients with `algo`.
fn conv_launches(
    gpu: &Gpu,
    algo: ConvAlgorithm,
    policy: MatmulPolicy,
    s: &Conv2dShape,
    v: &ConvBuffers,
) -> Result<Vec<crate::gpu::Launch>> {
    let mut launches = match algo {
        ConvAlgorithm::Direct => {
            let mut all = vec![conv::conv2d_forward(&v.y, &v.x, &v.w, Some(&v.b), s, Activation::Relu)];
            all.extend(conv::conv2d_backward_weight(&v.dw, &v.dy, &v.x, s));
            all.push(conv::conv2d_backward_input(&v.dx, &v.dy, &v.w, s));
            all
        }
        ConvAlgorithm::Gemm => {
            let l = ScratchLens::of(s);
            let scratch = GemmScratch {
                col: View::whole(&StorageBuffer::zeroed(gpu, "tune col", l.col)?),
                cn: View::whole(&StorageBuffer::zeroed(gpu, "tune cn", l.cn)?),
                parts: View::whole(&StorageBuffer::zeroed(gpu, "tune parts", l.parts)?),
            };
            let mut all = conv_gemm::conv2d_forward(
                &v.y,
                &v.x,
                &v.w,
                Some(&v.b),
                s,
                Activation::Relu,
                &scratch,
                policy,
            );
            all.extend(conv_gemm::conv2d_backward(
                &v.dw,
                Some(&v.dx),
                &v.dy,
                &v.x,
                &v.w,
                s,
                &scratch,
                policy,
            ));
            all
        }
        ConvAlgorithm::ImplicitGemm => {
            let parts =
                View::whole(&StorageBuffer::zeroed(gpu, "tune parts", implicit::parts_len(s).max(1))?);
            let mut all = vec![implicit::conv2d_forward(&v.y, &v.x, &v.w, Some(&v.b), s, Activation::Relu)];
            all.extend(implicit::conv2d_backward_weight(&v.dw, &v.dy, &v.x, &parts, s));
            all.push(implicit::conv2d_backward_input(&v.dx, &v.dy, &v.w, s));
            all
        }
    };
    launches.extend(conv::conv2d_backward_bias(&v.db, &v.dy, s));
    Ok(launches)
}
