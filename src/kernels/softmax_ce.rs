//! Launcher for `shaders/softmax_ce.wgsl`: a classifier's fused softmax + cross-entropy loss, its
//! gradient and the argmax, one row per invocation, then a deterministic column sum of the
//! per-row (loss, correct) pairs.

use super::{Launch, grid_1d, reduce};
use crate::gpu::View;
use crate::gpu::{PipelineKey, Shader};

/// `shaders/softmax_ce.wgsl`.
pub const SHADER: Shader =
    Shader { name: "softmax_ce", source: include_str!("../../shaders/softmax_ce.wgsl") };

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    write_grad: u32,
    grad_scale: f32,
}

/// Per row r of `logits` `[rows, classes]` with the class index `labels[r]` (as f32, below
/// `classes`): `rows_out[r] = (loss_r, correct_r)` and `pred[r]` = the first argmax; with `dlogits`,
/// `dlogits[r, j] = grad_scale · (softmax_j − [j = label])`. `rows_out` needs `2 · rows` words.
#[allow(clippy::too_many_arguments)]
pub fn softmax_ce(
    rows_out: &View,
    pred: &View,
    dlogits: Option<&View>,
    logits: &View,
    labels: &View,
    rows: usize,
    classes: usize,
    grad_scale: f32,
) -> Launch {
    let p = Params {
        rows: rows as u32,
        classes: classes as u32,
        write_grad: dlogits.is_some() as u32,
        grad_scale,
    };
    // Unused when no gradient is asked for: bind the logits in its place (never written).
    let dlogits = dlogits.cloned().unwrap_or_else(|| logits.clone());
    Launch {
        key: PipelineKey::new(SHADER, "softmax_ce", &[]),
        uniform: bytemuck::bytes_of(&p).to_vec(),
        views: vec![logits.clone(), labels.clone(), dlogits, rows_out.clone(), pred.clone()],
        workgroups: grid_1d(rows, 64),
        label: "softmax_ce",
        per_step: None,
    }
}

/// [`softmax_ce`] then its reduction: `totals[0..2]` (+)= (Σ loss, Σ correct) over the rows.
#[allow(clippy::too_many_arguments)]
pub fn softmax_ce_totals(
    totals: &View,
    rows_out: &View,
    pred: &View,
    dlogits: Option<&View>,
    logits: &View,
    labels: &View,
    rows: usize,
    classes: usize,
    grad_scale: f32,
    accumulate: bool,
) -> [Launch; 2] {
    [
        softmax_ce(rows_out, pred, dlogits, logits, labels, rows, classes, grad_scale),
        reduce::colsum(totals, rows_out, rows, 2, accumulate),
    ]
}
