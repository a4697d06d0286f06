//! Evaluation: a model run over a whole dataset in batches, in index order, for the test metrics,
//! the codes of every example and a few reconstructions.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer};
use crate::gpu_data::{BatchFeed, GpuDataset};
use crate::models::{Activations, Autoencoder, Pass, activations_fitting};
use crate::runner::Plan;

/// Test-set metrics: per pixel, and for a VAE per image in nats.
#[derive(Clone, Copy, Debug)]
pub struct EvalMetrics {
    /// Mean squared error per pixel (over every example and value), of the output after its activation.
    pub mse_px: f64,
    /// Binary cross-entropy per pixel, in nats (from the logits for a sigmoid output, else on the output
    /// clamped to [1e-7, 1 − 1e-7]).
    pub bce_px: f64,
    /// The training objective on this data: per-pixel loss, or a VAE's negative ELBO per image.
    pub loss: f64,
    /// VAE: (reconstruction nats, KL nats, negative ELBO nats) per image.
    pub vae: Option<(f64, f64, f64)>,
    /// Mean of every code value over the dataset (a VAE's μ).
    pub code_mean: f64,
    /// Fraction of code values with `|v| <` [`NEAR_ZERO`], in [0, 1] (a sparsity measure).
    pub code_near_zero: f64,
    /// Mean ‖J_f(x)‖_F, when the encoder is one sigmoid layer.
    pub jacobian_fro: Option<f64>,
}

/// Below this magnitude a code value counts as "near zero" in the sparsity metric.
pub const NEAR_ZERO: f32 = 0.01;

/// Runs a model over a whole dataset in batches: test metrics, codes, reconstructions.
pub struct Evaluator<'a> {
    gpu: &'a Gpu,
    model: &'a Autoencoder,
    data: &'a GpuDataset,
    /// (batch size, activations, plan, its gathers) for full batches and for the remainder.
    plans: Vec<(usize, Activations, Plan, BatchFeed<'a>)>,
    /// The code layer's output for every example, `[n, code width]` (a VAE's is μ and log σ²).
    codes: StorageBuffer,
}

/// What an evaluation pass produced.
pub struct EvalOutput {
    /// The test metrics over the whole dataset.
    pub metrics: EvalMetrics,
    /// `[n, code_dim]` codes of every example (a VAE's posterior means μ).
    pub codes: Vec<f32>,
    /// Reconstructions (after the output activation) of the first examples, `[k, dim]`.
    pub recon: Vec<f32>,
}

/// Evaluation draws its VAE noise from streams no training step uses (steps stay below 2^40).
const EVAL_STREAM: u64 = 1 << 46;

impl<'a> Evaluator<'a> {
    /// Evaluation of the training objective ([`Pass::EVAL`]) in batches of at most `batch`.
    pub fn new(gpu: &'a Gpu, model: &'a Autoencoder, data: &'a GpuDataset, batch: usize) -> Result<Self> {
        Self::with_pass(gpu, model, data, batch, Pass::EVAL)
    }

    /// Evaluation with the forward `pass` (e.g. [`Pass::EVAL_MEAN`]: a VAE at z = μ).
    pub fn with_pass(
        gpu: &'a Gpu,
        model: &'a Autoencoder,
        data: &'a GpuDataset,
        batch: usize,
        pass: Pass,
    ) -> Result<Self> {
        if data.dim != model.input_dim() {
            return Err(Error::Shape(format!(
                "the data has {} values per example but the model's input is {}",
                data.dim,
                model.input_dim()
            )));
        }
        let variant = model.matmul_policy(gpu)?;
        // A model whose activations for `batch` examples exceed the adapter's buffer limits (a conv
        // model's feature maps) is evaluated in smaller batches.
        let (batch, acts) = activations_fitting(model, gpu, batch.clamp(1, data.n.max(1)))?;
        let mut full = Some(acts);
        let code_width = model.code_width();
        let codes = StorageBuffer::zeroed(gpu, "eval codes", data.n * code_width)?;
        let mut plans = Vec::new();
        for size in [batch, data.n % batch] {
            if size == 0 {
                continue;
            }
            let acts = match full.take() {
                Some(acts) => acts,
                None => model.activations(gpu, size)?,
            };
            let feed = data.feed(gpu, &acts.input(), size)?;
            let mut launches = feed.launches().to_vec();
            // Pass::EVAL is the training objective without dropout: a denoising model gets corrupted
            // inputs (from fixed evaluation streams), a VAE samples z.
            launches.extend(model.forward(&acts, variant, pass));
            launches.extend(model.loss(&acts, &acts.input(), false, true));
            let plan = Plan::new(gpu, "evaluate", &launches)?;
            plans.push((size, acts, plan, feed));
        }
        Ok(Evaluator { gpu, model, data, plans, codes })
    }

    /// Evaluates every example in index order; keeps the first `keep_recon` reconstructions.
    /// Uses the identity order: a resident dataset's index buffer must not be shuffled (test sets
    /// never are); streamed data is always read in order.
    /// A VAE is evaluated with one sample of z per example, from fixed streams: repeatable.
    pub fn run(&self, keep_recon: usize) -> Result<EvalOutput> {
        let gpu = self.gpu;
        let model = self.model;
        let code_width = model.code_width();
        for (_, acts, _, _) in &self.plans {
            acts.totals().write(gpu, &[0.0, 0.0])?;
            if let Some(kl) = acts.kl_total() {
                kl.write(gpu, &[0.0])?;
            }
        }
        let mut start = 0;
        let mut recon = Vec::new();
        while start < self.data.n {
            let (size, acts, plan, feed) =
                if self.data.n - start >= self.plans[0].0 { &self.plans[0] } else { &self.plans[1] };
            let size = *size;
            plan.advance(gpu, EVAL_STREAM + start as u64, start);
            feed.stage(gpu, start);
            gpu.scoped("evaluation", || {
                let mut enc = gpu.device.create_command_encoder(&Default::default());
                plan.record_into(&mut enc);
                let code = acts.code();
                enc.copy_buffer_to_buffer(
                    &code.buffer,
                    (code.offset * 4) as u64,
                    &self.codes.buffer,
                    (start * code_width * 4) as u64,
                    (size * code_width * 4) as u64,
                );
                gpu.queue.submit([enc.finish()]);
            })?;
            if recon.len() < keep_recon * self.data.dim {
                let logits = acts.logits().read(gpu)?;
                let take = (keep_recon * self.data.dim - recon.len()).min(logits.len());
                let act = model.output_activation();
                recon.extend(logits[..take].iter().map(|&z| crate::cpu::activation::activate(z, act)));
            }
            start += size;
        }
        let mut sums = [0.0f64; 3];
        for (_, acts, _, _) in &self.plans {
            let t = acts.totals().read(gpu)?;
            sums[0] += t[0] as f64;
            sums[1] += t[1] as f64;
            if let Some(kl) = acts.kl_total() {
                sums[2] += kl.read(gpu)?[0] as f64;
            }
        }
        let n = self.data.n as f64;
        let pixels = n * self.data.dim as f64;
        let (mse_px, bce_px) = (sums[0] / pixels, sums[1] / pixels);
        let vae = model.variational().map(|_| (sums[1] / n, sums[2] / n, (sums[1] + sums[2]) / n));
        let loss = match (vae, model.loss_kind()) {
            (Some((_, _, elbo)), _) => elbo,
            (None, crate::kernels::loss::LossKind::Mse) => mse_px,
            (None, crate::kernels::loss::LossKind::Bce) => bce_px,
        };
        let all = self.codes.read_all_f32(gpu)?;
        // A VAE's code row is [μ, log σ²]: keep μ.
        let d = model.code_dim();
        let codes: Vec<f32> = all.chunks(code_width).flat_map(|row| row[..d].iter().copied()).collect();
        let count = codes.len().max(1) as f64;
        let code_mean = codes.iter().map(|&v| v as f64).sum::<f64>() / count;
        let code_near_zero = codes.iter().filter(|v| v.abs() < NEAR_ZERO).count() as f64 / count;
        let jacobian_fro = model.jacobian_fro(gpu, &codes, self.data.n)?;
        let metrics = EvalMetrics { mse_px, bce_px, loss, vae, code_mean, code_near_zero, jacobian_fro };
        Ok(EvalOutput { metrics, codes, recon })
    }
}
