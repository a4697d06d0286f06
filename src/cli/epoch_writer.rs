//! What `aegpu train` leaves after every epoch: the resume state, then the checkpoint, then the
//! metrics line, each carrying the epoch; with `--average-from`, the weight average is kept beside
//! the weights: evaluated after each averaged epoch, saved in the resume state, and written as the
//! checkpoint.

use super::run_dir::RunDir;
use aegpu::checkpoint;
use aegpu::error::{Error, Result};
use aegpu::expert::average::WeightAverage;
use aegpu::expert::resume::{STATE_FILE, TrainState};
use aegpu::gpu::Gpu;
use aegpu::models::Autoencoder;
use aegpu::run::Position;
use aegpu::train::{EpochMetrics, EvalOutput, Evaluator, Trainer};
use std::collections::BTreeMap;
use std::io::Write;

/// The resume state's tensor that holds the weight average (the whole parameter arena).
pub(super) const AVERAGE_TENSOR: &str = "average.weights";
/// The run's metadata entry recording `--average-from`.
pub(super) const AVERAGE_ENTRY: &str = "aegpu.average_from";

pub(super) struct EpochWriter<'a> {
    pub gpu: &'a Gpu,
    pub model: &'a Autoencoder,
    pub dir: &'a RunDir,
    pub config: &'a BTreeMap<String, String>,
    pub history: Vec<EpochMetrics>,
    pub epochs: usize,
    pub average: Option<WeightAverage>,
}

impl EpochWriter<'_> {
    /// Records epoch `m` (the trainer at its end): adds to and evaluates the weight average, then
    /// writes the state, the checkpoint and the metrics line.
    pub fn epoch(&mut self, m: &EpochMetrics, trainer: &Trainer, evaluator: &Evaluator) -> Result<()> {
        let mut m = m.clone();
        if let Some(average) = self.average.as_mut().filter(|a| a.includes(m.epoch)) {
            let last = self.model.params.buffer.read_all_f32(self.gpu)?;
            average.add(&last)?;
            let mean = average.mean().expect("an epoch was just added");
            let e = with_weights(self.gpu, self.model, mean, &last, || evaluator.run(0))?.metrics;
            if !(e.loss.is_finite() && e.mse_px.is_finite()) {
                return Err(Error::Diverged {
                    epoch: m.epoch,
                    step: trainer.steps_per_epoch(),
                    loss: e.loss as f32,
                    lr: trainer.config().optimizer.lr(),
                    what: "the weight average's test loss".into(),
                });
            }
            (m.avg_test_loss, m.avg_test_mse_px, m.avg_test_bce_px) =
                (Some(e.loss), Some(e.mse_px), Some(e.bce_px));
        }
        let mut history = self.history.clone();
        history.push(m.clone());
        let next = Position { epoch: m.epoch + 1, batch: 0 };
        let state = self.state(trainer, next, &history)?;
        if let Some(tensor) = state.non_finite() {
            return Err(Error::Diverged {
                epoch: m.epoch,
                step: trainer.steps_per_epoch(),
                what: format!("a value of '{tensor}'"),
                loss: f32::NAN,
                lr: trainer.config().optimizer.lr(),
            });
        }
        state.save(&self.dir.join(STATE_FILE))?;
        let mut meta: Vec<(&str, String)> = self
            .config
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "aegpu.kind" | "aegpu.model" | "aegpu.limits"))
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        meta.push(("aegpu.epoch", m.epoch.to_string()));
        meta.push(("aegpu.step", trainer.steps_done().to_string()));
        let path = self.dir.join("model.safetensors");
        match self.average.as_ref().and_then(|a| a.mean().map(|mean| (a.count(), mean))) {
            Some((count, mean)) => {
                meta.push(("aegpu.averaged_epochs", count.to_string()));
                checkpoint::save_tensors(&self.model.config, &self.model.tensors_of(mean), &meta, &path)?
            }
            None => checkpoint::save(self.gpu, self.model, &meta, &path)?,
        }
        let path = self.dir.join("metrics.jsonl");
        let line = serde_json::to_string(&m).map_err(|e| Error::Config(e.to_string()))?;
        let mut file =
            std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| Error::io(&path, e))?;
        writeln!(file, "{line}").and_then(|_| file.sync_data()).map_err(|e| Error::io(&path, e))?;
        self.history = history;
        print_epoch(&m, self.epochs);
        Ok(())
    }

    /// The resume state at `at`, with the weight average when there is one.
    pub fn state(&self, trainer: &Trainer, at: Position, history: &[EpochMetrics]) -> Result<TrainState> {
        let mut state = TrainState::capture(self.gpu, self.model, trainer, at, history, self.config.clone())?;
        if let Some(mean) = self.average.as_ref().and_then(WeightAverage::mean) {
            state.add_tensor(AVERAGE_TENSOR, mean.to_vec());
        }
        Ok(state)
    }

    /// The final evaluation (with its reconstructions): of the weight average when there is one,
    /// which then stays in the model for the pictures.
    pub fn final_evaluation(&self, evaluator: &Evaluator, keep_recon: usize) -> Result<EvalOutput> {
        if let Some(average) = &self.average
            && let Some(mean) = average.mean()
        {
            self.model.params.buffer.write(self.gpu, 0, mean);
            note!(
                "weights: the mean of the {} epoch ends from epoch {} (stochastic weight averaging)",
                average.count(),
                average.from_epoch()
            );
        }
        evaluator.run(keep_recon)
    }
}

/// Runs `f` with `weights` in the model's parameters, then puts `restore` back.
fn with_weights<T>(
    gpu: &Gpu,
    model: &Autoencoder,
    weights: &[f32],
    restore: &[f32],
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    model.params.buffer.write(gpu, 0, weights);
    let out = f();
    model.params.buffer.write(gpu, 0, restore);
    out
}

fn print_epoch(m: &EpochMetrics, epochs: usize) {
    let vae = match (m.test_recon_nats, m.test_kl, m.test_elbo_nats) {
        (Some(r), Some(kl), Some(elbo)) => {
            format!("  test_recon_nats {r:.2}  test_kl {kl:.2}  test_elbo_nats {elbo:.2}")
        }
        _ => String::new(),
    };
    let jac = m.test_jacobian_fro.map(|j| format!("  test_jacobian_fro {j:.4}")).unwrap_or_default();
    let avg = m.avg_test_mse_px.map(|a| format!("  avg_test_mse_px {a:.5}")).unwrap_or_default();
    let code = format!("  code_mean {:.4} near_zero {:.3}{jac}", m.test_code_mean, m.test_code_near_zero);
    say!(
        "epoch {:>3}/{}  train_loss {:.5}  test_loss {:.5}  test_mse_px {:.5}  test_bce_px {:.5}{avg}{vae}{code}  {:.1} s  {:.0} samples/s",
        m.epoch,
        epochs,
        m.train_loss,
        m.test_loss,
        m.test_mse_px,
        m.test_bce_px,
        m.epoch_s,
        m.samples_per_s
    );
}
