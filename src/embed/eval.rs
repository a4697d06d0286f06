//! Evaluation passes recorded into the host's encoder: [`EvalRecorder`].

use super::readback::PendingReads;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer, View};
use crate::gpu_data::{BatchFeed, GpuDataset};
use crate::kernels::loss::LossKind;
use crate::models::{Activations, Autoencoder, Pass, activations_fitting};
use crate::runner::Plan;
use crate::runner::UniformRing;

/// The random streams of evaluation (a VAE's z, a denoising model's corruption): the same as
/// `train::Evaluator`'s, so both give the same numbers (a test holds them together).
const EVAL_STREAM: u64 = 1 << 46;

/// Test-set metrics of one recorded evaluation pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalReport {
    /// Which pass this is (0 for the first recorded).
    pub pass: u64,
    /// Mean squared error per pixel.
    pub mse_px: f64,
    /// Binary cross-entropy per pixel.
    pub bce_px: f64,
    /// The training objective: the per-pixel loss, or a VAE's negative ELBO per image (nats).
    pub loss: f64,
    /// VAE only: (reconstruction, KL, negative ELBO) in nats per image.
    pub vae: Option<(f64, f64, f64)>,
}

/// Evaluates a model over a whole dataset inside the host's encoder; the metrics arrive through a
/// non-blocking readback. The numbers are those of [`crate::train::Evaluator`] (same batches, same
/// random streams, same reductions).
///
/// The dataset is read in its index order, which must be the identity (a test set; never a
/// dataset a [`super::TrainSession`] is shuffling). Each batch's uniforms are fixed, so they are
/// written once at creation and copied into place per batch: any number of passes may be recorded
/// into one encoder.
///
/// ```no_run
/// # fn frame(gpu: &aegpu::gpu::Gpu, model: &aegpu::models::Autoencoder,
/// #          test: &aegpu::train::GpuDataset) -> aegpu::Result<()> {
/// let mut eval = aegpu::embed::EvalRecorder::new(gpu, model, test, 500)?;
/// let mut encoder = gpu.device.create_command_encoder(&Default::default());
/// eval.record(&mut encoder);
/// gpu.queue.submit([encoder.finish()]);
/// eval.submitted();
/// // later frames:
/// if let Some(r) = eval.poll() {
///     println!("test loss {:.4}", r.loss);
/// }
/// # Ok(()) }
/// ```
pub struct EvalRecorder<'a> {
    gpu: &'a Gpu,
    model: &'a Autoencoder,
    data: &'a GpuDataset,
    /// (batch size, activations, plan, its gathers) for full batches and for the remainder.
    plans: Vec<(usize, Activations, Plan, BatchFeed<'a>)>,
    /// (plan, slot) of every batch of a pass, in order; slot i of `rings[plan]`.
    schedule: Vec<(usize, usize)>,
    rings: Vec<UniformRing>,
    /// Each plan's (Σ se, Σ bce, Σ KL) gathered for one readback.
    totals: StorageBuffer,
    reads: PendingReads<u64>,
    passes: u64,
}

impl<'a> EvalRecorder<'a> {
    /// Builds the plans (batches of at most `batch`, smaller when the activations would exceed the
    /// adapter's limits) and writes every batch's uniforms once.
    pub fn new(gpu: &'a Gpu, model: &'a Autoencoder, data: &'a GpuDataset, batch: usize) -> Result<Self> {
        if data.dim != model.input_dim() {
            return Err(Error::Shape(format!(
                "the data has {} values per example but the model's input is {}",
                data.dim,
                model.input_dim()
            )));
        }
        if data.n == 0 {
            return Err(Error::Config("cannot evaluate an empty dataset".into()));
        }
        let variant = model.matmul_policy(gpu)?;
        let (batch, acts) = activations_fitting(model, gpu, batch.clamp(1, data.n))?;
        let mut full = Some(acts);
        let mut plans = Vec::new();
        for size in [batch, data.n % batch] {
            if size == 0 {
                continue;
            }
            let acts = match full.take() {
                Some(acts) => acts,
                None => model.activations(gpu, size)?,
            };
            let feed = data.feed(gpu, &acts.input(), size)?;
            let mut launches = feed.launches().to_vec();
            launches.extend(model.forward(&acts, variant, Pass::EVAL));
            launches.extend(model.loss(&acts, &acts.input(), false, true));
            let plan = Plan::new(gpu, "recorded evaluation", &launches)?;
            plans.push((size, acts, plan, feed));
        }
        let mut schedule = Vec::new();
        let mut counts = vec![0usize; plans.len()];
        let mut start = 0;
        while start < data.n {
            let p = if data.n - start >= batch { 0 } else { plans.len() - 1 };
            schedule.push((p, counts[p], start));
            counts[p] += 1;
            start += plans[p].0;
        }
        let mut rings = Vec::new();
        for (p, (_, _, plan, _)) in plans.iter().enumerate() {
            let ring = UniformRing::new(gpu, plan, counts[p], "evaluation uniforms")?;
            for &(_, slot, start) in schedule.iter().filter(|s| s.0 == p) {
                ring.write(gpu, plan, slot, EVAL_STREAM + start as u64, start)?;
            }
            rings.push(ring);
        }
        let schedule = schedule.into_iter().map(|(p, slot, _)| (p, slot)).collect();
        let totals = StorageBuffer::zeroed(gpu, "evaluation totals", 4 * plans.len())?;
        let reads = PendingReads::new(gpu, 2, 4 * plans.len());
        Ok(EvalRecorder { gpu, model, data, plans, schedule, rings, totals, reads, passes: 0 })
    }

    /// Records one evaluation pass over the whole dataset, and a copy of its totals for
    /// [`EvalRecorder::poll`] (dropped if two earlier passes are still waiting to be taken).
    pub fn record(&mut self, encoder: &mut wgpu::CommandEncoder) {
        for (_, acts, _, _) in &self.plans {
            clear(encoder, &acts.totals());
            if let Some(kl) = acts.kl_total() {
                clear(encoder, &kl);
            }
        }
        for &(p, slot) in &self.schedule {
            let plan = &self.plans[p].2;
            self.rings[p].record_load(encoder, plan, slot);
            plan.record_into(encoder);
        }
        for (p, (_, acts, _, _)) in self.plans.iter().enumerate() {
            let at = (4 * p * 4) as u64;
            let t = acts.totals();
            encoder.copy_buffer_to_buffer(&t.buffer, (t.offset * 4) as u64, &self.totals.buffer, at, 8);
            if let Some(kl) = acts.kl_total() {
                encoder.copy_buffer_to_buffer(
                    &kl.buffer,
                    (kl.offset * 4) as u64,
                    &self.totals.buffer,
                    at + 8,
                    4,
                );
            }
        }
        self.reads.record(encoder, &self.totals.buffer, 0, self.passes);
        self.passes += 1;
    }

    /// Call right after the submit that carried the recorded passes.
    pub fn submitted(&mut self) {
        self.reads.submitted();
    }

    /// The metrics of the oldest finished pass, if any; polls the device without blocking.
    pub fn poll(&mut self) -> Option<EvalReport> {
        let _ = self.gpu.device.poll(wgpu::PollType::Poll);
        let (pass, words) = self.reads.take()?;
        let mut sums = [0.0f64; 3];
        // The same sums in the same order as the evaluator: each plan's (se, bce), then the KLs.
        for (p, (_, acts, _, _)) in self.plans.iter().enumerate() {
            sums[0] += words[4 * p] as f64;
            sums[1] += words[4 * p + 1] as f64;
            if acts.kl_total().is_some() {
                sums[2] += words[4 * p + 2] as f64;
            }
        }
        let n = self.data.n as f64;
        let pixels = n * self.data.dim as f64;
        let (mse_px, bce_px) = (sums[0] / pixels, sums[1] / pixels);
        let vae = self.model.variational().map(|_| (sums[1] / n, sums[2] / n, (sums[1] + sums[2]) / n));
        let loss = match (vae, self.model.loss_kind()) {
            (Some((_, _, elbo)), _) => elbo,
            (None, LossKind::Mse) => mse_px,
            (None, LossKind::Bce) => bce_px,
        };
        Some(EvalReport { pass, mse_px, bce_px, loss, vae })
    }

    /// Batches per pass.
    pub fn batches(&self) -> usize {
        self.schedule.len()
    }
}

fn clear(encoder: &mut wgpu::CommandEncoder, v: &View) {
    encoder.clear_buffer(&v.buffer, (v.offset * 4) as u64, Some((v.len * 4) as u64));
}
