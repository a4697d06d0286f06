//! Labels on the host: the class-balanced labelled subset a classifier trains on, the number of
//! classes a dataset has, and the confusion matrix of its predictions.

use crate::data::Dataset;
use crate::error::{Error, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;

/// Classes of a train/test pair: the class names' count, or one more than the largest label.
pub fn class_count(train: &Dataset, test: &Dataset) -> usize {
    let largest = train.labels.iter().chain(&test.labels).copied().max().map_or(0, |l| l as usize + 1);
    train.class_names.len().max(test.class_names.len()).max(largest)
}

/// Indices of `per_class` examples of every class `0..classes`, drawn at random with `seed`
/// (each class's examples shuffled, the first `per_class` kept), in increasing order. A class with
/// fewer examples is an error that names it.
pub fn balanced_subset(labels: &[u8], classes: usize, per_class: usize, seed: u64) -> Result<Vec<usize>> {
    if per_class == 0 {
        return Err(Error::Config("--labels-per-class must be at least 1".into()));
    }
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x1ABE_15D2_A3C0_0001);
    let mut chosen = Vec::with_capacity(classes * per_class);
    for class in 0..classes {
        let mut of_class: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] as usize == class).collect();
        if of_class.len() < per_class {
            return Err(Error::Config(format!(
                "class {class} has {} training examples, fewer than the {per_class} labels per class asked for",
                of_class.len()
            )));
        }
        of_class.shuffle(&mut rng);
        chosen.extend_from_slice(&of_class[..per_class]);
    }
    chosen.sort_unstable();
    Ok(chosen)
}

/// The labels of `ds` as a dataset of 1x1x1 "images" whose byte is the label, so the GPU gathers
/// them with the same shuffled order as the images (read with the byte map zero 0, scale 1).
pub fn labels_as_images(ds: &Dataset) -> Result<Dataset> {
    Dataset::from_parts(format!("{} labels", ds.name), ds.labels.clone(), ds.labels.clone(), 1, 1)
}

/// `counts[t * classes + p]`: how many examples of class `t` were predicted as `p`.
pub fn confusion(labels: &[u8], predictions: &[u8], classes: usize) -> Result<Vec<u64>> {
    if labels.len() != predictions.len() {
        return Err(Error::Shape(format!("{} labels but {} predictions", labels.len(), predictions.len())));
    }
    let mut counts = vec![0u64; classes * classes];
    for (&t, &p) in labels.iter().zip(predictions) {
        let (t, p) = (t as usize, p as usize);
        if t >= classes || p >= classes {
            return Err(Error::Shape(format!("label {t} or prediction {p} is not one of {classes} classes")));
        }
        counts[t * classes + p] += 1;
    }
    Ok(counts)
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = match values.len() {
        0 | 1 => 0.0,
        k => values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1) as f64,
    };
    (mean, var.sqrt())
}
