//! Recirculation (Hinton & McClelland, "Learning representations by recirculation", 1988): an
//! autoencoder with one hidden layer trained without back-propagated errors. Activity goes round
//! the loop visible -> hidden -> visible -> hidden:
//!
//! ```text
//! t = 0  v0 = x
//! t = 1  h1 = σ(W_e v0 + b_e)
//! t = 2  v2 = λ·v0 + (1 − λ)·σ(W_d h1 + b_d)      λ: the visible units' regression
//! t = 3  h3 = σ(W_e v2 + b_e)
//! ΔW_d = ε (v0 − v2) h1ᵀ,  Δb_d = ε (v0 − v2)    (the decoder: a delta rule on the reconstruction)
//! ΔW_e = ε (h1 − h3) v2ᵀ,  Δb_e = ε (h1 − h3)    (the encoder: the change of the hidden activity)
//! ```
//!
//! Each weight change uses only the activities at the two ends of the weight. The step hands the
//! changes, sign flipped and averaged over the batch, to the optimiser as its "gradient" (SGD with
//! lr ε is the paper's rule; Adam rescales it per weight). The model is an ordinary dense
//! autoencoder `D-H-D` with a sigmoid code and output, so it is evaluated and saved like any other.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Launch};
use crate::gpu_data::GpuDataset;
use crate::kernels::Activation;
use crate::kernels::loss::{loss_forward_backward, partial_rows};
use crate::kernels::matmul::{Half, linear_backward_weight, linear_forward};
use crate::kernels::recirculation::{recirc_diff, recirc_mix};
use crate::kernels::reduce::bias_backward;
use crate::models::Autoencoder;
use crate::nn::{Op, Tensors, len3};
use crate::runner::Plan;
use crate::steps::StepRunner;
use crate::train::TrainConfig;

/// The regression of the visible units the paper used.
pub const DEFAULT_REGRESSION: f32 = 0.75;

/// Checks that `model` is what recirculation trains: `D -> H` sigmoid, `H -> D` sigmoid output, with
/// nothing else (no corruption, dropout, penalty or sampling); returns `(D, H)`.
pub fn check_model(model: &Autoencoder) -> Result<(usize, usize)> {
    let nodes = &model.net.nodes;
    let shape = match nodes.as_slice() {
        [enc, dec] => match (enc.op, dec.op) {
            (Op::Linear { out: h, act: Activation::Sigmoid }, Op::Linear { out: d, .. })
                if d == len3(enc.input) =>
            {
                Some((d, h))
            }
            _ => None,
        },
        _ => None,
    };
    let fits = model.variational().is_none() && model.output_activation() == Activation::Sigmoid;
    match shape {
        Some(s) if fits => Ok(s),
        _ => Err(Error::Config(format!(
            "recirculation trains an autoencoder with one sigmoid hidden layer and a sigmoid output and no \
             regularisers (--layers H --code-activation sigmoid), not {}",
            model.describe()
        ))),
    }
}

/// The launches of one recirculation step after the batch is in `x`: the four states, the
/// training loss of the plain reconstruction σ(W_d h1 + b_d) into `loss totals`, the
/// pseudo-gradients of both layers, and the optimiser's update.
pub fn step_launches(
    model: &Autoencoder,
    t: &Tensors,
    gpu: &Gpu,
    lambda: f32,
    config: &TrainConfig,
) -> Result<Vec<Launch>> {
    let (d, h) = check_model(model)?;
    let variant = model.matmul_policy(gpu)?;
    let b = t.batch;
    let [enc, dec] = [&model.net.nodes[0], &model.net.nodes[1]];
    let param = |node: &crate::nn::Node, what: &str, grads: bool| {
        let name = format!("{}.{what}", node.params.as_deref().expect("linear layers have parameters"));
        let arena = if grads { &model.grads } else { &model.params };
        arena.named(&name).expect("a laid-out parameter")
    };
    let (we, be, wd, bd) = (
        param(enc, "weight", false),
        param(enc, "bias", false),
        param(dec, "weight", false),
        param(dec, "bias", false),
    );
    let (dwe, dbe, dwd, dbd) = (
        param(enc, "weight", true),
        param(enc, "bias", true),
        param(dec, "weight", true),
        param(dec, "bias", true),
    );
    let (x, h1, logits) = (t.view("x"), t.view(&enc.y), t.view(&dec.y));
    let (v2, h3) = (t.view("v2"), t.view("h3"));
    let (ev, eh) = (t.grad(&dec.y), t.grad(&enc.y));
    let inv = 1.0 / b as f32;
    let mut launches = linear_forward(&h1, &x, &we, &be, b, d, h, Activation::Sigmoid, variant, Half::NONE);
    launches.extend(linear_forward(
        &logits,
        &h1,
        &wd,
        &bd,
        b,
        h,
        d,
        Activation::Identity,
        variant,
        Half::NONE,
    ));
    launches.extend(loss_forward_backward(
        &t.view("loss totals"),
        &t.view("loss partials"),
        None,
        &logits,
        &x,
        b * d,
        model.loss_kind(),
        Activation::Sigmoid,
        1.0,
    ));
    launches.push(recirc_mix(&v2, &x, &logits, b * d, lambda));
    launches.extend(linear_forward(&h3, &v2, &we, &be, b, d, h, Activation::Sigmoid, variant, Half::NONE));
    launches.push(recirc_diff(&ev, &v2, &x, b * d, inv));
    launches.extend(linear_backward_weight(&dwd, &ev, &h1, b, h, d, variant, false));
    launches.extend([bias_backward(&dbd, &ev, b, d), recirc_diff(&eh, &h3, &h1, b * h, inv)]);
    launches.extend(linear_backward_weight(&dwe, &eh, &v2, b, d, h, variant, false));
    launches.extend([bias_backward(&dbe, &eh, b, h), model.update(&config.optimizer, 1)]);
    Ok(launches)
}

/// The tensors a recirculation step on batches of `batch` needs.
pub fn tensors(model: &Autoencoder, gpu: &Gpu, batch: usize) -> Result<Tensors> {
    let (d, h) = check_model(model)?;
    let extra = [
        ("v2", batch * d),
        ("h3", batch * h),
        ("loss partials", 2 * partial_rows(batch * d)),
        ("loss totals", 2),
    ];
    model.net.tensors(gpu, batch, &extra)
}

/// Recirculation's training steps over a dataset, an epoch at a time.
pub struct RecirculationTrainer<'a> {
    runner: StepRunner<'a>,
    config: TrainConfig,
    dim: usize,
    /// Where the loss of the model's kind sits in the totals.
    slot: usize,
    _tensors: Tensors,
}

impl<'a> RecirculationTrainer<'a> {
    /// Steps of `config` (epochs, batch, optimiser, seed) on `train` for a `D-H-D` model, with the
    /// visible units' regression `lambda` in [0, 1).
    pub fn new(
        gpu: &'a Gpu,
        model: &'a Autoencoder,
        train: &'a GpuDataset,
        config: TrainConfig,
        lambda: f32,
    ) -> Result<Self> {
        if !(0.0..1.0).contains(&lambda) {
            return Err(Error::Config(format!("the regression λ = {lambda} must lie in [0, 1)")));
        }
        if train.dim != model.input_dim() {
            return Err(Error::Shape(format!(
                "the data have {} values per example but the model's input is {}",
                train.dim,
                model.input_dim()
            )));
        }
        if config.batch == 0 || config.batch > train.n {
            return Err(Error::Config(format!(
                "batch size {} must be between 1 and the number of training examples ({})",
                config.batch, train.n
            )));
        }
        let t = tensors(model, gpu, config.batch)?;
        let feed = train.feed(gpu, &t.view("x"), config.batch)?;
        let mut launches = feed.launches().to_vec();
        launches.extend(step_launches(model, &t, gpu, lambda, &config)?);
        let plan = Plan::new(gpu, "recirculation step", &launches)?;
        let steps = config.epochs * (train.n / config.batch);
        let shape = (train.n, config.batch, steps, config.seed);
        let runner = StepRunner::new(gpu, plan, vec![feed], t.view("loss totals"), shape)?;
        let slot = model.loss_kind().slot();
        Ok(RecirculationTrainer { runner, config, dim: train.dim, slot, _tensors: t })
    }

    /// Dispatches per step (the plan's length).
    pub fn dispatches_per_step(&self) -> usize {
        self.runner.dispatches_per_step()
    }

    /// Records up to `k` steps into one command buffer (see [`StepRunner::set_steps_per_submit`]).
    pub fn set_steps_per_submit(&mut self, k: usize) -> Result<()> {
        self.runner.set_steps_per_submit(k)
    }

    /// Steps recorded into one command buffer and submitted together.
    pub fn steps_per_submit(&self) -> usize {
        self.runner.steps_per_submit()
    }

    /// The loss totals (Σ squared error, Σ cross-entropy) of every step run so far, step by step.
    pub fn step_log(&self) -> Result<Vec<f32>> {
        self.runner.log()
    }

    /// One more epoch; the mean training loss (per pixel, of the plain reconstruction).
    pub fn epoch(&mut self) -> Result<f64> {
        let per_epoch = self.runner.steps_per_epoch();
        let epoch = self.runner.steps_done() / per_epoch + 1;
        let words = self.runner.run(per_epoch)?;
        let slot = self.slot;
        let mut sum = 0.0;
        for (b, pair) in words.chunks(2).enumerate() {
            let loss = pair[slot] as f64 / (self.config.batch * self.dim) as f64;
            if !loss.is_finite() {
                return Err(Error::Diverged {
                    epoch,
                    step: b,
                    what: "recirculation training loss".into(),
                    loss: loss as f32,
                    lr: self.config.optimizer.lr(),
                });
            }
            sum += loss;
        }
        Ok(sum / (words.len() / 2).max(1) as f64)
    }
}

/// Test (MSE, BCE) per pixel of predicting every test image by the mean training image: the
/// baseline a reconstruction must beat.
pub fn mean_image_baseline(train: &crate::data::Dataset, test: &crate::data::Dataset) -> (f64, f64) {
    let d = train.dim();
    let mut mean = vec![0.0f64; d];
    for img in train.images.chunks(d) {
        for (m, &p) in mean.iter_mut().zip(img) {
            *m += p as f64 / 255.0;
        }
    }
    let n = train.n.max(1) as f64;
    mean.iter_mut().for_each(|m| *m /= n);
    let (mut se, mut ce) = (0.0f64, 0.0f64);
    for img in test.images.chunks(d) {
        for (&m, &p) in mean.iter().zip(img) {
            let t = p as f64 / 255.0;
            let y = m.clamp(1e-7, 1.0 - 1e-7);
            se += (m - t).powi(2);
            ce -= t * y.ln() + (1.0 - t) * (1.0 - y).ln();
        }
    }
    let count = (test.n * d).max(1) as f64;
    (se / count, ce / count)
}
