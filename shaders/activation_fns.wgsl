// activation_fns.wgsl: the element-wise activation functions every shader that applies one shares.
// The host prepends this file to matmul.wgsl, matmul_subgroup.wgsl, activation.wgsl, conv2d.wgsl
// and conv_gemm.wgsl (see each launcher's SHADER constant), so the formulas exist once.
//
// Activations: 0 identity, 1 ReLU, 2 leaky ReLU (negative slope `slope`), 3 sigmoid, 4 tanh.
// tanh's argument is clamped to [-15, 15]: Metal's fast-math tanh returns NaN for large inputs, and
// tanh(±15) already rounds to ±1 in f32, so the clamp changes no finite result.
// CPU reference: src/cpu/activation.rs.

const ACT_IDENTITY: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_LEAKY_RELU: u32 = 2u;
const ACT_SIGMOID: u32 = 3u;
const ACT_TANH: u32 = 4u;

fn apply_activation(kind: u32, slope: f32, x: f32) -> f32 {
    switch kind {
        case ACT_RELU: { return max(x, 0.0); }
        case ACT_LEAKY_RELU: { return select(slope * x, x, x > 0.0); }
        case ACT_SIGMOID: { return 1.0 / (1.0 + exp(-x)); }
        case ACT_TANH: { return tanh(clamp(x, -15.0, 15.0)); }
        default: { return x; }
    }
}

// f'(x) written in terms of the output y = f(x), so a forward pass keeps only its outputs.
// ReLU and leaky ReLU: y > 0 exactly when x > 0.
fn activation_derivative_from_output(kind: u32, slope: f32, y: f32) -> f32 {
    switch kind {
        case ACT_RELU: { return select(0.0, 1.0, y > 0.0); }
        case ACT_LEAKY_RELU: { return select(slope, 1.0, y > 0.0); }
        case ACT_SIGMOID: { return y * (1.0 - y); }
        case ACT_TANH: { return 1.0 - y * y; }
        default: { return 1.0; }
    }
}
