//! Where a training step's time goes: every dispatch of the step in its own compute pass with
//! GPU timestamps at its start and end (adapters with `Features::TIMESTAMP_QUERY`), summed per
//! kernel into a table and written as a Chrome trace (chrome://tracing, Perfetto).

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::runner::Plan;

#[path = "profile/launch_model.rs"]
mod launch_model;
pub use launch_model::{LaunchCosts, LaunchFloor};

/// One dispatch's GPU time.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DispatchTime {
    /// The launch's label (kernel and role).
    pub label: &'static str,
    /// Start, relative to the first dispatch's start, and duration, in nanoseconds.
    pub start_ns: f64,
    /// Duration from its start to its end timestamp, in nanoseconds.
    pub ns: f64,
}

/// One kernel's share of a step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelShare {
    /// The launches' label, shared by all the dispatches summed here.
    pub label: &'static str,
    /// Dispatches of the step with this label.
    pub dispatches: usize,
    /// Their summed GPU time, in nanoseconds.
    pub ns: f64,
    /// Percent of the step's span (first start to last end).
    pub percent: f64,
}

/// The most dispatches one timed submit holds (two timestamps each, within wgpu's 4096 queries).
const MAX_DISPATCHES: usize = 2048;

/// Runs `plan` once, each dispatch timed; `before` records anything the step needs first (a
/// streamed batch's copy) and is not timed.
pub fn time_plan(
    gpu: &Gpu,
    plan: &Plan,
    before: impl FnOnce(&mut wgpu::CommandEncoder),
) -> Result<Vec<DispatchTime>> {
    if !gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
        return Err(Error::Config(format!(
            "{} offers no timestamp queries (Features::TIMESTAMP_QUERY), which a profile needs; `aegpu bench` \
             measures whole steps instead",
            gpu.info.name
        )));
    }
    let n = plan.len();
    if n == 0 || n > MAX_DISPATCHES {
        return Err(Error::Config(format!("a profile times 1 to {MAX_DISPATCHES} dispatches, not {n}")));
    }
    let count = 2 * n as u32;
    let (queries, resolved) = gpu.scoped("profile queries", || {
        let queries = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let resolved = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile timestamps"),
            size: count as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        (queries, resolved)
    })?;
    gpu.scoped("profiled step", || {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        before(&mut enc);
        plan.record_timed(&mut enc, &queries);
        enc.resolve_query_set(&queries, 0..count, &resolved, 0);
        gpu.queue.submit([enc.finish()]);
    })?;
    gpu.wait()?;
    let words: Vec<u32> = crate::gpu::read_words(gpu, &resolved, 0..2 * count as usize)?;
    let ticks: Vec<u64> = words.chunks(2).map(|w| w[0] as u64 | (w[1] as u64) << 32).collect();
    let period = gpu.queue.get_timestamp_period() as f64;
    let origin = ticks[0];
    Ok((0..n)
        .map(|i| DispatchTime {
            label: plan.labels[i],
            start_ns: ticks[2 * i].saturating_sub(origin) as f64 * period,
            ns: ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period,
        })
        .collect())
}

/// One submit and the wait for it, in µs: the median of `n` (at least 1) submits of an encoder
/// with one empty compute pass, each waited for. What the training loop pays per submit on top of
/// the work in it.
pub fn submit_wait_us(gpu: &Gpu, n: usize) -> Result<f64> {
    let mut times = Vec::with_capacity(n.max(1));
    for _ in 0..n.max(1) {
        let start = std::time::Instant::now();
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        drop(enc.begin_compute_pass(&Default::default()));
        gpu.queue.submit([enc.finish()]);
        gpu.wait()?;
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The step's span: first start to last end, in nanoseconds.
pub fn span_ns(times: &[DispatchTime]) -> f64 {
    times.iter().map(|t| t.start_ns + t.ns).fold(0.0, f64::max)
}

/// Per-kernel totals over `times` (any number of steps), largest first.
pub fn by_kernel(times: &[DispatchTime], span: f64) -> Vec<KernelShare> {
    let mut shares: Vec<KernelShare> = Vec::new();
    for t in times {
        match shares.iter_mut().find(|s| s.label == t.label) {
            Some(s) => {
                s.dispatches += 1;
                s.ns += t.ns;
            }
            None => shares.push(KernelShare { label: t.label, dispatches: 1, ns: t.ns, percent: 0.0 }),
        }
    }
    for s in &mut shares {
        s.percent = 100.0 * s.ns / span.max(1e-9);
    }
    shares.sort_by(|a, b| b.ns.total_cmp(&a.ns));
    shares
}

/// The dispatches as Chrome trace events (`ph: "X"`, microseconds), one track per step.
pub fn chrome_trace(steps: &[Vec<DispatchTime>]) -> serde_json::Value {
    let mut events = Vec::new();
    let mut offset = 0.0;
    for (step, times) in steps.iter().enumerate() {
        for t in times {
            events.push(serde_json::json!({
                "name": t.label,
                "cat": "dispatch",
                "ph": "X",
                "ts": (offset + t.start_ns) / 1e3,
                "dur": t.ns / 1e3,
                "pid": 0,
                "tid": 0,
                "args": { "step": step },
            }));
        }
        offset += span_ns(times) * 1.05;
    }
    serde_json::json!({ "traceEvents": events, "displayTimeUnit": "ns" })
}
