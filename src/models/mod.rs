//! Autoencoders: the dense and conv configuration languages (what checkpoints store, with their
//! presets), their lowering to one layer list ([`crate::nn::Network`]), and the [`Autoencoder`] that
//! runs it: encoder and decoder slices, a loss, regularisers, parameters and optimiser state.
pub mod arch;
mod autoencoder;
pub mod conv;
pub mod dense;
mod lower;
mod presets;
pub mod strict;

pub use crate::nn::Pass;
pub use autoencoder::{Activations, Autoencoder, activations_fitting};

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
    /// Parses `glorot` (also `xavier`) or `torch` (also `pytorch`); `None` otherwise.
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
use crate::gpu::{Launch, View};
use crate::kernels::Activation;
use crate::kernels::loss::{self, LossKind, loss_forward_backward};
use crate::kernels::reduce::colsum;
use crate::kernels::vae::{self, kl_forward};

pub use dense::Variational;

/// A parameter tensor as exported: (checkpoint name, shape, values).
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// The KL term's storage and inputs for [`loss_launches`].
pub struct KlViews {
    /// One word: the KL summed over the batch (nats, not divided by the batch, not scaled by β).
    pub total: View,
    /// The reduction's per-workgroup partial sums: `vae::kl_partial_rows(batch·d)` words.
    pub partials: View,
    /// The code layer's output [μ, log σ²], `[batch, 2·d]`.
    pub h: View,
    /// Latent dimension: columns of μ (and of log σ²).
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

/// A model of either family, as a checkpoint or the command line describes it.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelConfig {
    /// A fully connected autoencoder (`aegpu.kind` `dense`).
    Dense(dense::DenseConfig),
    /// A convolutional layer list (`aegpu.kind` `conv`).
    Conv(conv::ConvConfig),
}

impl ModelConfig {
    /// A model people know, by name: the dense presets `shallow`, `deep` and `vae` on the
    /// flattened `input`, or the conv presets `keras`, `strided` and `conv-vae` on `input =
    /// [channels, rows, cols]` with their default code (see [`dense::DenseConfig::preset`] and
    /// [`conv::ConvConfig::preset`], which take more options). An unknown name is an
    /// [`Error::Config`] listing the six.
    ///
    /// ```
    /// use aegpu::prelude::*;
    ///
    /// let deep = ModelConfig::preset("deep", [1, 28, 28], LossKind::Mse)?;
    /// assert_eq!(deep.describe(), ModelConfig::from(DenseConfig::preset("deep", 784, LossKind::Mse)?).describe());
    /// assert!(ModelConfig::preset("resnet", [1, 28, 28], LossKind::Bce).is_err());
    /// # Ok::<(), aegpu::Error>(())
    /// ```
    pub fn preset(name: &str, input: [usize; 3], loss: LossKind) -> Result<ModelConfig> {
        match name {
            "shallow" | "deep" | "vae" => {
                Ok(dense::DenseConfig::preset(name, input.iter().product(), loss)?.into())
            }
            "keras" | "strided" | "conv-vae" => Ok(conv::ConvConfig::preset(name, input, None, loss)?.into()),
            other => Err(Error::Config(format!(
                "unknown preset '{other}': use shallow, deep or vae (dense), keras, strided or conv-vae (conv)"
            ))),
        }
    }

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

    /// The configuration as JSON (the checkpoint's `aegpu.model`).
    pub fn to_json(&self) -> Result<String> {
        match self {
            ModelConfig::Dense(c) => serde_json::to_string(c),
            ModelConfig::Conv(c) => serde_json::to_string(c),
        }
        .map_err(|e| Error::Config(e.to_string()))
    }

    /// Every parameter tensor as (checkpoint name, PyTorch shape), in layer order, weights before
    /// biases: what a checkpoint of this model holds. Needs no GPU.
    pub fn parameters(&self) -> Result<Vec<(String, Vec<usize>)>> {
        Ok(lower::lower(self)?.net.parameters())
    }

    /// A one-line architecture summary for logs and picture titles.
    pub fn describe(&self) -> String {
        match self {
            ModelConfig::Dense(c) => c.describe(),
            ModelConfig::Conv(c) => c.describe(),
        }
    }
}

impl From<dense::DenseConfig> for ModelConfig {
    fn from(c: dense::DenseConfig) -> ModelConfig {
        ModelConfig::Dense(c)
    }
}

impl From<conv::ConvConfig> for ModelConfig {
    fn from(c: conv::ConvConfig) -> ModelConfig {
        ModelConfig::Conv(c)
    }
}
