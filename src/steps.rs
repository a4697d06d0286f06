//! A plan run step after step over shuffled batches of one or more datasets read in the same order
//! (images and their labels): the loop the training procedures other than plain back-propagation
//! share (classifiers, recirculation, greedy layer-wise pre-training). A few words of every step
//! (its loss totals) are copied into a log read back only when asked.
//!
//! Several steps share one command buffer and one submit ([`StepRunner::set_steps_per_submit`], 8
//! by default), as in `crate::train`. Nothing a step needs may be a queue write, since those all
//! land before the whole submit:
//! - its uniforms (batch offset, optimiser step, random streams, the pseudo-label weight) go
//!   through a slot of a `UniformRing`, copied into the plan's uniforms inside the encoder right
//!   before the step;
//! - its batch's positions (the next `batch` of the pass's shuffle, then for pseudo-labels the
//!   next `unlabelled` of the pool's) go the same way: into slot `j` of an order ring, copied to
//!   the front of each feed's order buffer before step `j`, whose gathers read from position 0.
//!   So a group of steps may cross passes, and plain and mixed batches share one path;
//! - streamed data (batches copied from the host into one buffer): each step's batch is written
//!   into a slot of its own and copied into the batch buffer right before the step.
//!
//! Every K computes the same bits.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer, View};
use crate::gpu_data::BatchFeed;
use crate::runner::{Plan, UniformRing};
use crate::train::DEFAULT_STEPS_PER_SUBMIT;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::ops::Range;

/// At most this many steps (or one group of steps per submit, if larger) are submitted and not yet
/// finished, so the CPU never runs far ahead.
const MAX_IN_FLIGHT: usize = 4;

/// A plan whose first launches are `feeds`' gathers, run for up to `steps` steps.
pub struct StepRunner<'a> {
    gpu: &'a Gpu,
    plan: Plan,
    /// A slot of per-step uniforms for each step of one submit; its capacity is the K in use.
    ring: UniformRing,
    /// A slot of batch positions (`batch + unlabelled` words) for each step of one submit.
    orders: StorageBuffer,
    /// The K asked for (capped to what the feeds allow, see [`StepRunner::set_steps_per_submit`]).
    requested: usize,
    feeds: Vec<BatchFeed<'a>>,
    /// The words copied into the log after every step.
    totals: View,
    log: StorageBuffer,
    n: usize,
    batch: usize,
    seed: u64,
    steps: usize,
    step: usize,
    order: BatchOrder,
}

/// The order of the batches: each step's batch is the next `batch` of the examples (a fresh shuffle
/// of them every pass) followed, for pseudo-labels, by the next `unlabelled` examples of a separate
/// shuffle of the whole dataset.
struct BatchOrder {
    /// The labelled examples' positions in the fed dataset, and this pass's shuffle of them.
    labelled: Vec<u32>,
    labelled_order: Vec<u32>,
    unlabelled: usize,
    /// The dataset's shuffle the unlabelled examples are taken from, the next position in it, and
    /// how many shuffles came before.
    pool: Vec<u32>,
    next: usize,
    pass: u64,
}

impl BatchOrder {
    /// The next `unlabelled` positions, reshuffling the pool (from `seed` and the pass) when it runs out.
    fn take_unlabelled(&mut self, seed: u64) -> &[u32] {
        if self.next + self.unlabelled > self.pool.len() {
            self.pass += 1;
            let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(
                seed ^ 0x0A1B_E11E_D000_0000 ^ self.pass.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            self.pool.shuffle(&mut rng);
            self.next = 0;
        }
        self.next += self.unlabelled;
        &self.pool[self.next - self.unlabelled..self.next]
    }
}

impl<'a> StepRunner<'a> {
    /// `plan` reads batches of `batch` of `n` examples through `feeds`; after every step the
    /// `totals` view is logged. The order is reshuffled (from `seed` and the pass) at the start of
    /// every pass over the examples; the last incomplete batch of a pass is dropped. Records
    /// [`DEFAULT_STEPS_PER_SUBMIT`] steps per submit unless set otherwise.
    pub fn new(
        gpu: &'a Gpu,
        plan: Plan,
        feeds: Vec<BatchFeed<'a>>,
        totals: View,
        (n, batch, steps, seed): (usize, usize, usize, u64),
    ) -> Result<Self> {
        if batch == 0 || batch > n {
            return Err(Error::Config(format!(
                "batch size {batch} must be between 1 and the number of training examples ({n})"
            )));
        }
        let log = StorageBuffer::zeroed(gpu, "step log", totals.len * steps.max(1))?;
        let ring = UniformRing::new(gpu, &plan, 1, "step uniforms")?;
        let orders = StorageBuffer::zeroed(gpu, "step orders", batch)?;
        let labelled: Vec<u32> = (0..n as u32).collect();
        let order = BatchOrder {
            labelled_order: labelled.clone(),
            labelled,
            unlabelled: 0,
            pool: Vec::new(),
            next: 0,
            pass: 0,
        };
        let mut runner = StepRunner {
            gpu,
            plan,
            ring,
            orders,
            requested: DEFAULT_STEPS_PER_SUBMIT,
            feeds,
            totals,
            log,
            n,
            batch,
            seed,
            steps,
            step: 0,
            order,
        };
        runner.fit_rings()?;
        Ok(runner)
    }

    /// Mixed batches for pseudo-labels: the runner's `n` examples are those at `labelled` (positions
    /// in the `pool` examples the feeds read), `batch` of them start every step's batch, and
    /// `unlabelled` examples (0: none) drawn from all `pool` follow them. The feeds' batch must be
    /// `batch + unlabelled`.
    pub fn mixed(mut self, labelled: Vec<u32>, pool: usize, unlabelled: usize) -> Result<Self> {
        if labelled.len() != self.n || labelled.iter().any(|&i| i as usize >= pool) {
            return Err(Error::Config(format!(
                "{} labelled positions for {} labelled examples in a dataset of {pool}",
                labelled.len(),
                self.n
            )));
        }
        if self.batch + unlabelled > pool {
            return Err(Error::Config(format!(
                "a batch of {} labelled and {unlabelled} unlabelled examples is larger than the {pool} examples",
                self.batch
            )));
        }
        let pool_order = (0..pool as u32).collect();
        let labelled_order = labelled.clone();
        // `next` past the end: the first step shuffles the pool.
        self.order =
            BatchOrder { labelled, labelled_order, unlabelled, pool: pool_order, next: pool, pass: 0 };
        self.fit_rings()?;
        Ok(self)
    }

    /// Records up to `k` steps into each command buffer (results are bit-identical for every `k`).
    /// More than the run's steps changes nothing.
    pub fn set_steps_per_submit(&mut self, k: usize) -> Result<()> {
        if k == 0 {
            return Err(Error::Config("steps per submit must be at least 1".into()));
        }
        self.requested = k;
        self.fit_rings()
    }

    /// Steps recorded into one command buffer and submitted together.
    pub fn steps_per_submit(&self) -> usize {
        self.ring.capacity()
    }

    /// Sizes the uniform and order rings (and streamed feeds' batch slots) for the requested K.
    fn fit_rings(&mut self) -> Result<()> {
        let k = self.requested.min(self.steps.max(1));
        let rows = self.rows();
        if let Some(short) = self.feeds.iter().filter_map(BatchFeed::order_buffer).find(|o| o.len < rows) {
            return Err(Error::Config(format!(
                "a batch of {rows} examples does not fit the order of a dataset of {}",
                short.len
            )));
        }
        if k != self.ring.capacity() || k * rows != self.orders.len {
            self.ring = UniformRing::new(self.gpu, &self.plan, k, "step uniforms")?;
            self.orders = StorageBuffer::zeroed(self.gpu, "step orders", k * rows)?;
            for feed in &mut self.feeds {
                feed.set_slots(self.gpu, k)?;
            }
        }
        Ok(())
    }

    /// Examples per step: labelled, then unlabelled.
    fn rows(&self) -> usize {
        self.batch + self.order.unlabelled
    }

    /// Steps run so far (across every [`StepRunner::run`]).
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// Steps per pass over the examples.
    pub fn steps_per_epoch(&self) -> usize {
        self.n / self.batch
    }

    /// Dispatches per step (the plan's length).
    pub fn dispatches_per_step(&self) -> usize {
        self.plan.len()
    }

    /// Runs up to `count` more steps (never past the total); returns their logged words, step by step.
    pub fn run(&mut self, count: usize) -> Result<Vec<f32>> {
        let (first, last) = (self.step, (self.step + count).min(self.steps));
        let k = self.steps_per_submit();
        // (submission, steps in it), oldest first.
        let mut in_flight = std::collections::VecDeque::new();
        let mut s = first;
        while s < last {
            let end = (s + k).min(last);
            let gpu = self.gpu;
            let index = gpu.scoped("training steps", || self.submit(s..end))??;
            in_flight.push_back((index, end - s));
            while in_flight.iter().map(|f| f.1).sum::<usize>() > MAX_IN_FLIGHT.max(k) {
                let (oldest, _) = in_flight.pop_front().expect("non-empty");
                gpu.device
                    .poll(wgpu::PollType::Wait { submission_index: Some(oldest), timeout: None })
                    .map_err(|e| Error::Readback {
                        context: "training step".into(),
                        message: e.to_string(),
                    })?;
            }
            s = end;
        }
        let words = self.totals.len;
        self.log.read_f32(self.gpu, words * first..words * last)
    }

    /// The logged words of every step run so far, step by step.
    pub fn log(&self) -> Result<Vec<f32>> {
        self.log.read_f32(self.gpu, 0..self.totals.len * self.step)
    }

    /// Records steps `steps` (at most [`StepRunner::steps_per_submit`]) into one command buffer and
    /// submits it.
    fn submit(&mut self, steps: Range<usize>) -> Result<wgpu::SubmissionIndex> {
        let gpu = self.gpu;
        let mut enc = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("training steps") });
        let (words, rows) = (self.totals.len, self.rows());
        for (slot, s) in steps.enumerate() {
            let order = self.batch_order(s);
            self.step = s + 1;
            // The step's uniforms and batch positions into its own slots (queued before the submit),
            // and from there into the plan's uniforms and the feeds' orders right before its pass.
            self.ring.write(gpu, &self.plan, slot, self.step as u64, 0)?;
            self.ring.record_load(&mut enc, &self.plan, slot);
            self.orders.write(gpu, slot * rows, &order);
            let at = (slot * rows * 4) as u64;
            for feed in &mut self.feeds {
                match feed.order_buffer() {
                    Some(o) => {
                        enc.copy_buffer_to_buffer(&self.orders.buffer, at, &o.buffer, 0, (rows * 4) as u64)
                    }
                    // Streamed: the host writes the batch in this order into the step's slot.
                    None => feed.set_order(gpu, order.clone()),
                }
                feed.stage_slot(gpu, 0, slot, &mut enc);
            }
            self.plan.record_into(&mut enc);
            let t = &self.totals;
            enc.copy_buffer_to_buffer(
                &t.buffer,
                (t.offset * 4) as u64,
                &self.log.buffer,
                (s * words * 4) as u64,
                (words * 4) as u64,
            );
        }
        Ok(gpu.queue.submit([enc.finish()]))
    }

    /// The positions step `s` reads: the next `batch` of its pass's shuffle, then the next
    /// `unlabelled` of the pool's.
    fn batch_order(&mut self, s: usize) -> Vec<u32> {
        let per_epoch = self.steps_per_epoch();
        let (epoch, b) = (s / per_epoch, s % per_epoch);
        let o = &mut self.order;
        if b == 0 {
            let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(
                self.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            o.labelled_order.clone_from(&o.labelled);
            o.labelled_order.shuffle(&mut rng);
        }
        let mut order = o.labelled_order[b * self.batch..(b + 1) * self.batch].to_vec();
        order.extend_from_slice(o.take_unlabelled(self.seed));
        order
    }
}
