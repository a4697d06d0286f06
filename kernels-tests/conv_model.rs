//! The convolutional autoencoder as a whole: backward vs finite differences of its own forward
//! (a keras-like stack with ceil-mode max-pooling, a strided stack with a dense bottleneck and a
//! transposed convolution, a conv VAE and a denoising model, the noise held fixed), training on
//! synthetic data, determinism, checkpoint round trip in PyTorch's names and layouts, the presets
//! and the bad-configuration errors; the regularisers the layer list brings to conv models (sparse
//! penalty, dropout) and user-written architectures (`--arch`).

mod common;

use aegpu::checkpoint;
use aegpu::data::{Dataset, synthetic};
use aegpu::expert::runner::Plan;
use aegpu::expert::tune::ConvAlgorithm;
use aegpu::gpu::Gpu;
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::kernels::penalty::SparseNorm;
use aegpu::models::conv::{ConvConfig, Layer};
use aegpu::models::dense::{Noise, Sparse, Variational};
use aegpu::models::{Activations, Autoencoder, Init, ModelConfig, Pass};
use aegpu::train::{Evaluator, GpuDataset, TrainConfig};
use common::*;
use rand::seq::SliceRandom;

/// Output shape of every layer, worked out here independently of the model (a VAE's code layer
/// outputs [μ, log σ²], 2·d values, and the decoder reads z, d values).
fn layer_shapes(config: &ConvConfig) -> Vec<[usize; 3]> {
    let mut cur = config.input;
    let mut out = Vec::new();
    for (i, layer) in config.layers.iter().enumerate() {
        let [c, h, w] = cur;
        let next = match *layer {
            Layer::Conv { out, kernel, stride, padding, .. } => {
                [out, (h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1]
            }
            Layer::ConvTranspose { out, kernel, stride, padding, output_padding, .. } => [
                out,
                (h - 1) * stride + kernel + output_padding - 2 * padding,
                (w - 1) * stride + kernel + output_padding - 2 * padding,
            ],
            Layer::MaxPool => [c, h.div_ceil(2), w.div_ceil(2)],
            Layer::Upsample => [c, 2 * h, 2 * w],
            Layer::Linear { out, .. } => [out, 1, 1],
            Layer::Unflatten { c, h, w } => [c, h, w],
            Layer::Activation { .. } => cur,
        };
        let vae_code = config.variational.is_some() && i == config.code_layer;
        out.push(if vae_code { [2 * next[0], 1, 1] } else { next });
        cur = next;
    }
    out
}

/// The conv configuration a model was built from.
fn conv_config(model: &Autoencoder) -> &ConvConfig {
    match &model.config {
        ModelConfig::Conv(c) => c,
        ModelConfig::Dense(_) => panic!("a conv model"),
    }
}

fn len3(s: [usize; 3]) -> usize {
    s[0] * s[1] * s[2]
}

/// One forward + loss + backward plan over activations for a fixed input batch, run again after
/// every parameter change. The plan's random streams are never advanced, so a VAE's ε and the
/// denoising corruption are drawn from the same stream on every run: held fixed.
struct Harness<'a> {
    gpu: &'a Gpu,
    model: &'a Autoencoder,
    acts: Activations,
    plan: Plan,
    batch: usize,
    shapes: Vec<[usize; 3]>,
}

/// Which side of every kink the forward is on: the sign of each ReLU / leaky-ReLU unit, and the
/// argmax of every max-pool window (worked out on the CPU from the pool's input).
type Pattern = Vec<u32>;

impl<'a> Harness<'a> {
    fn new(gpu: &'a Gpu, model: &'a Autoencoder, x: &[f32], batch: usize) -> Harness<'a> {
        let variant = gpu.matmul_policy().unwrap();
        let acts = model.activations(gpu, batch).unwrap();
        acts.input().write(gpu, x).unwrap();
        let mut launches = model.forward(&acts, variant, Pass::TRAIN);
        launches.extend(model.loss(&acts, &acts.input(), true, false));
        launches.extend(model.backward(&acts, variant));
        let plan = Plan::new(gpu, "fd", &launches).unwrap();
        let shapes = layer_shapes(conv_config(model));
        for (i, s) in shapes.iter().enumerate() {
            assert_eq!(model.layer_output(&acts, i).len, batch * len3(*s), "layer {i}: output length");
        }
        Harness { gpu, model, acts, plan, batch, shapes }
    }

    /// Loss (per-pixel mean of the configured kind; a VAE's nats per image) and the flat gradient.
    fn loss_and_grad(&self) -> (f64, Vec<f32>, Pattern) {
        let (gpu, model, acts, batch) = (self.gpu, self.model, &self.acts, self.batch);
        self.plan.run(gpu).unwrap();
        let totals = acts.totals().read(gpu).unwrap();
        let n = (batch * model.input_dim()) as f64;
        let loss = match (model.variational(), acts.kl_total()) {
            (Some(v), Some(kl)) => {
                (totals[1] as f64 + v.beta as f64 * kl.read(gpu).unwrap()[0] as f64) / batch as f64
            }
            _ => totals[model.loss_kind().slot()] as f64 / n,
        };
        // A sparse penalty: λ · (Σ over the batch of the code's norm) / batch.
        let penalty = match (conv_config(model).sparse, acts.penalty_total()) {
            (Some(s), Some(t)) => s.lambda as f64 * t.read(gpu).unwrap()[0] as f64 / batch as f64,
            _ => 0.0,
        };
        (loss + penalty, model.grads.buffer.read_all_f32(gpu).unwrap(), self.pattern())
    }

    fn pattern(&self) -> Pattern {
        let (gpu, acts, config, model) = (self.gpu, &self.acts, conv_config(self.model), self.model);
        let last = config.layers.len() - 1;
        let mut pattern = Vec::new();
        for (i, layer) in config.layers.iter().enumerate() {
            let act = match *layer {
                Layer::Conv { act, .. } | Layer::ConvTranspose { act, .. } | Layer::Linear { act, .. } => {
                    Some(act)
                }
                _ => None,
            };
            if i != last && matches!(act, Some(Activation::Relu | Activation::LeakyRelu(_))) {
                pattern
                    .extend(model.layer_output(acts, i).read(gpu).unwrap().iter().map(|&v| (v > 0.0) as u32));
            }
            if *layer == Layer::MaxPool {
                assert!(
                    config.variational.is_none() || i != config.code_layer + 1,
                    "a pool reading z is not supported here"
                );
                let input = match i {
                    0 => acts.noisy_input().unwrap_or(acts.input()),
                    _ => model.layer_output(acts, i - 1),
                };
                let [c, h, w] = if i == 0 { config.input } else { self.shapes[i - 1] };
                let v = input.read(gpu).unwrap();
                for plane in v.chunks(h * w).take(self.batch * c) {
                    for oy in 0..h.div_ceil(2) {
                        for ox in 0..w.div_ceil(2) {
                            let mut best = (f32::NEG_INFINITY, 0u32);
                            for y in 2 * oy..(2 * oy + 2).min(h) {
                                for x in 2 * ox..(2 * ox + 2).min(w) {
                                    if plane[y * w + x] > best.0 {
                                        best = (plane[y * w + x], (y * w + x) as u32);
                                    }
                                }
                            }
                            pattern.push(best.1);
                        }
                    }
                }
            }
        }
        pattern
    }
}

/// How the model's convolutions run, whatever the adapter's tuning picked for each layer.
#[derive(Clone, Copy, Debug)]
enum Algorithms {
    All(ConvAlgorithm),
    /// Direct and im2col + matmul in turn, layer after layer (the scratch is shared).
    Mixed,
}

/// Checks the model with direct kernels, with im2col + matmul, and with both mixed.
fn finite_difference_check(name: &str, config: ConvConfig, seed: u64, batch: usize, per_tensor: usize) {
    let gpu = gpu();
    for algorithms in
        [Algorithms::All(ConvAlgorithm::Direct), Algorithms::All(ConvAlgorithm::Gemm), Algorithms::Mixed]
    {
        let name = format!("{name} ({algorithms:?})");
        finite_difference_check_with(&gpu, &name, config.clone(), seed, batch, per_tensor, algorithms);
    }
}

/// Checks up to `per_tensor` randomly chosen entries of every parameter tensor (all of a smaller
/// one) against central differences. A ±eps step that moves any ReLU unit across zero or any
/// max-pool window's argmax straddles a kink of the loss, so its difference quotient is not the
/// derivative there: it is retried with a smaller step, and the entry skipped if even that one
/// straddles a kink. Most entries must be checkable, and at least one of every tensor.
fn finite_difference_check_with(
    gpu: &Gpu,
    name: &str,
    config: ConvConfig,
    seed: u64,
    batch: usize,
    per_tensor: usize,
    algorithms: Algorithms,
) {
    let mut model = Autoencoder::new(gpu, config.clone(), seed, Init::Glorot).unwrap();
    let mut convs = 0;
    for i in 0..config.layers.len() {
        let is_conv = matches!(config.layers[i], Layer::Conv { .. } | Layer::ConvTranspose { .. });
        let a = model.conv_algorithm(i);
        assert_eq!(a.is_some(), is_conv, "{name}: layer {i}'s algorithm {a:?}");
        if is_conv {
            let chosen = match algorithms {
                Algorithms::All(a) => a,
                Algorithms::Mixed if convs % 2 == 0 => ConvAlgorithm::Gemm,
                Algorithms::Mixed => ConvAlgorithm::Direct,
            };
            assert!(model.set_conv_algorithm(i, chosen));
            convs += 1;
        }
    }
    // Non-zero biases so every bias gradient path is exercised.
    let mut params = model.params.buffer.read_all_f32(gpu).unwrap();
    let noise = random_vec(params.len(), seed + 7);
    for (n, o, l) in &model.params.layout.entries {
        if n.ends_with(".bias") {
            for i in *o..o + l {
                params[i] = 0.3 * noise[i];
            }
        }
    }
    model.params.buffer.write(gpu, 0, &params);
    let x: Vec<f32> =
        random_vec(batch * config.input_dim(), seed + 1).iter().map(|v| 0.5 + 0.45 * v).collect();
    let h = Harness::new(gpu, &model, &x, batch);
    let (loss, grad, base) = h.loss_and_grad();
    // The same list again gives the same gradient: nothing depends on what a previous run left.
    let (_, again, _) = h.loss_and_grad();
    assert!(
        grad.iter().zip(&again).all(|(a, b)| a.to_bits() == b.to_bits()),
        "{name}: a second run of the same plan gave another gradient"
    );

    // Central differences in f32 on the GPU: eps large enough that the loss's rounding error
    // (~1e-7 relative) stays far below eps·|g|, small enough that the O(eps²) term is negligible.
    // A step that crosses a kink is retried smaller (an early layer's entry moves every unit after
    // it), with the rounding error it lets through (a few ulps of the loss over 2·eps) added to the
    // tolerance; an entry that crosses a kink even at the smallest step is skipped.
    let steps = [1e-2f32, 3e-3, 1e-3];
    let rounding = |k: usize| 4.0 * f32::EPSILON * loss.abs() as f32 / (2.0 * steps[k]);
    let mut r = rng(seed + 3);
    let (mut got, mut want, mut slack, mut at) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut skipped, mut by_step) = (0, [0; 3]);
    for (tensor, offset, len) in &model.params.layout.entries {
        let mut picks: Vec<usize> = (*offset..offset + len).collect();
        picks.shuffle(&mut r);
        picks.truncate(per_tensor);
        let mut checked = 0;
        for i in picks {
            let fd = steps.iter().enumerate().find_map(|(k, &eps)| {
                let mut p = params.clone();
                p[i] = params[i] + eps;
                model.params.buffer.write(gpu, 0, &p);
                let (up, _, up_pattern) = h.loss_and_grad();
                p[i] = params[i] - eps;
                model.params.buffer.write(gpu, 0, &p);
                let (down, _, down_pattern) = h.loss_and_grad();
                (up_pattern == base && down_pattern == base)
                    .then(|| (k, ((up - down) / (2.0 * eps as f64)) as f32))
            });
            let Some((k, fd)) = fd else {
                skipped += 1;
                continue;
            };
            by_step[k] += 1;
            got.push(grad[i]);
            want.push(fd);
            slack.push(rounding(k));
            at.push(format!("{tensor}[{}]", i - offset));
            checked += 1;
        }
        assert!(checked > 0, "{name}: every sampled entry of {tensor} straddles a kink");
        let g = &grad[*offset..offset + len];
        assert!(g.iter().any(|&v| v != 0.0), "{name}: the gradient of {tensor} is all zero");
    }
    model.params.buffer.write(gpu, 0, &params);
    assert!(
        skipped * 4 <= got.len() + skipped,
        "{name}: {skipped} of {} entries straddle a kink; the check would prove little",
        got.len() + skipped
    );
    let scale = grad.iter().fold(0.0f32, |m, g| m.max(g.abs()));
    assert!(scale > 1e-4, "gradient is vanishingly small ({scale}); the check would prove nothing");
    // As dense.rs: |fd - backward| <= atol + rtol·|fd|, plus the entry's rounding allowance.
    let (atol, rtol) = (2e-3 * scale, 2e-2);
    let ratio: Vec<f32> =
        (0..got.len()).map(|k| (got[k] - want[k]).abs() / (atol + rtol * want[k].abs() + slack[k])).collect();
    // Written as a negation so that NaN fails.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let bad: Vec<usize> = (0..got.len()).filter(|&k| !(ratio[k] <= 1.0)).collect();
    let show = |k: usize| {
        format!(
            "{} backward {:e} fd {:e} (tolerance {:e})",
            at[k],
            got[k],
            want[k],
            atol + rtol * want[k].abs() + slack[k]
        )
    };
    assert!(
        bad.is_empty(),
        "{name} ({} {:?}): backward vs finite differences: {} of {} entries differ (atol {atol:e}, rtol {rtol}); first: {}",
        config.describe(),
        config.loss,
        bad.len(),
        got.len(),
        bad.iter().take(8).map(|&k| show(k)).collect::<Vec<_>>().join(", ")
    );
    let worst = (0..got.len()).fold(0, |w, k| if ratio[k] > ratio[w] { k } else { w });
    eprintln!(
        "{name}: {} entries checked (by step {steps:?}: {by_step:?}), {skipped} skipped (kink); worst at {:.2} of the tolerance: {} (max |g| {scale:e})",
        got.len(),
        ratio[worst],
        show(worst),
    );
}

fn conv(out: usize, kernel: usize, stride: usize, padding: usize, act: Activation) -> Layer {
    Layer::Conv { out, kernel, stride, padding, act }
}

#[test]
fn keras_like_backward_matches_finite_differences() {
    use Activation::*;
    // 7x7: both max-pools round up (7 -> 4 -> 2), so the partial windows are exercised; the
    // decoder's kernel-2 unpadded conv brings 8x8 back to 7x7. The code is the second pool's output.
    let config = ConvConfig {
        input: [1, 7, 7],
        layers: vec![
            conv(3, 3, 1, 1, Relu),
            Layer::MaxPool,
            conv(2, 3, 1, 1, Relu),
            Layer::MaxPool,
            conv(2, 3, 1, 1, Relu),
            Layer::Upsample,
            conv(3, 3, 1, 1, Relu),
            Layer::Upsample,
            conv(2, 2, 1, 0, Relu),
            conv(1, 3, 1, 1, Sigmoid),
        ],
        code_layer: 3,
        loss: LossKind::Bce,
        variational: None,
        noise: None,
        sparse: None,
        dropout: None,
    };
    finite_difference_check("keras-like", config, 1, 2, 12);
}

#[test]
fn strided_backward_matches_finite_differences() {
    use Activation::*;
    // Two input channels, a stride-2 conv to 3x3x3, a dense 4-value code, a dense layer and
    // unflatten back to 3x3x3, a stride-2 transposed conv (output_padding 1: 3 -> 6) and a linear
    // output with MSE.
    let config = ConvConfig {
        input: [2, 6, 6],
        layers: vec![
            conv(3, 3, 2, 1, Relu),
            Layer::Linear { out: 4, act: Identity },
            Layer::Linear { out: 27, act: Relu },
            Layer::Unflatten { c: 3, h: 3, w: 3 },
            Layer::ConvTranspose { out: 3, kernel: 3, stride: 2, padding: 1, output_padding: 1, act: Tanh },
            conv(2, 3, 1, 1, Identity),
        ],
        code_layer: 1,
        loss: LossKind::Mse,
        variational: None,
        noise: None,
        sparse: None,
        dropout: None,
    };
    finite_difference_check("strided", config.clone(), 2, 3, 12);
    // The transposed convolution as the output layer.
    let mut last = config;
    last.layers.truncate(4);
    last.layers.push(Layer::ConvTranspose {
        out: 2,
        kernel: 3,
        stride: 2,
        padding: 1,
        output_padding: 1,
        act: Identity,
    });
    finite_difference_check("strided, transposed output", last, 3, 3, 12);
}

#[test]
fn conv_vae_backward_matches_finite_differences_with_fixed_noise() {
    use Activation::*;
    for (seed, beta) in [(4, 1.0), (5, 0.5)] {
        let config = ConvConfig {
            input: [1, 6, 6],
            layers: vec![
                conv(3, 3, 2, 1, Relu),
                Layer::Linear { out: 2, act: Identity },
                Layer::Linear { out: 27, act: Relu },
                Layer::Unflatten { c: 3, h: 3, w: 3 },
                Layer::ConvTranspose {
                    out: 1,
                    kernel: 3,
                    stride: 2,
                    padding: 1,
                    output_padding: 1,
                    act: Sigmoid,
                },
            ],
            code_layer: 1,
            loss: LossKind::Bce,
            variational: Some(Variational { beta }),
            noise: None,
            sparse: None,
            dropout: None,
        };
        finite_difference_check(&format!("conv-vae beta {beta}"), config, seed, 2, 12);
    }
    // A transposed convolution reading z as a 2x1x1 map (the gradient into z comes from it).
    let config = ConvConfig {
        input: [1, 3, 3],
        layers: vec![
            conv(2, 3, 1, 1, Relu),
            Layer::Linear { out: 2, act: Identity },
            Layer::ConvTranspose {
                out: 1,
                kernel: 3,
                stride: 1,
                padding: 0,
                output_padding: 0,
                act: Sigmoid,
            },
        ],
        code_layer: 1,
        loss: LossKind::Bce,
        variational: Some(Variational { beta: 1.0 }),
        noise: None,
        sparse: None,
        dropout: None,
    };
    finite_difference_check("conv-vae, z into a transposed conv", config, 7, 3, 12);
}

#[test]
fn denoising_backward_matches_finite_differences_with_fixed_noise() {
    use Activation::*;
    let config = ConvConfig {
        input: [1, 6, 6],
        layers: vec![
            conv(2, 3, 1, 1, Tanh),
            Layer::MaxPool,
            conv(2, 3, 1, 1, Relu),
            Layer::Upsample,
            conv(1, 3, 1, 1, Sigmoid),
        ],
        code_layer: 2,
        loss: LossKind::Mse,
        variational: None,
        noise: Some(Noise::Gaussian(0.3)),
        sparse: None,
        dropout: None,
    };
    finite_difference_check("denoising", config, 6, 2, 12);
}

#[test]
fn sparse_and_dropout_backward_matches_finite_differences_with_fixed_masks() {
    use Activation::*;
    // The layer list gives conv models the dense model's regularisers: an L2 activity penalty on a
    // tanh code and dropout after every hidden layer with parameters (masks held fixed).
    let config = ConvConfig {
        input: [1, 6, 6],
        layers: vec![
            conv(3, 3, 1, 1, Relu),
            Layer::MaxPool,
            conv(2, 3, 1, 1, Tanh),
            Layer::Upsample,
            conv(1, 3, 1, 1, Sigmoid),
        ],
        code_layer: 2,
        loss: LossKind::Bce,
        variational: None,
        noise: None,
        sparse: Some(Sparse { norm: SparseNorm::L2, lambda: 0.05 }),
        dropout: Some(0.25),
    };
    finite_difference_check("sparse+dropout", config, 8, 2, 12);
}

#[test]
fn a_user_architecture_lowers_trains_and_mirrors_its_encoder() {
    let gpu = gpu();
    let config = aegpu::models::arch::parse(
        "conv 4 k3 s2 relu, conv 8 k3 s2 relu, flatten, linear 3",
        [1, 28, 28],
        LossKind::Bce,
        Activation::Sigmoid,
    )
    .unwrap();
    let kinds: Vec<String> = config.layers.iter().map(|l| format!("{l:?}")).collect();
    assert_eq!(config.code_layer, 2, "{kinds:?}");
    assert_eq!(config.layers.len(), 7, "Linear back to 8x7x7, Unflatten and two transposed convs: {kinds:?}");
    assert_eq!(
        config.layers[5],
        Layer::ConvTranspose {
            out: 4,
            kernel: 3,
            stride: 2,
            padding: 1,
            output_padding: 1,
            act: Activation::Relu
        }
    );
    assert_eq!(config.output_activation(), Activation::Sigmoid);
    let model = Autoencoder::new(&gpu, config, 3, Init::Glorot).unwrap();
    assert_eq!(model.code_dim(), 3);
    let (train, test) = (synthetic(256, 28, 28, 10, 1), synthetic(64, 28, 28, 10, 2));
    let train = GpuDataset::upload(&gpu, &train).unwrap();
    let test = GpuDataset::upload(&gpu, &test).unwrap();
    let tc = TrainConfig {
        epochs: 3,
        batch: 32,
        optimizer: Optimizer::parse("adam", 3e-3, 0.0).unwrap(),
        seed: 3,
    };
    let history = aegpu::run::train(&gpu, &model, &train, &test, &tc, &mut (), |_, _| Ok(())).unwrap();
    assert!(history[2].test_loss < history[0].test_loss, "{history:?}");
    // Errors name the layer and what was wrong.
    for (arch, needle) in [
        ("conv 4 k3 s2 relu, bogus 3", "layer 1 'bogus 3'"),
        ("conv 0 k3", "output channels"),
        ("maxpool, maxpool, maxpool, maxpool, maxpool", "cannot mirror"),
        ("conv 4 k9 s1 p0, linear 2 | linear 10", "decoder produces"),
    ] {
        let e =
            aegpu::models::arch::parse(arch, [1, 28, 28], LossKind::Bce, Activation::Sigmoid).unwrap_err();
        assert!(e.to_string().contains(needle), "{arch}: {e}");
    }
}

fn small_data() -> (Dataset, Dataset) {
    let all = synthetic::synthetic(580, 8, 8, 4, 3);
    (all.subset(0..480), all.subset(480..580))
}

/// The Keras blog's model shrunk to 8x8 images: Conv 8-4 3x3 with max-pooling to a 4x2x2 code, then
/// Conv 4-8 with up-sampling and a sigmoid Conv 1, trained with BCE.
fn tiny_keras() -> ConvConfig {
    use Activation::*;
    ConvConfig {
        input: [1, 8, 8],
        layers: vec![
            conv(8, 3, 1, 1, Relu),
            Layer::MaxPool,
            conv(4, 3, 1, 1, Relu),
            Layer::MaxPool,
            conv(4, 3, 1, 1, Relu),
            Layer::Upsample,
            conv(8, 3, 1, 1, Relu),
            Layer::Upsample,
            conv(1, 3, 1, 1, Sigmoid),
        ],
        code_layer: 3,
        loss: LossKind::Bce,
        variational: None,
        noise: None,
        sparse: None,
        dropout: None,
    }
}

/// (test MSE, test BCE) before training, then (train loss, test MSE, test BCE) per epoch.
type History = ((f64, f64), Vec<(f64, f64, f64)>);

fn train_losses(gpu: &Gpu, seed: u64, epochs: usize) -> History {
    let (train, test) = small_data();
    let model = Autoencoder::new(gpu, tiny_keras(), seed, Init::Glorot).unwrap();
    let train = GpuDataset::upload(gpu, &train).unwrap();
    let test = GpuDataset::upload(gpu, &test).unwrap();
    let initial = Evaluator::new(gpu, &model, &test, 100).unwrap().run(0).unwrap().metrics;
    let initial = (initial.mse_px, initial.bce_px);
    let tc = TrainConfig { epochs, batch: 40, optimizer: Optimizer::parse("adam", 1e-2, 0.0).unwrap(), seed };
    let history = aegpu::run::train(gpu, &model, &train, &test, &tc, &mut (), |_, _| Ok(())).unwrap();
    (initial, history.iter().map(|m| (m.train_loss, m.test_mse_px, m.test_bce_px)).collect())
}

#[test]
fn training_on_synthetic_data_lowers_the_loss() {
    let gpu = gpu();
    let (initial, losses) = train_losses(&gpu, 5, 4);
    eprintln!("tiny keras on synthetic 8x8: test (MSE, BCE) {initial:?} before training, then {losses:?}");
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(last.1 < 0.5 * initial.0, "test MSE fell only from {} to {}", initial.0, last.1);
    assert!(last.2 < 0.5 * initial.1, "test BCE fell only from {} to {}", initial.1, last.2);
    assert!(last.0 < 0.7 * first.0, "train loss fell only from {} to {}", first.0, last.0);
    assert!(losses.windows(2).all(|w| w[1].0 < w[0].0), "the train loss rose: {losses:?}");
}

#[test]
fn same_seed_gives_identical_losses_and_another_seed_does_not() {
    let gpu = gpu();
    let a = train_losses(&gpu, 11, 2);
    let b = train_losses(&gpu, 11, 2);
    let c = train_losses(&gpu, 12, 2);
    let bits = |(initial, v): &History| {
        let epochs: Vec<_> = v.iter().map(|t| (t.0.to_bits(), t.1.to_bits(), t.2.to_bits())).collect();
        (initial.0.to_bits(), initial.1.to_bits(), epochs)
    };
    assert_eq!(bits(&a), bits(&b), "same seed, same adapter: metrics must be bit-identical");
    assert_ne!(bits(&a), bits(&c));
}

/// Trains `config` for an epoch on 8x8 synthetic data, checkpoints it, restores it, and checks that
/// the evaluation is bit-identical and that every tensor has the expected name and PyTorch shape.
fn checkpoint_round_trip(config: ConvConfig, expected: &[(&str, &[usize])]) {
    let gpu = gpu();
    let all = synthetic::synthetic(150, 8, 8, 4, 3);
    let (train, test) = (all.subset(0..100), all.subset(100..150));
    let seed = 9;
    let model = Autoencoder::new(&gpu, config.clone(), seed, Init::Torch).unwrap();
    let train = GpuDataset::upload(&gpu, &train).unwrap();
    let test = GpuDataset::upload(&gpu, &test).unwrap();
    let tc =
        TrainConfig { epochs: 1, batch: 25, optimizer: Optimizer::parse("adamw", 1e-3, 1e-2).unwrap(), seed };
    aegpu::run::train(&gpu, &model, &train, &test, &tc, &mut (), |_, _| Ok(())).unwrap();
    let before = Evaluator::new(&gpu, &model, &test, 16).unwrap().run(20).unwrap();

    let dir =
        std::env::temp_dir().join(format!("aegpu-conv-ckpt-{}-{}", std::process::id(), config.code_dim()));
    let path = dir.join("model.safetensors");
    let meta =
        [("aegpu.dataset", "synthetic".to_string()), ("aegpu.train", serde_json::to_string(&tc).unwrap())];
    checkpoint::save(&gpu, &model, &meta, &path).unwrap();
    let ckpt = checkpoint::load(&path).unwrap();
    assert_eq!(ckpt.model, ModelConfig::Conv(config.clone()));
    assert_eq!(ckpt.metadata.get("aegpu.dataset").map(String::as_str), Some("synthetic"));
    let names: Vec<&str> = ckpt.tensors.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names.len(), expected.len(), "tensors {names:?}");
    let restored = checkpoint::restore(&gpu, &ckpt, &path).unwrap();
    assert_eq!(restored.config, ModelConfig::Conv(config.clone()));
    assert_eq!(restored.seed, seed, "the restored model's noise seed comes from aegpu.train");
    let after = Evaluator::new(&gpu, &restored, &test, 16).unwrap().run(20).unwrap();
    let m = |e: &aegpu::train::EvalOutput| {
        let m = e.metrics;
        (
            m.mse_px.to_bits(),
            m.bce_px.to_bits(),
            m.loss.to_bits(),
            m.vae.map(|v| (v.0.to_bits(), v.1.to_bits())),
        )
    };
    assert_eq!(m(&before), m(&after));
    assert_eq!(before.recon, after.recon);
    assert_eq!(before.codes, after.codes);

    // PyTorch names and layouts, read straight from the file.
    let st_bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    for (name, shape) in expected {
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{name} missing from {names:?}: {e}"));
        assert_eq!(t.shape(), *shape, "{name}");
    }
    // The exported values are the parameters, in the arena's order.
    let params = model.params.buffer.read_all_f32(&gpu).unwrap();
    for (name, offset, len) in &model.params.layout.entries {
        let (_, _, values) = ckpt.tensors.iter().find(|(n, _, _)| n == name).unwrap();
        assert_eq!(values.as_slice(), &params[*offset..offset + len], "{name}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn checkpoint_round_trip_gives_identical_outputs_and_pytorch_layouts() {
    // The strided preset with a dense bottleneck, on 8x8: Conv2d(1, 32) ReLU Conv2d(32, 64) ReLU
    // Flatten Linear(256, 6) | Linear(6, 256) ReLU Unflatten ConvTranspose2d(64, 32) ReLU
    // ConvTranspose2d(32, 1) Sigmoid.
    let config = ConvConfig::preset("strided", [1, 8, 8], Some(6), LossKind::Bce).unwrap();
    checkpoint_round_trip(
        config,
        &[
            ("encoder.0.weight", &[32, 1, 3, 3]),
            ("encoder.0.bias", &[32]),
            ("encoder.2.weight", &[64, 32, 3, 3]),
            ("encoder.2.bias", &[64]),
            ("encoder.5.weight", &[6, 256]),
            ("encoder.5.bias", &[6]),
            ("decoder.0.weight", &[256, 6]),
            ("decoder.0.bias", &[256]),
            // ConvTranspose2d weights are [in, out, kh, kw].
            ("decoder.3.weight", &[64, 32, 3, 3]),
            ("decoder.3.bias", &[32]),
            ("decoder.5.weight", &[32, 1, 3, 3]),
            ("decoder.5.bias", &[1]),
        ],
    );
}

#[test]
fn conv_vae_checkpoint_round_trip_keeps_the_noise_seed() {
    // A VAE's evaluation samples z from the model's seed: restored from aegpu.train, the metrics
    // (reconstruction and KL nats) are bit-identical. The code layer outputs μ and log σ².
    let config = ConvConfig::preset("conv-vae", [1, 8, 8], Some(3), LossKind::Bce).unwrap();
    checkpoint_round_trip(
        config,
        &[
            ("encoder.0.weight", &[32, 1, 3, 3]),
            ("encoder.0.bias", &[32]),
            ("encoder.2.weight", &[64, 32, 3, 3]),
            ("encoder.2.bias", &[64]),
            ("encoder.5.weight", &[6, 256]),
            ("encoder.5.bias", &[6]),
            ("decoder.0.weight", &[256, 3]),
            ("decoder.0.bias", &[256]),
            ("decoder.3.weight", &[64, 32, 3, 3]),
            ("decoder.3.bias", &[32]),
            ("decoder.5.weight", &[32, 1, 3, 3]),
            ("decoder.5.bias", &[1]),
        ],
    );
}

#[test]
fn presets_have_the_known_sizes_and_names() {
    let keras = ConvConfig::preset("keras", [1, 28, 28], None, LossKind::Bce).unwrap();
    // The Keras blog model: 160 + 1160 + 584 + 584 + 584 + 1168 + 145.
    assert_eq!(keras.parameter_count(), 4385);
    assert_eq!(keras.code_dim(), 8 * 4 * 4);
    assert!(keras.describe().contains("[code 8x4x4]"), "{}", keras.describe());
    assert_eq!(keras.output_activation(), Activation::Sigmoid);
    assert_eq!(keras.variational, None);

    let strided = ConvConfig::preset("strided", [1, 28, 28], Some(2), LossKind::Mse).unwrap();
    assert_eq!(strided.code_dim(), 2);
    assert_eq!(strided.loss, LossKind::Mse);
    let wide = ConvConfig::preset("strided", [1, 28, 28], None, LossKind::Bce).unwrap();
    assert_eq!(wide.code_dim(), 64 * 7 * 7);

    let vae = ConvConfig::preset("conv-vae", [1, 28, 28], None, LossKind::Mse).unwrap();
    assert_eq!(vae.variational, Some(Variational { beta: 1.0 }));
    assert_eq!(vae.code_dim(), 20);
    assert_eq!(vae.loss, LossKind::Bce, "a VAE is trained with BCE whatever was asked");
    let vae5 = ConvConfig::preset("conv-vae", [1, 28, 28], Some(5), LossKind::Bce).unwrap();
    assert_eq!(vae5.code_dim(), 5);

    // The configurations survive the checkpoint's JSON.
    for c in [&keras, &strided, &wide, &vae] {
        let json = serde_json::to_string(c).unwrap();
        assert_eq!(ModelConfig::from_json(Some("conv"), &json).unwrap(), ModelConfig::Conv(c.clone()));
    }

    // The model agrees, and names its tensors as PyTorch's nn.Sequential would: Conv, ReLU, MaxPool
    // three times in the encoder; Conv, ReLU, Upsample three times then Conv, Sigmoid in the decoder.
    // Built on 12x12 images (12 -> 6 -> 3 -> 2 -> 4 -> 8 -> 6 -> 12: the same weights, a 8x2x2 code),
    // which keeps the per-layer algorithm tuning of a 28x28 model out of this test's time.
    let gpu = gpu();
    let small = ConvConfig::preset("keras", [1, 12, 12], None, LossKind::Bce).unwrap();
    let model = Autoencoder::new(&gpu, small, 0, Init::Glorot).unwrap();
    assert_eq!(model.parameter_count(), 4385);
    assert_eq!(model.code_dim(), 8 * 2 * 2);
    assert_eq!(model.code_width(), 8 * 2 * 2);
    assert_eq!(model.kind(), "conv");
    let exported: Vec<(String, Vec<usize>)> = model
        .export(&gpu)
        .unwrap()
        .into_iter()
        .map(|(n, s, v)| {
            assert_eq!(v.len(), s.iter().product::<usize>(), "{n}");
            (n, s)
        })
        .collect();
    let expected: Vec<(String, Vec<usize>)> = [
        ("encoder.0", vec![16, 1, 3, 3]),
        ("encoder.3", vec![8, 16, 3, 3]),
        ("encoder.6", vec![8, 8, 3, 3]),
        ("decoder.0", vec![8, 8, 3, 3]),
        ("decoder.3", vec![8, 8, 3, 3]),
        ("decoder.6", vec![16, 8, 3, 3]),
        ("decoder.9", vec![1, 16, 3, 3]),
    ]
    .into_iter()
    .flat_map(|(n, s)| {
        let out = s[0];
        [(format!("{n}.weight"), s), (format!("{n}.bias"), vec![out])]
    })
    .collect();
    assert_eq!(exported, expected);
    let vae = ConvConfig::preset("conv-vae", [1, 8, 8], None, LossKind::Bce).unwrap();
    let vae_model = Autoencoder::new(&gpu, vae, 0, Init::Glorot).unwrap();
    assert_eq!(vae_model.code_dim(), 20);
    assert_eq!(vae_model.code_width(), 40, "a VAE's code layer outputs μ and log σ²");
}

#[test]
fn bad_configurations_are_errors() {
    use Activation::*;
    let msg = |r: aegpu::error::Result<ConvConfig>| r.expect_err("accepted").to_string();
    // The keras preset cannot give 30x30 back (30 -> 15 -> 8 -> 4 -> 8 -> 16 -> 14 or 16 -> 28 or 32);
    // the strided ones cannot give 30x31 back (one output padding for rows and columns).
    let e = msg(ConvConfig::preset("keras", [1, 30, 30], None, LossKind::Bce));
    assert!(e.contains("cannot give back 30x30"), "keras: {e}");
    for name in ["strided", "conv-vae"] {
        let e = msg(ConvConfig::preset(name, [1, 30, 31], None, LossKind::Bce));
        assert!(e.contains("cannot give back 30x31"), "{name}: {e}");
        // 30x30 works: 30 -> 15 -> 8, back with output padding 0 then 1.
        let ok = ConvConfig::preset(name, [3, 30, 30], None, LossKind::Bce).unwrap();
        assert_eq!(ok.input, [3, 30, 30]);
    }
    // (20x20 does survive it: 20 -> 10 -> 5 -> 3 -> 6 -> 12 -> 10 -> 20 and 20 -> 10 -> 5 -> 10 -> 20.)
    for name in ["keras", "strided", "conv-vae"] {
        ConvConfig::preset(name, [1, 20, 20], None, LossKind::Bce).unwrap();
    }
    let e = msg(ConvConfig::preset("vgg", [1, 28, 28], None, LossKind::Bce));
    assert!(e.contains("unknown conv preset 'vgg'"), "{e}");
    let e = msg(ConvConfig::preset("keras", [1, 28, 28], Some(16), LossKind::Bce));
    assert!(e.contains("code"), "{e}");

    let base = ConvConfig::preset("strided", [1, 8, 8], Some(4), LossKind::Bce).unwrap();
    let check = |edit: &dyn Fn(&mut ConvConfig), want: &str| {
        let mut c = base.clone();
        edit(&mut c);
        let e = c.validate().expect_err(want).to_string();
        assert!(e.contains(want), "expected '{want}' in: {e}");
        // A checkpoint with such a model is refused too, not built.
        let json = serde_json::to_string(&c).unwrap();
        assert!(ModelConfig::from_json(Some("conv"), &json).is_err());
    };
    // Unflatten that does not hold what the dense layer wrote (64x2x2 = 256 values).
    check(&|c| c.layers[4] = Layer::Unflatten { c: 64, h: 3, w: 3 }, "does not hold the 256 values");
    check(&|c| c.layers[3] = Layer::Linear { out: 200, act: Relu }, "does not hold");
    check(&|c| c.code_layer = 9, "out of range");
    check(&|c| c.layers.clear(), "at least one layer");
    check(&|c| c.input = [1, 0, 8], "zero size");
    check(&|c| c.layers[0] = Layer::Unflatten { c: 1, h: 8, w: 8 }, "first layer cannot be Unflatten");
    check(&|c| c.layers[0] = conv(32, 11, 1, 1, Relu), "kernel is larger");
    check(
        &|c| {
            c.layers[5] = Layer::ConvTranspose {
                out: 32,
                kernel: 3,
                stride: 2,
                padding: 1,
                output_padding: 2,
                act: Relu,
            }
        },
        "output_padding",
    );
    check(&|c| c.layers[2] = Layer::Linear { out: 0, act: Identity }, "at least one output");
    // A decoder that stops at 4x4.
    check(&|c| c.layers[6] = conv(1, 3, 1, 1, Sigmoid), "produces 1x4x4 but the input is 1x8x8");
    check(&|c| c.noise = Some(Noise::Gaussian(-1.0)), "must be >= 0");
    // The output activation decides the losses: BCE needs a sigmoid.
    check(
        &|c| {
            c.layers[6] = Layer::ConvTranspose {
                out: 1,
                kernel: 3,
                stride: 2,
                padding: 1,
                output_padding: 1,
                act: Identity,
            }
        },
        "sigmoid",
    );
    check(
        &|c| {
            c.layers[6] = Layer::ConvTranspose {
                out: 1,
                kernel: 3,
                stride: 2,
                padding: 1,
                output_padding: 1,
                act: LeakyRelu(0.1),
            }
        },
        "sigmoid or identity",
    );
    // VAE rules.
    let vae = |c: &mut ConvConfig| c.variational = Some(Variational { beta: 1.0 });
    check(
        &|c| {
            vae(c);
            c.code_layer = 1;
        },
        "μ and log σ²",
    );
    check(
        &|c| {
            vae(c);
            c.loss = LossKind::Mse;
            c.layers[6] = Layer::ConvTranspose {
                out: 1,
                kernel: 3,
                stride: 2,
                padding: 1,
                output_padding: 1,
                act: Identity,
            };
        },
        "BCE",
    );
    check(
        &|c| {
            vae(c);
            c.layers[2] = Layer::Linear { out: 4, act: Identity };
            c.variational = Some(Variational { beta: -1.0 });
        },
        "beta",
    );
    // A last layer without parameters (its activation would be the output's).
    let pool_last = ConvConfig {
        input: [1, 8, 8],
        layers: vec![conv(2, 3, 1, 1, Relu), Layer::MaxPool, conv(1, 3, 1, 1, Relu), Layer::Upsample],
        code_layer: 1,
        loss: LossKind::Mse,
        variational: None,
        noise: None,
        sparse: None,
        dropout: None,
    };
    let e = pool_last.validate().unwrap_err().to_string();
    assert!(e.contains("last layer"), "{e}");
    // A VAE whose code is followed by Unflatten (the decoder would read z as a feature map).
    let vae_unflatten = ConvConfig {
        input: [1, 8, 8],
        layers: vec![
            conv(2, 3, 2, 1, Relu),
            Layer::Linear { out: 8, act: Identity },
            Layer::Unflatten { c: 2, h: 2, w: 2 },
        ],
        code_layer: 1,
        loss: LossKind::Bce,
        variational: Some(Variational { beta: 1.0 }),
        noise: None,
        sparse: None,
        dropout: None,
    };
    assert!(vae_unflatten.validate().is_err());

    // The model refuses bad configurations and batches with errors, not panics.
    let gpu = gpu();
    let mut bad = base.clone();
    bad.code_layer = 42;
    assert!(Autoencoder::new(&gpu, bad.clone(), 0, Init::Glorot).is_err());
    assert!(Autoencoder::new(&gpu, ModelConfig::Conv(bad), 0, Init::Glorot).is_err());
    let model = Autoencoder::new(&gpu, base.clone(), 0, Init::Glorot).unwrap();
    assert!(model.activations(&gpu, 0).is_err());
    // A model whose input does not match the data.
    let data = GpuDataset::upload(&gpu, &synthetic::synthetic(20, 12, 12, 2, 0)).unwrap();
    assert!(Evaluator::new(&gpu, &model, &data, 10).is_err());
}

#[test]
fn a_linear_on_a_1x1_feature_map_is_named_after_its_flatten() {
    // strided on 4x4: Conv2d(1, 32) ReLU Conv2d(32, 64) ReLU (64x1x1) Flatten Linear(64, 2): the
    // Linear is module 5 of nn.Sequential, as on larger inputs.
    let gpu = gpu();
    let config = ConvConfig::preset("strided", [1, 4, 4], Some(2), LossKind::Bce).unwrap();
    let model = Autoencoder::new(&gpu, config, 0, Init::Glorot).unwrap();
    let names: Vec<String> = model.export(&gpu).unwrap().into_iter().map(|(n, _, _)| n).collect();
    assert!(names.contains(&"encoder.5.weight".to_string()), "{names:?}");
}
