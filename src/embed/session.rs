//! Training steps recorded into the host's encoder: [`TrainSession`].

use super::readback::PendingReads;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer};
use crate::gpu_data::{BatchFeed, GpuDataset};
use crate::models::{Activations, Autoencoder};
use crate::nn::ActivationStorage;
use crate::runner::Plan;
use crate::runner::UniformRing;
use crate::train::{TrainConfig, epoch_order, step_launches};

/// Words per step in the loss ring: (Σ squared error, Σ cross-entropy, Σ KL, unused), as in the
/// training loop's loss log.
const LOSS_WORDS: usize = 4;
/// Loss readbacks that may wait for the host at once; past that a submit's losses are dropped.
const LOSS_READS: usize = 4;

/// How much a [`TrainSession`] may record between two submits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepOptions {
    /// The most training steps recorded between two calls of [`TrainSession::submitted`] (the
    /// per-step uniform slots and the loss ring are this long). Default 16.
    pub max_steps_per_submit: usize,
    /// How the steps store hidden activations (f16 needs a device created with
    /// `Features::SHADER_F16`; see [`ActivationStorage::F16`]). Default f32.
    pub activations: ActivationStorage,
}

impl Default for StepOptions {
    fn default() -> StepOptions {
        StepOptions { max_steps_per_submit: 16, activations: ActivationStorage::F32 }
    }
}

/// The training losses of the steps one submit ran, read back without waiting.
#[derive(Clone, Debug, PartialEq)]
pub struct StepLosses {
    /// The optimiser step of the first loss (1-based: the first step of a run is 1).
    pub first_step: u64,
    /// The training objective of each step: per-pixel loss, or a VAE's negative ELBO per image
    /// (nats), exactly as [`crate::train::Trainer`] logs it.
    pub losses: Vec<f64>,
}

impl StepLosses {
    /// Mean of [`StepLosses::losses`].
    pub fn mean(&self) -> f64 {
        self.losses.iter().sum::<f64>() / self.losses.len().max(1) as f64
    }
}

/// Trains a model by recording steps into command encoders the host owns and submits.
///
/// Protocol, per frame: [`TrainSession::record_steps`] into the host's encoder (any number of calls,
/// at most [`StepOptions::max_steps_per_submit`] steps in all), the host submits that encoder, then
/// calls [`TrainSession::submitted`]; [`TrainSession::poll_losses`] hands out losses once the GPU
/// has run the steps. Nothing waits, nothing is created after [`TrainSession::new`], and the steps
/// are exactly those of [`crate::train::Trainer::epoch`]: the same batches in the same seeded order,
/// the same random streams, bit-identical weights.
///
/// Each step recorded since the last submit has its own slot for its per-step uniforms (batch
/// offset, optimiser step, random streams), copied into the plan's uniform buffer inside the encoder
/// right before the step (see the `embed` module); an epoch's shuffled order is copied into the
/// dataset's index buffer the same way, so steps on both sides of an epoch boundary can share one
/// encoder.
///
/// ```no_run
/// # fn frame(gpu: &aegpu::gpu::Gpu, model: &aegpu::models::Autoencoder,
/// #          data: &aegpu::train::GpuDataset, config: aegpu::train::TrainConfig)
/// #          -> aegpu::Result<()> {
/// use aegpu::embed::{StepOptions, TrainSession};
/// let mut session = TrainSession::new(gpu, model, data, config, StepOptions::default())?;
/// // each frame:
/// let mut encoder = gpu.device.create_command_encoder(&Default::default());
/// session.record_steps(&mut encoder, 4)?;
/// // ... the host's own passes ...
/// gpu.queue.submit([encoder.finish()]);
/// session.submitted();
/// if let Some(l) = session.poll_losses() {
///     println!("steps from {}: loss {:.4}", l.first_step, l.mean());
/// }
/// # Ok(()) }
/// ```
pub struct TrainSession<'a> {
    gpu: &'a Gpu,
    model: &'a Autoencoder,
    data: &'a GpuDataset,
    config: TrainConfig,
    acts: Activations,
    _feed: BatchFeed<'a>,
    plan: Plan,
    index: wgpu::Buffer,
    ring: UniformRing,
    /// Staging slots for the order of each epoch begun since the last submit, `n` words each.
    orders: wgpu::Buffer,
    order_slots: usize,
    loss_ring: StorageBuffer,
    reads: PendingReads<(u64, usize, usize)>,
    steps_per_epoch: usize,
    /// Steps recorded so far (the last one's optimiser step).
    step: u64,
    /// The epoch of the next step (1-based) and its batch within the epoch.
    epoch: usize,
    batch: usize,
    since_submit: usize,
    orders_since_submit: usize,
}

impl<'a> TrainSession<'a> {
    /// Builds everything the steps need: activations, the step's plan, the uniform slots, the loss
    /// ring and its readbacks. The dataset must be resident on the GPU (not streamed from host
    /// memory: its batches would need a host write per step). `config.epochs` is not used: the host
    /// decides how many steps to record; training starts at epoch 1, step 1.
    pub fn new(
        gpu: &'a Gpu,
        model: &'a Autoencoder,
        data: &'a GpuDataset,
        config: TrainConfig,
        options: StepOptions,
    ) -> Result<TrainSession<'a>> {
        let capacity = options.max_steps_per_submit;
        if capacity == 0 {
            return Err(Error::Config("max_steps_per_submit must be at least 1".into()));
        }
        if config.batch == 0 || config.batch > data.n {
            return Err(Error::Config(format!(
                "batch size {} must be between 1 and the number of training examples ({})",
                config.batch, data.n
            )));
        }
        if data.dim != model.input_dim() {
            return Err(Error::Shape(format!(
                "the data has {} values per example but the model's input is {}",
                data.dim,
                model.input_dim()
            )));
        }
        let variant = model.matmul_policy(gpu)?;
        let acts = model.activations_stored(gpu, config.batch, options.activations)?;
        let feed = data.feed(gpu, &acts.input(), config.batch)?;
        let index = feed
            .order_buffer()
            .ok_or_else(|| {
                Error::Config(
                    "a TrainSession needs the dataset resident on the GPU; this one is streamed from host \
                     memory (upload it with Residency::Gpu, or train it with Trainer)"
                        .into(),
                )
            })?
            .buffer
            .clone();
        let plan =
            Plan::new(gpu, "session step", &step_launches(model, &acts, &feed, &config.optimizer, variant))?;
        let ring = UniformRing::new(gpu, &plan, capacity, "session step uniforms")?;
        let steps_per_epoch = data.n / config.batch;
        let order_slots = capacity.div_ceil(steps_per_epoch) + 1;
        let orders = gpu.scoped("creating the session's order slots", || {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("session epoch orders"),
                size: (order_slots * data.n.max(1) * 4) as u64,
                usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let loss_ring = StorageBuffer::zeroed(gpu, "session losses", LOSS_WORDS * capacity)?;
        let reads = PendingReads::new(gpu, LOSS_READS, LOSS_WORDS * capacity);
        Ok(TrainSession {
            gpu,
            model,
            data,
            config,
            acts,
            _feed: feed,
            plan,
            index,
            ring,
            orders,
            order_slots,
            loss_ring,
            reads,
            steps_per_epoch,
            step: 0,
            epoch: 1,
            batch: 0,
            since_submit: 0,
            orders_since_submit: 0,
        })
    }

    /// Records `k` training steps into `encoder` (one compute pass each, plus a few small copies);
    /// submits nothing and waits for nothing. Fails, recording nothing, when `k` more steps would
    /// exceed [`StepOptions::max_steps_per_submit`] since the last [`TrainSession::submitted`].
    pub fn record_steps(&mut self, encoder: &mut wgpu::CommandEncoder, k: usize) -> Result<()> {
        let capacity = self.ring.capacity();
        if self.since_submit + k > capacity {
            return Err(Error::Config(format!(
                "{k} more steps would make {} recorded since the last submit, more than \
                 max_steps_per_submit = {capacity}: submit the encoder and call submitted() first",
                self.since_submit + k
            )));
        }
        if k == 0 {
            return Ok(());
        }
        let first_slot = self.since_submit;
        let first_step = self.step + 1;
        for _ in 0..k {
            if self.batch == self.steps_per_epoch {
                self.epoch += 1;
                self.batch = 0;
            }
            if self.batch == 0 {
                self.record_order(encoder)?;
            }
            let slot = self.since_submit;
            self.step += 1;
            let offset = self.batch * self.config.batch;
            self.ring.write(self.gpu, &self.plan, slot, self.step, offset)?;
            self.ring.record_load(encoder, &self.plan, slot);
            self.plan.record_into(encoder);
            let log_at = (slot * LOSS_WORDS * 4) as u64;
            let totals = self.acts.totals();
            encoder.copy_buffer_to_buffer(
                &totals.buffer,
                (totals.offset * 4) as u64,
                &self.loss_ring.buffer,
                log_at,
                8,
            );
            if let Some(kl) = self.acts.kl_total() {
                encoder.copy_buffer_to_buffer(
                    &kl.buffer,
                    (kl.offset * 4) as u64,
                    &self.loss_ring.buffer,
                    log_at + 8,
                    4,
                );
            }
            self.batch += 1;
            self.since_submit += 1;
        }
        // One readback per call: the ring from word 0, and which of its slots this call filled.
        self.reads.record(encoder, &self.loss_ring.buffer, 0, (first_step, first_slot, k));
        Ok(())
    }

    /// The epoch's order into a free order slot, and its copy into the dataset's index buffer.
    fn record_order(&mut self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        if self.orders_since_submit >= self.order_slots {
            return Err(Error::Config("more epochs begun since the last submit than order slots".into()));
        }
        let order = epoch_order(self.config.seed, self.epoch, self.data.n);
        let bytes = (order.len() * 4) as u64;
        let at = self.orders_since_submit as u64 * (self.data.n.max(1) * 4) as u64;
        self.gpu.queue.write_buffer(&self.orders, at, bytemuck::cast_slice(&order));
        encoder.copy_buffer_to_buffer(&self.orders, at, &self.index, 0, bytes);
        self.orders_since_submit += 1;
        Ok(())
    }

    /// Call right after the `queue.submit` that carried the recorded steps (not before: the loss
    /// readbacks are mapped here, and a buffer being mapped may not be used by a submit). Frees the
    /// per-step slots for the next frame.
    pub fn submitted(&mut self) {
        self.since_submit = 0;
        self.orders_since_submit = 0;
        self.reads.submitted();
    }

    /// The losses of the oldest submit whose steps the GPU has finished, if any: polls the device
    /// without blocking. The losses of a call are dropped when 4 earlier ones are still
    /// waiting to be taken (see [`TrainSession::losses_dropped`]).
    pub fn poll_losses(&mut self) -> Option<StepLosses> {
        let _ = self.gpu.device.poll(wgpu::PollType::Poll);
        let ((first_step, first_slot, k), words) = self.reads.take()?;
        let losses = words[first_slot * LOSS_WORDS..(first_slot + k) * LOSS_WORDS]
            .chunks(LOSS_WORDS)
            .map(|w| self.step_loss(w))
            .collect();
        Some(StepLosses { first_step, losses })
    }

    /// Calls of [`TrainSession::record_steps`] whose losses were never read (every readback busy).
    pub fn losses_dropped(&self) -> u64 {
        self.reads.dropped()
    }

    /// The training objective of one step from its words, as the training loop computes it.
    fn step_loss(&self, words: &[f32]) -> f64 {
        let batch = self.config.batch as f64;
        match self.model.variational() {
            Some(v) => (words[1] as f64 + v.beta as f64 * words[2] as f64) / batch,
            None => words[self.model.loss_kind().slot()] as f64 / (batch * self.data.dim as f64),
        }
    }

    /// Steps recorded so far (the optimiser step of the last one).
    pub fn steps_recorded(&self) -> u64 {
        self.step
    }

    /// Steps in an epoch (the last incomplete batch is dropped, as in the training loop).
    pub fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    /// (epoch, batch) of the next step to be recorded; epochs count from 1.
    pub fn position(&self) -> (usize, usize) {
        if self.batch == self.steps_per_epoch { (self.epoch + 1, 0) } else { (self.epoch, self.batch) }
    }

    /// The training configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The batch's activations (the host may bind their views, e.g. the reconstruction logits).
    pub fn activations(&self) -> &Activations {
        &self.acts
    }

    /// Every GPU buffer this session created, as (what, bytes): the activations for one batch, the
    /// plan's uniforms, the per-step slots, the order slots, the loss ring and its readbacks. The
    /// model's parameters and the dataset are the caller's (see [`super::Footprint`]).
    pub fn allocations(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("activations", self.acts.tensors.arena.buffer.buffer.size()),
            ("plan uniforms", self.plan.uniform_buffer().size()),
            ("per-step uniform slots", self.ring.buffer().size()),
            ("epoch order slots", self.orders.size()),
            ("loss ring", self.loss_ring.buffer.size()),
            ("loss readbacks", self.reads.bytes()),
        ]
    }
}
