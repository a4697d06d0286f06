//! One network of layers: every model family lowers to an ordered list of [`Op`]s over named tensors.
//!
//! Each layer kind lives in its own file with a `forward` and a `backward` that return explicit
//! launch lists, in the style of llm.c's `<layer>_forward` / `<layer>_backward`: outputs first, then
//! inputs. [`Network::forward`] walks the list top to bottom, [`Network::backward`] bottom to top;
//! nothing is recorded on a tape.
//!
//! Tensors are named: the input batch is `x`, node i writes `h{i}` (a VAE's sample is `z`, a
//! corrupted input `x noisy`), and the gradient of tensor `t` is `d{t}`. Reshapes and penalties write
//! nothing of their own: their output *is* their input tensor. Train-time noise (input corruption,
//! dropout) is skipped when the [`Pass`] does not ask for it, and the next layer reads what the
//! skipped one read.
//!
//! Adding a layer: a shader entry point (or reuse one) with its launcher in `kernels/` and CPU
//! reference in `cpu/`; an [`Op`] variant with its shape rule in [`Op::output_shape`]; a file here
//! with `forward`/`backward`; the two `match`es in [`Network::forward`] and [`Network::backward`];
//! and a finite-difference test of a small network that uses it (`kernels-tests/conv_model.rs`).

pub mod conv;
pub mod linear;
pub mod noise;
pub mod penalty;
pub mod reparam;
pub mod resample;
pub mod tensors;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Launch, View};
use crate::kernels::Activation;
use crate::kernels::conv::Conv2dShape;
use crate::kernels::matmul_policy::MatmulPolicy;
use crate::kernels::pool;
use crate::runner::{Arena, ArenaLayout};
use crate::tune::ConvAlgorithm;
pub use noise::Noise;
pub use penalty::Penalty;
pub use tensors::{ActivationStorage, Tensors};

/// What a forward pass applies besides the layers: input corruption (denoising models; fresh noise
/// per step from the GPU generator), dropout, and a VAE's sampling of z. Networks without them
/// ignore it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pass {
    /// Run the [`Op::Corrupt`] layers (a denoising model's input noise); skipped, they pass `x` on.
    pub corrupt: bool,
    /// Run the [`Op::Dropout`] layers; skipped, they pass their input on.
    pub dropout: bool,
    /// A VAE's z = μ + σ·ε (true) or z = μ (false).
    pub sample: bool,
}

impl Pass {
    /// A training step: all three.
    pub const TRAIN: Pass = Pass { corrupt: true, dropout: true, sample: true };
    /// Test metrics: the training objective without dropout, so a denoising model reconstructs
    /// corrupted test inputs (as Keras validates one) from fixed evaluation streams, and a VAE
    /// decodes one sample of z.
    pub const EVAL: Pass = Pass { corrupt: true, dropout: false, sample: true };
    /// [`Pass::EVAL`] with a VAE's deterministic code z = μ: its reconstruction without sampling noise.
    pub const EVAL_MEAN: Pass = Pass { corrupt: true, dropout: false, sample: false };
    /// Inference on the given inputs as they are (a VAE still samples z).
    pub const INFER: Pass = Pass { corrupt: false, dropout: false, sample: true };
}

/// A layer of the list. Layers with parameters carry a fused activation (the output layer's is
/// applied by the loss kernel, which works on logits, so the network stores identity there).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// `y = act(x · Wᵀ + b)` on the flattened input; `W` is `[out, in]`.
    Linear {
        /// Output features per example.
        out: usize,
        /// Fused activation applied to `x · Wᵀ + b`.
        act: Activation,
    },
    /// `Conv2d(in, out, kernel, stride, padding)`, weight `[out, in, k, k]`.
    Conv2d {
        /// Output channels.
        out: usize,
        /// Side of the square kernel, in pixels.
        kernel: usize,
        /// Step between kernel positions, in pixels (both axes).
        stride: usize,
        /// Zero padding added on each side of both axes, in pixels.
        padding: usize,
        /// Fused activation applied to the convolution plus bias.
        act: Activation,
        /// How the layer is computed (direct, im2col + matmul, implicit GEMM), as tuned for its shape.
        algorithm: ConvAlgorithm,
    },
    /// `ConvTranspose2d(in, out, kernel, stride, padding, output_padding)`, weight `[in, out, k, k]`.
    ConvTranspose2d {
        /// Output channels.
        out: usize,
        /// Side of the square kernel, in pixels.
        kernel: usize,
        /// Up-sampling factor: the step between the input pixels' kernel footprints in the output.
        stride: usize,
        /// Pixels cropped from each side of the full output (PyTorch's `padding`).
        padding: usize,
        /// Extra rows and columns added at the bottom and right of the output (PyTorch's
        /// `output_padding`, less than `stride`).
        output_padding: usize,
        /// Fused activation applied to the transposed convolution plus bias.
        act: Activation,
        /// How its adjoint conv2d is computed, as tuned for that shape.
        algorithm: ConvAlgorithm,
    },
    /// 2x2 max-pooling, stride 2, rounding up (Keras `padding="same"`, PyTorch `ceil_mode=True`).
    MaxPool2d,
    /// Nearest-neighbour 2x up-sampling.
    Upsample,
    /// Reads the same values with another shape (Flatten, Unflatten): no work.
    Reshape {
        /// The new `[c, h, w]` per example; holds as many values as the input.
        to: [usize; 3],
    },
    /// A standalone activation (one that follows a layer without parameters).
    Activation(Activation),
    /// Inverted dropout with this probability, in training only.
    Dropout(f32),
    /// Input corruption (a denoising autoencoder), in training and evaluation.
    Corrupt(Noise),
    /// A VAE's z = μ + σ·ε from `[μ, log σ²]`; its backward adds β·KL's gradient.
    Reparameterize {
        /// Weight of the KL term (β-VAE; 1 is the plain VAE).
        beta: f32,
    },
    /// A penalty on the tensor it follows (the code): its gradient is added in the backward pass.
    Penalty(Penalty),
}

impl Op {
    /// The fused activation of a layer with parameters.
    pub fn act(&self) -> Option<Activation> {
        match *self {
            Op::Linear { act, .. } | Op::Conv2d { act, .. } | Op::ConvTranspose2d { act, .. } => Some(act),
            _ => None,
        }
    }

    /// Whether the layer has a weight and a bias (Linear, Conv2d, ConvTranspose2d).
    pub fn has_params(&self) -> bool {
        self.act().is_some()
    }

    /// Whether the output is the input tensor itself (no storage of its own).
    fn aliases_input(&self) -> bool {
        matches!(self, Op::Reshape { .. } | Op::Penalty(_))
    }

    /// Whether the layer runs in this pass (train-time noise does not always).
    fn active(&self, pass: Pass) -> bool {
        match self {
            Op::Dropout(_) => pass.dropout,
            Op::Corrupt(_) => pass.corrupt,
            _ => true,
        }
    }

    /// The conv2d geometry on a batch of `n` (a transposed convolution's adjoint) for tuning.
    pub fn conv_geometry(&self, input: [usize; 3], n: usize) -> Option<Conv2dShape> {
        match *self {
            Op::Conv2d { .. } => Some(conv::conv_shape(self, input, n)),
            Op::ConvTranspose2d { .. } => Some(conv::conv_t_shape(self, input, n).adjoint()),
            _ => None,
        }
    }

    /// The shape this layer writes for an example of shape `[c, h, w]`, or why it cannot read it.
    pub fn output_shape(&self, input: [usize; 3]) -> std::result::Result<[usize; 3], String> {
        let [c, h, w] = input;
        Ok(match *self {
            Op::Linear { out, .. } => {
                if out == 0 {
                    return Err("a linear layer needs at least one output".into());
                }
                [out, 1, 1]
            }
            Op::Conv2d { .. } => {
                let s = conv::conv_shape(self, input, 1);
                s.validate().map_err(|e| e.to_string())?;
                [s.c_out, s.out_h(), s.out_w()]
            }
            Op::ConvTranspose2d { .. } => {
                let s = conv::conv_t_shape(self, input, 1);
                s.validate().map_err(|e| e.to_string())?;
                [s.c_out, s.out_h(), s.out_w()]
            }
            Op::MaxPool2d => {
                pool::maxpool2x2_validate(1, c, h, w, true).map_err(|e| e.to_string())?;
                let (oh, ow) = pool::maxpool2x2_out(h, w, true);
                [c, oh, ow]
            }
            Op::Upsample => [c, 2 * h, 2 * w],
            Op::Reshape { to } => {
                if to.iter().product::<usize>() != c * h * w || to.contains(&0) {
                    return Err(format!(
                        "{}x{}x{} does not hold the {} values read",
                        to[0],
                        to[1],
                        to[2],
                        c * h * w
                    ));
                }
                to
            }
            Op::Reparameterize { .. } => {
                if c * h * w % 2 != 0 {
                    return Err(format!("reads [μ, log σ²]: an even number of values, got {}", c * h * w));
                }
                [c * h * w / 2, 1, 1]
            }
            Op::Activation(_) | Op::Dropout(_) | Op::Corrupt(_) | Op::Penalty(_) => input,
        })
    }
}

/// One layer of a built network: its op, shapes, parameter name and tensor names.
#[derive(Clone, Debug)]
pub struct Node {
    /// The layer.
    pub op: Op,
    /// Shape `[c, h, w]` of one example it reads (a dense input is `[features, 1, 1]`).
    pub input: [usize; 3],
    /// Shape `[c, h, w]` of one example it writes.
    pub output: [usize; 3],
    /// The checkpoint prefix of its parameters (`encoder.0` for `encoder.0.weight`), if it has any.
    pub params: Option<String>,
    /// The tensor it reads and the tensor it writes (the same for reshapes and penalties).
    pub x: String,
    /// The tensor it writes (`h{i}`, `z`, `x noisy`, or `x` itself for an alias).
    pub y: String,
}

impl Node {
    /// The weight's PyTorch shape: Linear `[out, in]` (`in` the flattened input), Conv2d
    /// `[out, in, k, k]`, ConvTranspose2d `[in, out, k, k]`; `None` for a layer without parameters.
    pub fn weight_shape(&self) -> Option<Vec<usize>> {
        let c_in = self.input[0];
        match self.op {
            Op::Linear { out, .. } => Some(vec![out, len3(self.input)]),
            Op::Conv2d { out, kernel, .. } => Some(vec![out, c_in, kernel, kernel]),
            Op::ConvTranspose2d { out, kernel, .. } => Some(vec![c_in, out, kernel, kernel]),
            _ => None,
        }
    }

    /// Bias length in f32 elements: one per output feature or channel; 0 without parameters.
    pub fn bias_len(&self) -> usize {
        match self.op {
            Op::Linear { out, .. } | Op::Conv2d { out, .. } | Op::ConvTranspose2d { out, .. } => out,
            _ => 0,
        }
    }
}

/// Values in a `[c, h, w]` example.
pub fn len3(s: [usize; 3]) -> usize {
    s[0] * s[1] * s[2]
}

/// The values layer functions read: activations, parameters and their gradients, the batch, the
/// matmul variant of each product's shape class, and the seed of the GPU random numbers.
pub struct Ctx<'a> {
    /// The batch's activations, their gradients and the layers' scratch.
    pub acts: &'a Tensors,
    /// Every parameter, named `prefix.weight` / `prefix.bias`.
    pub params: &'a Arena,
    /// The parameters' gradients, laid out as `params`.
    pub grads: &'a Arena,
    /// The matmul variant for each product's shape class.
    pub matmul: MatmulPolicy,
    /// Seed of the Philox streams of dropout, corruption and a VAE's ε.
    pub seed: u64,
}

impl Ctx<'_> {
    /// Examples in the batch the activations were laid out for.
    pub fn batch(&self) -> usize {
        self.acts.batch
    }

    /// Parameter `prefix.suffix` (e.g. `encoder.0` + `weight`).
    pub fn param(&self, node: &Node, suffix: &str) -> View {
        let name = format!("{}.{suffix}", node.params.as_deref().expect("a layer with parameters"));
        self.params.named(&name).unwrap_or_else(|| panic!("parameter '{name}' is in the layout"))
    }

    /// Gradient of parameter `prefix.suffix`.
    pub fn grad(&self, node: &Node, suffix: &str) -> View {
        let name = format!("{}.{suffix}", node.params.as_deref().expect("a layer with parameters"));
        self.grads.named(&name).unwrap_or_else(|| panic!("gradient '{name}' is in the layout"))
    }
}

/// An ordered list of layers with inferred shapes.
#[derive(Clone, Debug)]
pub struct Network {
    /// Shape `[c, h, w]` of one input example (tensor `x`).
    pub input: [usize; 3],
    /// The layers, in forward order.
    pub nodes: Vec<Node>,
}

impl Network {
    /// Infers every layer's shape from `input`, checking that each fits what it reads; an error names
    /// the layer (by index and kind) and the shape it was given. `params[i]` names layer i's
    /// parameters (required exactly for layers that have them).
    pub fn new(input: [usize; 3], ops: Vec<(Op, Option<String>)>) -> Result<Network> {
        if input.contains(&0) {
            return Err(Error::Config(format!("input shape {input:?} has a zero size")));
        }
        let mut nodes: Vec<Node> = Vec::with_capacity(ops.len());
        let mut cur = input;
        for (i, (op, params)) in ops.into_iter().enumerate() {
            let [c, h, w] = cur;
            let output = op
                .output_shape(cur)
                .map_err(|why| Error::Config(format!("layer {i} ({op:?}) on a {c}x{h}x{w} input: {why}")))?;
            if op.has_params() != params.is_some() {
                return Err(Error::Config(format!(
                    "layer {i} ({op:?}): parameter name given for the wrong kind"
                )));
            }
            let x = nodes.last().map_or_else(|| "x".to_string(), |n| n.y.clone());
            let y = match op {
                _ if op.aliases_input() => x.clone(),
                Op::Corrupt(_) => "x noisy".to_string(),
                Op::Reparameterize { .. } => "z".to_string(),
                _ => format!("h{i}"),
            };
            nodes.push(Node { op, input: cur, output, params, x, y });
            cur = output;
        }
        Ok(Network { input, nodes })
    }

    /// Shape `[c, h, w]` of one example the last layer writes (the input's for an empty network).
    pub fn output(&self) -> [usize; 3] {
        self.nodes.last().map_or(self.input, |n| n.output)
    }

    /// Whether the backward pass needs the gradient of tensor `name` (not of the data or its corruption).
    fn needs_grad(name: &str) -> bool {
        name != "x" && name != "x noisy"
    }

    /// Lays out every tensor a batch of `batch` needs (values, gradients and each layer's scratch)
    /// plus `extra` named tensors, in one arena.
    pub fn tensors(&self, gpu: &Gpu, batch: usize, extra: &[(&str, usize)]) -> Result<Tensors> {
        self.tensors_half(gpu, batch, extra, Vec::new())
    }

    /// [`Network::tensors`] with the tensors named in `half` stored as f16 (see [`Network::half_tensors`]).
    pub fn tensors_half(
        &self,
        gpu: &Gpu,
        batch: usize,
        extra: &[(&str, usize)],
        half: Vec<String>,
    ) -> Result<Tensors> {
        let layout = self.tensor_layout_half(gpu, batch, extra, &half)?;
        Ok(Tensors::with_half(Arena::new(gpu, "activations", &layout)?, batch, half))
    }

    /// The tensors the f16 activation storage may keep as f16: the output of a dense layer whose only
    /// reader is the next layer, itself dense (its forward, as the SGEMM's input; its weight
    /// gradient; and the layer's own activation derivative all read f16), less those in `keep`.
    pub fn half_tensors(&self, keep: &[&str]) -> Vec<String> {
        self.nodes
            .windows(2)
            .filter(|w| matches!(w[0].op, Op::Linear { .. }) && matches!(w[1].op, Op::Linear { .. }))
            .map(|w| w[0].y.clone())
            .filter(|y| !keep.contains(&y.as_str()))
            .collect()
    }

    /// The layout [`Network::tensors`] allocates, without allocating it (to tell its size).
    pub fn tensor_layout(&self, gpu: &Gpu, batch: usize, extra: &[(&str, usize)]) -> Result<ArenaLayout> {
        self.tensor_layout_half(gpu, batch, extra, &[])
    }

    fn tensor_layout_half(
        &self,
        gpu: &Gpu,
        batch: usize,
        extra: &[(&str, usize)],
        half: &[String],
    ) -> Result<ArenaLayout> {
        if batch == 0 {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        // The bias gradients' column sums give each of 8 lanes every 8th example of the batch.
        let most = 8 * crate::kernels::MAX_LOOP_STEPS;
        if batch > most {
            return Err(Error::Config(format!(
                "batch size {batch} is larger than {most}, the most the per-batch sums take in one \
                 pass (lavapipe ends longer loops early); use a smaller --batch"
            )));
        }
        let mut layout = ArenaLayout::new(gpu);
        layout.add("x", batch * len3(self.input));
        for (i, n) in self.nodes.iter().enumerate() {
            let len = batch * len3(n.output);
            if !n.op.aliases_input() {
                let words = if half.contains(&n.y) { len.div_ceil(2) } else { len };
                layout.add(n.y.clone(), words);
                if Self::needs_grad(&n.y) {
                    layout.add(format!("d{}", n.y), len);
                }
            }
            match n.op {
                Op::MaxPool2d => {
                    layout.add(format!("h{i} argmax"), len);
                }
                Op::Dropout(_) => {
                    layout.add(format!("h{i} mask"), len);
                }
                Op::Reparameterize { .. } => reparam::add_tensors(&mut layout, batch, n),
                Op::Penalty(p) => {
                    // The code layer before it (a contractive penalty reads its weight).
                    let inputs = i.checked_sub(1).map_or(0, |c| len3(self.nodes[c].input));
                    p.check_batch(batch, inputs).map_err(Error::Config)?;
                    p.add_tensors(&mut layout, batch, len3(n.input));
                }
                _ => {}
            }
        }
        conv::add_scratch(&mut layout, self, batch);
        for (name, len) in extra {
            layout.add(*name, *len);
        }
        Ok(layout)
    }

    /// Forward launches of nodes `range`, reading `input` first, as `pass` asks.
    pub fn forward(&self, ctx: &Ctx, range: std::ops::Range<usize>, input: View, pass: Pass) -> Vec<Launch> {
        let mut launches = Vec::new();
        let mut x = input;
        for node in &self.nodes[range] {
            if !node.op.active(pass) || node.op.aliases_input() {
                continue;
            }
            let y = ctx.acts.view(&node.y);
            launches.extend(match node.op {
                Op::Linear { .. } => linear::forward(ctx, node, &y, &x),
                Op::Conv2d { .. } | Op::ConvTranspose2d { .. } => conv::forward(ctx, node, &y, &x),
                Op::MaxPool2d | Op::Upsample | Op::Activation(_) => resample::forward(ctx, node, &y, &x),
                Op::Dropout(_) | Op::Corrupt(_) => noise::forward(ctx, node, &y, &x),
                Op::Reparameterize { .. } => reparam::forward(ctx, node, &y, &x, pass.sample),
                Op::Reshape { .. } | Op::Penalty(_) => unreachable!("aliases are skipped above"),
            });
            x = y;
        }
        launches
    }

    /// The backward pass of a training step, from `d{last output}` (the loss wrote it) to every
    /// parameter gradient: each layer's backward in reverse order, then the penalties' direct terms
    /// on weights (which add to what the layers' backward wrote).
    pub fn backward(&self, ctx: &Ctx) -> Vec<Launch> {
        let mut launches = Vec::new();
        for (i, node) in self.nodes.iter().enumerate().rev() {
            let before = i.checked_sub(1).map(|j| &self.nodes[j]);
            if !Self::needs_grad(&node.y) {
                continue; // corrupting the data: nothing to propagate
            }
            let dy = ctx.acts.grad(&node.y);
            let dx = Self::needs_grad(&node.x).then(|| ctx.acts.grad(&node.x));
            let (x, y) = (ctx.acts.view(&node.x), ctx.acts.view(&node.y));
            launches.extend(match node.op {
                Op::Linear { .. } => linear::backward(ctx, node, dx.as_ref(), &dy, &x, &y),
                Op::Conv2d { .. } | Op::ConvTranspose2d { .. } => {
                    conv::backward(ctx, node, dx.as_ref(), &dy, &x, &y)
                }
                Op::MaxPool2d | Op::Upsample | Op::Activation(_) => {
                    resample::backward(ctx, node, dx.as_ref(), &dy, &y)
                }
                Op::Dropout(_) | Op::Corrupt(_) => noise::backward(ctx, node, dx.as_ref(), &dy),
                Op::Reparameterize { .. } => reparam::backward(ctx, node, dx.as_ref(), &dy, &x),
                Op::Penalty(p) => p.backward(ctx, node, before, &dy, &x),
                Op::Reshape { .. } => Vec::new(),
            });
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if let Op::Penalty(p) = node.op {
                launches.extend(p.weight_term(ctx, node, i.checked_sub(1).map(|j| &self.nodes[j])));
            }
        }
        launches
    }

    /// Every parameter tensor as (checkpoint name, PyTorch shape), weights before biases, in layer order.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for n in &self.nodes {
            if let (Some(prefix), Some(shape)) = (&n.params, n.weight_shape()) {
                out.push((format!("{prefix}.weight"), shape));
                out.push((format!("{prefix}.bias"), vec![n.bias_len()]));
            }
        }
        out
    }

    /// Convolution algorithms per conv layer, for logs.
    pub fn conv_algorithms(&self) -> Vec<ConvAlgorithm> {
        self.nodes
            .iter()
            .filter_map(|n| match n.op {
                Op::Conv2d { algorithm, .. } | Op::ConvTranspose2d { algorithm, .. } => Some(algorithm),
                _ => None,
            })
            .collect()
    }
}
