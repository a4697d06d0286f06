//! The training loop (evaluation is in `crate::evaluate`).
//!
//! A training step is one plan (gather, forward, loss, backward, update) recorded into one compute
//! pass. Only the per-step uniforms change (the batch's offset into the shuffled index, read by one
//! gather per data chunk, the optimiser's step count and the random streams). Several steps share
//! one command buffer and one submit ([`Trainer::steps_per_submit`]): each step's uniforms are
//! written into a slot of their own and copied into place inside the encoder right before the step
//! (see `crate::runner::UniformRing`), so every step computes exactly what it would alone. Data
//! streamed from the host goes the same way: each step's batch is written into a slot of its own
//! and copied into the one batch buffer right before the step (`BatchFeed::stage_slot`). The loss totals of every step are copied
//! into a log buffer that is read once per epoch; the progress bar's running loss comes from a
//! non-blocking readback.

use crate::error::{Error, Result};
pub use crate::evaluate::{EvalMetrics, EvalOutput, Evaluator, NEAR_ZERO};
use crate::gpu::{Gpu, Readback, StorageBuffer};
use crate::gpu_data::BatchFeed;
pub use crate::gpu_data::{GpuDataset, Residency};
use crate::kernels::optimizer::Optimizer;
use crate::models::{Activations, Autoencoder, Pass};
use crate::nn::ActivationStorage;
use crate::runner::{Plan, UniformRing};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::ops::Range;

mod host_cost;
pub use host_cost::HostCost;

/// Settings of one training run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set; epochs are numbered from 1.
    pub epochs: usize,
    /// Examples per step; each epoch drops its last incomplete batch.
    pub batch: usize,
    /// Optimiser and its hyper-parameters.
    pub optimizer: Optimizer,
    /// Seeds each epoch's shuffle of the examples ([`epoch_order`]); the GPU noise uses the model's seed.
    pub seed: u64,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// Mean over the epoch's steps of the training loss: the reconstruction loss (MSE or BCE, the
    /// model's kind) per pixel, regulariser penalties not included; for a VAE, recon + β·KL in nats
    /// per image (recon: the BCE summed over the image's pixels).
    pub train_loss: f64,
    /// The training objective on the test set: the reconstruction loss per pixel (equal to
    /// `test_mse_px` or `test_bce_px`); for a VAE, the negative ELBO in nats per image (recon + KL,
    /// β not applied: equal to `test_elbo_nats`).
    pub test_loss: f64,
    /// Test MSE per pixel.
    pub test_mse_px: f64,
    /// Test binary cross-entropy per pixel, in nats.
    pub test_bce_px: f64,
    /// Wall-clock seconds of the epoch's training steps (evaluation excluded).
    pub epoch_s: f64,
    /// Training examples per second of `epoch_s` (the steps run in this process, for a resumed epoch).
    pub samples_per_s: f64,
    /// VAE only: summed BCE over the pixels, averaged over test images (nats per image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_recon_nats: Option<f64>,
    /// VAE only: KL(q(z|x) ‖ N(0, I)) per test image, in nats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_kl: Option<f64>,
    /// VAE only: negative ELBO per test image, single sample (recon + KL), in nats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_elbo_nats: Option<f64>,
    /// Mean code activation over the test set (a VAE's μ), and the fraction of code values with
    /// |h| < 0.01: how sparse the code is.
    #[serde(default)]
    pub test_code_mean: f64,
    /// Fraction of test code values with |h| < 0.01, in [0, 1].
    #[serde(default)]
    pub test_code_near_zero: f64,
    /// Mean ‖J_f(x)‖_F over the test set, for a one-layer sigmoid encoder (closed form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_jacobian_fro: Option<f64>,
    /// With `--average-from`: the test figures of the weight average (what the checkpoint holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_test_loss: Option<f64>,
    /// With `--average-from`: the weight average's test MSE per pixel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_test_mse_px: Option<f64>,
    /// With `--average-from`: the weight average's test BCE per pixel, in nats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_test_bce_px: Option<f64>,
}

/// At most this many steps (or one group of steps per submit, if larger) are submitted and not yet
/// finished, so the CPU never runs far ahead.
const MAX_IN_FLIGHT: usize = 4;
/// Training steps recorded into one command buffer unless set otherwise: a submit's fixed cost
/// (validation, a queue submission, its fence) is paid once per 8 steps, while a Ctrl-C still stops
/// within 8 steps and the progress bar moves every 8.
pub const DEFAULT_STEPS_PER_SUBMIT: usize = 8;
/// Words per step in the loss log: (Σ squared error, Σ cross-entropy, Σ KL, unused).
const LOG_STRIDE: usize = 4;
/// The progress bar's loss is refreshed (asynchronously) every this many steps.
const SHOW_EVERY: usize = 16;

/// Everything a training run needs on the GPU, built once.
pub struct Trainer<'a> {
    gpu: &'a Gpu,
    model: &'a Autoencoder,
    train: &'a GpuDataset,
    config: TrainConfig,
    acts: Activations,
    /// The plan's gathers and, for streamed data, the batch copy before each submit.
    feed: BatchFeed<'a>,
    plan: Plan,
    /// A slot of per-step uniforms for each step of one submit.
    ring: UniformRing,
    loss_log: StorageBuffer,
    steps_per_epoch: usize,
    step: u64,
}

impl<'a> Trainer<'a> {
    /// Builds the training step of `model` on `train` (plan, activations, batch feed, loss log),
    /// recording [`DEFAULT_STEPS_PER_SUBMIT`] steps per submit; the batch must lie in `1..=train.n`.
    pub fn new(
        gpu: &'a Gpu,
        model: &'a Autoencoder,
        train: &'a GpuDataset,
        config: TrainConfig,
    ) -> Result<Self> {
        if config.batch == 0 || config.batch > train.n {
            return Err(Error::Config(format!(
                "batch size {} must be between 1 and the number of training examples ({})",
                config.batch, train.n
            )));
        }
        if train.dim != model.input_dim() {
            return Err(Error::Shape(format!(
                "the data has {} values per example but the model's input is {}",
                train.dim,
                model.input_dim()
            )));
        }
        let (acts, feed, plan, ring) = build(gpu, model, train, &config, ActivationStorage::F32, 1)?;
        // Drop the last incomplete batch of each epoch (different examples each epoch: the order is shuffled).
        let steps_per_epoch = train.n / config.batch;
        let loss_log = StorageBuffer::zeroed(gpu, "loss log", LOG_STRIDE * steps_per_epoch)?;
        let mut trainer =
            Trainer { gpu, model, train, config, acts, feed, plan, ring, loss_log, steps_per_epoch, step: 0 };
        trainer.set_steps_per_submit(DEFAULT_STEPS_PER_SUBMIT)?;
        Ok(trainer)
    }

    /// Stores the training step's hidden activations as `storage` asks (f16: the opt-in path, see
    /// [`ActivationStorage::F16`]; an error on an adapter without shader-f16 or a model with no
    /// dense layer feeding another). Call before the first step.
    pub fn set_activation_storage(&mut self, storage: ActivationStorage) -> Result<()> {
        let k = self.steps_per_submit();
        (self.acts, self.feed, self.plan, self.ring) =
            build(self.gpu, self.model, self.train, &self.config, storage, k)?;
        Ok(())
    }

    /// Records up to `k` training steps into each command buffer (results are bit-identical for
    /// every `k`; streamed data keeps `k` batches in flight). Past the steps of an epoch `k`
    /// changes nothing.
    pub fn set_steps_per_submit(&mut self, k: usize) -> Result<()> {
        if k == 0 {
            return Err(Error::Config("steps per submit must be at least 1".into()));
        }
        let k = k.min(self.steps_per_epoch.max(1));
        if k != self.ring.capacity() {
            self.ring = UniformRing::new(self.gpu, &self.plan, k, "train step uniforms")?;
            self.feed.set_slots(self.gpu, k)?;
        }
        Ok(())
    }

    /// Training steps recorded into one command buffer and submitted together.
    pub fn steps_per_submit(&self) -> usize {
        self.ring.capacity()
    }

    /// Submits of a whole epoch.
    pub fn submits_per_epoch(&self) -> usize {
        self.steps_per_epoch.div_ceil(self.steps_per_submit())
    }

    /// Steps per epoch: `train.n / batch` (the last incomplete batch is dropped).
    pub fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    /// The run's settings.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Bytes of the step's activation arena (values, gradients, scratch) as stored now.
    pub fn activation_bytes(&self) -> u64 {
        self.acts.tensors.arena.layout.total as u64 * 4
    }

    /// The tensors stored as f16 (none with f32 storage).
    pub fn half_tensors(&self) -> Vec<String> {
        self.acts
            .tensors
            .arena
            .layout
            .entries
            .iter()
            .map(|e| e.0.clone())
            .filter(|n| self.acts.tensors.is_half(n))
            .collect()
    }

    /// Dispatches per training step (the plan's length).
    pub fn dispatches_per_step(&self) -> usize {
        self.plan.len()
    }

    /// The training objective of one step from its log words (Σ se, Σ bce, Σ KL): per-pixel mean
    /// loss, or for a VAE the negative ELBO in nats per image.
    fn step_loss(&self, words: &[f32]) -> f64 {
        let batch = self.config.batch as f64;
        match self.model.variational() {
            Some(v) => (words[1] as f64 + v.beta as f64 * words[2] as f64) / batch,
            None => words[self.model.loss_kind().slot()] as f64 / (batch * self.train.dim as f64),
        }
    }

    /// Records the training steps on batches `batches` of the current epoch order (at most
    /// [`Trainer::steps_per_submit`]) into one command buffer and submits it; `show` gets a copy
    /// of the last step's loss words.
    fn submit_steps(
        &mut self,
        batches: Range<usize>,
        show: Option<&Readback>,
    ) -> Result<wgpu::SubmissionIndex> {
        let enc = self.record_steps(batches, show)?;
        Ok(self.gpu.queue.submit([enc.finish()]))
    }

    /// Records the steps of `batches` into a fresh encoder (their uniform slots and streamed
    /// batches queued for the next submit), advancing the step counter.
    fn record_steps(
        &mut self,
        batches: Range<usize>,
        show: Option<&Readback>,
    ) -> Result<wgpu::CommandEncoder> {
        let mut enc = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train steps") });
        for (slot, b) in batches.clone().enumerate() {
            self.step += 1;
            // The gather's batch offset, the optimiser's step and the random streams of this step,
            // into the step's own slot (queued before the submit) and from there into the plan's
            // uniforms right before the step's pass.
            self.ring.write(self.gpu, &self.plan, slot, self.step, b * self.config.batch)?;
            self.ring.record_load(&mut enc, &self.plan, slot);
            self.feed.stage_slot(self.gpu, b * self.config.batch, slot, &mut enc);
            self.plan.record_into(&mut enc);
            // The step's totals go to words [4b, 4b+4) of the log: (Σ se, Σ bce, Σ KL, unused).
            let totals = self.acts.totals();
            let log_at = (b * LOG_STRIDE * 4) as u64;
            enc.copy_buffer_to_buffer(
                &totals.buffer,
                (totals.offset * 4) as u64,
                &self.loss_log.buffer,
                log_at,
                8,
            );
            if let Some(kl) = self.acts.kl_total() {
                enc.copy_buffer_to_buffer(
                    &kl.buffer,
                    (kl.offset * 4) as u64,
                    &self.loss_log.buffer,
                    log_at + 8,
                    4,
                );
            }
        }
        if let Some(r) = show {
            r.record_copy(&mut enc, &self.loss_log.buffer, (batches.end - 1) * LOG_STRIDE);
        }
        Ok(enc)
    }

    /// Optimiser steps taken so far (the step counter of the update and of the random streams).
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The loss-log words of the current epoch's first `steps` steps (for an interrupted epoch's
    /// resume state).
    pub fn loss_log_prefix(&self, steps: usize) -> Result<Vec<f32>> {
        self.loss_log.read_f32(self.gpu, 0..LOG_STRIDE * steps.min(self.steps_per_epoch))
    }

    /// Continues from a saved position: the step counter and the log of the epoch's steps done so
    /// far (the model's parameters and optimiser moments are restored by the caller).
    pub fn restore(&mut self, step: u64, log_prefix: &[f32]) -> Result<()> {
        if !log_prefix.len().is_multiple_of(LOG_STRIDE)
            || log_prefix.len() > LOG_STRIDE * self.steps_per_epoch
        {
            return Err(Error::Config(format!(
                "a saved loss log of {} words does not fit an epoch of {} steps",
                log_prefix.len(),
                self.steps_per_epoch
            )));
        }
        self.step = step;
        self.loss_log.write(self.gpu, 0, log_prefix);
        Ok(())
    }

    /// One epoch over a fresh shuffle. Returns the mean training loss ([`EpochMetrics::train_loss`]: per pixel,
    /// or nats per image for a VAE).
    /// `progress` is called with (steps done, running loss) now and then.
    pub fn epoch(&mut self, epoch: usize, progress: impl FnMut(usize, Option<f64>)) -> Result<f64> {
        match self.run_epoch(epoch, 0, &|| false, progress)? {
            EpochEnd::Finished { train_loss } => Ok(train_loss),
            EpochEnd::Stopped { .. } => unreachable!("never asked to stop"),
        }
    }

    /// Epoch `epoch` from batch `from` of its (seeded) order, stopping early after the submit
    /// (of at most [`Trainer::steps_per_submit`] steps) during which `stop()` turns true. The order
    /// depends only on the seed and the epoch, and every random stream only on the step, so an
    /// epoch resumed at `from` continues exactly, however its steps were grouped into submits.
    pub fn run_epoch(
        &mut self,
        epoch: usize,
        from: usize,
        stop: &dyn Fn() -> bool,
        mut progress: impl FnMut(usize, Option<f64>),
    ) -> Result<EpochEnd> {
        self.set_epoch_order(epoch);
        let shown = Readback::new(self.gpu, LOG_STRIDE);
        // The step whose loss `shown` reads, to name it if it is not finite.
        let mut shown_step = 0;
        // (submission, steps in it), oldest first.
        let mut in_flight = std::collections::VecDeque::new();
        let k = self.steps_per_submit();
        let mut b = from;
        while b < self.steps_per_epoch {
            let end = (b + k).min(self.steps_per_epoch);
            let want_show = (b..end).any(|s| s % SHOW_EVERY == SHOW_EVERY - 1) && shown.is_idle();
            let index = self
                .gpu
                .scoped("training steps", || self.submit_steps(b..end, want_show.then_some(&shown)))??;
            if want_show {
                shown.request();
                shown_step = end - 1;
            }
            in_flight.push_back((index, end - b));
            let _ = self.gpu.device.poll(wgpu::PollType::Poll);
            while in_flight.iter().map(|f| f.1).sum::<usize>() > MAX_IN_FLIGHT.max(k) {
                let (oldest, _) = in_flight.pop_front().expect("non-empty");
                self.wait(oldest)?;
            }
            let running = shown.try_take().map(|t| self.step_loss(&t));
            if let Some(loss) = running
                && !loss.is_finite()
            {
                return Err(self.diverged(epoch, shown_step, loss));
            }
            progress(end, running);
            b = end;
            if stop() && b < self.steps_per_epoch {
                if let Some((last, _)) = in_flight.pop_back() {
                    self.wait(last)?;
                }
                // The steps done so far must all be finite for the saved state to be worth resuming.
                let log = self.loss_log.read_f32(self.gpu, 0..LOG_STRIDE * b)?;
                self.check_log(epoch, &log)?;
                return Ok(EpochEnd::Stopped { next_batch: b });
            }
        }
        let log = self.loss_log.read_f32(self.gpu, 0..LOG_STRIDE * self.steps_per_epoch)?;
        let sum = self.check_log(epoch, &log)?;
        Ok(EpochEnd::Finished { train_loss: sum / self.steps_per_epoch as f64 })
    }

    /// The seeded shuffle of epoch `epoch`, for the gathers.
    fn set_epoch_order(&mut self, epoch: usize) {
        self.feed.set_order(self.gpu, epoch_order(self.config.seed, epoch, self.train.n));
    }

    /// Runs the next step (batch `b` of epoch `epoch`'s order) with every dispatch timed on the
    /// GPU (see [`crate::profile`]); it trains like any other step.
    pub fn profile_step(&mut self, epoch: usize, b: usize) -> Result<Vec<crate::profile::DispatchTime>> {
        self.set_epoch_order(epoch);
        self.step += 1;
        let at = (b % self.steps_per_epoch) * self.config.batch;
        self.plan.advance(self.gpu, self.step, at);
        self.feed.stage(self.gpu, at);
        crate::profile::time_plan(self.gpu, &self.plan, |_| {})
    }

    /// The sum of the logged steps' losses, or the first non-finite or exploding one as an error.
    fn check_log(&self, epoch: usize, log: &[f32]) -> Result<f64> {
        let mut sum = 0.0f64;
        for (b, words) in log.chunks(LOG_STRIDE).enumerate() {
            let loss = self.step_loss(words);
            if !loss.is_finite() || loss > 1e6 {
                return Err(self.diverged(epoch, b, loss));
            }
            sum += loss;
        }
        Ok(sum)
    }

    fn diverged(&self, epoch: usize, step: usize, loss: f64) -> Error {
        Error::Diverged {
            epoch,
            step,
            what: "training loss".into(),
            loss: loss as f32,
            lr: self.config.optimizer.lr(),
        }
    }

    fn wait(&self, index: wgpu::SubmissionIndex) -> Result<()> {
        self.gpu
            .device
            .poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: None })
            .map(|_| ())
            .map_err(|e| Error::Readback { context: "training step".into(), message: e.to_string() })
    }
}

/// A training step's activations (stored as `storage` asks), batch feed with `k` slots, plan and
/// uniform ring of `k` slots.
fn build<'a>(
    gpu: &Gpu,
    model: &Autoencoder,
    train: &'a GpuDataset,
    config: &TrainConfig,
    storage: ActivationStorage,
    k: usize,
) -> Result<(Activations, BatchFeed<'a>, Plan, UniformRing)> {
    let matmul = model.matmul_policy(gpu)?;
    let acts = model.activations_stored(gpu, config.batch, storage)?;
    let mut feed = train.feed(gpu, &acts.input(), config.batch)?;
    feed.set_slots(gpu, k)?;
    let launches = step_launches(model, &acts, &feed, &config.optimizer, matmul);
    let plan = Plan::new(gpu, "train step", &launches)?;
    let ring = UniformRing::new(gpu, &plan, k, "train step uniforms")?;
    Ok((acts, feed, plan, ring))
}

/// The launches of one training step: the feed's gathers, forward, loss, backward, update.
pub fn step_launches(
    model: &Autoencoder,
    acts: &Activations,
    feed: &BatchFeed<'_>,
    optimizer: &Optimizer,
    matmul: crate::kernels::matmul_policy::MatmulPolicy,
) -> Vec<crate::gpu::Launch> {
    let mut launches = feed.launches().to_vec();
    launches.extend(model.forward(acts, matmul, Pass::TRAIN));
    launches.extend(model.loss(acts, &acts.input(), true, false));
    launches.extend(model.backward(acts, matmul));
    launches.push(model.update(optimizer, 1));
    launches
}

/// The order of the examples in epoch `epoch` of a run seeded `seed`: a permutation of `0..n` that
/// depends only on the two.
pub fn epoch_order(seed: u64, epoch: usize, n: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(
        seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    order.shuffle(&mut rng);
    order
}

/// How [`Trainer::run_epoch`] ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EpochEnd {
    /// Every step ran; the mean training loss of the epoch.
    Finished {
        /// Mean over the epoch's steps of the step loss: per pixel, or a VAE's recon + β·KL in nats
        /// per image.
        train_loss: f64,
    },
    /// Asked to stop: the epoch continues at this batch.
    Stopped {
        /// Index, in the epoch's order, of the first batch not run.
        next_batch: usize,
    },
}
