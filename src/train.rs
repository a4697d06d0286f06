//! The training loop and evaluation.
//!
//! A training step is one plan (gather, forward, loss, backward, update) recorded into one encoder
//! with one submit. Only the per-step uniforms change (the batch's offset into the shuffled index,
//! read by one gather per data chunk, and the optimiser's step count); data streamed from the host
//! is copied into the batch buffer before the submit (see `crate::gpu_data`). The loss totals of
//! every step are copied into a log buffer that is read once per epoch; the progress bar's running
//! loss comes from a non-blocking readback.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Readback, StorageBuffer};
use crate::gpu_data::BatchFeed;
pub use crate::gpu_data::{GpuDataset, Residency};
use crate::kernels::optimizer::Optimizer;
use crate::models::{Activations, Autoencoder, Pass, activations_fitting};
use crate::runner::Plan;
use rand::SeedableRng;
use rand::seq::SliceRandom;

/// Settings of one training run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub optimizer: Optimizer,
    pub seed: u64,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    /// Mean over the epoch's steps of the training loss (per pixel).
    pub train_loss: f64,
    /// The training loss's kind on the test set (per pixel).
    pub test_loss: f64,
    pub test_mse_px: f64,
    pub test_bce_px: f64,
    /// Wall-clock seconds of the epoch's training steps (evaluation excluded).
    pub epoch_s: f64,
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
    #[serde(default)]
    pub test_code_near_zero: f64,
    /// Mean ‖J_f(x)‖_F over the test set, for a one-layer sigmoid encoder (closed form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_jacobian_fro: Option<f64>,
}

/// Test-set metrics: per pixel, and for a VAE per image in nats.
#[derive(Clone, Copy, Debug)]
pub struct EvalMetrics {
    pub mse_px: f64,
    pub bce_px: f64,
    /// The training objective on this data: per-pixel loss, or a VAE's negative ELBO per image.
    pub loss: f64,
    /// VAE: (reconstruction nats, KL nats, negative ELBO nats) per image.
    pub vae: Option<(f64, f64, f64)>,
    pub code_mean: f64,
    pub code_near_zero: f64,
    /// Mean ‖J_f(x)‖_F, when the encoder is one sigmoid layer.
    pub jacobian_fro: Option<f64>,
}

/// Below this magnitude a code value counts as "near zero" in the sparsity metric.
pub const NEAR_ZERO: f32 = 0.01;

/// At most this many steps are submitted and not yet finished, so the CPU never runs far ahead.
const MAX_IN_FLIGHT: usize = 4;
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
    loss_log: StorageBuffer,
    steps_per_epoch: usize,
    step: u64,
}

impl<'a> Trainer<'a> {
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
        let variant = gpu.matmul_variant()?;
        let acts = model.activations(gpu, config.batch)?;
        let feed = train.feed(gpu, &acts.input(), config.batch)?;
        let launches = step_launches(model, &acts, &feed, &config.optimizer, variant);
        let plan = Plan::new(gpu, "train step", &launches)?;
        // Drop the last incomplete batch of each epoch (different examples each epoch: the order is shuffled).
        let steps_per_epoch = train.n / config.batch;
        let loss_log = StorageBuffer::zeroed(gpu, "loss log", LOG_STRIDE * steps_per_epoch)?;
        Ok(Trainer { gpu, model, train, config, acts, feed, plan, loss_log, steps_per_epoch, step: 0 })
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Dispatches per training step (the plan's length); the step is one submit.
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

    /// Records and submits one training step on batch `b` of the current epoch order.
    fn submit_step(&mut self, b: usize, show: Option<&Readback>) -> wgpu::SubmissionIndex {
        self.step += 1;
        // The gather's batch offset, the optimiser's step and the random streams of this step.
        self.plan.advance(self.gpu, self.step, b * self.config.batch);
        self.feed.stage(self.gpu, b * self.config.batch);
        let mut enc = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train step") });
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
        if let Some(r) = show {
            r.record_copy(&mut enc, &self.loss_log.buffer, b * LOG_STRIDE);
        }
        self.gpu.queue.submit([enc.finish()])
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

    /// One epoch over a fresh shuffle. Returns the mean training loss (per pixel).
    /// `progress` is called with (steps done, running loss) now and then.
    pub fn epoch(&mut self, epoch: usize, progress: impl FnMut(usize, Option<f64>)) -> Result<f64> {
        match self.run_epoch(epoch, 0, &|| false, progress)? {
            EpochEnd::Finished { train_loss } => Ok(train_loss),
            EpochEnd::Stopped { .. } => unreachable!("never asked to stop"),
        }
    }

    /// Epoch `epoch` from batch `from` of its (seeded) order, stopping early after the step during
    /// which `stop()` turns true. The order depends only on the seed and the epoch, and every
    /// random stream only on the step, so an epoch resumed at `from` continues exactly.
    pub fn run_epoch(
        &mut self,
        epoch: usize,
        from: usize,
        stop: &dyn Fn() -> bool,
        mut progress: impl FnMut(usize, Option<f64>),
    ) -> Result<EpochEnd> {
        self.set_epoch_order(epoch);
        let shown = Readback::new(self.gpu, LOG_STRIDE);
        let mut in_flight = std::collections::VecDeque::new();
        for b in from..self.steps_per_epoch {
            let want_show = b % SHOW_EVERY == SHOW_EVERY - 1 && shown.is_idle();
            let index =
                self.gpu.scoped("training step", || self.submit_step(b, want_show.then_some(&shown)))?;
            if want_show {
                shown.request();
            }
            in_flight.push_back(index);
            if in_flight.len() > MAX_IN_FLIGHT {
                let oldest = in_flight.pop_front().expect("non-empty");
                self.wait(oldest)?;
            } else {
                let _ = self.gpu.device.poll(wgpu::PollType::Poll);
            }
            let running = shown.try_take().map(|t| self.step_loss(&t));
            if let Some(loss) = running
                && !loss.is_finite()
            {
                return Err(self.diverged(epoch, b, loss));
            }
            progress(b + 1, running);
            if stop() && b + 1 < self.steps_per_epoch {
                if let Some(last) = in_flight.pop_back() {
                    self.wait(last)?;
                }
                // The steps done so far must all be finite for the saved state to be worth resuming.
                let log = self.loss_log.read_f32(self.gpu, 0..LOG_STRIDE * (b + 1))?;
                self.check_log(epoch, &log)?;
                return Ok(EpochEnd::Stopped { next_batch: b + 1 });
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

/// The launches of one training step: the feed's gathers, forward, loss, backward, update.
pub fn step_launches(
    model: &Autoencoder,
    acts: &Activations,
    feed: &BatchFeed<'_>,
    optimizer: &Optimizer,
    variant: crate::kernels::matmul::MatmulVariant,
) -> Vec<crate::gpu::Launch> {
    let mut launches = feed.launches().to_vec();
    launches.extend(model.forward(acts, variant, Pass::TRAIN));
    launches.extend(model.loss(acts, &acts.input(), true, false));
    launches.extend(model.backward(acts, variant));
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
    Finished { train_loss: f64 },
    /// Asked to stop: the epoch continues at this batch.
    Stopped { next_batch: usize },
}

/// Runs a model over a whole dataset in batches: test metrics, codes, reconstructions.
pub struct Evaluator<'a> {
    gpu: &'a Gpu,
    model: &'a Autoencoder,
    data: &'a GpuDataset,
    /// (batch size, activations, plan, its gathers) for full batches and for the remainder.
    plans: Vec<(usize, Activations, Plan, BatchFeed<'a>)>,
    /// The code layer's output for every example, `[n, code width]` (a VAE's is μ and log σ²).
    codes: StorageBuffer,
}

/// What an evaluation pass produced.
pub struct EvalOutput {
    pub metrics: EvalMetrics,
    /// `[n, code_dim]` codes of every example (a VAE's posterior means μ).
    pub codes: Vec<f32>,
    /// Reconstructions (after the output activation) of the first examples, `[k, dim]`.
    pub recon: Vec<f32>,
}

/// Evaluation draws its VAE noise from streams no training step uses (steps stay below 2^40).
const EVAL_STREAM: u64 = 1 << 46;

impl<'a> Evaluator<'a> {
    /// Evaluation of the training objective ([`Pass::EVAL`]) in batches of at most `batch`.
    pub fn new(gpu: &'a Gpu, model: &'a Autoencoder, data: &'a GpuDataset, batch: usize) -> Result<Self> {
        Self::with_pass(gpu, model, data, batch, Pass::EVAL)
    }

    /// Evaluation with the forward `pass` (e.g. [`Pass::EVAL_MEAN`]: a VAE at z = μ).
    pub fn with_pass(
        gpu: &'a Gpu,
        model: &'a Autoencoder,
        data: &'a GpuDataset,
        batch: usize,
        pass: Pass,
    ) -> Result<Self> {
        if data.dim != model.input_dim() {
            return Err(Error::Shape(format!(
                "the data has {} values per example but the model's input is {}",
                data.dim,
                model.input_dim()
            )));
        }
        let variant = gpu.matmul_variant()?;
        // A model whose activations for `batch` examples exceed the adapter's buffer limits (a conv
        // model's feature maps) is evaluated in smaller batches.
        let (batch, acts) = activations_fitting(model, gpu, batch.clamp(1, data.n.max(1)))?;
        let mut full = Some(acts);
        let code_width = model.code_width();
        let codes = StorageBuffer::zeroed(gpu, "eval codes", data.n * code_width)?;
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
            // Pass::EVAL is the training objective without dropout: a denoising model gets corrupted
            // inputs (from fixed evaluation streams), a VAE samples z.
            launches.extend(model.forward(&acts, variant, pass));
            launches.extend(model.loss(&acts, &acts.input(), false, true));
            let plan = Plan::new(gpu, "evaluate", &launches)?;
            plans.push((size, acts, plan, feed));
        }
        Ok(Evaluator { gpu, model, data, plans, codes })
    }

    /// Evaluates every example in index order; keeps the first `keep_recon` reconstructions.
    /// Uses the identity order: a resident dataset's index buffer must not be shuffled (test sets
    /// never are); streamed data is always read in order.
    /// A VAE is evaluated with one sample of z per example, from fixed streams: repeatable.
    pub fn run(&self, keep_recon: usize) -> Result<EvalOutput> {
        let gpu = self.gpu;
        let model = self.model;
        let code_width = model.code_width();
        for (_, acts, _, _) in &self.plans {
            acts.totals().write(gpu, &[0.0, 0.0])?;
            if let Some(kl) = acts.kl_total() {
                kl.write(gpu, &[0.0])?;
            }
        }
        let mut start = 0;
        let mut recon = Vec::new();
        while start < self.data.n {
            let (size, acts, plan, feed) =
                if self.data.n - start >= self.plans[0].0 { &self.plans[0] } else { &self.plans[1] };
            let size = *size;
            plan.advance(gpu, EVAL_STREAM + start as u64, start);
            feed.stage(gpu, start);
            gpu.scoped("evaluation", || {
                let mut enc = gpu.device.create_command_encoder(&Default::default());
                plan.record_into(&mut enc);
                let code = acts.code();
                enc.copy_buffer_to_buffer(
                    &code.buffer,
                    (code.offset * 4) as u64,
                    &self.codes.buffer,
                    (start * code_width * 4) as u64,
                    (size * code_width * 4) as u64,
                );
                gpu.queue.submit([enc.finish()]);
            })?;
            if recon.len() < keep_recon * self.data.dim {
                let logits = acts.logits().read(gpu)?;
                let take = (keep_recon * self.data.dim - recon.len()).min(logits.len());
                let act = model.output_activation();
                recon.extend(logits[..take].iter().map(|&z| crate::cpu::activation::activate(z, act)));
            }
            start += size;
        }
        let mut sums = [0.0f64; 3];
        for (_, acts, _, _) in &self.plans {
            let t = acts.totals().read(gpu)?;
            sums[0] += t[0] as f64;
            sums[1] += t[1] as f64;
            if let Some(kl) = acts.kl_total() {
                sums[2] += kl.read(gpu)?[0] as f64;
            }
        }
        let n = self.data.n as f64;
        let pixels = n * self.data.dim as f64;
        let (mse_px, bce_px) = (sums[0] / pixels, sums[1] / pixels);
        let vae = model.variational().map(|_| (sums[1] / n, sums[2] / n, (sums[1] + sums[2]) / n));
        let loss = match (vae, model.loss_kind()) {
            (Some((_, _, elbo)), _) => elbo,
            (None, crate::kernels::loss::LossKind::Mse) => mse_px,
            (None, crate::kernels::loss::LossKind::Bce) => bce_px,
        };
        let all = self.codes.read_all_f32(gpu)?;
        // A VAE's code row is [μ, log σ²]: keep μ.
        let d = model.code_dim();
        let codes: Vec<f32> = all.chunks(code_width).flat_map(|row| row[..d].iter().copied()).collect();
        let count = codes.len().max(1) as f64;
        let code_mean = codes.iter().map(|&v| v as f64).sum::<f64>() / count;
        let code_near_zero = codes.iter().filter(|v| v.abs() < NEAR_ZERO).count() as f64 / count;
        let jacobian_fro = model.jacobian_fro(gpu, &codes, self.data.n)?;
        let metrics = EvalMetrics { mse_px, bce_px, loss, vae, code_mean, code_near_zero, jacobian_fro };
        Ok(EvalOutput { metrics, codes, recon })
    }
}
