//! `aegpu bench`: every kernel on this GPU against its CPU baseline, and whole training steps.
//!
//! GPU times are wall-clock over many dispatches of the kernel recorded into one compute pass and one
//! submit (so the per-dispatch cost of the adapter is included, as it is in training), after a
//! warm-up. The matmul baseline is `matrixmultiply`'s threaded, cache-blocked sgemm; element-wise
//! kernels are compared with their plain CPU loops (memory-bound either way).

use crate::cpu;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuOptions, StorageBuffer};
use crate::kernels::activation::{activation_backward, activation_forward};
use crate::kernels::gather::gather_u8;
use crate::kernels::loss::{self, LossKind};
use crate::kernels::matmul::MatmulVariant;
use crate::kernels::matmul_coop;
use crate::kernels::optimizer::{Optimizer, optimizer_step};
use crate::kernels::reduce::colsum;
use crate::kernels::{Activation, Launch};
use crate::models::conv::ConvConfig;
use crate::models::dense::DenseConfig;
use crate::models::{Autoencoder, Init};

mod conv;
mod matmul;
use crate::runner::{Plan, View};
use crate::train::{GpuDataset, TrainConfig, Trainer};
use conv::conv_rows;
pub use matmul::{DEFAULT_SHAPE, MatmulRows, matmul_rows, parse_shape};
use std::time::Instant;

/// What `aegpu bench` measures (its command-line options with the `cli` feature).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct BenchArgs {
    /// Print one JSON object instead of the table.
    #[cfg_attr(feature = "cli", arg(long))]
    pub json: bool,
    /// Skip the training-step measurements.
    #[cfg_attr(feature = "cli", arg(long))]
    pub kernels_only: bool,
    /// Seconds to spend on each measurement (more = steadier).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.5))]
    pub seconds: f64,
    /// A matmul product M x N x K to measure with every variant, in each transpose form (repeatable,
    /// e.g. `--shape 4096x4096x4096 --shape 256x784x512`; default 256x784x512).
    #[cfg_attr(feature = "cli", arg(long = "shape", value_name = "MxNxK", value_parser = parse_shape))]
    pub shapes: Vec<[usize; 3]>,
    /// Also time each SGEMM configuration with A and C stored as f16 (the products of
    /// `train --activations f16`), verified first; needs shader-f16.
    #[cfg_attr(feature = "cli", arg(long))]
    pub f16: bool,
    /// Also time the cooperative-matrix kernels (tensor cores) the adapter can run, verified first:
    /// requests wgpu's experimental feature, like `AEGPU_COOPERATIVE_MATRIX=1`.
    #[cfg_attr(feature = "cli", arg(long))]
    pub coop: bool,
}

/// One row of the table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelRow {
    /// The kernel (and variant, transpose form or pass) measured, e.g. `matmul reg nn (chosen)`,
    /// `adam update`, `keras conv 16->8 gemm forward`.
    pub kernel: String,
    /// The problem size: `MxNxK` for matmul, the input `NxCxHxW` for conv, `batchxdim` or the
    /// element count for element-wise kernels.
    pub shape: String,
    /// "GFLOP/s" for matmul, "GB/s" for memory-bound kernels.
    pub unit: &'static str,
    /// GPU throughput, in `unit` (FLOPs or compulsory bytes over [`gpu_ms`](Self::gpu_ms)).
    pub gpu: f64,
    /// CPU baseline throughput, in `unit` (over [`cpu_ms`](Self::cpu_ms)).
    pub cpu: f64,
    /// Milliseconds per run of the kernel (or its launch list) on the GPU, wall-clock.
    pub gpu_ms: f64,
    /// Milliseconds per call of the CPU baseline.
    pub cpu_ms: f64,
}

/// One whole-training-step measurement: a model preset trained with Adam for whole epochs on
/// synthetic 28x28 data, wall-clock, after a warm-up epoch.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepRow {
    /// `dense <layers> (<preset>)` or `conv <layers> (<preset>; conv layers <algorithm per layer>)`.
    pub model: String,
    /// Samples per training step (256 for dense, 128 for conv).
    pub batch: usize,
    /// Compute dispatches per training step (the step plan's length).
    pub dispatches_per_step: usize,
    /// Training steps recorded into one command buffer and submitted together.
    pub steps_per_submit: usize,
    /// Submits of one epoch.
    pub submits_per_epoch: usize,
    /// Training throughput, samples per second.
    pub samples_per_s: f64,
    /// Milliseconds per training step.
    pub ms_per_step: f64,
    /// CPU time to record one step, no submit or wait in it, µs ([`crate::train::HostCost`]).
    pub host_record_us_per_step: f64,
}

/// Everything one `aegpu bench` run measured (the object `--json` prints).
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    /// The adapter: its name, backend, device type and driver ([`Gpu::describe`]).
    pub adapter: String,
    /// The matmul policy training picks on this adapter ([`MatmulPolicy::name`]: one variant's name,
    /// or `narrow=…,wide=…,large=…`); its variant's rows are marked `(chosen)`.
    ///
    /// [`MatmulPolicy::name`]: crate::kernels::matmul_policy::MatmulPolicy::name
    pub matmul_variant: String,
    /// Matmul variants excluded because they computed a wrong result on this adapter: (name, why).
    pub matmul_failed: Vec<(String, String)>,
    /// Threads available to the CPU baselines (`std::thread::available_parallelism`).
    pub cpu_threads: usize,
    /// The kernel rows: matmul, then element-wise, then conv.
    pub kernels: Vec<KernelRow>,
    /// The training-step rows (dense presets, then conv presets); empty with `--kernels-only`.
    pub steps: Vec<StepRow>,
}

/// Seconds per call of `f`, repeating until `budget` seconds have passed (at least twice).
fn time_cpu(budget: f64, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut reps = 0u32;
    while reps < 2 || start.elapsed().as_secs_f64() < budget {
        f();
        reps += 1;
    }
    start.elapsed().as_secs_f64() / reps as f64
}

/// Seconds per dispatch of `launch`: batches of dispatches in one pass and one submit.
pub fn time_gpu(gpu: &Gpu, launch: &Launch, budget: f64) -> Result<f64> {
    time_gpu_list(gpu, std::slice::from_ref(launch), budget)
}

/// Seconds per run of a launch list (as [`time_gpu`]).
pub fn time_gpu_list(gpu: &Gpu, launches: &[Launch], budget: f64) -> Result<f64> {
    let plan = Plan::new(gpu, "bench", launches)?;
    plan.run(gpu)?;
    let mut per_submit = 1usize;
    loop {
        let start = Instant::now();
        gpu.scoped("bench", || {
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                for _ in 0..per_submit {
                    plan.record(&mut pass);
                }
            }
            gpu.queue.submit([enc.finish()]);
        })?;
        gpu.wait()?;
        let t = start.elapsed().as_secs_f64();
        if t >= budget || per_submit >= 1 << 16 {
            return Ok(t / per_submit as f64);
        }
        // Grow the batch towards the time budget.
        per_submit = (per_submit as f64 * (budget / t.max(1e-6)).clamp(2.0, 16.0)) as usize;
    }
}

fn buf(gpu: &Gpu, label: &str, data: &[f32]) -> Result<View> {
    Ok(View::whole(&StorageBuffer::from_slice(gpu, label, data)?))
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / 16777216.0) - 0.5)
        .collect()
}

fn bandwidth_row(kernel: &str, shape: String, bytes: f64, gpu_s: f64, cpu_s: f64) -> KernelRow {
    KernelRow {
        kernel: kernel.into(),
        shape,
        unit: "GB/s",
        gpu: bytes / gpu_s / 1e9,
        cpu: bytes / cpu_s / 1e9,
        gpu_ms: gpu_s * 1e3,
        cpu_ms: cpu_s * 1e3,
    }
}

fn elementwise_rows(gpu: &Gpu, args: &BenchArgs) -> Result<Vec<KernelRow>> {
    let t = args.seconds;
    let (batch, dim) = (256, 784);
    let n = batch * dim;
    let x = values(n, 3);
    let mut out = vec![0.0f32; n];
    let (gx, gout) = (buf(gpu, "x", &x)?, buf(gpu, "out", &out)?);
    let mut rows = Vec::new();

    let act = Activation::Sigmoid;
    let g = time_gpu(gpu, &activation_forward(&gout, &gx, n, act), t)?;
    let c = time_cpu(t, || cpu::activation::activation_forward(&mut out, &x, act));
    rows.push(bandwidth_row("activation forward (sigmoid)", format!("{n}"), 8.0 * n as f64, g, c));
    let g = time_gpu(gpu, &activation_backward(&gout, &gx, &gx, n, act), t)?;
    let c = time_cpu(t, || cpu::activation::activation_backward(&mut out, &x, &x, act));
    rows.push(bandwidth_row("activation backward (sigmoid)", format!("{n}"), 12.0 * n as f64, g, c));

    let mut sums = vec![0.0f32; dim];
    let gsums = buf(gpu, "sums", &sums)?;
    let g = time_gpu(gpu, &colsum(&gsums, &gx, batch, dim, false), t)?;
    let c = time_cpu(t, || cpu::reduce::colsum(&mut sums, &x, batch, dim, false));
    rows.push(bandwidth_row("colsum (bias grad)", format!("{batch}x{dim}"), 4.0 * n as f64, g, c));

    let target: Vec<f32> = x.iter().map(|v| v + 0.5).collect();
    let gt = buf(gpu, "target", &target)?;
    let partials = buf(gpu, "partials", &vec![0.0; 2 * loss::partial_rows(n)])?;
    let totals = buf(gpu, "totals", &[0.0, 0.0])?;
    let [pass, _] = loss::loss_forward_backward(
        &totals,
        &partials,
        Some(&gout),
        &gx,
        &gt,
        n,
        LossKind::Bce,
        act,
        1.0 / n as f32,
    );
    let g = time_gpu(gpu, &pass, t)?;
    let c = time_cpu(t, || {
        cpu::loss::loss_forward_backward(Some(&mut out), &x, &target, LossKind::Bce, act, 1.0 / n as f32);
    });
    rows.push(bandwidth_row("loss fwd+bwd (bce)", format!("{n}"), 12.0 * n as f64, g, c));

    let p = 1_000_000;
    let (mut pw, pg, mut pm, mut pv) = (values(p, 4), values(p, 5), vec![0.0; p], vec![0.0; p]);
    let opt = Optimizer::parse("adam", 1e-3, 0.0)?;
    let views = [buf(gpu, "p", &pw)?, buf(gpu, "g", &pg)?, buf(gpu, "m", &pm)?, buf(gpu, "v", &pv)?];
    let g = time_gpu(gpu, &optimizer_step(&opt, &views[0], &views[1], &views[2], &views[3], p, 1), t)?;
    let c = time_cpu(t, || cpu::optimizer::optimizer_step(&opt, &mut pw, &pg, &mut pm, &mut pv, 1));
    rows.push(bandwidth_row("adam update", format!("{p}"), 28.0 * p as f64, g, c));

    let images: Vec<u8> = (0..10_000 * dim).map(|i| (i * 7 % 251) as u8).collect();
    let index: Vec<u32> = (0..10_000u32).map(|i| (i * 7919) % 10_000).collect();
    let gdata = View::whole(&StorageBuffer::from_slice(gpu, "images", &images)?);
    let gindex = View::whole(&StorageBuffer::from_slice(gpu, "index", &index)?);
    let g = time_gpu(gpu, &gather_u8(&gout, &gdata, &gindex, batch, dim, 0), t)?;
    let c = time_cpu(t, || cpu::gather::gather_u8(&mut out, &images, &index, batch, dim, 0));
    rows.push(bandwidth_row("gather u8 batch", format!("{batch}x{dim}"), 5.0 * n as f64, g, c));
    Ok(rows)
}

fn step_rows(gpu: &Gpu, args: &BenchArgs) -> Result<Vec<StepRow>> {
    let train = crate::data::synthetic::synthetic(4096, 28, 28, 10, 1);
    let data = GpuDataset::upload(gpu, &train)?;
    let mut rows = Vec::new();
    for preset in ["shallow", "deep"] {
        let config = DenseConfig::preset(preset, 784, LossKind::Bce)?;
        let model = Autoencoder::new(gpu, config.clone(), 0, Init::Glorot)?;
        let label = format!("dense {} ({preset})", config.describe());
        rows.push(step_row(gpu, &model, &data, 256, args.seconds, label)?);
    }
    let small = crate::data::synthetic::synthetic(1024, 28, 28, 10, 1);
    let small = GpuDataset::upload(gpu, &small)?;
    for preset in ["keras", "strided"] {
        let config = ConvConfig::preset(preset, [1, 28, 28], None, LossKind::Bce)?;
        let model = Autoencoder::new(gpu, config.clone(), 0, Init::Glorot)?;
        let algorithms: Vec<String> =
            model.net.conv_algorithms().iter().map(|a| format!("{a:?}").to_lowercase()).collect();
        let label = format!("conv {} ({preset}; conv layers {})", config.describe(), algorithms.join(", "));
        rows.push(step_row(gpu, &model, &small, 128, args.seconds, label)?);
    }
    Ok(rows)
}

/// Whole epochs of `model` on `data` for about `4 * seconds` after a warm-up epoch, and the host's
/// cost of recording one of its steps.
fn step_row(
    gpu: &Gpu,
    model: &Autoencoder,
    data: &GpuDataset,
    batch: usize,
    seconds: f64,
    label: String,
) -> Result<StepRow> {
    let tc = TrainConfig { epochs: 1, batch, optimizer: Optimizer::parse("adam", 1e-3, 0.0)?, seed: 0 };
    let mut trainer = Trainer::new(gpu, model, data, tc)?;
    trainer.epoch(0, |_, _| {})?; // warm-up (pipelines, first touch)
    let start = Instant::now();
    let mut steps = 0;
    let mut epoch = 1;
    while start.elapsed().as_secs_f64() < seconds * 4.0 || steps == 0 {
        trainer.epoch(epoch, |_, _| {})?;
        steps += trainer.steps_per_epoch();
        epoch += 1;
    }
    let s = start.elapsed().as_secs_f64();
    Ok(StepRow {
        model: label,
        batch,
        dispatches_per_step: trainer.dispatches_per_step(),
        steps_per_submit: trainer.steps_per_submit(),
        submits_per_epoch: trainer.submits_per_epoch(),
        samples_per_s: (steps * batch) as f64 / s,
        ms_per_step: s / steps as f64 * 1e3,
        host_record_us_per_step: trainer.host_cost(21)?.record_us_per_step,
    })
}

/// Runs every measurement `args` asks for on `gpu` and collects them (what [`run`] formats).
pub fn report(gpu: &Gpu, args: &BenchArgs) -> Result<BenchReport> {
    let chosen = gpu.matmul_policy()?;
    let matmul = matmul::matmul_rows(gpu, args, chosen)?;
    let mut kernels = matmul.rows;
    kernels.extend(elementwise_rows(gpu, args)?);
    kernels.extend(conv_rows(gpu, args)?);
    let steps = if args.kernels_only { Vec::new() } else { step_rows(gpu, args)? };
    Ok(BenchReport {
        adapter: gpu.describe(),
        matmul_variant: chosen.name(),
        matmul_failed: matmul.failed,
        cpu_threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        kernels,
        steps,
    })
}

/// Runs the benchmark and returns its report as text (a table, or JSON with `--json`) for the
/// command line to print: the library never prints.
pub fn run(args: &BenchArgs) -> Result<String> {
    use std::fmt::Write as _;
    let gpu = Gpu::new(&GpuOptions { cooperative_matrix: args.coop, ..GpuOptions::default() })?;
    if args.coop && !MatmulVariant::available(&gpu).iter().any(|v| matmul_coop::tile(*v).is_some()) {
        let why = matmul_coop::why_none(&gpu);
        return Err(Error::Config(format!(
            "--coop: no cooperative-matrix kernel runs on {}: {why}",
            gpu.info.name
        )));
    }
    let r = report(&gpu, args)?;
    if args.json {
        return Ok(serde_json::to_string_pretty(&r).unwrap_or_default() + "\n");
    }
    let mut out = String::new();
    let _ = writeln!(out, "adapter: {}", r.adapter);
    let _ = writeln!(
        out,
        "CPU baseline: {} threads (matrixmultiply sgemm for matmul; plain loops otherwise)\n",
        r.cpu_threads
    );
    let _ = writeln!(
        out,
        "{:<34} {:>14} {:>10} {:>10} {:>8} {:>10} {:>10}",
        "kernel", "shape", "GPU", "CPU", "GPU/CPU", "GPU ms", "CPU ms"
    );
    for k in &r.kernels {
        let _ = writeln!(
            out,
            "{:<34} {:>14} {:>10} {:>10} {:>8.2} {:>10.3} {:>10.3}",
            k.kernel,
            k.shape,
            format!("{:.2}", k.gpu),
            format!("{:.2}", k.cpu),
            k.gpu / k.cpu,
            k.gpu_ms,
            k.cpu_ms
        );
    }
    let _ = writeln!(
        out,
        "(matmul and conv rows in GFLOP/s, the others in GB/s of compulsory traffic; the conv CPU column is the \
         single-threaded reference loop, not a tuned baseline)\n"
    );
    for (name, why) in &r.matmul_failed {
        let _ = writeln!(out, "matmul {name}: not timed, wrong on this adapter: {why}");
    }
    for s in &r.steps {
        let _ = writeln!(
            out,
            "train step {}: batch {}, {} dispatches per step, {} steps per submit ({} submits per epoch), \
             {:.1} ms/step, {:.0} samples/s; {:.1} µs to record a step",
            s.model,
            s.batch,
            s.dispatches_per_step,
            s.steps_per_submit,
            s.submits_per_epoch,
            s.ms_per_step,
            s.samples_per_s,
            s.host_record_us_per_step
        );
    }
    Ok(out)
}
