//! Autoencoder variants: each stores its parameter layout, forward list and backward list.
pub mod conv;
pub mod dense;

use rand::RngExt;

/// How a model's weights are drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// Glorot (Xavier) uniform weights, U(±√(6/(fan_in + fan_out))), zero biases.
    #[default]
    Glorot,
    /// PyTorch's default for Linear and Conv layers: weights and biases U(±1/√fan_in)
    /// (`kaiming_uniform_(a=√5)`), so a run starts where the PyTorch reference starts.
    Torch,
}

impl Init {
    pub fn parse(s: &str) -> Option<Init> {
        match s {
            "glorot" | "xavier" => Some(Init::Glorot),
            "torch" | "pytorch" => Some(Init::Torch),
            _ => None,
        }
    }

    /// Fills one layer's weight and bias from `rng`.
    pub fn fill(
        self,
        rng: &mut impl rand::Rng,
        weight: &mut [f32],
        bias: &mut [f32],
        fan_in: usize,
        fan_out: usize,
    ) {
        let (w_bound, b_bound) = match self {
            Init::Glorot => ((6.0 / (fan_in + fan_out) as f64).sqrt() as f32, 0.0),
            Init::Torch => {
                let b = (1.0 / fan_in as f64).sqrt() as f32;
                (b, b)
            }
        };
        for w in weight {
            *w = (rng.random::<f32>() * 2.0 - 1.0) * w_bound;
        }
        for b in bias {
            *b = if b_bound == 0.0 { 0.0 } else { (rng.random::<f32>() * 2.0 - 1.0) * b_bound };
        }
    }
}

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::loss::{self, LossKind, loss_forward_backward};
use crate::kernels::matmul::MatmulVariant;
use crate::kernels::optimizer::Optimizer;
use crate::kernels::reduce::colsum;
use crate::kernels::vae::{self, kl_forward};
use crate::kernels::{Activation, Launch};
use crate::runner::{Arena, View};

pub use dense::{NamedTensor, Variational};

/// What a forward pass applies besides the layers: input corruption (denoising models; fresh noise
/// per step from the GPU generator) and dropout (models with dropout). Models without either ignore it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pass {
    pub corrupt: bool,
    pub dropout: bool,
}

impl Pass {
    /// A training step: both.
    pub const TRAIN: Pass = Pass { corrupt: true, dropout: true };
    /// Test metrics: the training objective without dropout, so a denoising model reconstructs
    /// corrupted test inputs (as Keras validates one) from fixed evaluation streams.
    pub const EVAL: Pass = Pass { corrupt: true, dropout: false };
    /// Inference on the given inputs as they are.
    pub const INFER: Pass = Pass { corrupt: false, dropout: false };
}

/// What the training loop, the evaluator, checkpoints and the generation tools need of a model:
/// its launch lists (forward, loss, backward, decoder, update) over its own activation storage.
/// Each model writes these lists out explicitly; there is no autodiff tape.
pub trait Autoencoder {
    type Activations: ModelActivations;

    /// `dense` or `conv`: the checkpoint's `aegpu.kind`.
    fn kind(&self) -> &'static str;
    /// A one-line architecture summary for logs and picture titles.
    fn describe(&self) -> String;
    /// The model's configuration as JSON (the checkpoint's `aegpu.model`).
    fn config_json(&self) -> Result<String>;
    /// Values per example (C·H·W).
    fn input_dim(&self) -> usize;
    /// Columns of the code layer's output: the code, or a VAE's [μ, log σ²] (2·code_dim).
    fn code_width(&self) -> usize;
    /// Dimensions of the code (of z for a VAE).
    fn code_dim(&self) -> usize;
    fn variational(&self) -> Option<Variational>;
    fn loss_kind(&self) -> LossKind;
    fn output_activation(&self) -> Activation;
    fn parameter_count(&self) -> usize;
    /// Seeds the model's GPU random numbers (a VAE's ε, corruption).
    fn seed(&self) -> u64;

    /// Activation storage for batches of `batch` examples.
    fn activations(&self, gpu: &Gpu, batch: usize) -> Result<Self::Activations>;
    /// Input batch to logits, with the corruption and dropout `pass` asks for.
    fn forward(&self, acts: &Self::Activations, variant: MatmulVariant, pass: Pass) -> Vec<Launch>;
    /// Loss totals against `target` (and dlogits when `with_grad`); `accumulate_totals` adds to them.
    fn loss(
        &self,
        acts: &Self::Activations,
        target: &View,
        with_grad: bool,
        accumulate_totals: bool,
    ) -> Vec<Launch>;
    /// dlogits to every parameter gradient.
    fn backward(&self, acts: &Self::Activations, variant: MatmulVariant) -> Vec<Launch>;
    /// What the decoder reads (the code, or z for a VAE); the caller fills it before [`Self::decoder`].
    fn code_input(&self, acts: &Self::Activations) -> View;
    /// The code input to logits.
    fn decoder(&self, acts: &Self::Activations, variant: MatmulVariant) -> Vec<Launch>;
    /// The fused optimiser update over the whole parameter arena, for step `t`.
    fn update(&self, opt: &Optimizer, t: u64) -> Launch;
    /// Every parameter tensor with its checkpoint name and PyTorch shape.
    fn export(&self, gpu: &Gpu) -> Result<Vec<NamedTensor>>;
    /// Loads parameters by name; every tensor must be present with the right length.
    fn import(&self, gpu: &Gpu, tensors: &[(String, Vec<f32>)]) -> Result<()>;
    /// Kernel choices worth logging (a conv model's algorithm per conv layer); empty by default.
    fn kernel_choices(&self) -> String {
        String::new()
    }
    /// Mean ‖J_f(x)‖_F over `codes` where the model has it in closed form (a one-layer sigmoid encoder).
    fn jacobian_fro(&self, _gpu: &Gpu, _codes: &[f32], _n: usize) -> Result<Option<f64>> {
        Ok(None)
    }
}

/// Activations for at most `batch` examples, halving the batch while they exceed the adapter's buffer
/// limits (a conv model's feature maps for 1000 images can): `(batch used, activations)`.
pub fn activations_fitting<M: Autoencoder>(
    model: &M,
    gpu: &Gpu,
    mut batch: usize,
) -> Result<(usize, M::Activations)> {
    loop {
        match model.activations(gpu, batch) {
            Ok(acts) => return Ok((batch, acts)),
            Err(Error::LimitExceeded { .. }) if batch > 1 => batch = batch.div_ceil(2),
            Err(e) => return Err(e),
        }
    }
}

/// The views of a model's activation storage that the training loop and evaluator read.
pub trait ModelActivations {
    fn batch(&self) -> usize;
    /// The input batch `[batch, input_dim]` (also the reconstruction target).
    fn input(&self) -> View;
    /// The last layer's output before the output activation.
    fn logits(&self) -> View;
    /// The code layer's output `[batch, code_width]`.
    fn code(&self) -> View;
    /// (Σ squared error, Σ cross-entropy) of the last loss pass.
    fn totals(&self) -> View;
    /// Σ KL over the batch of the last pass (VAE only).
    fn kl_total(&self) -> Option<View>;
    /// The corrupted input of a denoising model.
    fn noisy_input(&self) -> Option<View>;
}

/// The KL term's storage and inputs for [`loss_launches`].
pub struct KlViews {
    pub total: View,
    pub partials: View,
    /// The code layer's output [μ, log σ²], `[batch, 2·d]`.
    pub h: View,
    pub d: usize,
}

/// The loss list both model families share: the fused reconstruction loss (with its gradient into
/// `dlogits` when given) and its deterministic reduction into `totals`, then a VAE's KL term.
/// The gradient scale is the per-pixel mean for autoencoders and per-image sums averaged over the
/// batch (nats) for VAEs. `accumulate_totals` adds into the totals (evaluation over many batches).
#[allow(clippy::too_many_arguments)]
pub fn loss_launches(
    totals: &View,
    partials: &View,
    dlogits: Option<&View>,
    logits: &View,
    target: &View,
    batch: usize,
    dim: usize,
    kind: LossKind,
    output: Activation,
    kl: Option<KlViews>,
    accumulate_totals: bool,
) -> Vec<Launch> {
    let n = batch * dim;
    let scale = if kl.is_some() { 1.0 / batch as f32 } else { 1.0 / n as f32 };
    let [pass, mut reduce] =
        loss_forward_backward(totals, partials, dlogits, logits, target, n, kind, output, scale);
    if accumulate_totals {
        reduce = colsum(totals, partials, loss::partial_rows(n), 2, true);
    }
    let mut launches = vec![pass, reduce];
    if let Some(kl) = kl {
        let [kl_pass, mut kl_reduce] = kl_forward(&kl.total, &kl.partials, &kl.h, batch, kl.d);
        if accumulate_totals {
            kl_reduce = colsum(&kl.total, &kl.partials, vae::kl_partial_rows(batch * kl.d), 1, true);
        }
        launches.extend([kl_pass, kl_reduce]);
    }
    launches
}

/// Loads parameters by name into `params`; every tensor must be present with the right length.
pub fn import_by_name(params: &Arena, gpu: &Gpu, tensors: &[(String, Vec<f32>)]) -> Result<()> {
    for (name, offset, len) in &params.layout.entries {
        let (_, values) = tensors
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| Error::Shape(format!("tensor '{name}' missing")))?;
        if values.len() != *len {
            return Err(Error::Shape(format!("tensor '{name}' has {} values, expected {len}", values.len())));
        }
        params.buffer.write(gpu, *offset, values);
    }
    Ok(())
}

/// A model of either family, as a checkpoint or the command line describes it.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelConfig {
    Dense(dense::DenseConfig),
    Conv(conv::ConvConfig),
}

impl ModelConfig {
    /// `dense` or `conv` (a checkpoint's `aegpu.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::Dense(_) => "dense",
            ModelConfig::Conv(_) => "conv",
        }
    }

    /// Parses a checkpoint's `aegpu.model` JSON of the family `kind` (`None`: dense, as in checkpoints
    /// written before conv models existed).
    pub fn from_json(kind: Option<&str>, json: &str) -> Result<ModelConfig> {
        let bad = |e: serde_json::Error| Error::Config(format!("model configuration: {e}"));
        let config = match kind.unwrap_or("dense") {
            "dense" => ModelConfig::Dense(serde_json::from_str(json).map_err(bad)?),
            "conv" => ModelConfig::Conv(serde_json::from_str(json).map_err(bad)?),
            other => {
                return Err(Error::Config(format!(
                    "unknown model kind '{other}' (this build knows dense and conv)"
                )));
            }
        };
        match &config {
            ModelConfig::Dense(c) => c.validate()?,
            ModelConfig::Conv(c) => c.validate()?,
        }
        Ok(config)
    }
}

/// A model of either family; [`with_model!`](crate::with_model) runs generic code on the one inside.
pub enum AnyModel {
    Dense(dense::DenseAutoencoder),
    Conv(conv::ConvAutoencoder),
}

impl AnyModel {
    /// A freshly initialised model.
    pub fn new(gpu: &Gpu, config: ModelConfig, seed: u64, init: Init) -> Result<AnyModel> {
        Ok(match config {
            ModelConfig::Dense(c) => AnyModel::Dense(dense::DenseAutoencoder::with_init(gpu, c, seed, init)?),
            ModelConfig::Conv(c) => AnyModel::Conv(conv::ConvAutoencoder::new(gpu, c, seed, init)?),
        })
    }

    /// A model with zero parameters (to be filled from a checkpoint).
    pub fn zeroed(gpu: &Gpu, config: ModelConfig, seed: u64) -> Result<AnyModel> {
        Ok(match config {
            ModelConfig::Dense(c) => AnyModel::Dense(dense::DenseAutoencoder::zeroed(gpu, c, seed)?),
            ModelConfig::Conv(c) => AnyModel::Conv(conv::ConvAutoencoder::zeroed(gpu, c, seed)?),
        })
    }
}

/// Evaluates `$body` with `$m` bound to the concrete model inside an [`AnyModel`] (by reference).
#[macro_export]
macro_rules! with_model {
    ($model:expr, $m:ident => $body:expr) => {
        match $model {
            $crate::models::AnyModel::Dense($m) => $body,
            $crate::models::AnyModel::Conv($m) => $body,
        }
    };
}

/// A VAE's extra activations (indices into the activation arena): ε, z and its gradient, and the KL
/// reduction's scratch and total.
pub(crate) struct VaeActivations {
    pub eps: usize,
    pub z: usize,
    pub dz: usize,
    pub kl_partials: usize,
    pub kl_total: usize,
}

impl VaeActivations {
    /// Adds the views for `n` latent values (batch · d) to `layout`.
    pub(crate) fn add(layout: &mut crate::runner::ArenaLayout, n: usize) -> VaeActivations {
        VaeActivations {
            eps: layout.add("eps", n),
            z: layout.add("z", n),
            dz: layout.add("dz", n),
            kl_partials: layout.add("kl partials", vae::kl_partial_rows(n)),
            kl_total: layout.add("kl total", 1),
        }
    }
}

/// The fused optimiser update over a whole parameter arena (both model families keep parameters,
/// gradients and the two moment buffers with the same layout), for step `t`.
pub(crate) fn update_arena(
    opt: &Optimizer,
    params: &Arena,
    grads: &Arena,
    m: &crate::gpu::StorageBuffer,
    v: &crate::gpu::StorageBuffer,
    t: u64,
) -> Launch {
    crate::kernels::optimizer::optimizer_step(
        opt,
        &params.all(),
        &grads.all(),
        &View::whole(m),
        &View::whole(v),
        params.layout.total,
        t,
    )
}
