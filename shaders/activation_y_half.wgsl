// activation_y_half.wgsl: binding 2 of activation.wgsl, the forward's output y, stored as f16 (the
// opt-in f16 activation storage); the derivative is taken in f32 from the stored value.
@group(0) @binding(2) var<storage, read_write> y_h: array<f16>;

fn y_at(i: u32) -> f32 {
    return f32(y_h[i]);
}
