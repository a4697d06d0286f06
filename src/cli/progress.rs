//! The training progress bar on stderr: [`aegpu::run::Progress`] drawn with indicatif (hidden with
//! `--quiet`, and by indicatif itself when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// One bar per epoch: `epoch 3/10 [=====>    ] 120/234 steps 41/s eta 3s loss 0.09312`.
pub struct EpochBar {
    show: bool,
    bar: ProgressBar,
}

impl EpochBar {
    /// A bar that draws when `show`.
    pub fn new(show: bool) -> EpochBar {
        EpochBar { show, bar: ProgressBar::hidden() }
    }
}

impl aegpu::run::Progress for EpochBar {
    fn epoch_started(&mut self, epoch: usize, epochs: usize, steps: usize, done: usize) {
        let bar = if self.show { ProgressBar::new(steps as u64) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta} {msg}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{epochs}"));
        bar.set_position(done as u64);
        self.bar = bar;
    }

    fn steps_done(&mut self, done: usize, loss: Option<f64>) {
        self.bar.set_position(done as u64);
        if let Some(l) = loss {
            self.bar.set_message(format!("loss {l:.5}"));
        }
    }

    fn epoch_finished(&mut self) {
        self.bar.finish_and_clear();
    }
}
