//! Seeded randomness shared by the data module: a train/test split of any dataset, and the two
//! primitives it and patch sampling use. Integer ranges are drawn here by multiply-shift rather
//! than by `rand`'s range sampling, so a seed gives the same numbers on every machine and every
//! `rand` version (Xoshiro256++ itself is a fixed algorithm).

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

use super::{Dataset, Split};
use crate::error::{Error, Result};

/// A seeded random train/test split: `round(n * test_fraction)` images (at least 1, at most
/// `n - 1`) go to the test set. Both parts keep the original relative order; the same seed gives
/// the same split on every machine. `test_fraction` must lie strictly between 0 and 1, `n >= 2`.
pub fn random_split(ds: &Dataset, test_fraction: f64, seed: u64) -> Result<Split> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(Error::Config(format!(
            "test fraction {test_fraction} must lie strictly between 0 and 1"
        )));
    }
    if ds.n < 2 {
        return Err(Error::Config(format!("cannot split {} image(s) into train and test sets", ds.n)));
    }
    let n_test = ((ds.n as f64 * test_fraction).round() as usize).clamp(1, ds.n - 1);
    let order = shuffled_indices(ds.n, seed);
    let mut test: Vec<usize> = order[..n_test].to_vec();
    let mut train: Vec<usize> = order[n_test..].to_vec();
    test.sort_unstable();
    train.sort_unstable();
    Ok(Split { train: ds.select(&train), test: ds.select(&test) })
}

/// A uniform integer in `0..bound` from one 64-bit draw (multiply-shift; the bias is below
/// `bound / 2^64`).
pub(crate) fn below(rng: &mut Xoshiro256PlusPlus, bound: usize) -> usize {
    ((u128::from(rng.next_u64()) * bound as u128) >> 64) as usize
}

/// `0..n` in a random order fixed by `seed` (Fisher-Yates with [`below`]).
pub(crate) fn shuffled_indices(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut idx: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        idx.swap(i, below(&mut rng, i + 1));
    }
    idx
}
