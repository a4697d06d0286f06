//! A plan run step after step over shuffled batches of one or more datasets read in the same order
//! (images and their labels): the loop the training procedures other than plain back-propagation
//! share (classifiers, recirculation, greedy layer-wise pre-training). One submit per step; a few
//! words of every step (its loss totals) are copied into a log read back only when asked.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer, View};
use crate::gpu_data::BatchFeed;
use crate::runner::Plan;
use rand::SeedableRng;
use rand::seq::SliceRandom;

/// At most this many steps are submitted and not yet finished, so the CPU never runs far ahead.
const MAX_IN_FLIGHT: usize = 4;

/// A plan whose first launches are `feeds`' gathers, run for up to `steps` steps.
pub struct StepRunner<'a> {
    gpu: &'a Gpu,
    plan: Plan,
    feeds: Vec<BatchFeed<'a>>,
    /// The words copied into the log after every step.
    totals: View,
    log: StorageBuffer,
    n: usize,
    batch: usize,
    seed: u64,
    steps: usize,
    step: usize,
    /// Batches of labelled and unlabelled examples (pseudo-labels), when set.
    mixed: Option<MixedOrder>,
}

/// The order of batches that are part labelled, part unlabelled: each step's batch is the next
/// `batch` labelled examples (a fresh shuffle of them every pass) followed by the next
/// `unlabelled` examples of a separate shuffle of the whole dataset. The step's positions are
/// written to the front of the feeds' order, so every step reads from position 0.
struct MixedOrder {
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

impl MixedOrder {
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
    /// every pass over the examples; the last incomplete batch of a pass is dropped.
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
        Ok(StepRunner { gpu, plan, feeds, totals, log, n, batch, seed, steps, step: 0, mixed: None })
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
        if unlabelled > pool {
            return Err(Error::Config(format!(
                "the unlabelled batch ({unlabelled}) is larger than the number of examples ({pool})"
            )));
        }
        let pool_order = (0..pool as u32).collect();
        let labelled_order = labelled.clone();
        // `next` past the end: the first step shuffles the pool.
        self.mixed =
            Some(MixedOrder { labelled, labelled_order, unlabelled, pool: pool_order, next: pool, pass: 0 });
        Ok(self)
    }

    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// Steps per pass over the examples.
    pub fn steps_per_epoch(&self) -> usize {
        self.n / self.batch
    }

    /// Dispatches per step (one submit).
    pub fn dispatches_per_step(&self) -> usize {
        self.plan.len()
    }

    /// Runs up to `count` more steps (never past the total); returns their logged words, step by step.
    pub fn run(&mut self, count: usize) -> Result<Vec<f32>> {
        let (first, last) = (self.step, (self.step + count).min(self.steps));
        let per_epoch = self.steps_per_epoch();
        let words = self.totals.len;
        let mut in_flight = std::collections::VecDeque::new();
        for s in first..last {
            let (epoch, b) = (s / per_epoch, s % per_epoch);
            let epoch_rng = || {
                rand::rngs::Xoshiro256PlusPlus::seed_from_u64(
                    self.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                )
            };
            let offset = match &mut self.mixed {
                None => {
                    if b == 0 {
                        let mut order: Vec<u32> = (0..self.n as u32).collect();
                        order.shuffle(&mut epoch_rng());
                        for feed in &mut self.feeds {
                            feed.set_order(self.gpu, order.clone());
                        }
                    }
                    b * self.batch
                }
                Some(mixed) => {
                    if b == 0 {
                        mixed.labelled_order.clone_from(&mixed.labelled);
                        mixed.labelled_order.shuffle(&mut epoch_rng());
                    }
                    let mut order = mixed.labelled_order[b * self.batch..(b + 1) * self.batch].to_vec();
                    order.extend_from_slice(mixed.take_unlabelled(self.seed));
                    for feed in &mut self.feeds {
                        feed.set_order(self.gpu, order.clone());
                    }
                    0
                }
            };
            self.step = s + 1;
            self.plan.advance(self.gpu, self.step as u64, offset);
            for feed in &self.feeds {
                feed.stage(self.gpu, offset);
            }
            let index = self.gpu.scoped("training step", || {
                let mut enc = self.gpu.device.create_command_encoder(&Default::default());
                self.plan.record_into(&mut enc);
                let t = &self.totals;
                let at = (s * words * 4) as u64;
                enc.copy_buffer_to_buffer(
                    &t.buffer,
                    (t.offset * 4) as u64,
                    &self.log.buffer,
                    at,
                    (words * 4) as u64,
                );
                self.gpu.queue.submit([enc.finish()])
            })?;
            in_flight.push_back(index);
            if in_flight.len() > MAX_IN_FLIGHT {
                let oldest = in_flight.pop_front().expect("non-empty");
                self.gpu
                    .device
                    .poll(wgpu::PollType::Wait { submission_index: Some(oldest), timeout: None })
                    .map_err(|e| Error::Readback {
                        context: "training step".into(),
                        message: e.to_string(),
                    })?;
            }
        }
        self.log.read_f32(self.gpu, words * first..words * last)
    }
}
