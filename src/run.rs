//! A training run over several epochs: the epoch loop with its progress reports, the evaluation
//! after every epoch and a callback that writes what the caller keeps. A run can start in the middle of
//! an epoch (resume) and stop between two submits of steps when asked (Ctrl-C): the step counter,
//! the epoch's seeded order and the random streams are all functions of the position, so a stopped
//! and resumed run computes exactly what an uninterrupted one does.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::models::Autoencoder;
use crate::train::{EpochEnd, EpochMetrics, Evaluator, GpuDataset, TrainConfig, Trainer};
use std::time::Instant;

/// Where a run continues: batch `batch` of epoch `epoch` (epochs count from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// The epoch, counting from 1.
    pub epoch: usize,
    /// The next step of that epoch to run, counting from 0.
    pub batch: usize,
}

/// What a run reports while it trains: a progress bar (the command line draws one), a log line,
/// or nothing (`&mut ()`). Every method has an empty default.
pub trait Progress {
    /// Epoch `epoch` of `epochs` begins: `steps` steps, of which `done` already ran (a resumed
    /// epoch starts past 0).
    fn epoch_started(&mut self, epoch: usize, epochs: usize, steps: usize, done: usize) {
        let _ = (epoch, epochs, steps, done);
    }

    /// `done` of the epoch's steps have run; `loss` is the running mean training loss when one
    /// was read back since the last report.
    fn steps_done(&mut self, done: usize, loss: Option<f64>) {
        let _ = (done, loss);
    }

    /// The epoch's steps are over, or were stopped (its evaluation comes next).
    fn epoch_finished(&mut self) {}
}

/// No reports.
impl Progress for () {}

impl Position {
    /// The first step of a fresh run.
    pub const START: Position = Position { epoch: 1, batch: 0 };
}

/// Trains for `config.epochs`, evaluating on `test` after every epoch; `on_epoch` sees each epoch's
/// metrics (write them, checkpoint, ...); `progress` hears of every epoch and submit of steps.
///
/// ```
/// use aegpu::prelude::*;
///
/// /// Prints one line per epoch.
/// struct Lines;
/// impl Progress for Lines {
///     fn epoch_started(&mut self, epoch: usize, epochs: usize, steps: usize, _done: usize) {
///         println!("epoch {epoch}/{epochs}: {steps} steps");
///     }
/// }
///
/// # fn main() -> aegpu::Result<()> {
/// let gpu = match Gpu::new(&GpuOptions::default()) {
///     Err(Error::NoAdapter { .. }) => return Ok(()), // no GPU driver on this machine
///     other => other?,
/// };
/// let data = aegpu::data::synthetic(1024, 28, 28, 10, 1);
/// let (train, test) = (data.subset(0..768), data.subset(768..1024));
/// let model = Autoencoder::new(&gpu, ModelConfig::preset("shallow", [1, 28, 28], LossKind::Bce)?, 0, Init::Glorot)?;
/// let config = TrainConfig { epochs: 2, batch: 128, optimizer: Optimizer::parse("adam", 1e-3, 0.0)?, seed: 0 };
/// let (train, test) = (GpuDataset::upload(&gpu, &train)?, GpuDataset::upload(&gpu, &test)?);
/// let history = aegpu::run::train(&gpu, &model, &train, &test, &config, &mut Lines, |m, _| {
///     println!("test BCE/px {:.4}", m.test_bce_px);
///     Ok(())
/// })?;
/// assert_eq!(history.len(), 2);
/// # Ok(())
/// # }
/// ```
pub fn train(
    gpu: &Gpu,
    model: &Autoencoder,
    train: &GpuDataset,
    test: &GpuDataset,
    config: &TrainConfig,
    progress: &mut dyn Progress,
    mut on_epoch: impl FnMut(&EpochMetrics, &Evaluator) -> Result<()>,
) -> Result<Vec<EpochMetrics>> {
    let mut trainer = Trainer::new(gpu, model, train, config.clone())?;
    let evaluator = Evaluator::new(gpu, model, test, 1000)?;
    let mut history = Vec::new();
    run_epochs(&mut trainer, &evaluator, Position::START, progress, &|| false, |m, _, e| {
        on_epoch(m, e)?;
        history.push(m.clone());
        Ok(())
    })?;
    Ok(history)
}

/// Runs from `from` to the end of epoch `trainer.config().epochs`, calling `on_epoch` after each
/// epoch's evaluation (with the trainer, whose state is then that of the epoch's end). Returns `None` when every epoch ran, or the position to resume from when
/// `stop()` turned true (checked after every submit of steps and after every epoch).
/// A non-finite or exploding training loss, or a non-finite test figure, is an error.
pub fn run_epochs(
    trainer: &mut Trainer,
    evaluator: &Evaluator,
    from: Position,
    progress: &mut dyn Progress,
    stop: &dyn Fn() -> bool,
    mut on_epoch: impl FnMut(&EpochMetrics, &Trainer, &Evaluator) -> Result<()>,
) -> Result<Option<Position>> {
    let epochs = trainer.config().epochs;
    let batch = trainer.config().batch;
    let steps = trainer.steps_per_epoch();
    let lr = trainer.config().optimizer.lr();
    for epoch in from.epoch..=epochs {
        let first = if epoch == from.epoch { from.batch } else { 0 };
        progress.epoch_started(epoch, epochs, steps, first);
        let start = Instant::now();
        let end = trainer.run_epoch(epoch, first, stop, |done, running| progress.steps_done(done, running));
        progress.epoch_finished();
        let train_loss = match end? {
            EpochEnd::Finished { train_loss } => train_loss,
            EpochEnd::Stopped { next_batch } => return Ok(Some(Position { epoch, batch: next_batch })),
        };
        let epoch_s = start.elapsed().as_secs_f64();
        let eval = evaluator.run(0)?;
        let e = &eval.metrics;
        for (what, value) in [("test loss", e.loss), ("test MSE", e.mse_px), ("test BCE", e.bce_px)] {
            if !value.is_finite() {
                return Err(Error::Diverged {
                    epoch,
                    step: steps,
                    loss: value as f32,
                    lr,
                    what: what.into(),
                });
            }
        }
        let m = EpochMetrics {
            epoch,
            train_loss,
            test_loss: e.loss,
            test_mse_px: e.mse_px,
            test_bce_px: e.bce_px,
            epoch_s,
            samples_per_s: ((steps - first) * batch) as f64 / epoch_s,
            test_recon_nats: e.vae.map(|v| v.0),
            test_kl: e.vae.map(|v| v.1),
            test_elbo_nats: e.vae.map(|v| v.2),
            test_code_mean: e.code_mean,
            test_code_near_zero: e.code_near_zero,
            test_jacobian_fro: e.jacobian_fro,
            avg_test_loss: None,
            avg_test_mse_px: None,
            avg_test_bce_px: None,
        };
        on_epoch(&m, trainer, evaluator)?;
        if epoch < epochs && stop() {
            return Ok(Some(Position { epoch: epoch + 1, batch: 0 }));
        }
    }
    Ok(None)
}
