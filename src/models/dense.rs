//! The dense (fully connected) autoencoder's configuration: widths, activations, the code layer,
//! loss, VAE settings and regularisers, with the presets people know. It lowers to a layer list of
//! Linear layers (`models::lower`); layer i computes `a[i+1] = act_i(a[i] · W_iᵀ + b_i)` with `W_i`
//! stored `[out, in]` as PyTorch does, and the code is `a[code_layer + 1]`.

use crate::error::{Error, Result};
use crate::kernels::Activation;
use crate::kernels::loss::{self, LossKind};
use crate::kernels::penalty::SparseNorm;
pub use crate::nn::Noise;

/// Architecture and loss of a dense autoencoder.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DenseConfig {
    /// Widths from input to output, e.g. [784, 32, 784].
    pub sizes: Vec<usize>,
    /// One per layer (`sizes.len() - 1`); the last is the output activation (identity or sigmoid).
    pub activations: Vec<Activation>,
    /// The layer whose output is the code (0-based).
    pub code_layer: usize,
    /// Reconstruction loss (a VAE needs BCE).
    pub loss: LossKind,
    /// Present for a variational autoencoder: the code layer outputs μ and log σ² (2·d columns),
    /// the decoder gets z = μ + σ·ε, and the loss adds β·KL(q(z|x) ‖ N(0, I)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variational: Option<Variational>,
    /// Sparse, contractive, dropout and denoising regularisers (all off by default).
    #[serde(default)]
    pub regularize: Regularizers,
}

/// Regularisers that make an autoencoder learn structure rather than the identity. Penalty weights
/// are per example, next to a per-pixel mean reconstruction loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Regularizers {
    /// λ·Σ_j |h_j| (L1) or λ·Σ_j h_j² (L2) on the code, averaged over the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse: Option<Sparse>,
    /// λ·‖J_f(x)‖²_F of a one-layer sigmoid encoder h = σ(Wx + b), averaged over the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contractive: Option<f32>,
    /// Inverted dropout with this probability on every hidden layer's output (the code included);
    /// off at evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f32>,
    /// Corruption of the input (denoising autoencoder); the loss compares with the clean input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
}

/// A sparse autoencoder's penalty.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sparse {
    /// L1 (`Σ_j |h_j|`) or L2 (`Σ_j h_j²`) on the code.
    pub norm: SparseNorm,
    /// Weight λ per example, >= 0.
    pub lambda: f32,
}

impl Regularizers {
    /// Checks the weights and probabilities, that a contractive penalty follows a one-layer sigmoid
    /// encoder, and that `config` takes the penalties it has (not both, none on a VAE).
    pub fn validate(&self, config: &DenseConfig) -> Result<()> {
        if let Some(s) = self.sparse
            && !(s.lambda.is_finite() && s.lambda >= 0.0)
        {
            return Err(Error::Config(format!("sparse λ must be >= 0, got {}", s.lambda)));
        }
        if let Some(p) = self.dropout
            && !(0.0..1.0).contains(&p)
        {
            return Err(Error::Config(format!("dropout probability must be in [0, 1), got {p}")));
        }
        if let Some(n) = self.noise {
            n.validate()?;
        }
        if let Some(l) = self.contractive {
            if !(l.is_finite() && l >= 0.0) {
                return Err(Error::Config(format!("contractive λ must be >= 0, got {l}")));
            }
            if config.code_layer != 0 || config.activations[0] != Activation::Sigmoid {
                return Err(Error::Config(
                    "the contractive penalty is computed in closed form for a one-layer sigmoid encoder: \
                     use --layers WIDTH --code-activation sigmoid"
                        .into(),
                ));
            }
            if self.sparse.is_some() {
                return Err(Error::Config("combine --contractive or --sparse, not both".into()));
            }
            if config.variational.is_some() {
                return Err(Error::Config("a VAE takes no contractive penalty".into()));
            }
        }
        if self.sparse.is_some() && config.variational.is_some() {
            return Err(Error::Config(
                "a VAE takes no sparse penalty (its KL term already regularises the code)".into(),
            ));
        }
        Ok(())
    }

    /// λ of the active penalty (sparse or contractive), 0 when none.
    pub fn penalty_lambda(&self) -> f32 {
        self.sparse.map(|s| s.lambda).or(self.contractive).unwrap_or(0.0)
    }

    /// A short tag for logs, e.g. ` +sparse-l1:0.0001 +noise-gaussian(0.5)`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(sp) = self.sparse {
            s += &format!(" +sparse-{:?}:{}", sp.norm, sp.lambda).to_lowercase();
        }
        if let Some(l) = self.contractive {
            s += &format!(" +contractive:{l}");
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

/// The VAE's settings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Variational {
    /// Weight of the KL term (1 = the ELBO; β-VAE otherwise).
    pub beta: f32,
}

impl DenseConfig {
    /// A mirrored autoencoder: `input - encoder[0] - ... - encoder[last] (code) - ... - input`.
    pub fn symmetric(
        input: usize,
        encoder: &[usize],
        hidden: Activation,
        code: Activation,
        output: Activation,
        loss: LossKind,
    ) -> Result<DenseConfig> {
        if encoder.is_empty() {
            return Err(Error::Config("--layers needs at least one size (the code width)".into()));
        }
        let mut sizes = vec![input];
        sizes.extend_from_slice(encoder);
        sizes.extend(encoder.iter().rev().skip(1));
        sizes.push(input);
        let layers = sizes.len() - 1;
        let code_layer = encoder.len() - 1;
        let activations = (0..layers)
            .map(|i| {
                if i == layers - 1 {
                    output
                } else if i == code_layer {
                    code
                } else {
                    hidden
                }
            })
            .collect();
        let c = DenseConfig {
            sizes,
            activations,
            code_layer,
            loss,
            variational: None,
            regularize: Regularizers::default(),
        };
        c.validate()?;
        Ok(c)
    }

    /// Models people know: `shallow` is the Keras blog's 784-32-784 (ReLU code, sigmoid output, BCE);
    /// `deep` is 784-512-256-64-2-64-256-512-784 with ReLU hidden layers and a linear 2-unit code
    /// (with a ReLU code both units die and the loss freezes at the mean image); `vae` is the PyTorch
    /// example's 784-400-20 VAE (ReLU, sigmoid output, BCE + KL).
    pub fn preset(name: &str, input: usize, loss: LossKind) -> Result<DenseConfig> {
        use Activation::*;
        match name {
            "shallow" => DenseConfig::symmetric(input, &[32], Relu, Relu, Sigmoid, loss),
            "deep" => DenseConfig::symmetric(input, &[512, 256, 64, 2], Relu, Identity, Sigmoid, loss),
            "vae" => DenseConfig::symmetric(input, &[400, 20], Relu, Identity, Sigmoid, LossKind::Bce)?
                .with_variational(Some(Variational { beta: 1.0 })),
            other => Err(Error::Config(format!("unknown dense preset '{other}': use shallow, deep or vae"))),
        }
    }

    /// The same architecture with these regularisers.
    pub fn with_regularizers(mut self, r: Regularizers) -> Result<DenseConfig> {
        self.regularize = r;
        self.validate()?;
        Ok(self)
    }

    /// The same architecture as a VAE (or back to a plain autoencoder with `None`).
    pub fn with_variational(mut self, v: Option<Variational>) -> Result<DenseConfig> {
        self.variational = v;
        self.validate()?;
        Ok(self)
    }

    /// Columns layer `i` produces: the code layer of a VAE outputs μ and log σ² side by side.
    pub fn layer_out(&self, i: usize) -> usize {
        if self.variational.is_some() && i == self.code_layer {
            2 * self.sizes[i + 1]
        } else {
            self.sizes[i + 1]
        }
    }

    /// Checks the widths (input = output, none 0), one activation per layer, the code layer, the
    /// VAE settings, the regularisers, and the output activation against the loss.
    pub fn validate(&self) -> Result<()> {
        // Sizes first: `layers()` is `sizes.len() - 1`, which an empty list (a hand-edited
        // checkpoint's JSON) would underflow.
        if self.sizes.len() < 2 || self.sizes.contains(&0) {
            return Err(Error::Config(format!("layer sizes must be >= 1, got {:?}", self.sizes)));
        }
        let layers = self.layers();
        if self.activations.len() != layers {
            return Err(Error::Config(format!(
                "{} layers but {} activations",
                layers,
                self.activations.len()
            )));
        }
        if self.code_layer >= layers {
            return Err(Error::Config(format!("code layer {} out of range (0..{layers})", self.code_layer)));
        }
        if self.sizes[0] != self.sizes[layers] {
            return Err(Error::Config(format!(
                "an autoencoder's output width ({}) must equal its input width ({})",
                self.sizes[layers], self.sizes[0]
            )));
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
            if self.activations[self.code_layer] != Activation::Identity {
                return Err(Error::Config(
                    "a VAE's code layer (μ, log σ²) must be linear: --code-activation identity".into(),
                ));
            }
            if self.code_layer + 1 >= self.layers() {
                return Err(Error::Config("a VAE needs at least one decoder layer after the code".into()));
            }
        }
        self.regularize.validate(self)?;
        loss::check(self.loss, self.output_activation())
    }

    /// Whether layer `i`'s output gets dropout in training: every hidden layer but a VAE's (μ, log σ²).
    pub fn has_dropout(&self, i: usize) -> bool {
        self.regularize.dropout.is_some()
            && i + 1 < self.layers()
            && !(self.variational.is_some() && i == self.code_layer)
    }

    /// Linear layers: `sizes.len() - 1`.
    pub fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// Values per example: `sizes[0]`.
    pub fn input_dim(&self) -> usize {
        self.sizes[0]
    }

    /// Code width per example (of z for a VAE, whose code layer writes twice as many columns).
    pub fn code_dim(&self) -> usize {
        self.sizes[self.code_layer + 1]
    }

    /// The last layer's activation (identity or sigmoid).
    pub fn output_activation(&self) -> Activation {
        self.activations[self.layers() - 1]
    }

    /// Weights and biases of every layer, in f32 elements (a VAE's code layer counted at 2·d outputs).
    pub fn parameter_count(&self) -> usize {
        (0..self.layers()).map(|i| (self.sizes[i] + 1) * self.layer_out(i)).sum()
    }

    /// The checkpoint name of layer `i`'s tensors, as in PyTorch `nn.Sequential` encoder/decoder
    /// modules with one activation module after every Linear: `encoder.0`, `encoder.2`, ...
    pub fn layer_name(&self, i: usize) -> String {
        if i <= self.code_layer {
            format!("encoder.{}", 2 * i)
        } else {
            format!("decoder.{}", 2 * (i - self.code_layer - 1))
        }
    }

    /// e.g. `784-512r-256r-64r-2i-64r-256r-512r-784s` (r ReLU, i identity, s sigmoid, t tanh, l leaky;
    /// `z` marks a VAE's sampled code).
    pub fn describe(&self) -> String {
        let mut s = if self.variational.is_some() { "vae ".to_string() } else { String::new() };
        s += &self.sizes[0].to_string();
        for (i, a) in self.activations.iter().enumerate() {
            let c = match a {
                Activation::Identity => "i",
                Activation::Relu => "r",
                Activation::LeakyRelu(_) => "l",
                Activation::Sigmoid => "s",
                Activation::Tanh => "t",
            };
            let z = if self.variational.is_some() && i == self.code_layer { "z" } else { "" };
            s += &format!("-{}{c}{z}", self.sizes[i + 1]);
        }
        s + &self.regularize.describe()
    }
}
