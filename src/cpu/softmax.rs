//! Reference for `shaders/softmax_ce.wgsl`: softmax + cross-entropy, its gradient and the argmax.

/// For each row of `logits` `[rows, classes]` with class index `labels[r]`: writes `rows_out[r] =
/// (loss, correct)`, `pred[r]` = the first index of the largest logit, and when `dz` is given
/// `dz[r, j] = grad_scale · (softmax_j − [j = label])`. Computed in f64 (max-subtracted).
pub fn softmax_ce(
    dz: Option<&mut [f32]>,
    rows_out: &mut [f32],
    pred: &mut [f32],
    logits: &[f32],
    labels: &[f32],
    classes: usize,
    grad_scale: f32,
) {
    let rows = labels.len();
    softmax_ce_mixed(dz, rows_out, pred, (logits, None), labels, classes, grad_scale, (rows, 0.0, 0.0));
}

/// [`softmax_ce`] where the rows from `labelled_rows` on are unlabelled: their target is the argmax
/// of their row of `teacher` (their own logits when `None`), their gradient scale `pseudo_scale`
/// (0 when the teacher's top probability is below `threshold`), their labels are not read and
/// `rows_out` is (0, 0).
#[allow(clippy::too_many_arguments)]
pub fn softmax_ce_mixed(
    dz: Option<&mut [f32]>,
    rows_out: &mut [f32],
    pred: &mut [f32],
    (logits, teacher): (&[f32], Option<&[f32]>),
    labels: &[f32],
    classes: usize,
    grad_scale: f32,
    (labelled_rows, pseudo_scale, threshold): (usize, f32, f32),
) {
    let rows = labels.len();
    let mut grads = vec![0.0f32; rows * classes];
    // The first argmax of a row and the sum of exp(z - max).
    let top = |z: &[f32]| {
        let best = (1..classes).fold(0, |b, j| if z[j] > z[b] { j } else { b });
        let m = z[best] as f64;
        (best, z.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>())
    };
    for r in 0..rows {
        let z = &logits[r * classes..(r + 1) * classes];
        let (best, s) = top(z);
        let m = z[best] as f64;
        let (t, scale) = if r < labelled_rows {
            (labels[r].round() as usize, grad_scale)
        } else {
            let (target, s_teacher) = top(teacher.map_or(z, |t| &t[r * classes..(r + 1) * classes]));
            (target, if 1.0 / s_teacher < threshold as f64 { 0.0 } else { pseudo_scale })
        };
        let labelled = r < labelled_rows;
        let loss = ((m - z[t] as f64) + s.ln()) as f32;
        rows_out[2 * r] = if labelled { loss } else { 0.0 };
        rows_out[2 * r + 1] = (labelled && best == t) as u32 as f32;
        pred[r] = best as f32;
        for j in 0..classes {
            let p = (z[j] as f64 - m).exp() / s;
            grads[r * classes + j] = (scale as f64 * (p - (j == t) as u32 as f64)) as f32;
        }
    }
    if let Some(dz) = dz {
        dz[..rows * classes].copy_from_slice(&grads);
    }
}
