//! `aegpu profile`: a training step's dispatches timed on the GPU: the kernels by share of the
//! step, and a Chrome trace of every dispatch; what recording a step costs the host; and a launch
//! model of an MNIST epoch that says whether the epoch is launch-bound or compute-bound.

use aegpu::error::{Error, Result};
use aegpu::expert::nn::ActivationStorage;
use aegpu::expert::profile::{LaunchCosts, by_kernel, chrome_trace, span_ns, submit_wait_us};
use aegpu::gpu::{Gpu, GpuOptions};
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::models::{Autoencoder, Init, ModelConfig};
use aegpu::train::{DEFAULT_STEPS_PER_SUBMIT, GpuDataset, TrainConfig, Trainer};
use std::path::PathBuf;

/// Training images in MNIST (for the submits of an epoch).
const MNIST: usize = 60_000;
/// Recordings of a step (and empty submits) timed for the host's costs; the median is reported.
const HOST_REPEATS: usize = 21;

#[derive(clap::Args)]
pub struct ProfileArgs {
    /// The model: a dense preset (shallow, deep, vae) or a conv one (keras, strided, conv-vae), on
    /// 28x28 synthetic images (the kernels do not care what the pixels show).
    #[arg(long, default_value = "deep")]
    preset: String,
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Steps to time (after one untimed warm-up step); the table is their mean.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Where to write the Chrome trace (open it in chrome://tracing or ui.perfetto.dev).
    #[arg(long, default_value = "profile-trace.json")]
    trace: PathBuf,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Hidden activations stored as f32 or f16 (as `train --activations`).
    #[arg(long, default_value = "f32", value_name = "f32|f16")]
    activations: String,
    /// The launch model's GPU gap per dispatch inside one pass, in µs (default: a public figure
    /// for the adapter's kind: 0.6 on a GPU, 14 on lavapipe).
    #[arg(long, value_name = "US")]
    dispatch_us: Option<f64>,
    /// The launch model's cost per pass boundary, in µs (default: measured here, the gap between
    /// the profile's one-dispatch passes).
    #[arg(long, value_name = "US")]
    pass_us: Option<f64>,
    /// The launch model's cost per submit and wait, in µs (default: measured here, an empty submit
    /// waited for).
    #[arg(long, value_name = "US")]
    submit_us: Option<f64>,
}

pub(super) fn profile_cmd(args: ProfileArgs) -> Result<()> {
    if args.steps == 0 {
        return Err(Error::Config("--steps must be at least 1".into()));
    }
    let config = ModelConfig::preset(&args.preset, [1, 28, 28], LossKind::Bce).map_err(|e| match e {
        Error::Config(why) => Error::Config(format!("--preset: {why}")),
        other => other,
    })?;
    let gpu = Gpu::new(&GpuOptions::default())?;
    let model = Autoencoder::new(&gpu, config, 0, Init::Glorot)?;
    let images = aegpu::data::synthetic::synthetic(args.batch * 4, 28, 28, 10, 1);
    let data = GpuDataset::upload(&gpu, &images)?;
    let tc = TrainConfig {
        epochs: 1,
        batch: args.batch,
        optimizer: Optimizer::parse("adam", 1e-3, 0.0)?,
        seed: 0,
    };
    let storage = ActivationStorage::parse(&args.activations)?;
    let mut trainer = Trainer::new(&gpu, &model, &data, tc)?;
    trainer.set_activation_storage(storage)?;
    trainer.profile_step(1, 0)?; // warm-up: pipelines and first touch
    let steps = (0..args.steps).map(|i| trainer.profile_step(1, i + 1)).collect::<Result<Vec<_>>>()?;
    let all: Vec<_> = steps.iter().flatten().cloned().collect();
    let span = steps.iter().map(|s| span_ns(s)).sum::<f64>();
    let shares = by_kernel(&all, span);
    let busy: f64 = all.iter().map(|t| t.ns).sum();
    let trace = chrome_trace(&steps);
    let text = serde_json::to_string(&trace).map_err(|e| Error::Config(e.to_string()))?;
    aegpu::expert::atomic_file::write_atomic(&args.trace, text.as_bytes())?;
    let per_step = |ns: f64| ns / args.steps as f64 / 1e3;
    // What a training epoch on MNIST's 60,000 images submits at this batch size.
    let mnist_steps = MNIST / args.batch;
    let mnist_submits = mnist_steps.div_ceil(DEFAULT_STEPS_PER_SUBMIT);
    // The host's side, and the launch model of an MNIST epoch (measured costs where they can be).
    let host = trainer.host_cost(HOST_REPEATS)?;
    let dispatches = trainer.dispatches_per_step();
    let pass_gap_us = (per_step(span) - per_step(busy)).max(0.0) / dispatches.max(1) as f64;
    let public = LaunchCosts::for_adapter(&gpu.info);
    let costs = LaunchCosts {
        dispatch_us: args.dispatch_us.unwrap_or(public.dispatch_us),
        pass_us: args.pass_us.unwrap_or(pass_gap_us),
        submit_us: match args.submit_us {
            Some(us) => us,
            None => submit_wait_us(&gpu, HOST_REPEATS)?,
        },
    };
    let floor = costs.floor(
        mnist_steps,
        dispatches,
        host.passes_per_step,
        DEFAULT_STEPS_PER_SUBMIT,
        host.record_us_per_step,
    );
    // The epoch the step's GPU time predicts: the profiled step less its pass gaps, plus the floor.
    let compute_ms = mnist_steps as f64 * per_step(busy) / 1e3;
    let predicted_ms = compute_ms + floor.gpu_launch_ms;
    if args.json {
        let report = serde_json::json!({
            "adapter": gpu.describe(),
            "model": model.describe(),
            "batch": args.batch,
            "activations": storage.name(),
            "activation_bytes": trainer.activation_bytes(),
            "dispatches_per_step": trainer.dispatches_per_step(),
            "steps_per_submit": DEFAULT_STEPS_PER_SUBMIT,
            "submits_per_mnist_epoch": mnist_submits,
            "step_us": per_step(span),
            "dispatch_sum_us": per_step(busy),
            "host_record_us_per_step": host.record_us_per_step,
            "passes_per_step": host.passes_per_step,
            "copies_per_step": host.copies_per_step,
            "bytes_written_per_step": host.bytes_written_per_step,
            // wgpu inserts the barriers between dependent dispatches inside a pass and exposes no
            // count of them.
            "barriers_per_step": serde_json::Value::Null,
            "host": host,
            "launch_model": {
                "costs": costs,
                "pass_us_measured": pass_gap_us,
                "mnist_epoch_steps": mnist_steps,
                "floor_ms": floor.ms(),
                "gpu_launch_ms": floor.gpu_launch_ms,
                "host_record_ms": floor.host_record_ms,
                "compute_ms": compute_ms,
                "predicted_epoch_ms": predicted_ms,
                "verdict": floor.verdict(predicted_ms),
            },
            "kernels": shares,
        });
        say!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
        return Ok(());
    }
    say!("adapter: {}", gpu.describe());
    say!(
        "model:   {} {}, batch {}, activations {} ({:.2} MB)",
        model.kind(),
        model.describe(),
        args.batch,
        storage.name(),
        trainer.activation_bytes() as f64 / 1e6
    );
    say!(
        "step:    {:.1} µs on the GPU (first dispatch's start to last one's end, mean of {} steps), {} dispatches; \
         the dispatches themselves {:.1} µs ({:.0}%)",
        per_step(span),
        args.steps,
        trainer.dispatches_per_step(),
        per_step(busy),
        100.0 * busy / span.max(1e-9)
    );
    say!(
        "submits: training records {DEFAULT_STEPS_PER_SUBMIT} steps per submit (--steps-per-submit): {mnist_submits} \
         submits per MNIST epoch ({} steps of {}); the profile times one step per submit",
        MNIST / args.batch,
        args.batch
    );
    say!(
        "host:    {:.1} µs to record a step (median of {} recordings of {} steps, no submit), {} pass, {} copies, \
         {} bytes queued per step",
        host.record_us_per_step,
        host.repeats,
        host.steps_per_record,
        host.passes_per_step,
        host.copies_per_step,
        host.bytes_written_per_step
    );
    say!(
        "launch:  an MNIST epoch ({mnist_steps} steps, {mnist_submits} submits) at {:.2} µs per dispatch, {:.1} µs per \
         pass, {:.0} µs per submit: GPU launch floor {:.1} ms, host recording {:.1} ms; kernels {:.1} ms; \
         predicted epoch {:.1} ms: {}",
        costs.dispatch_us,
        costs.pass_us,
        costs.submit_us,
        floor.gpu_launch_ms,
        floor.host_record_ms,
        compute_ms,
        predicted_ms,
        floor.verdict(predicted_ms)
    );
    say!("{:<32} {:>10} {:>12} {:>8}", "kernel", "dispatches", "µs per step", "% step");
    for s in &shares {
        say!(
            "{:<32} {:>10} {:>12.1} {:>7.1}%",
            s.label,
            s.dispatches / args.steps,
            per_step(s.ns),
            s.percent
        );
    }
    say!("trace:   {} (chrome://tracing or ui.perfetto.dev)", args.trace.display());
    Ok(())
}
