// activation_y_f32.wgsl: binding 2 of activation.wgsl, the forward's output y, stored as f32.
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn y_at(i: u32) -> f32 {
    return y[i];
}
