//! Training and evaluating a [`Classifier`]. A step is one plan, as for autoencoders: the gathers of
//! the images and of their labels (a 1x1x1 "image" per example, read with the same shuffled order),
//! forward, softmax + cross-entropy, backward, update; several steps share a submit (see
//! `crate::steps`). Every step's (Σ loss, Σ correct) is copied into a log read back only when asked.

use super::labels::labels_as_images;
use super::{Classifier, ClassifierActs};
use crate::data::{Dataset, U8Map};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer};
use crate::gpu_data::{BatchFeed, GpuDataset, Residency};
use crate::kernels::optimizer::Optimizer;
use crate::kernels::softmax_ce::{Mixed, PseudoLabels};
use crate::nn::Pass;
use crate::runner::Plan;
use crate::steps::StepRunner;

/// Images and their labels on the GPU.
pub struct LabelledData {
    /// The u8 images, gathered into f32 batches `[batch, C·H·W]` (pixels in [0, 1] unless mapped).
    pub images: GpuDataset,
    /// Each label as a 1x1x1 u8 "image", gathered unscaled: the class index as f32.
    pub labels: GpuDataset,
    /// Examples (images, and labels).
    pub n: usize,
}

impl LabelledData {
    /// Uploads `ds` (its bytes read through `map` when they are not pixels) and its labels.
    pub fn upload(gpu: &Gpu, ds: &Dataset, map: Option<U8Map>) -> Result<LabelledData> {
        let images = GpuDataset::upload_with(gpu, ds, Residency::Auto)?;
        let images = match map {
            Some(m) => images.with_byte_map(m),
            None => images,
        };
        let labels =
            GpuDataset::upload_with(gpu, &labels_as_images(ds)?, Residency::Gpu { max_chunk_bytes: None })?
                .with_byte_map(U8Map { offset: 0.0, scale: 1.0 });
        Ok(LabelledData { images, labels, n: ds.n })
    }

    /// Uploads the examples of `ds` as a pool for training with pseudo-labels: every image, but
    /// only the labels of the examples at `labelled` (the others are replaced by 0 before the upload,
    /// so the GPU never holds them; the kernel does not read them either).
    pub fn upload_pool(
        gpu: &Gpu,
        ds: &Dataset,
        labelled: &[u32],
        map: Option<U8Map>,
    ) -> Result<LabelledData> {
        let mut masked = ds.clone();
        masked.labels.iter_mut().for_each(|l| *l = 0);
        for &i in labelled {
            let i = i as usize;
            let label = *ds.labels.get(i).ok_or_else(|| {
                Error::Config(format!("labelled example {i} is not one of the {} examples", ds.n))
            })?;
            masked.labels[i] = label;
        }
        LabelledData::upload(gpu, &masked, map)
    }

    /// The gathers that fill a batch's images and labels.
    fn feeds(&self, gpu: &Gpu, acts: &ClassifierActs, batch: usize) -> Result<[BatchFeed<'_>; 2]> {
        Ok([self.images.feed(gpu, &acts.input(), batch)?, self.labels.feed(gpu, &acts.labels(), batch)?])
    }
}

/// How a classifier is trained.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct FitConfig {
    /// Optimiser steps in all.
    pub steps: usize,
    /// Labelled examples per step (the unlabelled ones of pseudo-labelling come on top).
    pub batch: usize,
    /// Optimiser and its hyper-parameters.
    pub optimizer: Optimizer,
    /// Seeds the order of the examples (a fresh shuffle every pass over them).
    pub seed: u64,
    /// Unlabelled examples in every batch, trained on pseudo-labels (Lee 2013).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudo: Option<PseudoConfig>,
}

/// Semi-supervised training with pseudo-labels: every step's `batch` labelled examples are followed
/// by `unlabelled_batch` examples drawn from the whole training pool, whose target is the class the
/// `teacher` predicts for them, weighted by α(step) and kept only when confident (`labels`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PseudoConfig {
    /// Unlabelled examples appended to every step's batch.
    pub unlabelled_batch: usize,
    /// The pseudo-labels' weight ramp α(step) and confidence threshold.
    pub labels: PseudoLabels,
    /// Where the targets come from.
    #[serde(default)]
    pub teacher: Teacher,
}

/// Whose prediction is an unlabelled example's pseudo-label.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Teacher {
    /// The training forward pass itself, with its input corruption and dropout (Lee 2013).
    #[default]
    Noisy,
    /// A second forward pass of the same images without corruption or dropout: the training pass
    /// learns to predict under its noise what the clean network predicts (as in FixMatch).
    Clean,
}

/// Mean loss and error over a run of steps or a dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    /// Mean cross-entropy in nats.
    pub loss: f64,
    /// Fraction of examples whose argmax is not their label.
    pub error: f64,
}

/// A classifier's training steps on labelled data.
pub struct ClassifierTrainer<'a> {
    runner: StepRunner<'a>,
    config: FitConfig,
    /// The tensors the plan works on (kept with it): the training pass's and a clean teacher's.
    _acts: (ClassifierActs, Option<ClassifierActs>),
}

impl<'a> ClassifierTrainer<'a> {
    /// Trains on every example of `data` (its labels all used).
    pub fn new(
        gpu: &'a Gpu,
        model: &'a Classifier,
        data: &'a LabelledData,
        config: FitConfig,
    ) -> Result<Self> {
        Self::build(gpu, model, data, None, config)
    }

    /// Trains on the examples of `pool` at `labelled` with their labels and, when `config.pseudo`
    /// is set, on unlabelled examples from all of `pool` with pseudo-labels.
    pub fn with_pool(
        gpu: &'a Gpu,
        model: &'a Classifier,
        pool: &'a LabelledData,
        labelled: Vec<u32>,
        config: FitConfig,
    ) -> Result<Self> {
        Self::build(gpu, model, pool, Some(labelled), config)
    }

    fn build(
        gpu: &'a Gpu,
        model: &'a Classifier,
        data: &'a LabelledData,
        labelled: Option<Vec<u32>>,
        config: FitConfig,
    ) -> Result<Self> {
        let n = labelled.as_ref().map_or(data.n, Vec::len);
        if config.batch == 0 || config.batch > n {
            return Err(Error::Config(format!(
                "batch size {} must be between 1 and the number of labelled examples ({n})",
                config.batch
            )));
        }
        if config.steps == 0 {
            return Err(Error::Config("a classifier needs at least one training step".into()));
        }
        check_dim(data, model)?;
        let unlabelled = match (config.pseudo, &labelled) {
            (Some(p), Some(_)) => p.unlabelled_batch,
            (Some(_), None) => {
                return Err(Error::Config("pseudo-labels need a pool of unlabelled examples".into()));
            }
            (None, _) => 0,
        };
        let rows = config.batch + unlabelled;
        let variant = model.matmul;
        let acts = model.activations(gpu, rows)?;
        let mut feeds: Vec<_> = data.feeds(gpu, &acts, rows)?.into();
        // A clean teacher reads the same batch (the feeds share the dataset's order) through the
        // network without its training noise, into tensors of its own.
        let teacher = match config.pseudo.map(|p| p.teacher) {
            Some(Teacher::Clean) => {
                let t = model.activations(gpu, rows)?;
                let [images, _labels] = data.feeds(gpu, &t, rows)?;
                feeds.push(images);
                Some(t)
            }
            _ => None,
        };
        let mixed = config.pseudo.map(|p| Mixed {
            labelled_rows: config.batch,
            pseudo: p.labels,
            teacher: teacher.as_ref().map(|t| t.logits()),
        });
        let mut launches: Vec<_> = feeds.iter().flat_map(|f| f.launches().to_vec()).collect();
        if let Some(t) = &teacher {
            launches.extend(model.forward(t, variant, Pass::INFER));
        }
        launches.extend(model.forward(&acts, variant, Pass::TRAIN));
        launches.extend(model.loss(&acts, true, false, mixed));
        launches.extend(model.backward(&acts, variant));
        launches.push(model.update(&config.optimizer, 1));
        let plan = Plan::new(gpu, "classifier step", &launches)?;
        let shape = (n, config.batch, config.steps, config.seed);
        let runner = StepRunner::new(gpu, plan, feeds, acts.totals(), shape)?;
        let runner = match labelled {
            Some(positions) => runner.mixed(positions, data.n, unlabelled)?,
            None => runner,
        };
        Ok(ClassifierTrainer { runner, config, _acts: (acts, teacher) })
    }

    /// Optimiser steps run so far.
    pub fn steps_done(&self) -> usize {
        self.runner.steps_done()
    }

    /// Dispatches per step.
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

    /// (Σ loss, Σ correct) of every step run so far, step by step.
    pub fn step_log(&self) -> Result<Vec<f32>> {
        self.runner.log()
    }

    /// Runs up to `count` more steps (never past `config.steps`); their mean loss and error.
    pub fn run(&mut self, count: usize) -> Result<Scores> {
        let first = self.runner.steps_done();
        let words = self.runner.run(count)?;
        let per_epoch = self.runner.steps_per_epoch();
        let (mut loss, mut correct) = (0.0f64, 0.0f64);
        for (k, pair) in words.chunks(2).enumerate() {
            if !pair[0].is_finite() {
                return Err(Error::Diverged {
                    epoch: (first + k) / per_epoch + 1,
                    step: (first + k) % per_epoch,
                    what: "classifier training loss".into(),
                    loss: pair[0],
                    lr: self.config.optimizer.lr(),
                });
            }
            loss += pair[0] as f64;
            correct += pair[1] as f64;
        }
        let seen = (words.len() / 2 * self.config.batch).max(1) as f64;
        Ok(Scores { loss: loss / seen, error: 1.0 - correct / seen })
    }
}

fn check_dim(data: &LabelledData, model: &Classifier) -> Result<()> {
    if data.images.dim != model.input_dim() {
        return Err(Error::Shape(format!(
            "the data have {} values per example but the encoder reads {}",
            data.images.dim,
            model.input_dim()
        )));
    }
    let classes = model.classes();
    if let Some(&bad) = data.labels.labels.iter().find(|&&l| l as usize >= classes) {
        return Err(Error::Config(format!("label {bad} is not one of the classifier's {classes} classes")));
    }
    Ok(())
}

/// A classifier's scores and predictions on a whole dataset, in index order.
pub struct ClassifierEvaluator<'a> {
    gpu: &'a Gpu,
    data: &'a LabelledData,
    /// (batch size, tensors, plan, its gathers) for full batches and for the remainder.
    plans: Vec<(usize, ClassifierActs, Plan, [BatchFeed<'a>; 2])>,
    predictions: StorageBuffer,
}

/// What an evaluation gives.
pub struct Evaluation {
    /// Mean cross-entropy and error over the dataset.
    pub scores: Scores,
    /// The predicted class of every example.
    pub predictions: Vec<u8>,
}

impl<'a> ClassifierEvaluator<'a> {
    /// Evaluates in batches of at most `batch`, halved while the tensors exceed the adapter's limits.
    /// The data's order must stay the identity (never train on the same upload).
    pub fn new(gpu: &'a Gpu, model: &'a Classifier, data: &'a LabelledData, batch: usize) -> Result<Self> {
        check_dim(data, model)?;
        let variant = model.matmul;
        let mut batch = batch.clamp(1, data.n.max(1));
        let full = loop {
            match model.activations(gpu, batch) {
                Ok(acts) => break acts,
                Err(Error::LimitExceeded { .. }) if batch > 1 => batch = batch.div_ceil(2),
                Err(e) => return Err(e),
            }
        };
        let mut full = Some(full);
        let mut plans = Vec::new();
        for size in [batch, data.n % batch] {
            if size == 0 {
                continue;
            }
            let acts = match full.take() {
                Some(acts) => acts,
                None => model.activations(gpu, size)?,
            };
            let feeds = data.feeds(gpu, &acts, size)?;
            let mut launches: Vec<_> = feeds.iter().flat_map(|f| f.launches().to_vec()).collect();
            launches.extend(model.forward(&acts, variant, Pass::INFER));
            launches.extend(model.loss(&acts, false, true, None));
            let plan = Plan::new(gpu, "classifier evaluation", &launches)?;
            plans.push((size, acts, plan, feeds));
        }
        let predictions = StorageBuffer::zeroed(gpu, "classifier predictions", data.n.max(1))?;
        Ok(ClassifierEvaluator { gpu, data, plans, predictions })
    }

    /// Every example once, in order.
    pub fn run(&self) -> Result<Evaluation> {
        let gpu = self.gpu;
        for (_, acts, _, _) in &self.plans {
            acts.totals().write(gpu, &[0.0, 0.0])?;
        }
        let mut start = 0;
        while start < self.data.n {
            let (size, acts, plan, feeds) =
                if self.data.n - start >= self.plans[0].0 { &self.plans[0] } else { &self.plans[1] };
            plan.advance(gpu, 1, start);
            for feed in feeds {
                feed.stage(gpu, start);
            }
            gpu.scoped("classifier evaluation", || {
                let mut enc = gpu.device.create_command_encoder(&Default::default());
                plan.record_into(&mut enc);
                let pred = acts.predictions();
                enc.copy_buffer_to_buffer(
                    &pred.buffer,
                    (pred.offset * 4) as u64,
                    &self.predictions.buffer,
                    (start * 4) as u64,
                    (size * 4) as u64,
                );
                gpu.queue.submit([enc.finish()]);
            })?;
            start += size;
        }
        let (mut loss, mut correct) = (0.0f64, 0.0f64);
        for (_, acts, _, _) in &self.plans {
            let t = acts.totals().read(gpu)?;
            loss += t[0] as f64;
            correct += t[1] as f64;
        }
        let n = self.data.n.max(1) as f64;
        let predictions =
            self.predictions.read_f32(gpu, 0..self.data.n)?.iter().map(|&p| p.round() as u8).collect();
        Ok(Evaluation { scores: Scores { loss: loss / n, error: 1.0 - correct / n }, predictions })
    }
}
