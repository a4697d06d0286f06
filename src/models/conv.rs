//! The layer-list configuration: conv, transposed-conv, max-pool, up-sampling, linear, unflatten and
//! activation layers over NCHW examples, with the code layer, loss, VAE settings and regularisers.
//! The conv presets and user architectures (`--arch`) are written in it; it lowers to the network
//! (`models::lower`). A flattened tensor is the same memory as the NCHW one (PyTorch's `flatten`
//! order), so `Linear` reads a conv output as it is and `Unflatten` only renames the shape.

use crate::error::{Error, Result};
use crate::kernels::Activation;
use crate::kernels::conv::{Conv2dShape, ConvTranspose2dShape};
use crate::kernels::loss::{self, LossKind};
use crate::kernels::pool;
use crate::models::dense::{Noise, Sparse, Variational};

/// One layer of a convolutional autoencoder.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Layer {
    /// `Conv2d(in, out, kernel, stride, padding)` with a fused activation.
    Conv {
        /// Output channels.
        out: usize,
        /// Side of the square kernel, in pixels.
        kernel: usize,
        /// Step between kernel positions, in pixels.
        stride: usize,
        /// Zero padding on each side, in pixels; smaller than `kernel`.
        padding: usize,
        /// Fused activation.
        act: Activation,
    },
    /// `ConvTranspose2d(in, out, kernel, stride, padding, output_padding)` with a fused activation.
    ConvTranspose {
        /// Output channels.
        out: usize,
        /// Side of the square kernel, in pixels.
        kernel: usize,
        /// Up-sampling step, in output pixels per input pixel.
        stride: usize,
        /// Pixels cropped from each side of the full output.
        padding: usize,
        /// Extra rows and columns at the bottom and right of the output; smaller than `stride`.
        output_padding: usize,
        /// Fused activation.
        act: Activation,
    },
    /// 2x2 max-pooling, stride 2, rounding up (Keras `padding="same"`, PyTorch `ceil_mode=True`).
    MaxPool,
    /// Nearest-neighbour 2x up-sampling.
    Upsample,
    /// A fully connected layer on the flattened input; its output is `[out, 1, 1]`. A VAE's code
    /// layer outputs μ and log σ² side by side (2·out values).
    Linear {
        /// Output features (a VAE code layer: the latent dimension d, of 2·d outputs).
        out: usize,
        /// Fused activation (identity for a VAE's code layer).
        act: Activation,
    },
    /// Reads a flat `[c·h·w]` tensor as `[c, h, w]` (no work).
    Unflatten {
        /// Channels of the unflattened shape.
        c: usize,
        /// Height of the unflattened shape, in pixels.
        h: usize,
        /// Width of the unflattened shape, in pixels.
        w: usize,
    },
    /// A standalone activation (after a layer without parameters; one after a layer with parameters
    /// is fused into it).
    Activation {
        /// The function applied.
        act: Activation,
    },
}

impl Layer {
    /// A [`Layer::Conv`].
    pub fn conv(out: usize, kernel: usize, stride: usize, padding: usize, act: Activation) -> Layer {
        Layer::Conv { out, kernel, stride, padding, act }
    }

    /// A [`Layer::ConvTranspose`] with the presets' 3x3 kernel and padding 1.
    pub fn conv_t(out: usize, stride: usize, output_padding: usize, act: Activation) -> Layer {
        Layer::ConvTranspose { out, kernel: 3, stride, padding: 1, output_padding, act }
    }

    /// The activation of a layer with parameters.
    pub fn act(&self) -> Option<Activation> {
        match *self {
            Layer::Conv { act, .. } | Layer::ConvTranspose { act, .. } | Layer::Linear { act, .. } => {
                Some(act)
            }
            _ => None,
        }
    }

    /// Replaces the activation of a layer with parameters; no effect on other layers.
    pub fn set_act(&mut self, a: Activation) {
        if let Layer::Conv { act, .. } | Layer::ConvTranspose { act, .. } | Layer::Linear { act, .. } = self {
            *act = a;
        }
    }

    /// Whether the layer has a weight and a bias (Conv, ConvTranspose, Linear).
    pub fn has_params(&self) -> bool {
        self.act().is_some()
    }
}

/// Architecture and loss of a convolutional autoencoder.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConvConfig {
    /// (channels, height, width) of an example.
    pub input: [usize; 3],
    /// The encoder's layers, then the decoder's; the last one's output has the input's shape.
    pub layers: Vec<Layer>,
    /// The layer whose output is the code (0-based).
    pub code_layer: usize,
    /// Reconstruction loss (a VAE needs BCE).
    pub loss: LossKind,
    /// A VAE: the code layer (a linear `Linear`) outputs μ and log σ², the decoder gets z.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variational: Option<Variational>,
    /// Input corruption in training (a denoising autoencoder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
    /// A sparse penalty on the code (per example, next to the per-pixel mean loss).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse: Option<Sparse>,
    /// Inverted dropout after every hidden layer with parameters (not a VAE's μ/log σ² layer); off
    /// at evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f32>,
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
    /// The same architecture with this output activation (the last layer's).
    pub fn with_output(mut self, act: Activation) -> Result<ConvConfig> {
        if let Some(last) = self.layers.last_mut() {
            last.set_act(act);
        }
        self.validate()?;
        Ok(self)
    }

    /// The same architecture as a VAE (or not), validated.
    pub fn with_variational(mut self, v: Option<Variational>) -> Result<ConvConfig> {
        self.variational = v;
        self.validate()?;
        Ok(self)
    }

    /// The same architecture with this training-input corruption (a denoising autoencoder), validated.
    pub fn with_noise(mut self, noise: Option<Noise>) -> Result<ConvConfig> {
        self.noise = noise;
        self.validate()?;
        Ok(self)
    }

    /// The same architecture with a sparse penalty on the code and dropout after hidden layers.
    pub fn with_regularizers(mut self, sparse: Option<Sparse>, dropout: Option<f32>) -> Result<ConvConfig> {
        self.sparse = sparse;
        self.dropout = dropout;
        self.validate()?;
        Ok(self)
    }

    /// Whether layer `i` is a VAE's code layer: its output per example is [μ, log σ²], two columns
    /// per latent dimension, of which the decoder reads z (one per dimension).
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
                Layer::Activation { .. } => cur,
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

    /// Checks every layer's shape against what it reads, that the output has the input's shape and
    /// ends in a layer with parameters, the output activation against the loss, and the VAE, noise,
    /// sparse and dropout settings.
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
                 input's shape",
                last[0], last[1], last[2], self.input[0], self.input[1], self.input[2]
            )));
        }
        if !self
            .layers
            .iter()
            .rev()
            .take_while(|l| !l.has_params())
            .all(|l| matches!(l, Layer::Unflatten { .. }))
            || !self.layers.iter().any(Layer::has_params)
        {
            return Err(Error::Config(
                "the last layer must be a Conv, ConvTranspose or Linear, optionally followed by an Unflatten (its activation is the output's)"
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
        if let Some(s) = self.sparse {
            if !(s.lambda.is_finite() && s.lambda >= 0.0) {
                return Err(Error::Config(format!("sparse λ must be >= 0, got {}", s.lambda)));
            }
            if self.variational.is_some() {
                return Err(Error::Config(
                    "a VAE takes no sparse penalty (its KL term already regularises the code)".into(),
                ));
            }
        }
        if let Some(p) = self.dropout
            && !(0.0..1.0).contains(&p)
        {
            return Err(Error::Config(format!("dropout probability must be in [0, 1), got {p}")));
        }
        loss::check(self.loss, self.output_activation())
    }

    /// Values per example: c·h·w.
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

    /// The activation of the last layer with parameters (layers after it only reshape).
    pub fn output_activation(&self) -> Activation {
        self.layers.iter().rev().find_map(Layer::act).unwrap_or(Activation::Identity)
    }

    /// The shape each layer reads, then the shape the last one writes (`layers.len() + 1` shapes).
    pub fn layer_input_shapes(&self) -> Result<Vec<[usize; 3]>> {
        let shapes = self.shapes()?;
        let mut out: Vec<[usize; 3]> = shapes.iter().map(|s| s.input).collect();
        out.push(shapes.last().map_or(self.input, |s| s.output));
        Ok(out)
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

    /// Weights and biases of every layer, in f32 elements; 0 when the shapes do not fit.
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
    pub(crate) fn layer_names(&self) -> Vec<Option<String>> {
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
                Layer::Activation { act } => format!(" a{}", letter(*act)),
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
        if let Some(sp) = self.sparse {
            s += &format!(" +sparse-{:?}:{}", sp.norm, sp.lambda).to_lowercase();
        }
        if let Some(p) = self.dropout {
            s += &format!(" +dropout:{p}");
        }
        if let Some(n) = self.noise {
            s += &format!(" +noise-{n:?}").to_lowercase();
        }
        s
    }
}
