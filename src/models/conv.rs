//! The convolutional autoencoder: a sequential stack of conv, transposed-conv, max-pool, up-sampling,
//! dense and unflatten layers over NCHW tensors, with explicit forward and backward lists.
//!
//! Layer i reads the previous layer's output (the input for i = 0; z for a VAE's first decoder layer)
//! and writes its own. A flattened tensor is the same memory as the NCHW one (PyTorch's `flatten`
//! order), so `Linear` reads a conv output as it is and `Unflatten` only renames the shape. As in the
//! dense model, the last layer's activation is fused into the loss, which works on logits.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer};
use crate::kernels::activation::activation_backward;
use crate::kernels::conv::{self, Conv2dShape, ConvTranspose2dShape};
use crate::kernels::conv_gemm::{self, GemmScratch, ScratchLens};
use crate::kernels::loss::{self, LossKind};
use crate::kernels::matmul::{MatmulVariant, linear_backward_input, linear_backward_weight, linear_forward};
use crate::kernels::optimizer::Optimizer;
use crate::kernels::pool;
use crate::kernels::random::random_normal;
use crate::kernels::reduce::bias_backward;
use crate::kernels::vae::{reparam_backward, reparam_forward};
use crate::kernels::{Activation, Launch};
use crate::models::dense::{NamedTensor, Noise, Variational};
use crate::models::{
    Autoencoder, Init, KlViews, ModelActivations, Pass, VaeActivations, loss_launches, update_arena,
};
use crate::runner::{Arena, ArenaLayout, View};
use crate::tune::ConvAlgorithm;
use rand::SeedableRng;

/// One layer of a convolutional autoencoder.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Layer {
    /// `Conv2d(in, out, kernel, stride, padding)` with a fused activation.
    Conv { out: usize, kernel: usize, stride: usize, padding: usize, act: Activation },
    /// `ConvTranspose2d(in, out, kernel, stride, padding, output_padding)` with a fused activation.
    ConvTranspose {
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        output_padding: usize,
        act: Activation,
    },
    /// 2x2 max-pooling, stride 2, rounding up (Keras `padding="same"`, PyTorch `ceil_mode=True`).
    MaxPool,
    /// Nearest-neighbour 2x up-sampling.
    Upsample,
    /// A fully connected layer on the flattened input; its output is `[out, 1, 1]`. A VAE's code
    /// layer outputs μ and log σ² side by side (2·out values).
    Linear { out: usize, act: Activation },
    /// Reads a flat `[c·h·w]` tensor as `[c, h, w]` (no work).
    Unflatten { c: usize, h: usize, w: usize },
}

impl Layer {
    fn conv(out: usize, kernel: usize, stride: usize, padding: usize, act: Activation) -> Layer {
        Layer::Conv { out, kernel, stride, padding, act }
    }

    fn conv_t(out: usize, stride: usize, output_padding: usize, act: Activation) -> Layer {
        Layer::ConvTranspose { out, kernel: 3, stride, padding: 1, output_padding, act }
    }

    /// The activation of a layer with parameters.
    fn act(&self) -> Option<Activation> {
        match *self {
            Layer::Conv { act, .. } | Layer::ConvTranspose { act, .. } | Layer::Linear { act, .. } => {
                Some(act)
            }
            _ => None,
        }
    }

    fn set_act(&mut self, a: Activation) {
        if let Layer::Conv { act, .. } | Layer::ConvTranspose { act, .. } | Layer::Linear { act, .. } = self {
            *act = a;
        }
    }

    fn has_params(&self) -> bool {
        self.act().is_some()
    }
}

/// Architecture and loss of a convolutional autoencoder.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConvConfig {
    /// (channels, height, width) of an example.
    pub input: [usize; 3],
    pub layers: Vec<Layer>,
    /// The layer whose output is the code (0-based).
    pub code_layer: usize,
    pub loss: LossKind,
    /// A VAE: the code layer (a linear `Linear`) outputs μ and log σ², the decoder gets z.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variational: Option<Variational>,
    /// Input corruption in training (a denoising autoencoder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
}

/// The shapes layer `i` reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LayerShapes {
    input: [usize; 3],
    output: [usize; 3],
}

fn len3(s: [usize; 3]) -> usize {
    s[0] * s[1] * s[2]
}

impl ConvConfig {
    /// Models people know, for 1x28x28 inputs:
    /// - `keras`: the Keras blog's convolutional autoencoder (Conv 16-8-8 3x3 with max-pooling to an
    ///   8x4x4 code, then Conv 8-8-16 with up-sampling and a sigmoid Conv 1), trained with BCE;
    /// - `strided`: Conv 32 and 64 (3x3, stride 2, padding 1) to a 64x7x7 code, then transposed
    ///   convolutions back to 1x28x28; with `code_dim` a dense bottleneck to a `code_dim` code;
    /// - `conv-vae`: the strided encoder, a dense layer to μ and log σ² of a `code_dim` (default 20)
    ///   latent, and the mirrored decoder (a convolutional VAE, BCE + β·KL).
    pub fn preset(
        name: &str,
        input: [usize; 3],
        code_dim: Option<usize>,
        loss: LossKind,
    ) -> Result<ConvConfig> {
        use Activation::{Identity, Relu, Sigmoid};
        let c = input[0];
        let (layers, code_layer, variational) = match name {
            "keras" => {
                if code_dim.is_some() {
                    return Err(Error::Config(
                        "the keras preset has a fixed 8x4x4 code: drop --code-dim".into(),
                    ));
                }
                let layers = vec![
                    Layer::conv(16, 3, 1, 1, Relu),
                    Layer::MaxPool,
                    Layer::conv(8, 3, 1, 1, Relu),
                    Layer::MaxPool,
                    Layer::conv(8, 3, 1, 1, Relu),
                    Layer::MaxPool,
                    Layer::conv(8, 3, 1, 1, Relu),
                    Layer::Upsample,
                    Layer::conv(8, 3, 1, 1, Relu),
                    Layer::Upsample,
                    Layer::conv(16, 3, 1, 0, Relu),
                    Layer::Upsample,
                    Layer::conv(c, 3, 1, 1, Sigmoid),
                ];
                (layers, 5, None)
            }
            "strided" | "conv-vae" => {
                let (h, w) = (input[1].div_ceil(4), input[2].div_ceil(4));
                let mut layers = vec![Layer::conv(32, 3, 2, 1, Relu), Layer::conv(64, 3, 2, 1, Relu)];
                let vae = name == "conv-vae";
                let code_dim = if vae { Some(code_dim.unwrap_or(20)) } else { code_dim };
                let code_layer = match code_dim {
                    Some(d) => {
                        layers.push(Layer::Linear { out: d, act: Identity });
                        layers.push(Layer::Linear { out: 64 * h * w, act: Relu });
                        layers.push(Layer::Unflatten { c: 64, h, w });
                        2
                    }
                    None => 1,
                };
                // output_padding 1 doubles the size exactly (7 -> 14 -> 28).
                layers.push(Layer::conv_t(32, 2, 1, Relu));
                layers.push(Layer::conv_t(c, 2, 1, Sigmoid));
                let variational = vae.then_some(Variational { beta: 1.0 });
                (layers, code_layer, variational)
            }
            other => {
                return Err(Error::Config(format!(
                    "unknown conv preset '{other}': use keras, strided or conv-vae"
                )));
            }
        };
        let loss = if variational.is_some() { LossKind::Bce } else { loss };
        let config = ConvConfig { input, layers, code_layer, loss, variational, noise: None };
        config.validate()?;
        Ok(config)
    }

    /// The same architecture with this output activation (the last layer's).
    pub fn with_output(mut self, act: Activation) -> Result<ConvConfig> {
        if let Some(last) = self.layers.last_mut() {
            last.set_act(act);
        }
        self.validate()?;
        Ok(self)
    }

    pub fn with_variational(mut self, v: Option<Variational>) -> Result<ConvConfig> {
        self.variational = v;
        self.validate()?;
        Ok(self)
    }

    pub fn with_noise(mut self, noise: Option<Noise>) -> Result<ConvConfig> {
        self.noise = noise;
        self.validate()?;
        Ok(self)
    }

    /// Columns layer `i`'s output has per example; a VAE's code layer has two per latent dimension.
    fn is_vae_code(&self, i: usize) -> bool {
        self.variational.is_some() && i == self.code_layer
    }

    /// Input and output shape of every layer, checking that each layer fits what it reads.
    fn shapes(&self) -> Result<Vec<LayerShapes>> {
        let mut cur = self.input;
        let mut out = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let [c, h, w] = cur;
            let bad = |why: String| {
                Error::Config(format!("conv layer {i} ({layer:?}) on a {c}x{h}x{w} input: {why}"))
            };
            let next = match *layer {
                Layer::Conv { out, kernel, stride, padding, .. } => {
                    let s = Conv2dShape {
                        n: 1,
                        c_in: c,
                        h,
                        w,
                        c_out: out,
                        kh: kernel,
                        kw: kernel,
                        stride,
                        padding,
                    };
                    s.validate().map_err(|e| bad(e.to_string()))?;
                    [out, s.out_h(), s.out_w()]
                }
                Layer::ConvTranspose { out, kernel, stride, padding, output_padding, .. } => {
                    let s = ConvTranspose2dShape {
                        n: 1,
                        c_in: c,
                        h,
                        w,
                        c_out: out,
                        kh: kernel,
                        kw: kernel,
                        stride,
                        padding,
                        output_padding,
                    };
                    s.validate().map_err(|e| bad(e.to_string()))?;
                    [out, s.out_h(), s.out_w()]
                }
                Layer::MaxPool => {
                    pool::maxpool2x2_validate(1, c, h, w, true).map_err(|e| bad(e.to_string()))?;
                    let (oh, ow) = pool::maxpool2x2_out(h, w, true);
                    [c, oh, ow]
                }
                Layer::Upsample => [c, 2 * h, 2 * w],
                Layer::Linear { out, .. } => {
                    if out == 0 {
                        return Err(bad("a linear layer needs at least one output".into()));
                    }
                    [if self.is_vae_code(i) { 2 * out } else { out }, 1, 1]
                }
                Layer::Unflatten { c: uc, h: uh, w: uw } => {
                    if uc * uh * uw != c * h * w || uc * uh * uw == 0 {
                        return Err(bad(format!(
                            "{uc}x{uh}x{uw} does not hold the {} values read",
                            c * h * w
                        )));
                    }
                    [uc, uh, uw]
                }
            };
            out.push(LayerShapes { input: cur, output: next });
            // The decoder of a VAE reads z (d values), not [μ, log σ²].
            cur = if self.is_vae_code(i) { [next[0] / 2, 1, 1] } else { next };
        }
        Ok(out)
    }

    pub fn validate(&self) -> Result<()> {
        if self.input.contains(&0) {
            return Err(Error::Config(format!("input shape {:?} has a zero size", self.input)));
        }
        let n = self.layers.len();
        if n == 0 {
            return Err(Error::Config("a conv autoencoder needs at least one layer".into()));
        }
        if self.code_layer >= n {
            return Err(Error::Config(format!("code layer {} out of range (0..{n})", self.code_layer)));
        }
        if matches!(self.layers[0], Layer::Unflatten { .. }) {
            return Err(Error::Config("the first layer cannot be Unflatten".into()));
        }
        let shapes = self.shapes()?;
        let last = shapes[n - 1].output;
        if last != self.input {
            return Err(Error::Config(format!(
                "the decoder produces {}x{}x{} but the input is {}x{}x{}: an autoencoder's output must have the \
                 input's shape (the presets are built for 28x28 images)",
                last[0], last[1], last[2], self.input[0], self.input[1], self.input[2]
            )));
        }
        if !self.layers[n - 1].has_params() {
            return Err(Error::Config(
                "the last layer must be a Conv, ConvTranspose or Linear (its activation is the output's)"
                    .into(),
            ));
        }
        for (i, l) in self.layers.iter().enumerate() {
            if let Some(Activation::LeakyRelu(_)) = l.act()
                && i + 1 == n
            {
                return Err(Error::Config("the output activation must be sigmoid or identity".into()));
            }
        }
        if let Some(v) = self.variational {
            if !(v.beta.is_finite() && v.beta >= 0.0) {
                return Err(Error::Config(format!("VAE beta must be >= 0, got {}", v.beta)));
            }
            if self.loss != LossKind::Bce {
                return Err(Error::Config(
                    "a VAE is trained with BCE (nats per image): use --loss bce".into(),
                ));
            }
            if self.layers[self.code_layer]
                != (Layer::Linear { out: self.code_dim(), act: Activation::Identity })
            {
                return Err(Error::Config(
                    "a conv VAE's code layer must be a linear Linear layer (it outputs μ and log σ²)".into(),
                ));
            }
            match self.layers.get(self.code_layer + 1) {
                None | Some(Layer::Unflatten { .. }) => {
                    return Err(Error::Config(
                        "a conv VAE needs a Linear or conv layer right after the code (it reads z)".into(),
                    ));
                }
                _ => {}
            }
        }
        if let Some(noise) = self.noise {
            noise.validate()?;
        }
        loss::check(self.loss, self.output_activation())
    }

    pub fn input_dim(&self) -> usize {
        len3(self.input)
    }

    /// Values of the code per example (of z for a VAE).
    pub fn code_dim(&self) -> usize {
        match (self.variational, self.layers.get(self.code_layer)) {
            (Some(_), Some(Layer::Linear { out, .. })) => *out,
            _ => self.shapes().map(|s| len3(s[self.code_layer].output)).unwrap_or(0),
        }
    }

    pub fn output_activation(&self) -> Activation {
        self.layers.last().and_then(Layer::act).unwrap_or(Activation::Identity)
    }

    /// (weight shape in PyTorch's layout, bias length) of layer `i`, or `None` for a layer without
    /// parameters.
    fn param_shapes(&self, i: usize, s: &LayerShapes) -> Option<(Vec<usize>, usize)> {
        let c_in = s.input[0];
        match self.layers[i] {
            Layer::Conv { out, kernel, .. } => Some((vec![out, c_in, kernel, kernel], out)),
            Layer::ConvTranspose { out, kernel, .. } => Some((vec![c_in, out, kernel, kernel], out)),
            Layer::Linear { .. } => Some((vec![s.output[0], len3(s.input)], s.output[0])),
            _ => None,
        }
    }

    pub fn parameter_count(&self) -> usize {
        let Ok(shapes) = self.shapes() else { return 0 };
        (0..self.layers.len())
            .filter_map(|i| self.param_shapes(i, &shapes[i]))
            .map(|(w, b)| w.iter().product::<usize>() + b)
            .sum()
    }

    /// Checkpoint names as in PyTorch `nn.Sequential` encoder/decoder modules, one module per layer,
    /// per non-identity activation and per implicit `nn.Flatten` before a Linear on a feature map
    /// (e.g. `encoder.0`, `encoder.3`, `decoder.0`); `None` for layers without parameters.
    fn layer_names(&self) -> Vec<Option<String>> {
        let mut names = Vec::new();
        let mut index = 0;
        for (i, layer) in self.layers.iter().enumerate() {
            if i == self.code_layer + 1 {
                index = 0;
            }
            let part = if i <= self.code_layer { "encoder" } else { "decoder" };
            // A Linear reading a feature map (the input, or a conv, pool or unflatten output, even 1x1)
            // needs an nn.Flatten in PyTorch; one reading a Linear's output or a VAE's z does not.
            let reads_map = match i {
                0 => true,
                _ if self.variational.is_some() && i == self.code_layer + 1 => false,
                _ => !matches!(self.layers[i - 1], Layer::Linear { .. }),
            };
            if matches!(layer, Layer::Linear { .. }) && reads_map {
                index += 1; // nn.Flatten
            }
            names.push(layer.has_params().then(|| format!("{part}.{index}")));
            index += 1;
            if layer.act().is_some_and(|a| a != Activation::Identity) {
                index += 1;
            }
        }
        names
    }

    /// e.g. `1x28x28 c16r-p-c8r-p-c8r-p[8x4x4] ...` (c conv, t transposed conv, p max-pool, u up-sampling,
    /// l linear, f unflatten; r/s/i/t/l activation letters as the dense model's; `[code]` after the code).
    pub fn describe(&self) -> String {
        let letter = |a: Activation| match a {
            Activation::Identity => "i",
            Activation::Relu => "r",
            Activation::LeakyRelu(_) => "l",
            Activation::Sigmoid => "s",
            Activation::Tanh => "t",
        };
        let [c, h, w] = self.input;
        let mut s = if self.variational.is_some() { "vae ".to_string() } else { String::new() };
        s += &format!("{c}x{h}x{w}");
        let shapes = self.shapes().unwrap_or_default();
        for (i, layer) in self.layers.iter().enumerate() {
            s += match layer {
                Layer::Conv { out, kernel, stride, .. } => {
                    format!(
                        " c{out}k{kernel}{}",
                        if *stride > 1 { format!("s{stride}") } else { String::new() }
                    )
                }
                Layer::ConvTranspose { out, kernel, stride, .. } => format!(" t{out}k{kernel}s{stride}"),
                Layer::MaxPool => " p".into(),
                Layer::Upsample => " u".into(),
                Layer::Linear { out, .. } => format!(" l{out}"),
                Layer::Unflatten { c, h, w } => format!(" f{c}x{h}x{w}"),
            }
            .as_str();
            if let Some(a) = layer.act() {
                s += letter(a);
            }
            if i == self.code_layer {
                let o = shapes.get(i).map_or([0; 3], |s| s.output);
                s += &if self.variational.is_some() {
                    format!("[z {}]", self.code_dim())
                } else {
                    format!("[code {}x{}x{}]", o[0], o[1], o[2])
                };
            }
        }
        if let Some(n) = self.noise {
            s += &format!(" +noise-{n:?}").to_lowercase();
        }
        s
    }
}

/// Parameters, gradients and optimiser state on the GPU, each one arena with the same layout.
pub struct ConvAutoencoder {
    pub config: ConvConfig,
    pub params: Arena,
    pub grads: Arena,
    pub opt_m: StorageBuffer,
    pub opt_v: StorageBuffer,
    pub seed: u64,
    /// Per layer: direct kernels or im2col + matmul, whichever ran that layer's shape faster on this
    /// adapter (see `tune`); `None` for layers that are not convolutions.
    pub algorithms: Vec<Option<ConvAlgorithm>>,
    shapes: Vec<LayerShapes>,
    /// (weight index, bias index, weight shape) per layer with parameters.
    param_ix: Vec<Option<(usize, usize, Vec<usize>)>>,
}

/// Per-batch activations of a conv autoencoder.
pub struct ConvActivations {
    pub batch: usize,
    pub arena: Arena,
    code_layer: usize,
    x: usize,
    /// Output and output gradient of every layer (an `Unflatten` shares its input's).
    outs: Vec<usize>,
    douts: Vec<usize>,
    /// Max-pool layers' argmax indices (u32 in the f32 arena).
    argmax: Vec<Option<usize>>,
    partials: usize,
    totals: usize,
    vae: Option<VaeActivations>,
    noisy: Option<usize>,
    /// The GEMM algorithm's scratch (col, cn, parts), shared by every layer.
    gemm: Option<(usize, usize, usize)>,
}

impl ConvActivations {
    fn scratch(&self) -> GemmScratch {
        let (col, cn, parts) = self.gemm.expect("GEMM scratch is allocated with the GEMM algorithm");
        GemmScratch { col: self.arena.view(col), cn: self.arena.view(cn), parts: self.arena.view(parts) }
    }

    /// Output of layer `i`, `[batch, C·H·W]`.
    pub fn output(&self, i: usize) -> View {
        self.arena.view(self.outs[i])
    }

    fn dout(&self, i: usize) -> View {
        self.arena.view(self.douts[i])
    }
}

impl ModelActivations for ConvActivations {
    fn batch(&self) -> usize {
        self.batch
    }

    fn input(&self) -> View {
        self.arena.view(self.x)
    }

    fn logits(&self) -> View {
        self.arena.view(*self.outs.last().expect("at least one layer"))
    }

    fn code(&self) -> View {
        self.arena.view(self.outs[self.code_layer])
    }

    fn totals(&self) -> View {
        self.arena.view(self.totals)
    }

    fn kl_total(&self) -> Option<View> {
        self.vae.as_ref().map(|v| self.arena.view(v.kl_total))
    }

    fn noisy_input(&self) -> Option<View> {
        self.noisy.map(|i| self.arena.view(i))
    }
}

impl ConvAutoencoder {
    /// A model with weights drawn by `init` from `seed` (Glorot: the Keras default the blog used).
    pub fn new(gpu: &Gpu, config: ConvConfig, seed: u64, init: Init) -> Result<ConvAutoencoder> {
        let model = ConvAutoencoder::zeroed(gpu, config, seed)?;
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut host = vec![0.0f32; model.params.layout.total];
        for (i, p) in model.param_ix.iter().enumerate() {
            let Some((w_ix, b_ix, shape)) = p else { continue };
            let (_, w_at, w_len) = model.params.layout.entries[*w_ix];
            let (_, b_at, b_len) = model.params.layout.entries[*b_ix];
            // PyTorch's fans: dimension 1 (resp. 0) times the receptive field.
            let receptive: usize = shape[2..].iter().product();
            let (fan_in, fan_out) = (shape[1] * receptive, shape[0] * receptive);
            debug_assert!(w_at < b_at, "layer {i}: the weight precedes the bias");
            let (w, b) = host.split_at_mut(b_at);
            init.fill(&mut rng, &mut w[w_at..w_at + w_len], &mut b[..b_len], fan_in, fan_out);
        }
        model.params.buffer.write(gpu, 0, &host);
        Ok(model)
    }

    /// A model with all parameters zero (to be filled from a checkpoint).
    pub fn zeroed(gpu: &Gpu, config: ConvConfig, seed: u64) -> Result<ConvAutoencoder> {
        config.validate()?;
        let shapes = config.shapes()?;
        let names = config.layer_names();
        let mut layout = ArenaLayout::new(gpu);
        let mut param_ix = Vec::new();
        for (i, s) in shapes.iter().enumerate() {
            param_ix.push(match (config.param_shapes(i, s), &names[i]) {
                (Some((w_shape, b_len)), Some(name)) => {
                    let w = layout.add(format!("{name}.weight"), w_shape.iter().product());
                    let b = layout.add(format!("{name}.bias"), b_len);
                    Some((w, b, w_shape))
                }
                _ => None,
            });
        }
        let params = Arena::new(gpu, "params", &layout)?;
        let grads = Arena::new(gpu, "grads", &layout)?;
        let opt_m = StorageBuffer::zeroed(gpu, "optimizer m", layout.total)?;
        let opt_v = StorageBuffer::zeroed(gpu, "optimizer v", layout.total)?;
        let mut model = ConvAutoencoder {
            config,
            params,
            grads,
            opt_m,
            opt_v,
            seed,
            algorithms: Vec::new(),
            shapes,
            param_ix,
        };
        model.algorithms = (0..model.config.layers.len())
            .map(|i| model.conv_geometry(i, 1).map(|g| gpu.conv_algorithm(&g)).transpose())
            .collect::<Result<_>>()?;
        Ok(model)
    }

    fn ix(&self, i: usize) -> &(usize, usize, Vec<usize>) {
        self.param_ix[i].as_ref().expect("a layer with parameters")
    }

    pub fn weight(&self, i: usize) -> View {
        self.params.view(self.ix(i).0)
    }

    pub fn bias(&self, i: usize) -> View {
        self.params.view(self.ix(i).1)
    }

    fn dweight(&self, i: usize) -> View {
        self.grads.view(self.ix(i).0)
    }

    fn dbias(&self, i: usize) -> View {
        self.grads.view(self.ix(i).1)
    }

    fn conv_shape(&self, i: usize, n: usize) -> Conv2dShape {
        let (Layer::Conv { out, kernel, stride, padding, .. }, [c, h, w]) =
            (self.config.layers[i], self.shapes[i].input)
        else {
            unreachable!("layer {i} is a Conv")
        };
        Conv2dShape { n, c_in: c, h, w, c_out: out, kh: kernel, kw: kernel, stride, padding }
    }

    fn conv_t_shape(&self, i: usize, n: usize) -> ConvTranspose2dShape {
        let (Layer::ConvTranspose { out, kernel, stride, padding, output_padding, .. }, [c, h, w]) =
            (self.config.layers[i], self.shapes[i].input)
        else {
            unreachable!("layer {i} is a ConvTranspose")
        };
        ConvTranspose2dShape {
            n,
            c_in: c,
            h,
            w,
            c_out: out,
            kh: kernel,
            kw: kernel,
            stride,
            padding,
            output_padding,
        }
    }

    /// The conv2d geometry layer `i` runs on a batch of `n` (a transposed convolution's adjoint), or
    /// `None` for a layer that is not a convolution.
    fn conv_geometry(&self, i: usize, n: usize) -> Option<Conv2dShape> {
        match self.config.layers[i] {
            Layer::Conv { .. } => Some(self.conv_shape(i, n)),
            Layer::ConvTranspose { .. } => Some(self.conv_t_shape(i, n).adjoint()),
            _ => None,
        }
    }

    fn uses_gemm(&self, i: usize) -> bool {
        self.algorithms.get(i).copied().flatten() == Some(ConvAlgorithm::Gemm)
    }

    /// What layer `i` reads: the (corrupted, in training) input, z, or the previous layer's output.
    fn layer_input(&self, acts: &ConvActivations, i: usize, pass: Pass) -> View {
        if i == 0 {
            return match acts.noisy_input() {
                Some(v) if pass.corrupt => v,
                _ => acts.input(),
            };
        }
        if let (Some(v), true) = (&acts.vae, i == self.config.code_layer + 1) {
            return acts.arena.view(v.z);
        }
        acts.output(i - 1)
    }

    /// Where layer `i`'s backward writes the gradient of what it read (`None` for the first layer).
    fn layer_dinput(&self, acts: &ConvActivations, i: usize) -> Option<View> {
        if i == 0 {
            return None;
        }
        Some(match &acts.vae {
            Some(v) if i == self.config.code_layer + 1 => acts.arena.view(v.dz),
            _ => acts.dout(i - 1),
        })
    }

    fn layer_forward(
        &self,
        acts: &ConvActivations,
        i: usize,
        variant: MatmulVariant,
        pass: Pass,
    ) -> Vec<Launch> {
        let c = &self.config;
        let n = acts.batch;
        let (inp, out) = (self.layer_input(acts, i, pass), acts.output(i));
        let s = self.shapes[i];
        // The output activation is fused into the loss kernel, which wants logits.
        let last = i + 1 == c.layers.len();
        let act = |a: Activation| if last { Activation::Identity } else { a };
        if self.uses_gemm(i) {
            let scratch = acts.scratch();
            match c.layers[i] {
                Layer::Conv { act: a, .. } => {
                    let (shape, w, b) = (self.conv_shape(i, n), self.weight(i), self.bias(i));
                    return conv_gemm::conv2d_forward(
                        &out,
                        &inp,
                        &w,
                        Some(&b),
                        &shape,
                        act(a),
                        &scratch,
                        variant,
                    );
                }
                Layer::ConvTranspose { act: a, .. } => {
                    let (shape, w, b) = (self.conv_t_shape(i, n), self.weight(i), self.bias(i));
                    return conv_gemm::conv_transpose2d_forward(
                        &out,
                        &inp,
                        &w,
                        Some(&b),
                        &shape,
                        act(a),
                        &scratch,
                        variant,
                    );
                }
                _ => {}
            }
        }
        vec![match c.layers[i] {
            Layer::Conv { act: a, .. } => conv::conv2d_forward(
                &out,
                &inp,
                &self.weight(i),
                Some(&self.bias(i)),
                &self.conv_shape(i, n),
                act(a),
            ),
            Layer::ConvTranspose { act: a, .. } => conv::conv_transpose2d_forward(
                &out,
                &inp,
                &self.weight(i),
                Some(&self.bias(i)),
                &self.conv_t_shape(i, n),
                act(a),
            ),
            Layer::MaxPool => {
                let [ch, h, w] = s.input;
                let argmax = acts.arena.view(acts.argmax[i].expect("a max-pool's argmax"));
                pool::maxpool2x2_forward(&out, &argmax, &inp, n, ch, h, w, true)
            }
            Layer::Upsample => {
                let [ch, h, w] = s.input;
                pool::upsample2x_forward(&out, &inp, n, ch, h, w)
            }
            Layer::Linear { act: a, .. } => linear_forward(
                &out,
                &inp,
                &self.weight(i),
                &self.bias(i),
                n,
                len3(s.input),
                s.output[0],
                act(a),
                variant,
            ),
            Layer::Unflatten { .. } => return Vec::new(),
        }]
    }

    /// Layer `i`'s backward from `dout` (the gradient of its pre-activation output): parameter
    /// gradients, then the gradient of what it read.
    fn layer_backward(&self, acts: &ConvActivations, i: usize, variant: MatmulVariant) -> Vec<Launch> {
        let n = acts.batch;
        let (inp, dout, dinp) =
            (self.layer_input(acts, i, Pass::TRAIN), acts.dout(i), self.layer_dinput(acts, i));
        let s = self.shapes[i];
        let mut launches = Vec::new();
        match self.config.layers[i] {
            Layer::Conv { .. } if self.uses_gemm(i) => {
                let (shape, w, dw) = (self.conv_shape(i, n), self.weight(i), self.dweight(i));
                let scratch = acts.scratch();
                launches.extend(conv_gemm::conv2d_backward(
                    &dw,
                    dinp.as_ref(),
                    &dout,
                    &inp,
                    &w,
                    &shape,
                    &scratch,
                    variant,
                ));
                launches.push(conv::conv2d_backward_bias(&self.dbias(i), &dout, &shape));
            }
            Layer::ConvTranspose { .. } if self.uses_gemm(i) => {
                let (shape, w, dw) = (self.conv_t_shape(i, n), self.weight(i), self.dweight(i));
                let scratch = acts.scratch();
                launches.extend(conv_gemm::conv_transpose2d_backward(
                    &dw,
                    dinp.as_ref(),
                    &dout,
                    &inp,
                    &w,
                    &shape,
                    &scratch,
                    variant,
                ));
                launches.push(conv::conv_transpose2d_backward_bias(&self.dbias(i), &dout, &shape));
            }
            Layer::Conv { .. } => {
                let shape = self.conv_shape(i, n);
                launches.push(conv::conv2d_backward_weight(&self.dweight(i), &dout, &inp, &shape));
                launches.push(conv::conv2d_backward_bias(&self.dbias(i), &dout, &shape));
                if let Some(dinp) = dinp {
                    launches.push(conv::conv2d_backward_input(&dinp, &dout, &self.weight(i), &shape));
                }
            }
            Layer::ConvTranspose { .. } => {
                let shape = self.conv_t_shape(i, n);
                launches.push(conv::conv_transpose2d_backward_weight(&self.dweight(i), &dout, &inp, &shape));
                launches.push(conv::conv_transpose2d_backward_bias(&self.dbias(i), &dout, &shape));
                if let Some(dinp) = dinp {
                    launches.push(conv::conv_transpose2d_backward_input(
                        &dinp,
                        &dout,
                        &self.weight(i),
                        &shape,
                    ));
                }
            }
            Layer::MaxPool => {
                if let Some(dinp) = dinp {
                    let [ch, h, w] = s.input;
                    let argmax = acts.arena.view(acts.argmax[i].expect("a max-pool's argmax"));
                    launches.push(pool::maxpool2x2_backward(&dinp, &dout, &argmax, n, ch, h, w, true));
                }
            }
            Layer::Upsample => {
                if let Some(dinp) = dinp {
                    let [ch, h, w] = s.input;
                    launches.push(pool::upsample2x_backward(&dinp, &dout, n, ch, h, w));
                }
            }
            Layer::Linear { .. } => {
                let (k, m) = (len3(s.input), s.output[0]);
                launches.push(linear_backward_weight(&self.dweight(i), &dout, &inp, n, k, m, variant));
                launches.push(bias_backward(&self.dbias(i), &dout, n, m));
                if let Some(dinp) = dinp {
                    launches.push(linear_backward_input(&dinp, &dout, &self.weight(i), n, k, m, variant));
                }
            }
            // Shares its input's storage: the next layer's backward already wrote that gradient.
            Layer::Unflatten { .. } => {}
        }
        launches
    }
}

impl Autoencoder for ConvAutoencoder {
    type Activations = ConvActivations;

    fn kind(&self) -> &'static str {
        "conv"
    }

    fn describe(&self) -> String {
        self.config.describe()
    }

    fn config_json(&self) -> Result<String> {
        serde_json::to_string(&self.config).map_err(|e| Error::Config(e.to_string()))
    }

    fn input_dim(&self) -> usize {
        self.config.input_dim()
    }

    fn code_width(&self) -> usize {
        len3(self.shapes[self.config.code_layer].output)
    }

    fn code_dim(&self) -> usize {
        self.config.code_dim()
    }

    fn variational(&self) -> Option<Variational> {
        self.config.variational
    }

    fn loss_kind(&self) -> LossKind {
        self.config.loss
    }

    fn output_activation(&self) -> Activation {
        self.config.output_activation()
    }

    fn parameter_count(&self) -> usize {
        self.config.parameter_count()
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn activations(&self, gpu: &Gpu, batch: usize) -> Result<ConvActivations> {
        if batch == 0 {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        let c = &self.config;
        let mut layout = ArenaLayout::new(gpu);
        let x = layout.add("x", batch * c.input_dim());
        let (mut outs, mut douts, mut argmax) = (Vec::new(), Vec::new(), Vec::new());
        for (i, s) in self.shapes.iter().enumerate() {
            if let (Layer::Unflatten { .. }, Some(&o), Some(&d)) = (c.layers[i], outs.last(), douts.last()) {
                outs.push(o);
                douts.push(d);
            } else {
                outs.push(layout.add(format!("a{}", i + 1), batch * len3(s.output)));
                douts.push(layout.add(format!("da{}", i + 1), batch * len3(s.output)));
            }
            argmax.push(
                (c.layers[i] == Layer::MaxPool)
                    .then(|| layout.add(format!("argmax{}", i + 1), batch * len3(s.output))),
            );
        }
        let partials = layout.add("loss partials", 2 * loss::partial_rows(batch * c.input_dim()));
        let totals = layout.add("loss totals", 2);
        let vae = c.variational.map(|_| VaeActivations::add(&mut layout, batch * c.code_dim()));
        let noisy = c.noise.map(|_| layout.add("x noisy", batch * c.input_dim()));
        let gemm_layers: Vec<usize> = (0..c.layers.len()).filter(|&i| self.uses_gemm(i)).collect();
        let gemm = (!gemm_layers.is_empty()).then(|| {
            let lens = gemm_layers
                .iter()
                .filter_map(|&i| self.conv_geometry(i, batch))
                .map(|g| ScratchLens::of(&g))
                .fold(ScratchLens::default(), ScratchLens::max);
            (
                layout.add("gemm col", lens.col.max(1)),
                layout.add("gemm cn", lens.cn.max(1)),
                layout.add("gemm parts", lens.parts.max(1)),
            )
        });
        let arena = Arena::new(gpu, "activations", &layout)?;
        Ok(ConvActivations {
            batch,
            arena,
            code_layer: c.code_layer,
            x,
            outs,
            douts,
            argmax,
            partials,
            totals,
            vae,
            noisy,
            gemm,
        })
    }

    /// Input batch to logits. With `pass.corrupt` the input is corrupted (denoising); a VAE draws ε (a fresh
    /// stream per step) and samples z after the code layer.
    fn forward(&self, acts: &ConvActivations, variant: MatmulVariant, pass: Pass) -> Vec<Launch> {
        let c = &self.config;
        let mut launches = Vec::new();
        if pass.corrupt
            && let (Some(noise), Some(noisy)) = (c.noise, acts.noisy_input())
        {
            launches.push(noise.launch(&noisy, &acts.input(), acts.batch * c.input_dim(), self.seed));
        }
        for i in 0..c.layers.len() {
            launches.extend(self.layer_forward(acts, i, variant, pass));
            if let (true, Some(v)) = (i == c.code_layer, &acts.vae) {
                let (eps, d) = (acts.arena.view(v.eps), c.code_dim());
                launches.push(random_normal(&eps, acts.batch * d, self.seed, 0));
                launches.push(reparam_forward(&acts.arena.view(v.z), &acts.output(i), &eps, acts.batch, d));
            }
        }
        launches
    }

    /// Reconstruction loss totals (and the KL for a VAE) against `target`, and dlogits when `with_grad`.
    fn loss(
        &self,
        acts: &ConvActivations,
        target: &View,
        with_grad: bool,
        accumulate_totals: bool,
    ) -> Vec<Launch> {
        let c = &self.config;
        let dlogits = acts.dout(c.layers.len() - 1);
        let kl = acts.vae.as_ref().map(|v| KlViews {
            total: acts.arena.view(v.kl_total),
            partials: acts.arena.view(v.kl_partials),
            h: acts.output(c.code_layer),
            d: c.code_dim(),
        });
        loss_launches(
            &acts.totals(),
            &acts.arena.view(acts.partials),
            with_grad.then_some(&dlogits),
            &acts.logits(),
            target,
            acts.batch,
            c.input_dim(),
            c.loss,
            c.output_activation(),
            kl,
            accumulate_totals,
        )
    }

    /// The forward in reverse: from dlogits to every parameter gradient.
    fn backward(&self, acts: &ConvActivations, variant: MatmulVariant) -> Vec<Launch> {
        let c = &self.config;
        let b = acts.batch;
        let last = c.layers.len() - 1;
        let mut launches = Vec::new();
        for i in (0..c.layers.len()).rev() {
            let dout = acts.dout(i);
            if let (true, Some(v), Some(var)) = (i == c.code_layer, &acts.vae, c.variational) {
                // d[μ, log σ²] from dz, with the KL gradient added (per-image mean over the batch).
                let (eps, dz) = (acts.arena.view(v.eps), acts.arena.view(v.dz));
                launches.push(reparam_backward(
                    &dout,
                    &dz,
                    &acts.output(i),
                    &eps,
                    b,
                    c.code_dim(),
                    var.beta,
                    1.0 / b as f32,
                ));
            }
            if let Some(act) = c.layers[i].act()
                && i != last
                && act != Activation::Identity
            {
                // dZ = dA ⊙ act'(A), in place; the last layer's dZ comes straight from the loss.
                let n = b * len3(self.shapes[i].output);
                launches.push(activation_backward(&dout, &dout, &acts.output(i), n, act));
            }
            launches.extend(self.layer_backward(acts, i, variant));
        }
        launches
    }

    fn kernel_choices(&self) -> String {
        let names: Vec<String> =
            self.algorithms.iter().flatten().map(|a| format!("{a:?}").to_lowercase()).collect();
        format!("conv layers (measured per shape): {}", names.join(", "))
    }

    fn code_input(&self, acts: &ConvActivations) -> View {
        match &acts.vae {
            Some(v) => acts.arena.view(v.z),
            None => acts.output(self.config.code_layer),
        }
    }

    /// From [`Autoencoder::code_input`] (filled by the caller) to logits.
    fn decoder(&self, acts: &ConvActivations, variant: MatmulVariant) -> Vec<Launch> {
        (self.config.code_layer + 1..self.config.layers.len())
            .flat_map(|i| self.layer_forward(acts, i, variant, Pass::INFER))
            .collect()
    }

    fn update(&self, opt: &Optimizer, t: u64) -> Launch {
        update_arena(opt, &self.params, &self.grads, &self.opt_m, &self.opt_v, t)
    }

    fn export(&self, gpu: &Gpu) -> Result<Vec<NamedTensor>> {
        let all = self.params.buffer.read_all_f32(gpu)?;
        let mut out = Vec::new();
        for (w_ix, b_ix, shape) in self.param_ix.iter().flatten() {
            for (ix, shape) in [(*w_ix, shape.clone()), (*b_ix, vec![shape_bias_len(&self.params, *b_ix)])] {
                let (name, offset, len) = &self.params.layout.entries[ix];
                out.push((name.clone(), shape, all[*offset..offset + len].to_vec()));
            }
        }
        Ok(out)
    }

    fn import(&self, gpu: &Gpu, tensors: &[(String, Vec<f32>)]) -> Result<()> {
        crate::models::import_by_name(&self.params, gpu, tensors)
    }
}

fn shape_bias_len(params: &Arena, ix: usize) -> usize {
    params.layout.entries[ix].2
}
