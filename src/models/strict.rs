//! Strict loading: a file's tensors against a model's parameters by name and shape, as PyTorch's
//! `load_state_dict(strict=True)` checks them (a missing, an unexpected or a reshaped tensor is an
//! error naming it). GPU-free, so a file is judged before a device is made.

use crate::error::{Error, Result, TensorMismatch};
use std::path::Path;

/// Checks that `found` (the file's tensors, as name and shape) holds exactly the model's parameters
/// `expected`, each with its shape. The first problem, in the model's parameter order (then the
/// file's extra tensors by name), is an [`Error::CheckpointMismatch`] naming `path`.
pub fn check_tensors(
    path: &Path,
    expected: &[(String, Vec<usize>)],
    found: &[(String, Vec<usize>)],
) -> Result<()> {
    let fail = |tensor: &str, problem| {
        Err(Error::CheckpointMismatch { path: path.to_path_buf(), tensor: tensor.to_string(), problem })
    };
    for (name, want) in expected {
        let Some((_, got)) = found.iter().find(|(n, _)| n == name) else {
            return fail(name, TensorMismatch::Missing { expected: want.clone() });
        };
        if got != want {
            let (mut a, mut b) = (got.clone(), want.clone());
            a.sort_unstable();
            b.sort_unstable();
            let (expected, found) = (want.clone(), got.clone());
            let problem = if a == b {
                TensorMismatch::Transposed { expected, found }
            } else {
                TensorMismatch::Shape { expected, found }
            };
            return fail(name, problem);
        }
    }
    let mut extra: Vec<&(String, Vec<usize>)> =
        found.iter().filter(|(n, _)| !expected.iter().any(|(e, _)| e == n)).collect();
    extra.sort_by(|a, b| a.0.cmp(&b.0));
    match extra.first() {
        Some((name, shape)) => fail(name, TensorMismatch::Unexpected { found: shape.clone() }),
        None => Ok(()),
    }
}
