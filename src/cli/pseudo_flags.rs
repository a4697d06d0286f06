//! `aegpu classify --pseudo-labels WEIGHT:START:END` and the flags that go with it, as a
//! [`PseudoConfig`].

use aegpu::classify::train::{PseudoConfig, Teacher};
use aegpu::error::{Error, Result};
use aegpu::kernels::softmax_ce::PseudoLabels;

/// `--pseudo-labels WEIGHT:START:END` and `--unlabelled-batch` as a configuration (checked against
/// the `pool` of training examples the unlabelled ones come from).
pub(super) fn pseudo_config(
    spec: Option<&str>,
    (batch, threshold, teacher): (Option<usize>, Option<f32>, Option<&str>),
    pool: usize,
) -> Result<Option<PseudoConfig>> {
    let Some(spec) = spec else {
        let given = [
            ("--unlabelled-batch", batch.is_some()),
            ("--pseudo-threshold", threshold.is_some()),
            ("--pseudo-teacher", teacher.is_some()),
        ];
        return match given.iter().find(|g| g.1) {
            Some((flag, _)) => Err(Error::Config(format!("{flag} applies only with --pseudo-labels"))),
            None => Ok(None),
        };
    };
    let teacher = match teacher {
        None | Some("noisy") => Teacher::Noisy,
        Some("clean") => Teacher::Clean,
        Some(other) => {
            return Err(Error::Config(format!("--pseudo-teacher {other}: expected noisy or clean")));
        }
    };
    let threshold = threshold.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(Error::Config(format!("--pseudo-threshold {threshold} must lie in [0, 1]")));
    }
    let bad = |why: &str| {
        Error::Config(format!("--pseudo-labels {spec}: {why}; expected WEIGHT:START:END, e.g. 3:200:1000"))
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let [weight, start, end] = parts[..] else { return Err(bad("three values separated by ':'")) };
    let weight: f32 = weight.trim().parse().map_err(|_| bad("WEIGHT is not a number"))?;
    let start: u32 = start.trim().parse().map_err(|_| bad("START is not a step number"))?;
    let end: u32 = end.trim().parse().map_err(|_| bad("END is not a step number"))?;
    if !(weight.is_finite() && weight >= 0.0) {
        return Err(bad("WEIGHT must be a finite number >= 0"));
    }
    if end < start {
        return Err(bad("END must not come before START"));
    }
    let unlabelled_batch = batch.unwrap_or(256);
    if unlabelled_batch == 0 || unlabelled_batch > pool {
        return Err(Error::Config(format!(
            "--unlabelled-batch {unlabelled_batch} must be between 1 and the {pool} training examples"
        )));
    }
    let labels = PseudoLabels { weight, ramp_start: start, ramp_end: end, threshold };
    Ok(Some(PseudoConfig { unlabelled_batch, labels, teacher }))
}
