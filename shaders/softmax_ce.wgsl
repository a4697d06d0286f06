// softmax_ce.wgsl: softmax + cross-entropy loss, its gradient and the argmax, one row per invocation.
//
// For row r of logits z [rows, classes] with class label t = labels[r] (a class index stored as f32;
// the host checks 0 <= t < classes):
//   m = max_j z_j (the first such j is the prediction),   s = Σ_j exp(z_j - m),
//   loss_r = (m - z_t) + log(s)                            (max-subtracted: no overflow for any
//                                                           finite logits, no cancellation of m),
//   dz_j = grad_scale * (exp(z_j - m) / s - [j == t])      (when write_grad; grad_scale = 1 / batch
//                                                           for a mean over the batch).
// Writes rows_out[r] = (loss_r, 1 if the argmax is t else 0) and pred[r] = argmax (as f32); the host
// sums rows_out's two columns with reduce.wgsl's colsum (fixed order: deterministic) into
// (Σ loss, Σ correct).
//
// Pseudo-labels (Lee 2013): rows r >= labelled_rows are unlabelled examples. Their target is the
// argmax of the same row of `teacher` (the logits themselves, or those of a clean forward pass of
// the same images: the student learns to predict under its training noise what it predicts without),
// their gradient scale is pseudo_scale (the host sets it every step to α(step) / unlabelled rows),
// their labels entry is never read, and they write rows_out[r] = (0, 0) so the totals stay those of
// the labelled rows. labelled_rows = rows turns this off. An unlabelled row whose teacher's top
// softmax probability is below pseudo_threshold gets no gradient (not confident enough to teach).
//
// Bindings: 0 uniform Params, 1 logits [rows, classes], 2 labels [rows], 3 dlogits [rows, classes]
// (written only when write_grad), 4 rows_out [rows, 2], 5 pred [rows], 6 teacher [rows, classes] (read
// for unlabelled rows only; the logits again when they teach themselves).
// Dispatch: ceil(rows / 64) workgroups of 64 (one invocation per row), folded into (x, y) past 65535
// (row = gid.x + gid.y * num_workgroups.x * 64).
// CPU reference: src/cpu/softmax.rs.

const WG: u32 = 64u;

struct Params {
    rows: u32,
    classes: u32,
    write_grad: u32,
    grad_scale: f32,
    labelled_rows: u32,
    pseudo_scale: f32,
    // pseudo_weight, ramp_start and ramp_end are read by the host only (the per-step rewrite of
    // pseudo_scale): α's final weight and the steps between which it ramps up linearly from 0.
    pseudo_weight: f32,
    ramp_start: u32,
    ramp_end: u32,
    pseudo_threshold: f32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> labels: array<f32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> rows_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> pred: array<f32>;
@group(0) @binding(6) var<storage, read_write> teacher: array<f32>;

// The first argmax of the teacher's row at `base`, and its softmax probability.
fn teacher_target(base: u32) -> vec2<f32> {
    var m = teacher[base];
    var best = 0u;
    for (var j = 1u; j < p.classes; j++) {
        let v = teacher[base + j];
        if (v > m) {
            m = v;
            best = j;
        }
    }
    var s = 0.0;
    for (var j = 0u; j < p.classes; j++) {
        s += exp(teacher[base + j] - m);
    }
    return vec2<f32>(f32(best), 1.0 / s);
}

@compute @workgroup_size(64)
fn softmax_ce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * WG;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.classes;
    var m = logits[base];
    var best = 0u;
    for (var j = 1u; j < p.classes; j++) {
        let v = logits[base + j];
        if (v > m) {
            m = v;
            best = j;
        }
    }
    var s = 0.0;
    for (var j = 0u; j < p.classes; j++) {
        s += exp(logits[base + j] - m);
    }
    let labelled = r < p.labelled_rows;
    var t = 0u;
    var scale = p.grad_scale;
    if (labelled) {
        t = u32(labels[r] + 0.5);
    } else {
        let taught = teacher_target(base);
        t = u32(taught.x);
        scale = select(p.pseudo_scale, 0.0, taught.y < p.pseudo_threshold);
    }
    let loss = (m - logits[base + t]) + log(s);
    if (p.write_grad != 0u) {
        let inv = 1.0 / s;
        for (var j = 0u; j < p.classes; j++) {
            var g = exp(logits[base + j] - m) * inv;
            if (j == t) {
                g -= 1.0;
            }
            dlogits[base + j] = scale * g;
        }
    }
    rows_out[2u * r] = select(0.0, loss, labelled);
    rows_out[2u * r + 1u] = select(0.0, 1.0, labelled && best == t);
    pred[r] = f32(best);
}
