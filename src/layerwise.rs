//! Greedy layer-wise pre-training of a deep dense autoencoder (Hinton & Salakhutdinov 2006 with
//! autoencoders in place of RBMs, as in Bengio et al. 2007; with masking noise, the stacked
//! denoising autoencoders of Vincent et al. 2010).
//!
//! Encoder layer k and the decoder layer that mirrors it form a one-hidden-layer autoencoder that
//! is trained to reconstruct the input of layer k: the image for k = 0 (with the model's own output
//! activation and loss), else the codes of layers 0..k, computed on the fly by the already trained
//! layers below (frozen; MSE on a linear output, or a sigmoid one for sigmoid codes). Then the
//! next layer, and so on up to the code; the caller fine-tunes the stacked model end to end.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Launch, StorageBuffer, View};
use crate::gpu_data::GpuDataset;
use crate::kernels::Activation;
use crate::kernels::loss::{LossKind, partial_rows};
use crate::kernels::matmul_policy::MatmulPolicy;
use crate::kernels::optimizer::{Optimizer, optimizer_step};
use crate::models::{Autoencoder, loss_launches};
use crate::nn::{Ctx, Network, Node, Noise, Op, Pass, Tensors, len3, linear};
use crate::runner::{Arena, ArenaLayout, Plan};
use crate::steps::StepRunner;

/// How the layers are pre-trained.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerwiseSpec {
    /// Epochs over the training set per layer.
    pub epochs: usize,
    /// Masking noise on each layer's input (stacked denoising autoencoders): the fraction zeroed.
    pub masking: Option<f32>,
    /// Examples per step.
    pub batch: usize,
    /// Optimiser of every stage (fresh state per layer).
    pub optimizer: Optimizer,
    /// Seeds the masking noise (the same seed for every layer) and, mixed with the layer index, each
    /// layer's example order.
    pub seed: u64,
    /// Steps recorded into one command buffer (see `crate::steps`). Not recorded with the run:
    /// every value gives the same bits.
    #[serde(skip, default = "default_steps_per_submit")]
    pub steps_per_submit: usize,
}

fn default_steps_per_submit() -> usize {
    crate::train::DEFAULT_STEPS_PER_SUBMIT
}

/// One epoch of one layer's pre-training.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerEpoch {
    /// The encoder layer being pre-trained, from 0 (the one reading the image).
    pub layer: usize,
    /// `784-1000-784` etc.
    pub autoencoder: String,
    /// The epoch of this layer's pre-training, counted from 1.
    pub epoch: usize,
    /// Mean training loss per value of the layer's input (the model's loss for the first layer, MSE above).
    pub train_loss: f64,
    /// The loss the stage trains with.
    pub loss: LossKind,
    /// Wall-clock seconds of the epoch (its steps and the loss readback).
    pub epoch_s: f64,
}

/// The (encoder, mirrored decoder) node pairs of a dense, non-variational autoencoder, bottom up.
pub fn layer_pairs(model: &Autoencoder) -> Result<Vec<(usize, usize)>> {
    let refuse = |why: &str| {
        Err(Error::Config(format!(
            "--pretrain layerwise needs a dense autoencoder with a mirrored decoder ({why}); {} is not one",
            model.describe()
        )))
    };
    if model.kind() != "dense" || model.variational().is_some() {
        return refuse("not a VAE or conv model");
    }
    let linear = |range: std::ops::Range<usize>| -> Vec<usize> {
        range.filter(|&i| matches!(model.net.nodes[i].op, Op::Linear { .. })).collect()
    };
    let enc = linear(0..model.code_node + 1);
    let dec = linear(model.decoder_start..model.net.nodes.len());
    if enc.len() != dec.len() || enc.is_empty() {
        return refuse("as many decoder layers as encoder layers");
    }
    let pairs: Vec<(usize, usize)> = enc.iter().zip(dec.iter().rev()).map(|(&e, &d)| (e, d)).collect();
    for &(e, d) in &pairs {
        let (e, d) = (&model.net.nodes[e], &model.net.nodes[d]);
        if e.input != d.output || e.output != d.input {
            return refuse("each decoder layer the mirror of an encoder layer");
        }
    }
    Ok(pairs)
}

/// Pre-trains every encoder layer of `model` (and its mirror) in turn on `train`, writing the
/// weights into the model; `on_epoch` sees each layer's epochs as they finish.
pub fn pretrain(
    gpu: &Gpu,
    model: &Autoencoder,
    train: &GpuDataset,
    spec: &LayerwiseSpec,
    mut on_epoch: impl FnMut(&LayerEpoch) -> Result<()>,
) -> Result<Vec<LayerEpoch>> {
    if spec.epochs == 0 {
        return Err(Error::Config("layer-wise pre-training needs at least 1 epoch per layer".into()));
    }
    if let Some(p) = spec.masking {
        Noise::Masking(p).validate()?;
    }
    let pairs = layer_pairs(model)?;
    let mut history = Vec::new();
    for k in 0..pairs.len() {
        let stage = LayerStage::new(gpu, model, k, spec.masking)?;
        let acts = stage.tensors(gpu, spec.batch)?;
        let feed = train.feed(gpu, &acts.view("x"), spec.batch)?;
        let mut launches = feed.launches().to_vec();
        launches.extend(stage.launches(&acts, spec.seed));
        launches.push(stage.update(&spec.optimizer));
        let plan = Plan::new(gpu, "layer-wise pre-training step", &launches)?;
        let (enc, dim) = (&stage.net.nodes[stage.net.nodes.len() - 2], len3(stage.net.output()));
        let per_epoch = train.n / spec.batch.max(1);
        let seed = spec.seed ^ (k as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407);
        let shape = (train.n, spec.batch, spec.epochs * per_epoch, seed);
        let mut runner = StepRunner::new(gpu, plan, vec![feed], acts.view("loss totals"), shape)?;
        runner.set_steps_per_submit(spec.steps_per_submit)?;
        for epoch in 1..=spec.epochs {
            let start = std::time::Instant::now();
            let words = runner.run(per_epoch)?;
            let slot = stage.loss.slot();
            let sum: f64 = words.chunks(2).map(|w| w[slot] as f64).sum();
            let train_loss = sum / (per_epoch * spec.batch * dim) as f64;
            if !train_loss.is_finite() {
                return Err(Error::Diverged {
                    epoch,
                    step: per_epoch,
                    what: format!("layer {k}'s pre-training loss"),
                    loss: train_loss as f32,
                    lr: spec.optimizer.lr(),
                });
            }
            let e = LayerEpoch {
                layer: k,
                autoencoder: format!("{}-{}-{}", len3(enc.input), len3(enc.output), dim),
                epoch,
                train_loss,
                loss: stage.loss,
                epoch_s: start.elapsed().as_secs_f64(),
            };
            on_epoch(&e)?;
            history.push(e);
        }
        stage.write_back(gpu, model)?;
    }
    Ok(history)
}

/// The network that pre-trains layer k: the trained layers below (frozen), optional masking, layer
/// k and its mirror with a loss against layer k's input. Its parameters are copies of the model's.
pub struct LayerStage {
    /// The frozen layers 0..k, the masking if any, layer k and its mirror (with identity activation).
    pub net: Network,
    /// Copies of the model's parameters of those layers, by checkpoint name.
    pub params: Arena,
    /// Their gradients (only layer k's and its mirror's are written).
    pub grads: Arena,
    opt_m: StorageBuffer,
    opt_v: StorageBuffer,
    /// The tensor layer k reads (the reconstruction target); `None`: the image `x`.
    target: Option<String>,
    /// The loss against layer k's input: the model's for k = 0, else MSE.
    pub loss: LossKind,
    /// The mirror's output activation, applied by the loss kernel: the model's for k = 0, else
    /// sigmoid when layer k - 1's is sigmoid and identity otherwise.
    pub output: Activation,
    /// The model's matmul policy (the one its run records).
    matmul: MatmulPolicy,
}

impl LayerStage {
    /// The stage of encoder layer `k` of `model`, with masking noise of this fraction if given.
    pub fn new(gpu: &Gpu, model: &Autoencoder, k: usize, masking: Option<f32>) -> Result<LayerStage> {
        let pairs = layer_pairs(model)?;
        if k >= pairs.len() {
            return Err(Error::Config(format!("layer {k}: the encoder has {} layers", pairs.len())));
        }
        let node = |i: usize| -> &Node { &model.net.nodes[i] };
        let mut ops: Vec<(Op, Option<String>)> =
            pairs[..k].iter().map(|&(e, _)| (node(e).op, node(e).params.clone())).collect();
        if let Some(p) = masking {
            ops.push((Op::Corrupt(Noise::Masking(p)), None));
        }
        let (e, d) = pairs[k];
        ops.push((node(e).op, node(e).params.clone()));
        let Op::Linear { out, .. } = node(d).op else { unreachable!("paired layers are Linear") };
        ops.push((Op::Linear { out, act: Activation::Identity }, node(d).params.clone()));
        let (loss, output) = match k {
            0 => (model.loss_kind(), model.output_activation()),
            _ => match node(pairs[k - 1].0).op.act() {
                Some(Activation::Sigmoid) => (LossKind::Mse, Activation::Sigmoid),
                _ => (LossKind::Mse, Activation::Identity),
            },
        };
        let net = Network::new(model.net.input, ops)?;
        // The target is what layer k reads before any masking: the output of layer k - 1.
        let target = (k > 0).then(|| net.nodes[k - 1].y.clone());
        let mut layout = ArenaLayout::new(gpu);
        for (name, shape) in net.parameters() {
            layout.add(name, shape.iter().product());
        }
        let params = Arena::new(gpu, "pre-training params", &layout)?;
        let all = model.params.buffer.read_all_f32(gpu)?;
        for (name, at, len) in &layout.entries {
            let v = model.params.named(name).expect("the model's own tensor");
            params.buffer.write(gpu, *at, &all[v.offset..v.offset + len]);
        }
        Ok(LayerStage {
            grads: Arena::new(gpu, "pre-training grads", &layout)?,
            opt_m: StorageBuffer::zeroed(gpu, "pre-training m", layout.total)?,
            opt_v: StorageBuffer::zeroed(gpu, "pre-training v", layout.total)?,
            net,
            params,
            target,
            loss,
            output,
            matmul: model.matmul_policy(gpu)?,
        })
    }

    /// The stage's tensors for batches of `batch`, with its loss totals (`loss totals`).
    pub fn tensors(&self, gpu: &Gpu, batch: usize) -> Result<Tensors> {
        let dim = len3(self.net.output());
        self.net.tensors(gpu, batch, &[("loss partials", 2 * partial_rows(batch * dim)), ("loss totals", 2)])
    }

    /// Forward from `x`, the loss against layer k's input (into `loss totals`), and the backward
    /// through the two trained layers only (the frozen layers below get no gradient).
    pub fn launches(&self, acts: &Tensors, seed: u64) -> Vec<Launch> {
        let ctx = Ctx { acts, params: &self.params, grads: &self.grads, matmul: self.matmul, seed };
        let n = self.net.nodes.len();
        let mut launches = self.net.forward(&ctx, 0..n, acts.view("x"), Pass::TRAIN);
        let (enc, dec) = (&self.net.nodes[n - 2], &self.net.nodes[n - 1]);
        let target = self.target.as_deref().map_or_else(|| acts.view("x"), |t| acts.view(t));
        launches.extend(loss_launches(
            &acts.view("loss totals"),
            &acts.view("loss partials"),
            Some(&acts.grad(&dec.y)),
            &acts.view(&dec.y),
            &target,
            acts.batch,
            len3(dec.output),
            self.loss,
            self.output,
            None,
            false,
        ));
        let (dz, dh) = (acts.grad(&dec.y), acts.grad(&enc.y));
        launches.extend(linear::backward(&ctx, dec, Some(&dh), &dz, &acts.view(&dec.x), &acts.view(&dec.y)));
        launches.extend(linear::backward(&ctx, enc, None, &dh, &acts.view(&enc.x), &acts.view(&enc.y)));
        launches
    }

    /// The update of the two trained layers, whose parameters are the arena's last four tensors.
    pub fn update(&self, opt: &Optimizer) -> Launch {
        let entries = &self.params.layout.entries;
        let at = entries[entries.len() - 4].1;
        let len = self.params.layout.total - at;
        let view = |b: &StorageBuffer| View { buffer: b.buffer.clone(), offset: at, len };
        optimizer_step(
            opt,
            &view(&self.params.buffer),
            &view(&self.grads.buffer),
            &view(&self.opt_m),
            &view(&self.opt_v),
            len,
            1,
        )
    }

    /// Copies the two trained layers into the model.
    pub fn write_back(&self, gpu: &Gpu, model: &Autoencoder) -> Result<()> {
        let all = self.params.buffer.read_all_f32(gpu)?;
        let entries = &self.params.layout.entries;
        for (name, at, len) in &entries[entries.len() - 4..] {
            let v = model.params.named(name).expect("the model's own tensor");
            model.params.buffer.write(gpu, v.offset, &all[*at..at + len]);
        }
        Ok(())
    }
}

/// `layerwise` or `layerwise:EPOCHS` (1 epoch per layer by default).
pub fn parse_spec(s: &str) -> Result<usize> {
    let bad =
        || Error::Config(format!("--pretrain '{s}': use layerwise or layerwise:EPOCHS (epochs per layer)"));
    match s.split_once(':') {
        None if s == "layerwise" => Ok(1),
        Some(("layerwise", e)) => e.trim().parse::<usize>().ok().filter(|&e| e > 0).ok_or_else(bad),
        _ => Err(bad()),
    }
}
