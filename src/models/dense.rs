//! The dense (fully connected) autoencoder: any stack of layers, explicit forward and backward lists.
//!
//! Layer i computes `a[i+1] = act_i(a[i] · W_iᵀ + b_i)` with `W_i` stored `[out, in]` as PyTorch does.
//! The last layer's activation is the output activation; it is not applied in the forward list but
//! fused into the loss kernel, which works on logits (stable BCE). The code is `a[code_layer + 1]`.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer};
use crate::kernels::activation::activation_backward;
use crate::kernels::loss::{self, LossKind};
use crate::kernels::matmul::{MatmulVariant, linear_backward_input, linear_backward_weight, linear_forward};
use crate::kernels::optimizer::Optimizer;
use crate::kernels::penalty::{self, SparseNorm};

use crate::kernels::random::{self, random_normal};
use crate::kernels::reduce::{bias_backward, colsum};
use crate::kernels::vae::{reparam_backward, reparam_forward};
use crate::kernels::{Activation, Launch};
use crate::models::{
    Autoencoder, Init, KlViews, ModelActivations, Pass, VaeActivations, loss_launches, update_arena,
};
use crate::runner::{Arena, ArenaLayout, View};
use rand::SeedableRng;

/// Architecture and loss of a dense autoencoder.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DenseConfig {
    /// Widths from input to output, e.g. [784, 32, 784].
    pub sizes: Vec<usize>,
    /// One per layer (`sizes.len() - 1`); the last is the output activation (identity or sigmoid).
    pub activations: Vec<Activation>,
    /// The layer whose output is the code (0-based).
    pub code_layer: usize,
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
    pub norm: SparseNorm,
    pub lambda: f32,
}

/// Input corruption for denoising, drawn on the GPU fresh every step.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "level", rename_all = "snake_case")]
pub enum Noise {
    /// Additive N(0, σ²) noise, clipped to [0, 1].
    Gaussian(f32),
    /// A fraction p of the pixels set to 0.
    Masking(f32),
    /// A fraction p of the pixels set to 0 or 1, with equal odds.
    SaltPepper(f32),
}

impl Noise {
    /// Parses `gaussian:0.5`, `masking:0.3`, `salt_pepper:0.1` (also `salt-pepper`, `sp`).
    pub fn parse(s: &str) -> Result<Noise> {
        let bad = || Error::Config(format!("noise '{s}': use gaussian:SIGMA, masking:P or salt_pepper:P"));
        let (kind, level) = s.split_once(':').ok_or_else(bad)?;
        let level: f32 = level.parse().map_err(|_| bad())?;
        let noise = match kind.to_lowercase().as_str() {
            "gaussian" => Noise::Gaussian(level),
            "masking" | "mask" => Noise::Masking(level),
            "salt_pepper" | "salt-pepper" | "sp" => Noise::SaltPepper(level),
            _ => return Err(bad()),
        };
        noise.validate()?;
        Ok(noise)
    }

    pub fn validate(&self) -> Result<()> {
        match *self {
            Noise::Gaussian(s) if !(s.is_finite() && s >= 0.0) => {
                Err(Error::Config(format!("Gaussian noise σ must be >= 0, got {s}")))
            }
            Noise::Masking(p) | Noise::SaltPepper(p) if !(0.0..=1.0).contains(&p) => {
                Err(Error::Config(format!("noise probability must be in [0, 1], got {p}")))
            }
            _ => Ok(()),
        }
    }

    /// The corruption launch: `out = corrupt(inp)` over n values.
    pub fn launch(&self, out: &View, inp: &View, n: usize, seed: u64) -> Launch {
        match *self {
            Noise::Gaussian(sigma) => random::corrupt_gaussian(out, inp, n, sigma, seed, 0),
            Noise::Masking(p) => random::corrupt_masking(out, inp, n, p, seed, 0),
            Noise::SaltPepper(p) => random::corrupt_salt_pepper(out, inp, n, p, seed, 0),
        }
    }
}

impl Regularizers {
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
        Ok(())
    }

    /// λ of the active penalty (sparse or contractive), 0 when none.
    pub fn penalty_lambda(&self) -> f32 {
        self.sparse.map(|s| s.lambda).or(self.contractive).unwrap_or(0.0)
    }

    /// A short tag for logs, e.g. ` +sparse-l1:0.0001 +noise-gaussian:0.5`.
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

    pub fn validate(&self) -> Result<()> {
        let layers = self.layers();
        if self.sizes.len() < 2 || self.sizes.contains(&0) {
            return Err(Error::Config(format!("layer sizes must be >= 1, got {:?}", self.sizes)));
        }
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

    pub fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    pub fn input_dim(&self) -> usize {
        self.sizes[0]
    }

    pub fn code_dim(&self) -> usize {
        self.sizes[self.code_layer + 1]
    }

    pub fn output_activation(&self) -> Activation {
        self.activations[self.layers() - 1]
    }

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

/// A parameter tensor as exported: (checkpoint name, shape, values).
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Parameters, gradients and optimiser state on the GPU, each one arena with the same layout.
pub struct DenseAutoencoder {
    pub config: DenseConfig,
    pub params: Arena,
    pub grads: Arena,
    /// First moment (Adam) or momentum (SGD); second moment (Adam only).
    pub opt_m: StorageBuffer,
    pub opt_v: StorageBuffer,
    /// Seeds the model's GPU random numbers (the VAE's ε).
    pub seed: u64,
    weight_ix: Vec<usize>,
    bias_ix: Vec<usize>,
}

/// Per-batch activations: input, each layer's output and its gradient, loss scratch.
pub struct DenseActivations {
    pub batch: usize,
    /// The code layer's index (its output is the code).
    code_layer: usize,
    pub arena: Arena,
    x: usize,
    outs: Vec<usize>,
    douts: Vec<usize>,
    partials: usize,
    totals: usize,
    vae: Option<VaeActivations>,
    /// The corrupted input (denoising).
    noisy: Option<usize>,
    /// Per layer with dropout: (mask, masked output).
    dropout: Vec<Option<(usize, usize)>>,
    /// Penalty scratch: partial sums (sparse) or per-example ‖J‖²_F (contractive), the row norms
    /// of W (contractive), and the unscaled total.
    penalty: Option<(usize, usize, usize)>,
}

impl DenseActivations {
    /// Output of layer `i` (`[batch, layer_out(i)]`); the last one holds logits.
    pub fn output(&self, i: usize) -> View {
        self.arena.view(self.outs[i])
    }

    /// The sampled code z `[batch, d]` (VAE only).
    pub fn z(&self) -> Option<View> {
        self.vae.as_ref().map(|v| self.arena.view(v.z))
    }

    /// Unscaled total of the active penalty (Σ|h|, Σh² or Σ_b ‖J_b‖²_F) of the last training pass.
    pub fn penalty_total(&self) -> Option<View> {
        self.penalty.map(|(_, _, t)| self.arena.view(t))
    }
}

impl ModelActivations for DenseActivations {
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

impl DenseAutoencoder {
    /// A model with Glorot-uniform weights and zero biases drawn from `seed` (PyTorch's default init
    /// leaves several units of a small ReLU code dead; Glorot does not).
    pub fn new(gpu: &Gpu, config: DenseConfig, seed: u64) -> Result<DenseAutoencoder> {
        DenseAutoencoder::with_init(gpu, config, seed, Init::Glorot)
    }

    /// A model with weights drawn by `init` from `seed`.
    pub fn with_init(gpu: &Gpu, config: DenseConfig, seed: u64, init: Init) -> Result<DenseAutoencoder> {
        let model = DenseAutoencoder::zeroed(gpu, config, seed)?;
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut host = vec![0.0f32; model.params.layout.total];
        for i in 0..model.config.layers() {
            let (fan_in, fan_out) = (model.config.sizes[i], model.config.layer_out(i));
            let (_, w_at, w_len) = model.params.layout.entries[model.weight_ix[i]];
            let (_, b_at, b_len) = model.params.layout.entries[model.bias_ix[i]];
            // The weight view precedes the bias view in the arena (see `zeroed`).
            let (w, b) = host.split_at_mut(b_at);
            init.fill(&mut rng, &mut w[w_at..w_at + w_len], &mut b[..b_len], fan_in, fan_out);
        }
        model.params.buffer.write(gpu, 0, &host);
        Ok(model)
    }

    /// A model with all parameters zero (to be filled from a checkpoint).
    pub fn zeroed(gpu: &Gpu, config: DenseConfig, seed: u64) -> Result<DenseAutoencoder> {
        config.validate()?;
        let mut layout = ArenaLayout::new(gpu);
        let mut weight_ix = Vec::new();
        let mut bias_ix = Vec::new();
        for i in 0..config.layers() {
            let name = config.layer_name(i);
            weight_ix.push(layout.add(format!("{name}.weight"), config.layer_out(i) * config.sizes[i]));
            bias_ix.push(layout.add(format!("{name}.bias"), config.layer_out(i)));
        }
        let params = Arena::new(gpu, "params", &layout)?;
        let grads = Arena::new(gpu, "grads", &layout)?;
        let opt_m = StorageBuffer::zeroed(gpu, "optimizer m", layout.total)?;
        let opt_v = StorageBuffer::zeroed(gpu, "optimizer v", layout.total)?;
        Ok(DenseAutoencoder { config, params, grads, opt_m, opt_v, seed, weight_ix, bias_ix })
    }

    pub fn weight(&self, i: usize) -> View {
        self.params.view(self.weight_ix[i])
    }

    pub fn bias(&self, i: usize) -> View {
        self.params.view(self.bias_ix[i])
    }

    pub fn dweight(&self, i: usize) -> View {
        self.grads.view(self.weight_ix[i])
    }

    pub fn dbias(&self, i: usize) -> View {
        self.grads.view(self.bias_ix[i])
    }

    /// What layer `i` reads: the (corrupted, in training) input, z, or the previous layer's
    /// output (after dropout, in training).
    fn layer_input(&self, acts: &DenseActivations, i: usize, pass: Pass) -> View {
        let c = &self.config;
        if i == 0 {
            return match acts.noisy_input() {
                Some(v) if pass.corrupt => v,
                _ => acts.input(),
            };
        }
        if i == c.code_layer + 1 && c.variational.is_some() {
            return self.code_input(acts);
        }
        match acts.dropout[i - 1] {
            Some((_, dropped)) if pass.dropout => acts.arena.view(dropped),
            _ => acts.output(i - 1),
        }
    }

    fn layer_forward(&self, acts: &DenseActivations, i: usize, variant: MatmulVariant, pass: Pass) -> Launch {
        let c = &self.config;
        let inp = self.layer_input(acts, i, pass);
        // The output activation is fused into the loss kernel, which wants logits.
        let act = if i == c.layers() - 1 { Activation::Identity } else { c.activations[i] };
        linear_forward(
            &acts.output(i),
            &inp,
            &self.weight(i),
            &self.bias(i),
            acts.batch,
            c.sizes[i],
            c.layer_out(i),
            act,
            variant,
        )
    }

    /// The code layer's penalty: its value (into the penalty total) and its gradient added to `dh`,
    /// the gradient of the code being built by the backward pass (before the activation backward).
    fn penalty_backward(&self, acts: &DenseActivations, i: usize, dh: &View) -> Vec<Launch> {
        let c = &self.config;
        let (Some((scratch, rows, total)), true) = (acts.penalty, i == c.code_layer) else {
            return Vec::new();
        };
        let (b, width, h) = (acts.batch, c.code_dim(), acts.output(i));
        let (scratch, total) = (acts.arena.view(scratch), acts.arena.view(total));
        let scale = c.regularize.penalty_lambda() / b as f32;
        if let Some(sparse) = c.regularize.sparse {
            return penalty::activity_penalty(&total, &scratch, Some(dh), &h, b, width, sparse.norm, scale)
                .to_vec();
        }
        let rows = acts.arena.view(rows);
        vec![
            penalty::contractive_rows(&rows, &self.weight(i), width, c.sizes[i]),
            penalty::contractive_h(&scratch, Some(dh), &h, &rows, b, width, scale),
            colsum(&total, &scratch, b, 1, false),
        ]
    }
}

impl Autoencoder for DenseAutoencoder {
    type Activations = DenseActivations;

    fn kind(&self) -> &'static str {
        "dense"
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
        self.config.layer_out(self.config.code_layer)
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

    /// Every parameter tensor: (checkpoint name, shape `[out, in]` / `[out]`, values), in layer order.
    fn export(&self, gpu: &Gpu) -> Result<Vec<NamedTensor>> {
        let all = self.params.buffer.read_all_f32(gpu)?;
        let c = &self.config;
        let mut out = Vec::new();
        for i in 0..c.layers() {
            for (ix, shape) in [
                (self.weight_ix[i], vec![c.layer_out(i), c.sizes[i]]),
                (self.bias_ix[i], vec![c.layer_out(i)]),
            ] {
                let (name, offset, len) = &self.params.layout.entries[ix];
                out.push((name.clone(), shape, all[*offset..offset + len].to_vec()));
            }
        }
        Ok(out)
    }

    /// Loads parameters by name; every tensor must be present with the right length.
    fn import(&self, gpu: &Gpu, tensors: &[(String, Vec<f32>)]) -> Result<()> {
        crate::models::import_by_name(&self.params, gpu, tensors)
    }

    /// Activation storage for batches of `batch` examples.
    fn activations(&self, gpu: &Gpu, batch: usize) -> Result<DenseActivations> {
        if batch == 0 {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        let c = &self.config;
        let mut layout = ArenaLayout::new(gpu);
        let x = layout.add("x", batch * c.sizes[0]);
        let outs =
            (0..c.layers()).map(|i| layout.add(format!("a{}", i + 1), batch * c.layer_out(i))).collect();
        let douts =
            (0..c.layers()).map(|i| layout.add(format!("da{}", i + 1), batch * c.layer_out(i))).collect();
        let partials = layout.add("loss partials", 2 * loss::partial_rows(batch * c.input_dim()));
        let totals = layout.add("loss totals", 2);
        let vae = c.variational.map(|_| VaeActivations::add(&mut layout, batch * c.code_dim()));
        let r = &c.regularize;
        let noisy = r.noise.map(|_| layout.add("x noisy", batch * c.sizes[0]));
        let dropout = (0..c.layers())
            .map(|i| {
                c.has_dropout(i).then(|| {
                    let n = batch * c.layer_out(i);
                    (layout.add(format!("mask{}", i + 1), n), layout.add(format!("a{} dropped", i + 1), n))
                })
            })
            .collect();
        let width = c.code_dim();
        let penalty = if r.sparse.is_some() {
            let rows = penalty::activity_partial_rows(batch * width);
            Some((
                layout.add("penalty partials", rows),
                layout.add("unused", 1),
                layout.add("penalty total", 1),
            ))
        } else if r.contractive.is_some() {
            Some((layout.add("jf2", batch), layout.add("row norms", width), layout.add("penalty total", 1)))
        } else {
            None
        };
        let arena = Arena::new(gpu, "activations", &layout)?;
        Ok(DenseActivations {
            batch,
            code_layer: c.code_layer,
            arena,
            x,
            outs,
            douts,
            partials,
            totals,
            vae,
            noisy,
            dropout,
            penalty,
        })
    }

    /// Forward list: input batch to logits. A VAE draws ε (a fresh stream per step: the runner
    /// rewrites every random launch's stream) and samples z between encoder and decoder. As `pass`
    /// asks, the input is corrupted (denoising) and hidden outputs dropped out (dropout).
    fn forward(&self, acts: &DenseActivations, variant: MatmulVariant, pass: Pass) -> Vec<Launch> {
        let c = &self.config;
        let mut launches = Vec::new();
        if pass.corrupt
            && let (Some(noise), Some(noisy)) = (c.regularize.noise, acts.noisy_input())
        {
            launches.push(noise.launch(&noisy, &acts.input(), acts.batch * c.input_dim(), self.seed));
        }
        for i in 0..c.layers() {
            launches.push(self.layer_forward(acts, i, variant, pass));
            if pass.dropout
                && let (Some((mask, dropped)), Some(p)) = (acts.dropout[i], c.regularize.dropout)
            {
                let (mask, n) = (acts.arena.view(mask), acts.batch * c.layer_out(i));
                launches.push(random::dropout_mask(&mask, n, p, self.seed, 0));
                launches.push(random::multiply(&acts.arena.view(dropped), &acts.output(i), &mask, n));
            }
            if i == c.code_layer
                && let Some(v) = &acts.vae
            {
                let (eps, d) = (acts.arena.view(v.eps), c.code_dim());
                launches.push(random_normal(&eps, acts.batch * d, self.seed, 0));
                launches.push(reparam_forward(&acts.arena.view(v.z), &acts.output(i), &eps, acts.batch, d));
            }
        }
        launches
    }

    /// Loss list: totals of both reconstruction metrics (and the KL for a VAE) against `target`,
    /// and `dlogits` when `with_grad`. `accumulate_totals` adds to the totals (evaluation).
    fn loss(
        &self,
        acts: &DenseActivations,
        target: &View,
        with_grad: bool,
        accumulate_totals: bool,
    ) -> Vec<Launch> {
        let c = &self.config;
        let dlogits = acts.arena.view(*acts.douts.last().expect("at least one layer"));
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

    /// Backward list, the forward in reverse: from dlogits to every parameter gradient.
    fn backward(&self, acts: &DenseActivations, variant: MatmulVariant) -> Vec<Launch> {
        let c = &self.config;
        let b = acts.batch;
        let last = c.layers() - 1;
        let mut launches = Vec::new();
        for i in (0..c.layers()).rev() {
            let (in_dim, out_dim) = (c.sizes[i], c.layer_out(i));
            let dout = acts.arena.view(acts.douts[i]);
            if i == c.code_layer
                && let (Some(v), Some(var)) = (&acts.vae, c.variational)
            {
                // dh = [dμ, dlog σ²] from dz, with the KL gradient added (per-image mean over the batch).
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
            if let Some((mask, _)) = acts.dropout[i] {
                // d(a) = d(dropped) ⊙ mask, in place.
                let mask = acts.arena.view(mask);
                launches.push(random::multiply(&dout, &dout, &mask, b * out_dim));
            }
            launches.extend(self.penalty_backward(acts, i, &dout));
            if i != last && c.activations[i] != Activation::Identity {
                // dZ = dA ⊙ act'(A), in place; the last layer's dZ comes straight from the loss.
                launches.push(activation_backward(
                    &dout,
                    &dout,
                    &acts.output(i),
                    b * out_dim,
                    c.activations[i],
                ));
            }
            let inp = self.layer_input(acts, i, Pass::TRAIN);
            launches.push(linear_backward_weight(&self.dweight(i), &dout, &inp, b, in_dim, out_dim, variant));
            if let (Some(lambda), true) = (c.regularize.contractive, i == c.code_layer) {
                // The penalty's direct path through the row norms of W.
                let (h, w) = (acts.output(i), self.weight(i));
                let scale = lambda / b as f32;
                launches.push(penalty::contractive_weight(
                    &self.dweight(i),
                    &h,
                    &w,
                    b,
                    out_dim,
                    in_dim,
                    scale,
                ));
            }
            launches.push(bias_backward(&self.dbias(i), &dout, b, out_dim));
            if i > 0 {
                let dinp = match &acts.vae {
                    Some(v) if i == c.code_layer + 1 => acts.arena.view(v.dz),
                    _ => acts.arena.view(acts.douts[i - 1]),
                };
                launches.push(linear_backward_input(
                    &dinp,
                    &dout,
                    &self.weight(i),
                    b,
                    in_dim,
                    out_dim,
                    variant,
                ));
            }
        }
        launches
    }

    /// What the decoder's first layer reads: the code, or z for a VAE.
    fn code_input(&self, acts: &DenseActivations) -> View {
        acts.z().unwrap_or_else(|| acts.output(self.config.code_layer))
    }

    /// Decoder list: from [`DenseAutoencoder::code_input`] (filled by the caller) to logits.
    fn decoder(&self, acts: &DenseActivations, variant: MatmulVariant) -> Vec<Launch> {
        (self.config.code_layer + 1..self.config.layers())
            .map(|i| self.layer_forward(acts, i, variant, Pass::INFER))
            .collect()
    }

    /// The fused optimiser update over the whole parameter arena, for step `t`.
    fn update(&self, opt: &Optimizer, t: u64) -> Launch {
        update_arena(opt, &self.params, &self.grads, &self.opt_m, &self.opt_v, t)
    }

    fn jacobian_fro(&self, gpu: &Gpu, codes: &[f32], n: usize) -> Result<Option<f64>> {
        let c = &self.config;
        if c.code_layer != 0 || c.activations[0] != Activation::Sigmoid {
            return Ok(None);
        }
        // ‖J‖²_F = Σ_j (h_j (1 - h_j))² ‖W_j‖², the closed form the contractive penalty uses.
        let d = c.code_dim();
        let w = self.weight(0).read(gpu)?;
        let rows = crate::cpu::penalty::contractive_rows(&w, d, c.input_dim());
        let jf2 = crate::cpu::penalty::contractive_h(None, codes, &rows, n, d, 0.0);
        Ok(Some(jf2.iter().map(|v| v.sqrt()).sum::<f64>() / n as f64))
    }
}
