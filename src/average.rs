//! Stochastic weight averaging (Izmailov et al. 2018): the running mean of a model's weights at the
//! ends of epochs, from a chosen epoch on. Weights that keep moving around a wide minimum (a
//! constant, not too small learning rate) average to a point nearer its centre, which generalises
//! better than any one of them; training itself goes on from the last weights, not the mean.
//! The mean is updated in f32 in a fixed order, so a resumed run recomputes it bit for bit.

use crate::error::{Error, Result};

/// The mean of the weights at the ends of epochs `from`, `from + 1`, ... so far.
#[derive(Clone, Debug)]
pub struct WeightAverage {
    from: usize,
    mean: Vec<f32>,
    count: usize,
}

impl WeightAverage {
    /// An empty average that starts at the end of epoch `from` (1-based) of a run of `epochs`.
    pub fn new(from: usize, epochs: usize) -> Result<WeightAverage> {
        if from == 0 || from > epochs {
            return Err(Error::Config(format!(
                "--average-from {from}: give an epoch of the run's 1..={epochs} (the mean starts at that \
                 epoch's end)"
            )));
        }
        Ok(WeightAverage { from, mean: Vec::new(), count: 0 })
    }

    /// The average a resume state recorded: `mean` after `finished` epochs of the run (empty when
    /// none of them was averaged yet).
    pub fn restore(from: usize, mean: Vec<f32>, finished: usize) -> Result<WeightAverage> {
        let count = (finished + 1).saturating_sub(from);
        if (count == 0) != mean.is_empty() {
            return Err(Error::Config(format!(
                "the resume state's weight average does not fit its history: {finished} epochs finished, \
                 averaging from epoch {from}, but {} averaged weights",
                mean.len()
            )));
        }
        Ok(WeightAverage { from, mean, count })
    }

    /// The first epoch whose weights enter the mean.
    pub fn from_epoch(&self) -> usize {
        self.from
    }

    /// Whether the end of `epoch` adds to the mean.
    pub fn includes(&self, epoch: usize) -> bool {
        epoch >= self.from
    }

    /// Adds one epoch's weights: mean += (w − mean) / count.
    pub fn add(&mut self, weights: &[f32]) -> Result<()> {
        if self.count > 0 && weights.len() != self.mean.len() {
            return Err(Error::Shape(format!(
                "weight average of {} values given {} weights",
                self.mean.len(),
                weights.len()
            )));
        }
        self.count += 1;
        if self.count == 1 {
            self.mean = weights.to_vec();
        } else {
            let k = self.count as f32;
            for (m, &w) in self.mean.iter_mut().zip(weights) {
                *m += (w - *m) / k;
            }
        }
        Ok(())
    }

    /// The mean so far, `None` before the first averaged epoch ends.
    pub fn mean(&self) -> Option<&[f32]> {
        (self.count > 0).then_some(&self.mean[..])
    }

    /// How many epochs' weights the mean holds.
    pub fn count(&self) -> usize {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mean_of_the_epochs_from_the_first_averaged_one() {
        let mut a = WeightAverage::new(2, 5).unwrap();
        assert!(!a.includes(1) && a.includes(2) && a.includes(5));
        assert_eq!(a.mean(), None);
        for w in [[1.0, -2.0], [3.0, 2.0], [8.0, 0.5]] {
            a.add(&w).unwrap();
        }
        assert_eq!(a.count(), 3);
        assert_eq!(a.mean(), Some(&[4.0f32, 0.16666667][..]));
        assert!(a.add(&[1.0]).is_err(), "a different number of weights");
    }

    #[test]
    fn restored_averages_go_on_exactly() {
        let mut whole = WeightAverage::new(1, 4).unwrap();
        let steps = [[0.1f32, 0.7], [0.3, 0.2], [0.9, 0.4], [0.25, 0.5]];
        for w in &steps[..2] {
            whole.add(w).unwrap();
        }
        let mut resumed = WeightAverage::restore(1, whole.mean().unwrap().to_vec(), 2).unwrap();
        for w in &steps[2..] {
            whole.add(w).unwrap();
            resumed.add(w).unwrap();
        }
        assert_eq!(whole.mean(), resumed.mean());
        assert_eq!(resumed.count(), 4);
        assert!(WeightAverage::restore(3, vec![], 2).is_ok(), "nothing averaged yet");
        assert!(WeightAverage::restore(3, vec![1.0], 2).is_err(), "a mean before its first epoch");
        assert!(WeightAverage::restore(1, vec![], 2).is_err(), "a mean missing");
    }

    #[test]
    fn the_first_epoch_must_be_in_the_run() {
        for (from, epochs) in [(0, 3), (4, 3)] {
            let e = WeightAverage::new(from, epochs).unwrap_err().to_string();
            assert!(e.contains(&format!("--average-from {from}")) && e.contains("1..=3"), "{e}");
        }
    }
}
