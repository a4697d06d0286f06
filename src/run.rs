//! A training run over several epochs: the epoch loop with its progress bar, the evaluation after
//! every epoch and a callback that writes what the caller keeps. A run can start in the middle of
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
    pub epoch: usize,
    pub batch: usize,
}

impl Position {
    /// The first step of a fresh run.
    pub const START: Position = Position { epoch: 1, batch: 0 };
}

/// Trains for `config.epochs`, evaluating on `test` after every epoch; `on_epoch` sees each epoch's
/// metrics (write them, checkpoint, ...). Progress goes to a bar on stderr when `show_progress`.
pub fn train(
    gpu: &Gpu,
    model: &Autoencoder,
    train: &GpuDataset,
    test: &GpuDataset,
    config: &TrainConfig,
    show_progress: bool,
    mut on_epoch: impl FnMut(&EpochMetrics, &Evaluator) -> Result<()>,
) -> Result<Vec<EpochMetrics>> {
    let mut trainer = Trainer::new(gpu, model, train, config.clone())?;
    let evaluator = Evaluator::new(gpu, model, test, 1000)?;
    let mut history = Vec::new();
    run_epochs(&mut trainer, &evaluator, Position::START, show_progress, &|| false, |m, _, e| {
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
    show_progress: bool,
    stop: &dyn Fn() -> bool,
    mut on_epoch: impl FnMut(&EpochMetrics, &Trainer, &Evaluator) -> Result<()>,
) -> Result<Option<Position>> {
    let epochs = trainer.config().epochs;
    let batch = trainer.config().batch;
    let steps = trainer.steps_per_epoch();
    let lr = trainer.config().optimizer.lr();
    for epoch in from.epoch..=epochs {
        let first = if epoch == from.epoch { from.batch } else { 0 };
        let bar = progress_bar(show_progress, steps, first, format!("{epoch}/{epochs}"));
        let start = Instant::now();
        let end = trainer.run_epoch(epoch, first, stop, |done, running| {
            bar.set_position(done as u64);
            if let Some(l) = running {
                bar.set_message(format!("loss {l:.5}"));
            }
        });
        bar.finish_and_clear();
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

fn progress_bar(show: bool, steps: usize, done: usize, prefix: String) -> indicatif::ProgressBar {
    let bar = if show { indicatif::ProgressBar::new(steps as u64) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta} {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    bar.set_position(done as u64);
    bar
}
