//! The one autoencoder type: a configuration (dense or conv, as checkpoints store it) lowered to a
//! [`Network`], split at the code into an encoder and a decoder, plus a loss and its parameters,
//! gradients and optimiser state on the GPU (each one arena with the same layout).

use super::lower::{Lowered, lower};
use super::{Init, KlViews, ModelConfig, NamedTensor, Variational, loss_launches};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Launch, StorageBuffer, View};
use crate::kernels::Activation;
use crate::kernels::loss::{self, LossKind};
use crate::kernels::matmul_policy::{MatmulPolicy, ShapeClass};
use crate::kernels::optimizer::{Optimizer, optimizer_step};
use crate::nn::{ActivationStorage, Ctx, Network, Op, Pass, Tensors, len3};
use crate::runner::{Arena, ArenaLayout};
use crate::tune::ConvAlgorithm;
use rand::SeedableRng;

/// An autoencoder on the GPU.
pub struct Autoencoder {
    /// What the checkpoint stores (`aegpu.kind`, `aegpu.model`).
    pub config: ModelConfig,
    /// The lowered layer list, encoder then decoder.
    pub net: Network,
    /// The node whose output is the code (a VAE's `[μ, log σ²]`), and the decoder's first node.
    pub code_node: usize,
    /// Index in `net.nodes` of the decoder's first node: the one after the code node, its penalty and
    /// a VAE's sampling.
    pub decoder_start: usize,
    /// The node each layer of the configuration became (dense: layer i; conv: `layers[i]`).
    pub layer_nodes: Vec<usize>,
    /// Every weight and bias, f32, named by checkpoint name (`encoder.0.weight`, PyTorch shapes).
    pub params: Arena,
    /// The parameters' gradients, with `params`' layout.
    pub grads: Arena,
    /// First moment (Adam) or momentum (SGD); second moment (Adam only).
    pub opt_m: StorageBuffer,
    /// Adam's second moment, one word per word of `params` (allocated, unused, for SGD).
    pub opt_v: StorageBuffer,
    /// Seeds the model's GPU random numbers (a VAE's ε, corruption, dropout).
    pub seed: u64,
    loss: LossKind,
    output: Activation,
    variational: Option<Variational>,
    /// The matmul variants the model runs, when pinned (a resumed or restored run's recorded ones);
    /// else the adapter's tuned ones.
    matmul: Option<MatmulPolicy>,
}

/// A batch's tensors, with the views the training loop and the evaluator read.
pub struct Activations {
    /// Every named tensor of the batch (values, gradients, scratch).
    pub tensors: Tensors,
    logits: String,
    code: String,
}

impl Activations {
    /// Examples per batch the tensors are sized for.
    pub fn batch(&self) -> usize {
        self.tensors.batch
    }

    /// The input batch `[batch, input_dim]` (also the reconstruction target).
    pub fn input(&self) -> View {
        self.tensors.view("x")
    }

    /// The last layer's output before the output activation.
    pub fn logits(&self) -> View {
        self.tensors.view(&self.logits)
    }

    /// The code layer's output `[batch, code_width]`.
    pub fn code(&self) -> View {
        self.tensors.view(&self.code)
    }

    /// (Σ squared error, Σ cross-entropy) of the last loss pass.
    pub fn totals(&self) -> View {
        self.tensors.view("loss totals")
    }

    /// Σ KL over the batch of the last pass (VAE only).
    pub fn kl_total(&self) -> Option<View> {
        self.tensors.get("kl total")
    }

    /// The corrupted input of a denoising model.
    pub fn noisy_input(&self) -> Option<View> {
        self.tensors.get("x noisy")
    }

    /// Unscaled total of the active penalty (Σ|h|, Σh² or Σ_b ‖J_b‖²_F) of the last training pass.
    pub fn penalty_total(&self) -> Option<View> {
        self.tensors.get("penalty total")
    }

    /// The sampled code z `[batch, d]` (VAE only).
    pub fn z(&self) -> Option<View> {
        self.tensors.get("z")
    }
}

impl Autoencoder {
    /// A model with weights drawn by `init` from `seed`.
    pub fn new(gpu: &Gpu, config: impl Into<ModelConfig>, seed: u64, init: Init) -> Result<Autoencoder> {
        let model = Autoencoder::zeroed(gpu, config, seed)?;
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut host = vec![0.0f32; model.params.layout.total];
        for pair in model.net.parameters().chunks(2) {
            let [(w_name, shape), (b_name, _)] = pair else { unreachable!("weights come with biases") };
            let (w_at, w_len) = model.entry(w_name);
            let (b_at, b_len) = model.entry(b_name);
            // PyTorch's fans: dimension 1 (resp. 0) times the receptive field.
            let receptive: usize = shape[2..].iter().product();
            let (fan_in, fan_out) = (shape[1] * receptive, shape[0] * receptive);
            let (w, b) = host.split_at_mut(b_at);
            init.fill(&mut rng, &mut w[w_at..w_at + w_len], &mut b[..b_len], fan_in, fan_out);
        }
        model.params.buffer.write(gpu, 0, &host);
        Ok(model)
    }

    /// A model with all parameters zero (to be filled from a checkpoint).
    pub fn zeroed(gpu: &Gpu, config: impl Into<ModelConfig>, seed: u64) -> Result<Autoencoder> {
        let config = config.into();
        let Lowered { mut net, code_node, decoder_start, loss, output, variational, layer_nodes } =
            lower(&config)?;
        // Each convolution runs the algorithm measured fastest for its shape on this adapter.
        for node in &mut net.nodes {
            if let Some(geometry) = node.op.conv_geometry(node.input, 1) {
                let chosen = gpu.conv_algorithm(&geometry)?;
                if let Op::Conv2d { algorithm, .. } | Op::ConvTranspose2d { algorithm, .. } = &mut node.op {
                    *algorithm = chosen;
                }
            }
        }
        let mut layout = ArenaLayout::new(gpu);
        for (name, shape) in net.parameters() {
            layout.add(name, shape.iter().product());
        }
        let params = Arena::new(gpu, "params", &layout)?;
        let grads = Arena::new(gpu, "grads", &layout)?;
        let opt_m = StorageBuffer::zeroed(gpu, "optimizer m", layout.total)?;
        let opt_v = StorageBuffer::zeroed(gpu, "optimizer v", layout.total)?;
        Ok(Autoencoder {
            config,
            net,
            code_node,
            decoder_start,
            layer_nodes,
            params,
            grads,
            opt_m,
            opt_v,
            seed,
            loss,
            output,
            variational,
            matmul: None,
        })
    }

    /// The matmul variant of each shape class this model's products run: the pinned one
    /// ([`Self::pin_matmul_policy`]), else the adapter's tuning.
    pub fn matmul_policy(&self, gpu: &Gpu) -> Result<MatmulPolicy> {
        match self.matmul {
            Some(p) => Ok(p),
            None => gpu.matmul_policy(),
        }
    }

    /// Runs the products with `policy` (a run's recorded kernels, so that a resumed run or an
    /// evaluation computes the same bits as training did). An error when this device cannot run
    /// one of its variants.
    pub fn pin_matmul_policy(&mut self, gpu: &Gpu, policy: MatmulPolicy) -> Result<()> {
        let available = crate::kernels::matmul::MatmulVariant::available(gpu);
        if let Some(c) = ShapeClass::ALL.into_iter().find(|&c| !available.contains(&policy.class(c))) {
            let v = policy.class(c);
            let why =
                crate::kernels::matmul_coop::tile(v).map(|_| crate::kernels::matmul_coop::why_not(gpu, v));
            return Err(Error::Config(format!(
                "the recorded matmul {} needs the {} variant, which this device cannot run{}",
                policy.name(),
                v.name(),
                why.map(|w| format!(" ({w})")).unwrap_or_default()
            )));
        }
        self.matmul = Some(policy);
        Ok(())
    }

    fn entry(&self, name: &str) -> (usize, usize) {
        let (_, at, len) =
            self.params.layout.entries.iter().find(|e| e.0 == name).expect("a laid-out tensor");
        (*at, *len)
    }

    /// `dense` or `conv`: the checkpoint's `aegpu.kind`.
    pub fn kind(&self) -> &'static str {
        self.config.kind()
    }

    /// A one-line architecture summary for logs and picture titles.
    pub fn describe(&self) -> String {
        self.config.describe()
    }

    /// The model's configuration as JSON (the checkpoint's `aegpu.model`).
    pub fn config_json(&self) -> Result<String> {
        self.config.to_json()
    }

    /// Values per example (C·H·W).
    pub fn input_dim(&self) -> usize {
        len3(self.net.input)
    }

    /// Columns of the code layer's output: the code, or a VAE's [μ, log σ²] (2·code_dim).
    pub fn code_width(&self) -> usize {
        len3(self.net.nodes[self.code_node].output)
    }

    /// Dimensions of the code (of z for a VAE).
    pub fn code_dim(&self) -> usize {
        if self.variational.is_some() { self.code_width() / 2 } else { self.code_width() }
    }

    /// Whether the network corrupts its input (a denoising model): its test metrics are on
    /// corrupted inputs, and [`Pass::INFER`] gives them on clean ones.
    pub fn corrupts_input(&self) -> bool {
        self.net.nodes.iter().any(|n| matches!(n.op, Op::Corrupt(_)))
    }

    /// The VAE settings; `None` for a plain autoencoder.
    pub fn variational(&self) -> Option<Variational> {
        self.variational
    }

    /// The reconstruction loss.
    pub fn loss_kind(&self) -> LossKind {
        self.loss
    }

    /// The output activation, which the loss kernel applies to the logits.
    pub fn output_activation(&self) -> Activation {
        self.output
    }

    /// Weights and biases, in f32 elements (arena padding excluded).
    pub fn parameter_count(&self) -> usize {
        self.params.layout.entries.iter().map(|e| e.2).sum()
    }

    /// The seed of the model's GPU random streams (and of its initial weights).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Bytes of GPU memory the parameters, gradients and optimiser state take.
    pub fn parameter_bytes(&self) -> usize {
        4 * 4 * self.params.layout.total
    }

    fn ctx<'a>(&'a self, acts: &'a Activations, matmul: MatmulPolicy) -> Ctx<'a> {
        Ctx { acts: &acts.tensors, params: &self.params, grads: &self.grads, matmul, seed: self.seed }
    }

    /// Activation storage for batches of `batch` examples.
    pub fn activations(&self, gpu: &Gpu, batch: usize) -> Result<Activations> {
        self.activations_stored(gpu, batch, ActivationStorage::F32)
    }

    /// Activation storage for batches of `batch` examples, the hidden ones stored as `storage` asks.
    /// f16 storage is for training steps: its f16 tensors are not for the host to read back (the
    /// input, the code, the output and every gradient stay f32).
    pub fn activations_stored(
        &self,
        gpu: &Gpu,
        batch: usize,
        storage: ActivationStorage,
    ) -> Result<Activations> {
        let half = match storage {
            ActivationStorage::F32 => Vec::new(),
            ActivationStorage::F16 => self.half_tensors(gpu)?,
        };
        let tensors = self.net.tensors_half(gpu, batch, &self.loss_scratch(batch), half)?;
        let last = self.net.nodes.last().expect("a network has layers");
        Ok(Activations { tensors, logits: last.y.clone(), code: self.net.nodes[self.code_node].y.clone() })
    }

    /// The tensors f16 storage keeps as f16: see [`crate::nn::Network::half_tensors`]; the code stays f32.
    fn half_tensors(&self, gpu: &Gpu) -> Result<Vec<String>> {
        if !gpu.has_f16() {
            return Err(Error::Config(match gpu.owned {
                true => format!(
                    "f16 activations need an adapter with shader-f16, and {} does not offer it (`aegpu \
                     info` says); use --activations f32",
                    gpu.info.name
                ),
                false => "f16 activations need the device created with Features::SHADER_F16 (when the \
                          adapter offers it); this one was not: request it, or store activations as f32"
                    .into(),
            }));
        }
        let half = self.net.half_tensors(&[&self.net.nodes[self.code_node].y]);
        if half.is_empty() {
            return Err(Error::Config(format!(
                "f16 activations store the outputs of dense layers that feed dense layers, and {} has \
                 none besides its code; use --activations f32",
                self.describe()
            )));
        }
        crate::tune::check_f16_policy(gpu, self.matmul_policy(gpu)?)?;
        Ok(half)
    }

    /// Bytes of the buffer [`Autoencoder::activations`] allocates for `batch`, without allocating it.
    pub fn activation_bytes(&self, gpu: &Gpu, batch: usize) -> Result<u64> {
        let layout = self.net.tensor_layout(gpu, batch, &self.loss_scratch(batch))?;
        Ok(layout.total.max(1) as u64 * 4)
    }

    /// The loss's scratch beside the network's tensors.
    fn loss_scratch(&self, batch: usize) -> [(&'static str, usize); 2] {
        [("loss partials", 2 * loss::partial_rows(batch * self.input_dim())), ("loss totals", 2)]
    }

    /// Input batch to logits, with the corruption and dropout `pass` asks for.
    pub fn forward(&self, acts: &Activations, matmul: impl Into<MatmulPolicy>, pass: Pass) -> Vec<Launch> {
        self.net.forward(&self.ctx(acts, matmul.into()), 0..self.net.nodes.len(), acts.input(), pass)
    }

    /// Loss totals against `target` (and dlogits when `with_grad`); `accumulate_totals` adds to them.
    pub fn loss(
        &self,
        acts: &Activations,
        target: &View,
        with_grad: bool,
        accumulate_totals: bool,
    ) -> Vec<Launch> {
        let t = &acts.tensors;
        let dlogits = t.grad(&acts.logits);
        let kl = self.variational.map(|_| KlViews {
            total: t.view("kl total"),
            partials: t.view("kl partials"),
            h: acts.code(),
            d: self.code_dim(),
        });
        loss_launches(
            &acts.totals(),
            &t.view("loss partials"),
            with_grad.then_some(&dlogits),
            &acts.logits(),
            target,
            acts.batch(),
            self.input_dim(),
            self.loss,
            self.output,
            kl,
            accumulate_totals,
        )
    }

    /// dlogits to every parameter gradient.
    pub fn backward(&self, acts: &Activations, matmul: impl Into<MatmulPolicy>) -> Vec<Launch> {
        self.net.backward(&self.ctx(acts, matmul.into()))
    }

    /// The convolution algorithm of configuration layer `i` (`None` for a layer that is not a convolution).
    pub fn conv_algorithm(&self, i: usize) -> Option<ConvAlgorithm> {
        match self.net.nodes[self.layer_nodes[i]].op {
            Op::Conv2d { algorithm, .. } | Op::ConvTranspose2d { algorithm, .. } => Some(algorithm),
            _ => None,
        }
    }

    /// Runs configuration layer `i` (a convolution) with `chosen` instead of the measured choice;
    /// activations made afterwards get the scratch it needs. Returns false for other layers.
    pub fn set_conv_algorithm(&mut self, i: usize, chosen: ConvAlgorithm) -> bool {
        match &mut self.net.nodes[self.layer_nodes[i]].op {
            Op::Conv2d { algorithm, .. } | Op::ConvTranspose2d { algorithm, .. } => {
                *algorithm = chosen;
                true
            }
            _ => false,
        }
    }

    /// The convolution algorithm of every configuration layer (`None` for the other layers): what
    /// a run records so that its resume runs the same kernels, and so computes the same bits.
    pub fn conv_algorithms(&self) -> Vec<Option<ConvAlgorithm>> {
        (0..self.layer_nodes.len()).map(|i| self.conv_algorithm(i)).collect()
    }

    /// Runs the convolutions with the algorithms [`Self::conv_algorithms`] recorded.
    pub fn set_conv_algorithms(&mut self, chosen: &[Option<ConvAlgorithm>]) -> Result<()> {
        let fits = chosen.len() == self.layer_nodes.len()
            && chosen.iter().enumerate().all(|(i, c)| c.is_some() == self.conv_algorithm(i).is_some());
        if !fits {
            return Err(Error::Shape(format!(
                "{} recorded convolution algorithms do not fit this model's {} layers",
                chosen.len(),
                self.layer_nodes.len()
            )));
        }
        for (i, c) in chosen.iter().enumerate() {
            if let Some(c) = c {
                self.set_conv_algorithm(i, *c);
            }
        }
        Ok(())
    }

    /// The output of configuration layer `i` (before any dropout that follows it), `[batch, C·H·W]`.
    pub fn layer_output(&self, acts: &Activations, i: usize) -> View {
        acts.tensors.view(&self.net.nodes[self.layer_nodes[i]].y)
    }

    /// The input batch to the code layer's output (a VAE's `[μ, log σ²]`), with no corruption and
    /// no dropout: what the encode and compress commands run.
    pub fn encoder(&self, acts: &Activations, matmul: impl Into<MatmulPolicy>) -> Vec<Launch> {
        self.net.forward(&self.ctx(acts, matmul.into()), 0..self.code_node + 1, acts.input(), Pass::INFER)
    }

    /// What the decoder reads (the code, or z for a VAE); the caller fills it before [`Self::decoder`].
    pub fn code_input(&self, acts: &Activations) -> View {
        acts.z().unwrap_or_else(|| acts.code())
    }

    /// The code input to logits.
    pub fn decoder(&self, acts: &Activations, matmul: impl Into<MatmulPolicy>) -> Vec<Launch> {
        let range = self.decoder_start..self.net.nodes.len();
        self.net.forward(&self.ctx(acts, matmul.into()), range, self.code_input(acts), Pass::INFER)
    }

    /// The fused optimiser update over the whole parameter arena, for step `t`.
    pub fn update(&self, opt: &Optimizer, t: u64) -> Launch {
        let (m, v) = (View::whole(&self.opt_m), View::whole(&self.opt_v));
        optimizer_step(opt, &self.params.all(), &self.grads.all(), &m, &v, self.params.layout.total, t)
    }

    /// Every parameter tensor with its checkpoint name and PyTorch shape.
    pub fn export(&self, gpu: &Gpu) -> Result<Vec<NamedTensor>> {
        Ok(self.tensors_of(&self.params.buffer.read_all_f32(gpu)?))
    }

    /// [`Autoencoder::export`] of a host copy `all` of the parameter arena (e.g. averaged weights).
    pub fn tensors_of(&self, all: &[f32]) -> Vec<NamedTensor> {
        self.net
            .parameters()
            .into_iter()
            .map(|(name, shape)| {
                let (at, len) = self.entry(&name);
                (name, shape, all[at..at + len].to_vec())
            })
            .collect()
    }

    /// Loads parameters by name, strictly: the tensors must be exactly the model's parameters with
    /// their shapes (an [`Error::CheckpointMismatch`] naming `source` and the tensor otherwise).
    pub fn import(&self, gpu: &Gpu, tensors: &[NamedTensor], source: &std::path::Path) -> Result<()> {
        let found: Vec<(String, Vec<usize>)> =
            tensors.iter().map(|(n, s, _)| (n.clone(), s.clone())).collect();
        super::strict::check_tensors(source, &self.net.parameters(), &found)?;
        for (name, offset, len) in &self.params.layout.entries {
            let (_, shape, values) = tensors.iter().find(|(n, _, _)| n == name).expect("checked above");
            if values.len() != *len {
                return Err(Error::Shape(format!(
                    "tensor '{name}' of shape {shape:?} comes with {} values, expected {len}",
                    values.len()
                )));
            }
            self.params.buffer.write(gpu, *offset, values);
        }
        Ok(())
    }

    /// Kernel choices worth logging (the algorithm of each conv layer); empty without convolutions.
    pub fn kernel_choices(&self) -> String {
        let names: Vec<String> =
            self.net.conv_algorithms().iter().map(|a| format!("{a:?}").to_lowercase()).collect();
        if names.is_empty() {
            return String::new();
        }
        format!("conv layers (measured per shape): {}", names.join(", "))
    }

    /// Mean ‖J_f(x)‖_F over `codes` where the model has it in closed form: a one-layer sigmoid
    /// encoder (a Linear reading the input, possibly corrupted).
    pub fn jacobian_fro(&self, gpu: &Gpu, codes: &[f32], n: usize) -> Result<Option<f64>> {
        let code = &self.net.nodes[self.code_node];
        let reads_input = code.x == "x" || code.x == "x noisy";
        if self.variational.is_some()
            || !reads_input
            || !matches!(code.op, Op::Linear { act: Activation::Sigmoid, .. })
        {
            return Ok(None);
        }
        // ‖J‖²_F = Σ_j (h_j (1 - h_j))² ‖W_j‖², the closed form the contractive penalty uses.
        let d = self.code_dim();
        let name = format!("{}.weight", code.params.as_deref().expect("a Linear has parameters"));
        let w = self.params.named(&name).expect("the code layer's weight").read(gpu)?;
        let rows = crate::cpu::penalty::contractive_rows(&w, d, self.input_dim());
        let jf2 = crate::cpu::penalty::contractive_h(None, codes, &rows, n, d, 0.0);
        Ok(Some(jf2.iter().map(|v| v.sqrt()).sum::<f64>() / n as f64))
    }
}

/// Activations for at most `batch` examples, halving the batch while they exceed the adapter's buffer
/// limits (a conv model's feature maps for 1000 images can): `(batch used, activations)`.
pub fn activations_fitting(model: &Autoencoder, gpu: &Gpu, mut batch: usize) -> Result<(usize, Activations)> {
    loop {
        match model.activations(gpu, batch) {
            Ok(acts) => return Ok((batch, acts)),
            Err(Error::LimitExceeded { .. }) if batch > 1 => batch = batch.div_ceil(2),
            Err(e) => return Err(e),
        }
    }
}
