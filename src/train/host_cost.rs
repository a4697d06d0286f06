//! What a training step costs the host: the CPU time to record it, and what it adds to the
//! command stream (passes, copies, queued bytes). On a real GPU an MNIST-scale step is launch- and
//! latency-bound, so this side of the cost decides speed as much as the kernels do; it is measured
//! here without the GPU (nothing is submitted, nothing waited for).

use super::{Result, Trainer};
use std::time::Instant;

/// The host's side of one training step of a [`Trainer`].
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HostCost {
    /// CPU time to record one step, in µs: the median over the repeats of (recording the steps of
    /// one submit into a fresh encoder, `finish()` included) divided by its steps. No submit and no
    /// wait are in it.
    pub record_us_per_step: f64,
    /// Steps per recording (the trainer's steps per submit).
    pub steps_per_record: usize,
    /// Recordings timed.
    pub repeats: usize,
    /// Dispatches per step, all in one compute pass.
    pub dispatches_per_step: usize,
    /// Compute passes per step: the training loop records each step's dispatches in one pass.
    pub passes_per_step: usize,
    /// Buffer-to-buffer copies per step outside the pass: the step's uniform slot into the plan
    /// (one copy per launch with per-step values), a streamed batch into the batch buffer, the loss
    /// totals into the log.
    pub copies_per_step: usize,
    /// Bytes queued with `queue.write_buffer` per step: the per-step uniform slot and, for
    /// streamed data, the batch.
    pub bytes_written_per_step: u64,
}

impl Trainer<'_> {
    /// Records the steps of one submit `repeats` times (at least 1), each into a fresh encoder that
    /// is finished and dropped unsubmitted, and reports the median recording time per step with
    /// the step's command counts. The trainer's step counter is restored afterwards; the uniform
    /// slots queued by the recordings are overwritten by the next real submit before it runs, so
    /// training goes on exactly as if this had not been called.
    pub fn host_cost(&mut self, repeats: usize) -> Result<HostCost> {
        let repeats = repeats.max(1);
        let k = self.steps_per_submit().min(self.steps_per_epoch).max(1);
        let step = self.step;
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let start = Instant::now();
            let enc = self.record_steps(0..k, None);
            let recorded = enc.map(|e| e.finish());
            times.push(start.elapsed().as_secs_f64() * 1e6 / k as f64);
            self.step = step;
            drop(recorded?);
        }
        times.sort_by(f64::total_cmp);
        let loss_copies = 1 + usize::from(self.acts.kl_total().is_some());
        let streamed = usize::from(self.feed.is_streamed());
        Ok(HostCost {
            record_us_per_step: times[times.len() / 2],
            steps_per_record: k,
            repeats,
            dispatches_per_step: self.plan.len(),
            passes_per_step: 1,
            copies_per_step: self.ring.copies_per_step() + streamed + loss_copies,
            bytes_written_per_step: self.ring.slot_bytes() + self.feed.bytes_per_step(),
        })
    }
}
