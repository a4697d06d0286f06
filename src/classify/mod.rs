//! Classifiers from autoencoders: the encoder of a trained model (dense or conv; a VAE's μ, the
//! first d rows of its code layer) with a softmax layer on its code, trained on labelled examples
//! end to end, or with the encoder frozen (a linear probe), or from random weights (the baseline).
//!
//! The classifier is one [`Network`] like every model: the encoder's layers (without the
//! autoencoder's own input corruption, dropout, penalty and sampling), optional input corruption and
//! dropout of its own, and a `Linear(code, classes)` named `classifier`. Its loss is the fused softmax
//! + cross-entropy kernel, which also writes each row's argmax for the error and the confusion matrix.

pub mod labels;
pub mod train;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Launch, StorageBuffer, View};
use crate::kernels::Activation;
use crate::kernels::matmul_policy::MatmulPolicy;
use crate::kernels::optimizer::{Optimizer, optimizer_step};
use crate::kernels::softmax_ce::{Mixed, softmax_ce_totals};
use crate::models::{Autoencoder, Init, NamedTensor};
use crate::nn::{Ctx, Network, Noise, Op, Pass, Tensors, len3, linear};
use crate::runner::{Arena, ArenaLayout};
use rand::SeedableRng;

/// The checkpoint prefix of the softmax layer's parameters (`classifier.weight`, `classifier.bias`).
pub const HEAD: &str = "classifier";

/// How a classifier is built on top of an encoder.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassifierOptions {
    /// Outputs of the softmax layer.
    pub classes: usize,
    /// Train only the softmax layer (a linear probe of the encoder's code).
    pub freeze: bool,
    /// Inverted dropout after every layer with parameters but the softmax layer, in training only.
    pub dropout: Option<f32>,
    /// Corruption of the input images in training (an augmentation), as for denoising models.
    pub noise: Option<Noise>,
    /// Read the output of the encoder's first `depth` layers with parameters (with the pooling or
    /// activation after them) instead of the code: a wider representation from lower down.
    #[serde(default)]
    pub depth: Option<usize>,
}

/// Where the encoder's weights come from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Start {
    /// The autoencoder's trained weights.
    Pretrained,
    /// The same layers from random weights (the baseline).
    Scratch(Init),
}

/// A classifier on the GPU: network, parameters, gradients and optimiser state.
pub struct Classifier {
    /// The encoder's layers (to `options.depth`), its own noise and dropout, then the softmax layer.
    pub net: Network,
    /// How it was built (classes, freeze, dropout, noise, depth).
    pub options: ClassifierOptions,
    /// Every weight and bias, f32, by checkpoint name (the encoder's, then `classifier.*`).
    pub params: Arena,
    /// The parameters' gradients, with `params`' layout.
    pub grads: Arena,
    /// First moment (Adam) or momentum (SGD), one word per word of `params`.
    pub opt_m: StorageBuffer,
    /// Adam's second moment, one word per word of `params` (unused by SGD).
    pub opt_v: StorageBuffer,
    /// Seeds the GPU noise (corruption, dropout) and the softmax layer's initial weights.
    pub seed: u64,
    /// The matmul variant of each shape class: the encoder's (the one its checkpoint recorded, when
    /// it was restored from one), recorded in the classifier's checkpoint.
    pub matmul: MatmulPolicy,
}

/// A batch's tensors, with the views training and evaluation read.
pub struct ClassifierActs {
    /// Every named tensor of the batch (values, gradients, labels, loss scratch).
    pub tensors: Tensors,
    logits: String,
}

impl ClassifierActs {
    /// Rows per batch the tensors are sized for.
    pub fn batch(&self) -> usize {
        self.tensors.batch
    }

    /// The input images `[batch, C·H·W]`.
    pub fn input(&self) -> View {
        self.tensors.view("x")
    }

    /// The class index of every row, as f32 `[batch]`.
    pub fn labels(&self) -> View {
        self.tensors.view("labels")
    }

    /// The softmax layer's output before the softmax, `[batch, classes]`.
    pub fn logits(&self) -> View {
        self.tensors.view(&self.logits)
    }

    /// (Σ cross-entropy, Σ correct) of the last loss pass.
    pub fn totals(&self) -> View {
        self.tensors.view("ce totals")
    }

    /// The predicted class of every row, as f32 `[batch]`.
    pub fn predictions(&self) -> View {
        self.tensors.view("predictions")
    }
}

impl Classifier {
    /// The encoder of `ae` with a softmax layer of `options.classes` outputs; encoder weights as
    /// `start` says, softmax weights Glorot-uniform from `seed` (the same for both starts).
    pub fn from_encoder(
        gpu: &Gpu,
        ae: &Autoencoder,
        options: ClassifierOptions,
        start: Start,
        seed: u64,
    ) -> Result<Classifier> {
        if options.classes < 2 {
            return Err(Error::Config(format!(
                "a classifier needs at least 2 classes, the data have {}",
                options.classes
            )));
        }
        if let Some(p) = options.dropout
            && !(0.0..1.0).contains(&p)
        {
            return Err(Error::Config(format!("dropout probability {p} must lie in [0, 1)")));
        }
        if let Some(noise) = options.noise {
            noise.validate()?;
        }
        let vae = ae.variational().is_some();
        let mut ops: Vec<(Op, Option<String>)> = Vec::new();
        if let Some(noise) = options.noise {
            ops.push((Op::Corrupt(noise), None));
        }
        let encoder = &ae.net.nodes[..=ae.code_node];
        let layers = encoder.iter().filter(|n| n.op.has_params()).count();
        let depth = options.depth.unwrap_or(layers);
        if depth == 0 || depth > layers {
            return Err(Error::Config(format!(
                "the encoder has {layers} layers with parameters; a depth of {depth} is not one of 1..={layers}"
            )));
        }
        let mut taken = 0;
        for (i, node) in encoder.iter().enumerate() {
            if node.op.has_params() {
                if taken == depth {
                    break;
                }
                taken += 1;
            }
            let op = match node.op {
                // The autoencoder's own training noise and penalties are not the classifier's.
                Op::Corrupt(_) | Op::Dropout(_) | Op::Penalty(_) => continue,
                // A VAE's code layer gives [μ, log σ²]: keep μ.
                Op::Linear { out, act } if vae && i == ae.code_node => Op::Linear { out: out / 2, act },
                op => op,
            };
            ops.push((op, node.params.clone()));
            if let (Some(p), true) = (options.dropout, op.has_params()) {
                ops.push((Op::Dropout(p), None));
            }
        }
        ops.push((Op::Linear { out: options.classes, act: Activation::Identity }, Some(HEAD.into())));
        let net = Network::new(ae.net.input, ops)?;
        let mut layout = ArenaLayout::new(gpu);
        for (name, shape) in net.parameters() {
            layout.add(name, shape.iter().product());
        }
        let model = Classifier {
            params: Arena::new(gpu, "classifier params", &layout)?,
            grads: Arena::new(gpu, "classifier grads", &layout)?,
            opt_m: StorageBuffer::zeroed(gpu, "classifier optimizer m", layout.total)?,
            opt_v: StorageBuffer::zeroed(gpu, "classifier optimizer v", layout.total)?,
            net,
            options,
            seed,
            matmul: ae.matmul_policy(gpu)?,
        };
        let mut host = vec![0.0f32; layout.total];
        let trained = match start {
            Start::Pretrained => ae.export(gpu)?,
            Start::Scratch(_) => Vec::new(),
        };
        // Separate streams, so the softmax layer starts the same whether the encoder is trained or not.
        let mut encoder_rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut head_rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5EED_C1A5_5F1E_4D00);
        for pair in model.net.parameters().chunks(2) {
            let [(w_name, shape), (b_name, _)] = pair else { unreachable!("weights come with biases") };
            let (w_at, w_len) = model.entry(w_name);
            let (b_at, b_len) = model.entry(b_name);
            let head = w_name.starts_with(HEAD);
            match start {
                Start::Pretrained if !head => {
                    for (name, at, len) in [(w_name, w_at, w_len), (b_name, b_at, b_len)] {
                        host[at..at + len].copy_from_slice(prefix(&trained, name, len)?);
                    }
                }
                _ => {
                    let init = match start {
                        Start::Scratch(init) if !head => init,
                        _ => Init::Glorot,
                    };
                    let rng = if head { &mut head_rng } else { &mut encoder_rng };
                    let receptive: usize = shape[2..].iter().product();
                    let (fan_in, fan_out) = (shape[1] * receptive, shape[0] * receptive);
                    let (w, b) = host.split_at_mut(b_at);
                    init.fill(rng, &mut w[w_at..w_at + w_len], &mut b[..b_len], fan_in, fan_out);
                }
            }
        }
        model.params.buffer.write(gpu, 0, &host);
        Ok(model)
    }

    fn entry(&self, name: &str) -> (usize, usize) {
        let (_, at, len) =
            self.params.layout.entries.iter().find(|e| e.0 == name).expect("a laid-out tensor");
        (*at, *len)
    }

    /// Outputs of the softmax layer.
    pub fn classes(&self) -> usize {
        self.options.classes
    }

    /// Values per input image: C·H·W.
    pub fn input_dim(&self) -> usize {
        len3(self.net.input)
    }

    /// Weights and biases, in f32 elements (arena padding excluded), frozen ones included.
    pub fn parameter_count(&self) -> usize {
        self.params.layout.entries.iter().map(|e| e.2).sum()
    }

    /// Parameters the optimiser updates: the softmax layer's when frozen, else all.
    pub fn trainable_count(&self) -> usize {
        self.params
            .layout
            .entries
            .iter()
            .filter(|e| !self.options.freeze || e.0.starts_with(HEAD))
            .map(|e| e.2)
            .sum()
    }

    /// The layers in one line: `784 -> 256 relu -> 64 -> [dropout 0.2] -> 10 softmax`.
    pub fn describe(&self) -> String {
        let [c, h, w] = self.net.input;
        let mut parts = vec![if h * w == 1 { format!("{c}") } else { format!("{c}x{h}x{w}") }];
        for node in &self.net.nodes {
            let [c, h, w] = node.output;
            let shape = if h * w == 1 { format!("{c}") } else { format!("{c}x{h}x{w}") };
            parts.push(match node.op {
                Op::Linear { .. } if node.params.as_deref() == Some(HEAD) => format!("{shape} softmax"),
                Op::Linear { act, .. } => format!("{shape}{}", act_suffix(act)),
                Op::Conv2d { act, stride, .. } => format!("conv s{stride} {shape}{}", act_suffix(act)),
                Op::ConvTranspose2d { act, .. } => format!("convt {shape}{}", act_suffix(act)),
                Op::MaxPool2d => format!("maxpool {shape}"),
                Op::Dropout(p) => format!("dropout {p}"),
                Op::Corrupt(n) => format!("corrupt {n:?}"),
                other => format!("{other:?}"),
            });
        }
        parts.join(" -> ")
    }

    fn ctx<'a>(&'a self, acts: &'a ClassifierActs, matmul: MatmulPolicy) -> Ctx<'a> {
        Ctx { acts: &acts.tensors, params: &self.params, grads: &self.grads, matmul, seed: self.seed }
    }

    /// Tensors for batches of `batch` examples.
    pub fn activations(&self, gpu: &Gpu, batch: usize) -> Result<ClassifierActs> {
        let extra = [("labels", batch), ("ce rows", 2 * batch), ("ce totals", 2), ("predictions", batch)];
        let tensors = self.net.tensors(gpu, batch, &extra)?;
        let logits = self.net.nodes.last().expect("a classifier has layers").y.clone();
        Ok(ClassifierActs { tensors, logits })
    }

    /// Input images to logits; `Pass::TRAIN` applies the classifier's corruption and dropout.
    pub fn forward(&self, acts: &ClassifierActs, matmul: impl Into<MatmulPolicy>, pass: Pass) -> Vec<Launch> {
        self.net.forward(&self.ctx(acts, matmul.into()), 0..self.net.nodes.len(), acts.input(), pass)
    }

    /// Mean cross-entropy over the batch (the gradient into dlogits when `with_grad`), the number
    /// correct and the predictions; `accumulate` adds to the totals (evaluation over many batches).
    /// With `mixed`, only the first `labelled_rows` rows are labelled (their mean is the loss) and
    /// the others are trained on pseudo-labels.
    pub fn loss(
        &self,
        acts: &ClassifierActs,
        with_grad: bool,
        accumulate: bool,
        mixed: Option<Mixed>,
    ) -> Vec<Launch> {
        let t = &acts.tensors;
        let dlogits = t.grad(&acts.logits);
        let n = mixed.as_ref().map_or(acts.batch(), |m| m.labelled_rows);
        softmax_ce_totals(
            &acts.totals(),
            &t.view("ce rows"),
            &acts.predictions(),
            with_grad.then_some(&dlogits),
            &acts.logits(),
            &acts.labels(),
            acts.batch(),
            self.classes(),
            1.0 / n as f32,
            accumulate,
            mixed,
        )
        .to_vec()
    }

    /// dlogits to the gradients of what is trained: every layer, or only the softmax layer when frozen.
    pub fn backward(&self, acts: &ClassifierActs, matmul: impl Into<MatmulPolicy>) -> Vec<Launch> {
        let ctx = self.ctx(acts, matmul.into());
        if !self.options.freeze {
            return self.net.backward(&ctx);
        }
        let head = self.net.nodes.last().expect("a classifier has layers");
        let (dy, x, y) = (acts.tensors.grad(&head.y), acts.tensors.view(&head.x), acts.tensors.view(&head.y));
        linear::backward(&ctx, head, None, &dy, &x, &y)
    }

    /// The optimiser step `t` over the trained parameters (the softmax layer's sit last in the
    /// arena, so a frozen encoder is a prefix the update skips).
    pub fn update(&self, opt: &Optimizer, t: u64) -> Launch {
        let at = if self.options.freeze { self.entry(&format!("{HEAD}.weight")).0 } else { 0 };
        let len = self.params.layout.total - at;
        let view = |b: &StorageBuffer| View { buffer: b.buffer.clone(), offset: at, len };
        optimizer_step(
            opt,
            &view(&self.params.buffer),
            &view(&self.grads.buffer),
            &view(&self.opt_m),
            &view(&self.opt_v),
            len,
            t,
        )
    }

    /// Every parameter tensor with its checkpoint name and PyTorch shape.
    pub fn export(&self, gpu: &Gpu) -> Result<Vec<NamedTensor>> {
        let all = self.params.buffer.read_all_f32(gpu)?;
        Ok(self
            .net
            .parameters()
            .into_iter()
            .map(|(name, shape)| {
                let (at, len) = self.entry(&name);
                (name, shape, all[at..at + len].to_vec())
            })
            .collect())
    }

    /// Writes the parameters as safetensors (PyTorch layouts and names) with `metadata`, atomically.
    pub fn save(&self, gpu: &Gpu, metadata: &[(&str, String)], path: &std::path::Path) -> Result<()> {
        let bad = |e: &dyn std::fmt::Display| Error::Config(format!("{}: {e}", path.display()));
        let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .export(gpu)?
            .into_iter()
            .map(|(name, shape, values)| (name, shape, bytemuck::cast_slice(&values).to_vec()))
            .collect();
        let views = tensors
            .iter()
            .map(|(name, shape, data)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| bad(&e))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut info: std::collections::HashMap<String, String> =
            metadata.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        info.insert("aegpu.kind".into(), "classifier".into());
        info.insert(crate::checkpoint::keys::MATMUL.into(), self.matmul.name());
        info.insert("format".into(), "pt".into());
        let bytes = safetensors::serialize(views, Some(info)).map_err(|e| bad(&e))?;
        crate::atomic_file::write_atomic(path, &bytes)
    }
}

fn act_suffix(act: Activation) -> String {
    match act {
        Activation::Identity => String::new(),
        a => format!(" {}", a.torch_name().to_lowercase()),
    }
}

/// The first `len` values of the trained tensor `name` (all of them, except for a VAE's code layer,
/// whose μ rows come first).
fn prefix<'a>(trained: &'a [NamedTensor], name: &str, len: usize) -> Result<&'a [f32]> {
    let (_, _, values) = trained
        .iter()
        .find(|t| t.0 == name)
        .ok_or_else(|| Error::Shape(format!("the autoencoder has no tensor '{name}'")))?;
    values.get(..len).ok_or_else(|| {
        Error::Shape(format!(
            "the autoencoder's '{name}' has {} values, the classifier needs {len}",
            values.len()
        ))
    })
}
