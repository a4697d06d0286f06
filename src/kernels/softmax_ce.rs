//! Launcher for `shaders/softmax_ce.wgsl`: a classifier's fused softmax + cross-entropy loss, its
//! gradient and the argmax, one row per invocation, then a deterministic column sum of the
//! per-row (loss, correct) pairs.

use super::{Launch, grid_1d, reduce};
use crate::gpu::View;
use crate::gpu::{PerStep, PipelineKey, Shader, StepState};

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
    labelled_rows: u32,
    pseudo_scale: f32,
    pseudo_weight: f32,
    ramp_start: u32,
    ramp_end: u32,
    pseudo_threshold: f32,
    _pad: [u32; 2],
}

/// Pseudo-labels for unlabelled rows (Lee 2013): each such row's target is its teacher's argmax
/// (see [`Mixed`]), weighted by α(step) / (unlabelled rows) in the gradient, where α ramps linearly
/// from 0 at `ramp_start` to `weight` at `ramp_end` (1-based steps) and stays there. A row whose
/// teacher's top softmax probability is below `threshold` gets no gradient (0: every row learns).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PseudoLabels {
    /// The final α: weight of the pseudo-labelled rows' mean cross-entropy, the labelled rows' mean
    /// having weight 1.
    pub weight: f32,
    /// Last step (1-based) at which α is still 0.
    pub ramp_start: u32,
    /// First step (1-based) at which α reaches `weight`.
    pub ramp_end: u32,
    /// Least top softmax probability of the teacher for a row to learn, in [0, 1]; 0 keeps all.
    #[serde(default)]
    pub threshold: f32,
}

impl PseudoLabels {
    /// α at training step `step` (1-based).
    pub fn alpha(&self, step: u64) -> f32 {
        let (start, end) = (self.ramp_start as u64, self.ramp_end as u64);
        if step <= start {
            0.0
        } else if step >= end {
            self.weight
        } else {
            self.weight * ((step - start) as f32 / (end - start) as f32)
        }
    }
}

/// A batch whose first `labelled_rows` rows are labelled and whose others get pseudo-labels: the
/// argmax of their row of `teacher` (logits of the same shape, e.g. from a forward pass without
/// the training noise), or of their own logits when `teacher` is `None`.
#[derive(Clone, Debug)]
pub struct Mixed {
    /// Rows `0..labelled_rows` carry labels; the rest are pseudo-labelled.
    pub labelled_rows: usize,
    /// The pseudo-labels' weight schedule and confidence threshold.
    pub pseudo: PseudoLabels,
    /// Logits `[rows, classes]` whose argmax is each unlabelled row's target; `None`: the row's own.
    pub teacher: Option<View>,
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
    softmax_ce_mixed(rows_out, pred, dlogits, logits, labels, rows, classes, grad_scale, None)
}

/// [`softmax_ce`] on a batch whose rows from `mixed.labelled_rows` on are unlabelled: their target
/// is the argmax of their teacher row (their own logits by default), their gradient is scaled by
/// α(step) / (their number) (rewritten every step) or 0 when the teacher's top probability is below
/// the threshold, their `labels` entries are never read, and their `rows_out` pairs are (0, 0).
#[allow(clippy::too_many_arguments)]
pub fn softmax_ce_mixed(
    rows_out: &View,
    pred: &View,
    dlogits: Option<&View>,
    logits: &View,
    labels: &View,
    rows: usize,
    classes: usize,
    grad_scale: f32,
    mixed: Option<Mixed>,
) -> Launch {
    let labelled_rows = mixed.as_ref().map_or(rows, |m| m.labelled_rows.min(rows));
    let off = PseudoLabels { weight: 0.0, ramp_start: 0, ramp_end: 0, threshold: 0.0 };
    let pseudo = mixed.as_ref().map_or(off, |m| m.pseudo);
    let teacher = mixed.and_then(|m| m.teacher).unwrap_or_else(|| logits.clone());
    let p = Params {
        rows: rows as u32,
        classes: classes as u32,
        write_grad: dlogits.is_some() as u32,
        grad_scale,
        labelled_rows: labelled_rows as u32,
        pseudo_scale: 0.0,
        pseudo_weight: pseudo.weight,
        ramp_start: pseudo.ramp_start,
        ramp_end: pseudo.ramp_end,
        pseudo_threshold: pseudo.threshold,
        _pad: [0; 2],
    };
    // Unused when no gradient is asked for: bind the logits in its place (never written).
    let dlogits = dlogits.cloned().unwrap_or_else(|| logits.clone());
    Launch {
        key: PipelineKey::new(SHADER, "softmax_ce", &[]),
        uniform: bytemuck::bytes_of(&p).to_vec(),
        views: vec![logits.clone(), labels.clone(), dlogits, rows_out.clone(), pred.clone(), teacher],
        workgroups: grid_1d(rows, 64),
        label: "softmax_ce",
        per_step: (labelled_rows < rows).then_some(PerStep { draws_random: false, rewrite: pseudo_at_step }),
    }
}

/// Every step, the unlabelled rows' gradient scale is α(step) divided by their number.
fn pseudo_at_step(uniform: &[u8], step: &StepState) -> Vec<u8> {
    let p: Params = bytemuck::pod_read_unaligned(uniform);
    let pseudo = PseudoLabels {
        weight: p.pseudo_weight,
        ramp_start: p.ramp_start,
        ramp_end: p.ramp_end,
        threshold: p.pseudo_threshold,
    };
    let unlabelled = (p.rows - p.labelled_rows).max(1) as f32;
    bytemuck::bytes_of(&Params { pseudo_scale: pseudo.alpha(step.step) / unlabelled, ..p }).to_vec()
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
    mixed: Option<Mixed>,
) -> [Launch; 2] {
    [
        softmax_ce_mixed(rows_out, pred, dlogits, logits, labels, rows, classes, grad_scale, mixed),
        reduce::colsum(totals, rows_out, rows, 2, accumulate),
    ]
}
