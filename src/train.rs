//! The training loop and evaluation.
//!
//! A training step is one plan (gather, forward, loss, backward, update) recorded into one encoder
//! with one submit. Only two uniforms change per step (the batch's offset into the shuffled index,
//! and the optimiser's step count). The loss totals of every step are copied into a log buffer that
//! is read once per epoch; the progress bar's running loss comes from a non-blocking readback.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Readback, StorageBuffer};
use crate::kernels::gather::{GatherParams, gather_u8};
use crate::kernels::optimizer::Optimizer;
use crate::models::dense::{DenseActivations, DenseAutoencoder};
use crate::runner::{Plan, View};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::time::Instant;

/// A dataset resident on the GPU as u8 (4 pixels per word) plus an index buffer for shuffling.
pub struct GpuDataset {
    pub data: StorageBuffer,
    pub index: StorageBuffer,
    pub n: usize,
    pub dim: usize,
    pub labels: Vec<u8>,
}

impl GpuDataset {
    pub fn upload(gpu: &Gpu, ds: &Dataset) -> Result<GpuDataset> {
        let data = StorageBuffer::from_slice(gpu, &format!("{} images", ds.name), &ds.images)?;
        let identity: Vec<u32> = (0..ds.n as u32).collect();
        let index = StorageBuffer::from_slice(gpu, &format!("{} index", ds.name), &identity)?;
        Ok(GpuDataset {
            data,
            index,
            n: ds.n,
            dim: ds.dim(),
            labels: ds.labels.clone(),
        })
    }
}

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
}

/// Test-set metrics, per pixel.
#[derive(Clone, Copy, Debug)]
pub struct EvalMetrics {
    pub mse_px: f64,
    pub bce_px: f64,
    pub loss: f64,
}

/// At most this many steps are submitted and not yet finished, so the CPU never runs far ahead.
const MAX_IN_FLIGHT: usize = 4;
/// The progress bar's loss is refreshed (asynchronously) every this many steps.
const SHOW_EVERY: usize = 16;

/// Everything a training run needs on the GPU, built once.
pub struct Trainer<'a> {
    gpu: &'a Gpu,
    model: &'a DenseAutoencoder,
    train: &'a GpuDataset,
    config: TrainConfig,
    acts: DenseActivations,
    plan: Plan,
    gather_slot: usize,
    update_slot: usize,
    loss_log: StorageBuffer,
    steps_per_epoch: usize,
    step: u64,
}

impl<'a> Trainer<'a> {
    pub fn new(
        gpu: &'a Gpu,
        model: &'a DenseAutoencoder,
        train: &'a GpuDataset,
        config: TrainConfig,
    ) -> Result<Self> {
        if config.batch == 0 || config.batch > train.n {
            return Err(Error::Config(format!(
                "batch size {} must be between 1 and the number of training examples ({})",
                config.batch, train.n
            )));
        }
        if train.dim != model.config.input_dim() {
            return Err(Error::Shape(format!(
                "the data has {} values per example but the model's input is {}",
                train.dim,
                model.config.input_dim()
            )));
        }
        let variant = gpu.matmul_variant()?;
        let acts = model.activations(gpu, config.batch)?;
        let mut launches = vec![gather_u8(
            &acts.input(),
            &View::whole(&train.data),
            &View::whole(&train.index),
            config.batch,
            train.dim,
            0,
        )];
        launches.extend(model.forward(&acts, variant));
        launches.extend(model.loss(&acts, &acts.input(), true, false));
        launches.extend(model.backward(&acts, variant));
        launches.push(model.update(&config.optimizer, 1));
        let update_slot = launches.len() - 1;
        let plan = Plan::new(gpu, "train step", &launches)?;
        // Drop the last incomplete batch of each epoch (different examples each epoch: the order is shuffled).
        let steps_per_epoch = train.n / config.batch;
        let loss_log = StorageBuffer::zeroed(gpu, "loss log", 2 * steps_per_epoch)?;
        Ok(Trainer {
            gpu,
            model,
            train,
            config,
            acts,
            plan,
            gather_slot: 0,
            update_slot,
            loss_log,
            steps_per_epoch,
            step: 0,
        })
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    /// Dispatches per training step (the plan's length); the step is one submit.
    pub fn dispatches_per_step(&self) -> usize {
        self.plan.len()
    }

    /// Records and submits one training step on batch `b` of the current epoch order.
    fn submit_step(&mut self, b: usize, show: Option<&Readback>) -> wgpu::SubmissionIndex {
        self.step += 1;
        let gp = GatherParams {
            batch: self.config.batch as u32,
            dim: self.train.dim as u32,
            offset: (b * self.config.batch) as u32,
            _pad: 0,
        };
        self.plan
            .set_uniform(self.gpu, self.gather_slot, bytemuck::bytes_of(&gp));
        let update = self.model.update(&self.config.optimizer, self.step);
        self.plan
            .set_uniform(self.gpu, self.update_slot, &update.uniform);
        let mut enc = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("train step"),
            });
        self.plan.record_into(&mut enc);
        let totals = self.acts.totals();
        enc.copy_buffer_to_buffer(
            &totals.buffer,
            (totals.offset * 4) as u64,
            &self.loss_log.buffer,
            (b * 8) as u64,
            8,
        );
        if let Some(r) = show {
            r.record_copy(&mut enc, &totals.buffer, totals.offset);
        }
        self.gpu.queue.submit([enc.finish()])
    }

    /// One epoch over a fresh shuffle. Returns the mean training loss (per pixel).
    /// `progress` is called with (steps done, running loss) now and then.
    pub fn epoch(
        &mut self,
        epoch: usize,
        mut progress: impl FnMut(usize, Option<f64>),
    ) -> Result<f64> {
        let mut order: Vec<u32> = (0..self.train.n as u32).collect();
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(
            self.config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        order.shuffle(&mut rng);
        self.train.index.write(self.gpu, 0, &order);

        let per_step = (self.config.batch * self.train.dim) as f64;
        let slot = self.model.config.loss.slot();
        let shown = Readback::new(self.gpu, 2);
        let mut in_flight = std::collections::VecDeque::new();
        for b in 0..self.steps_per_epoch {
            let want_show = b % SHOW_EVERY == SHOW_EVERY - 1 && shown.is_idle();
            let index = self.gpu.scoped("training step", || {
                self.submit_step(b, want_show.then_some(&shown))
            })?;
            if want_show {
                shown.request();
            }
            in_flight.push_back(index);
            if in_flight.len() > MAX_IN_FLIGHT {
                let oldest = in_flight.pop_front().expect("non-empty");
                self.gpu
                    .device
                    .poll(wgpu::PollType::Wait {
                        submission_index: Some(oldest),
                        timeout: None,
                    })
                    .map_err(|e| Error::Readback {
                        context: "training step".into(),
                        message: e.to_string(),
                    })?;
            } else {
                let _ = self.gpu.device.poll(wgpu::PollType::Poll);
            }
            let running = shown.try_take().map(|t| t[slot] as f64 / per_step);
            if let Some(loss) = running
                && !loss.is_finite()
            {
                return Err(Error::Diverged {
                    epoch,
                    step: b,
                    loss: loss as f32,
                    lr: self.config.optimizer.lr(),
                });
            }
            progress(b + 1, running);
        }
        let log = self
            .loss_log
            .read_f32(self.gpu, 0..2 * self.steps_per_epoch)?;
        let mut sum = 0.0f64;
        for (b, pair) in log.chunks(2).enumerate() {
            let loss = pair[slot] as f64 / per_step;
            if !loss.is_finite() || loss > 1e6 {
                return Err(Error::Diverged {
                    epoch,
                    step: b,
                    loss: loss as f32,
                    lr: self.config.optimizer.lr(),
                });
            }
            sum += loss;
        }
        Ok(sum / self.steps_per_epoch as f64)
    }
}

/// Runs a model over a whole dataset in batches: test metrics, codes, reconstructions.
pub struct Evaluator<'a> {
    gpu: &'a Gpu,
    model: &'a DenseAutoencoder,
    data: &'a GpuDataset,
    /// (batch size, activations, plan) for full batches and for the remainder.
    plans: Vec<(usize, DenseActivations, Plan)>,
    totals: StorageBuffer,
    codes: StorageBuffer,
}

/// What an evaluation pass produced.
pub struct EvalOutput {
    pub metrics: EvalMetrics,
    /// `[n, code_dim]` codes of every example.
    pub codes: Vec<f32>,
    /// Reconstructions (after the output activation) of the first examples, `[k, dim]`.
    pub recon: Vec<f32>,
}

impl<'a> Evaluator<'a> {
    pub fn new(
        gpu: &'a Gpu,
        model: &'a DenseAutoencoder,
        data: &'a GpuDataset,
        batch: usize,
    ) -> Result<Self> {
        if data.dim != model.config.input_dim() {
            return Err(Error::Shape(format!(
                "the data has {} values per example but the model's input is {}",
                data.dim,
                model.config.input_dim()
            )));
        }
        let variant = gpu.matmul_variant()?;
        let batch = batch.clamp(1, data.n.max(1));
        let totals = StorageBuffer::zeroed(gpu, "eval totals", 2)?;
        let codes = StorageBuffer::zeroed(gpu, "eval codes", data.n * model.config.code_dim())?;
        let mut plans = Vec::new();
        for size in [batch, data.n % batch] {
            if size == 0 {
                continue;
            }
            let acts = model.activations(gpu, size)?;
            let mut launches = vec![gather_u8(
                &acts.input(),
                &View::whole(&data.data),
                &View::whole(&data.index),
                size,
                data.dim,
                0,
            )];
            launches.extend(model.forward(&acts, variant));
            launches.extend(model.loss(&acts, &acts.input(), false, true));
            let plan = Plan::new(gpu, "evaluate", &launches)?;
            plans.push((size, acts, plan));
        }
        Ok(Evaluator {
            gpu,
            model,
            data,
            plans,
            totals,
            codes,
        })
    }

    /// Evaluates every example in index order; keeps the first `keep_recon` reconstructions.
    /// Uses the identity order: the dataset's index buffer must not be shuffled (test sets never are).
    pub fn run(&self, keep_recon: usize) -> Result<EvalOutput> {
        let gpu = self.gpu;
        let code_dim = self.model.config.code_dim();
        let code_layer = self.model.config.code_layer;
        for (_, acts, _) in &self.plans {
            acts.totals().write(gpu, &[0.0, 0.0])?;
        }
        let mut start = 0;
        let mut recon = Vec::new();
        while start < self.data.n {
            let (size, acts, plan) = if self.data.n - start >= self.plans[0].0 {
                &self.plans[0]
            } else {
                &self.plans[1]
            };
            let size = *size;
            let gp = GatherParams {
                batch: size as u32,
                dim: self.data.dim as u32,
                offset: start as u32,
                _pad: 0,
            };
            plan.set_uniform(gpu, 0, bytemuck::bytes_of(&gp));
            gpu.scoped("evaluation", || {
                let mut enc = gpu.device.create_command_encoder(&Default::default());
                plan.record_into(&mut enc);
                let code = acts.output(code_layer);
                enc.copy_buffer_to_buffer(
                    &code.buffer,
                    (code.offset * 4) as u64,
                    &self.codes.buffer,
                    (start * code_dim * 4) as u64,
                    (size * code_dim * 4) as u64,
                );
                gpu.queue.submit([enc.finish()]);
            })?;
            if recon.len() < keep_recon * self.data.dim {
                let logits = acts.logits().read(gpu)?;
                let take = (keep_recon * self.data.dim - recon.len()).min(logits.len());
                let act = self.model.config.output_activation();
                recon.extend(
                    logits[..take]
                        .iter()
                        .map(|&z| crate::cpu::activation::activate(z, act)),
                );
            }
            start += size;
        }
        let mut sums = [0.0f64; 2];
        for (_, acts, _) in &self.plans {
            let t = acts.totals().read(gpu)?;
            sums[0] += t[0] as f64;
            sums[1] += t[1] as f64;
        }
        let pixels = (self.data.n * self.data.dim) as f64;
        let (mse_px, bce_px) = (sums[0] / pixels, sums[1] / pixels);
        let loss = match self.model.config.loss {
            crate::kernels::loss::LossKind::Mse => mse_px,
            crate::kernels::loss::LossKind::Bce => bce_px,
        };
        let codes = self.codes.read_all_f32(gpu)?;
        Ok(EvalOutput {
            metrics: EvalMetrics {
                mse_px,
                bce_px,
                loss,
            },
            codes,
            recon,
        })
    }
}

/// Trains for `config.epochs`, evaluating on `test` after every epoch; `on_epoch` sees each epoch's
/// metrics (write them, checkpoint, ...). Progress goes to a bar on stderr when `show_progress`.
pub fn train(
    gpu: &Gpu,
    model: &DenseAutoencoder,
    train: &GpuDataset,
    test: &GpuDataset,
    config: &TrainConfig,
    show_progress: bool,
    mut on_epoch: impl FnMut(&EpochMetrics, &Evaluator) -> Result<()>,
) -> Result<Vec<EpochMetrics>> {
    let mut trainer = Trainer::new(gpu, model, train, config.clone())?;
    let evaluator = Evaluator::new(gpu, model, test, 1000)?;
    let mut history = Vec::new();
    for epoch in 1..=config.epochs {
        let bar = if show_progress {
            indicatif::ProgressBar::new(trainer.steps_per_epoch() as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta} {msg}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", config.epochs));
        let start = Instant::now();
        let train_loss = trainer.epoch(epoch, |done, running| {
            bar.set_position(done as u64);
            if let Some(l) = running {
                bar.set_message(format!("loss {l:.5}"));
            }
        })?;
        let epoch_s = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let eval = evaluator.run(0)?;
        let m = EpochMetrics {
            epoch,
            train_loss,
            test_loss: eval.metrics.loss,
            test_mse_px: eval.metrics.mse_px,
            test_bce_px: eval.metrics.bce_px,
            epoch_s,
            samples_per_s: (trainer.steps_per_epoch() * config.batch) as f64 / epoch_s,
        };
        on_epoch(&m, &evaluator)?;
        history.push(m);
    }
    Ok(history)
}
