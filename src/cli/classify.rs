//! `aegpu classify`: a trained encoder + a softmax layer, trained on a class-balanced labelled subset
//! of the training set (fine-tuned end to end, or frozen: a linear probe), or the same network from
//! random weights (`--from-scratch`), optionally with the unlabelled training images through
//! pseudo-labels (`--pseudo-labels`); test error, confusion matrix, metrics.jsonl, for one or several
//! label draws (`--seed 0,1,2`: mean and spread in result.json).

use super::data::load_source;
use super::pseudo_flags::pseudo_config;
use super::run_dir::{Claim, RunDir};
use super::{DataArgs, SubmitArgs};
use aegpu::checkpoint;
use aegpu::classify::labels::{balanced_subset, class_count, confusion, mean_sd};
use aegpu::classify::train::{
    ClassifierEvaluator, ClassifierTrainer, FitConfig, LabelledData, PseudoConfig, Scores,
};
use aegpu::classify::{Classifier, ClassifierOptions, Start};
use aegpu::data::{DataSource, Dataset, U8Map};
use aegpu::error::{Error, Result};
use aegpu::expert::atomic_file::write_atomic;
use aegpu::expert::nn::Noise;
use aegpu::gpu::{Gpu, GpuOptions};
use aegpu::kernels::optimizer::Optimizer;
use aegpu::models::{Autoencoder, Init};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct ClassifyArgs {
    /// The autoencoder whose encoder the classifier starts from (dense or conv; a VAE's μ). With
    /// --from-scratch only its architecture is used.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Labelled training examples per class, drawn at random (with --seed) from the training set;
    /// 0 uses every label.
    #[arg(long, default_value_t = 10)]
    labels_per_class: usize,
    /// Train only the softmax layer on the encoder's code (a linear probe).
    #[arg(long)]
    freeze: bool,
    /// The same network from random (Glorot) weights: the baseline without pre-training.
    #[arg(long)]
    from_scratch: bool,
    /// Optimiser steps.
    #[arg(long, default_value_t = 500)]
    steps: usize,
    /// Examples per step. Default: the whole labelled set up to 1000 (full batch), else 256.
    #[arg(long)]
    batch: Option<usize>,
    /// sgd (momentum 0.9), adam or adamw.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// L2 weight decay (decoupled for adamw).
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Inverted dropout with probability P after every encoder layer with parameters (training only).
    #[arg(long)]
    dropout: Option<f32>,
    /// Corrupt the training images (gaussian:SIGMA, masking:P, salt_pepper:P): an augmentation.
    #[arg(long)]
    noise: Option<String>,
    /// Classify the output of the encoder's first K layers with parameters instead of its code
    /// (e.g. 1: the 256 units of a 784-256-64 encoder).
    #[arg(long)]
    encoder_layers: Option<usize>,
    /// Seeds of the label draws, the softmax layer's initial weights and the shuffles; several
    /// (0,1,2) train one classifier per draw and report the mean and standard deviation.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    seed: Vec<u64>,
    /// Train on the unlabelled training examples too, with pseudo-labels (Lee 2013): each one's
    /// target is the class the classifier predicts for it, its loss weighted by α, which rises
    /// linearly from 0 at step START to WEIGHT at step END: WEIGHT:START:END (e.g. 3:200:1000).
    #[arg(long)]
    pseudo_labels: Option<String>,
    /// With --pseudo-labels, an unlabelled example teaches only when its top softmax probability is
    /// at least this (e.g. 0.95); default 0: all do.
    #[arg(long)]
    pseudo_threshold: Option<f32>,
    /// With --pseudo-labels, whose prediction is the target: `noisy`, the training pass itself (with
    /// its --noise and --dropout; Lee 2013), or `clean`, a second pass of the same images without
    /// them (the training pass learns to agree with it under its noise, as in FixMatch).
    #[arg(long)]
    pseudo_teacher: Option<String>,
    /// Unlabelled examples per step with --pseudo-labels, drawn from every training example not held
    /// out by --validate (default 256).
    #[arg(long)]
    unlabelled_batch: Option<usize>,
    /// Hold the last N training examples out of the label draws and report the error on them (a
    /// validation set, for choosing settings without looking at the test set).
    #[arg(long)]
    validate: Option<usize>,
    /// Test the classifier every this many steps (a metrics.jsonl line each); default: at the end.
    #[arg(long)]
    eval_every: Option<usize>,
    /// Dataset to classify: mnist or fashion-mnist (default: the data the checkpoint records).
    #[arg(long)]
    dataset: Option<String>,
    #[arg(long)]
    data: Option<PathBuf>,
    /// Draw the labels from the first N training examples only (quick runs, tests).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Test on the first N test examples only.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Output folder: metrics.jsonl, result.json, confusion.png, classifier.safetensors.
    #[arg(long, default_value = "runs/classify")]
    out: PathBuf,
    /// Replace what the output folder holds.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    submit: SubmitArgs,
}

/// One line of metrics.jsonl.
#[derive(serde::Serialize)]
struct Line {
    seed: u64,
    step: usize,
    /// Mean cross-entropy (nats) and error over the training steps since the previous line.
    train_loss: f64,
    train_error: f64,
    test_loss: f64,
    test_error: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    val_error: Option<f64>,
    elapsed_s: f64,
}

pub(super) fn classify_cmd(args: ClassifyArgs) -> Result<()> {
    let ckpt = checkpoint::load(&args.checkpoint)?;
    let source = match (ckpt.metadata.get("aegpu.data"), &args.dataset, &args.data) {
        (Some(json), None, None) => {
            serde_json::from_str::<DataSource>(json).map_err(|e| Error::BadCheckpoint {
                path: args.checkpoint.clone(),
                reason: format!("its 'aegpu.data' entry is not a data source: {e}"),
            })?
        }
        (_, dataset, dir) => {
            let name = dataset.clone().or_else(|| ckpt.metadata.get("aegpu.dataset").cloned());
            DataArgs::idx(name.as_deref().unwrap_or("mnist"), dir.clone()).source()?
        }
    };
    let (mut split, map) = load_source(&source)?;
    for (limit, set, flag) in
        [(args.train_limit, &mut split.train, "train"), (args.test_limit, &mut split.test, "test")]
    {
        match limit {
            Some(0) => return Err(Error::Config(format!("--{flag}-limit must be at least 1"))),
            Some(n) => *set = set.subset(0..n.min(set.n)),
            None => {}
        }
    }
    let classes = class_count(&split.train, &split.test);
    let held_out = match args.validate {
        Some(n) if n == 0 || n >= split.train.n => {
            return Err(Error::Config(format!(
                "--validate {n}: hold out between 1 and {} of the {} training examples",
                split.train.n.saturating_sub(1),
                split.train.n
            )));
        }
        Some(n) => {
            let val = split.train.subset(split.train.n - n..split.train.n);
            split.train = split.train.subset(0..split.train.n - n);
            Some(val)
        }
        None => None,
    };
    if classes < 2 {
        return Err(Error::Config(format!("{} has no class labels to learn", source.name())));
    }
    let options = ClassifierOptions {
        classes,
        freeze: args.freeze,
        dropout: args.dropout,
        noise: args.noise.as_deref().map(Noise::parse).transpose()?,
        depth: args.encoder_layers,
    };
    let optimizer = Optimizer::parse(&args.optimizer, args.lr, args.weight_decay)?;
    let pseudo = pseudo_config(
        args.pseudo_labels.as_deref(),
        (args.unlabelled_batch, args.pseudo_threshold, args.pseudo_teacher.as_deref()),
        split.train.n,
    )?;
    if args.steps == 0 {
        return Err(Error::Config("--steps must be at least 1".into()));
    }
    if args.seed.is_empty() {
        return Err(Error::Config("--seed needs at least one value".into()));
    }
    let gpu = Gpu::new(&GpuOptions::default())?;
    let ae = checkpoint::restore(&gpu, &ckpt, &args.checkpoint)?;
    if split.train.dim() != ae.input_dim() {
        return Err(Error::Shape(format!(
            "{} images have {} values but the checkpoint's encoder reads {}",
            source.name(),
            split.train.dim(),
            ae.input_dim()
        )));
    }
    let start = if args.from_scratch { Start::Scratch(Init::Glorot) } else { Start::Pretrained };
    // Everything the runs need is checked before the folder is touched.
    let draws: Vec<(Vec<usize>, Dataset)> = args
        .seed
        .iter()
        .map(|&s| match args.labels_per_class {
            0 => Ok(((0..split.train.n).collect(), split.train.clone())),
            k => {
                let chosen = balanced_subset(&split.train.labels, classes, k, s)?;
                let subset = split.train.select(&chosen);
                Ok((chosen, subset))
            }
        })
        .collect::<Result<_>>()?;
    let test = LabelledData::upload(&gpu, &split.test, map)?;
    let val = held_out.as_ref().map(|v| LabelledData::upload(&gpu, v, map)).transpose()?;
    let probe = Classifier::from_encoder(&gpu, &ae, options, start, 0)?;
    let claim = if args.overwrite { Claim::Overwrite } else { Claim::Fresh };
    let dir = RunDir::claim(&args.out, claim)?;
    write_atomic(&dir.join("metrics.jsonl"), b"")?;
    let mode = match (args.from_scratch, args.freeze) {
        (false, false) => "pre-trained encoder, fine-tuned",
        (false, true) => "pre-trained encoder, frozen (linear probe)",
        (true, false) => "random encoder (from scratch), trained",
        (true, true) => "random encoder, frozen (random features)",
    };
    note!("adapter:    {}", gpu.describe());
    note!("encoder:    {} {} from {}", ae.kind(), ae.describe(), args.checkpoint.display());
    note!(
        "classifier: {} ({} parameters, {} trained); {mode}",
        probe.describe(),
        probe.parameter_count(),
        probe.trainable_count()
    );
    if let Some(p) = pseudo {
        let l = p.labels;
        note!(
            "pseudo-labels: {} unlabelled examples per step from {}, weight rising from 0 at step {} to {} at step {}, confidence threshold {}, {:?} teacher",
            p.unlabelled_batch,
            split.train.n,
            l.ramp_start,
            l.weight,
            l.ramp_end,
            l.threshold,
            p.teacher
        );
    }
    drop(probe);
    let class_names = names(&split.test, classes);
    let mut results = Vec::new();
    let mut summed = vec![0u64; classes * classes];
    for (&seed, (chosen, labelled)) in args.seed.iter().zip(&draws) {
        let run = Run { gpu: &gpu, ae: &ae, args: &args, options, start, optimizer, map, pseudo };
        let pool = pseudo.is_some().then_some((&split.train, chosen.as_slice()));
        let (scores, counts, val_error) =
            run.fit(seed, (labelled, pool), (&test, val.as_ref()), &split.test, &dir)?;
        for (s, c) in summed.iter_mut().zip(&counts) {
            *s += c;
        }
        let suffix = if args.seed.len() == 1 { String::new() } else { format!("-seed{seed}") };
        let title = format!("test error {:.2}%, {} labels, seed {seed}", 100.0 * scores.error, labelled.n);
        aegpu::viz::save_confusion_png(
            &dir.join(&format!("confusion{suffix}.png")),
            &counts,
            &class_names,
            &title,
        )?;
        results.push(serde_json::json!({
            "seed": seed, "labels": labelled.n, "test_error": scores.error, "test_loss": scores.loss,
            "val_error": val_error,
            "confusion": counts,
        }));
    }
    let errors: Vec<f64> = results.iter().filter_map(|r| r["test_error"].as_f64()).collect();
    let val_errors: Vec<f64> = results.iter().filter_map(|r| r["val_error"].as_f64()).collect();
    let val_mean = (!val_errors.is_empty()).then(|| mean_sd(&val_errors).0);
    let (mean, sd) = mean_sd(&errors);
    let (min, max) =
        errors.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &e| (a.min(e), b.max(e)));
    if args.seed.len() > 1 {
        let title = format!("test error {:.2}% (mean of {} label draws)", 100.0 * mean, errors.len());
        aegpu::viz::save_confusion_png(&dir.join("confusion.png"), &summed, &class_names, &title)?;
    }
    let summary = serde_json::json!({
        "checkpoint": args.checkpoint.display().to_string(),
        "encoder": ae.describe(),
        "mode": mode,
        "labels_per_class": args.labels_per_class,
        "steps": args.steps,
        "optimizer": optimizer,
        "dropout": args.dropout,
        "noise": args.noise,
        "encoder_layers": args.encoder_layers,
        "pseudo_labels": pseudo,
        "test_examples": split.test.n,
        "val_error_mean": val_mean, "validation_examples": args.validate,
        "test_error_mean": mean, "test_error_sd": sd, "test_error_min": min, "test_error_max": max,
        "runs": results,
    });
    let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::Config(e.to_string()))?;
    write_atomic(&dir.join("result.json"), text.as_bytes())?;
    say!(
        "test error {:.2}% (sd {:.2}, min {:.2}, max {:.2}) over {} draw(s) of {} labels per class{}; {mode}; wrote {}",
        100.0 * mean,
        100.0 * sd,
        100.0 * min,
        100.0 * max,
        errors.len(),
        args.labels_per_class,
        val_mean.map(|v| format!(" (validation error {:.2}%)", 100.0 * v)).unwrap_or_default(),
        dir.path.display()
    );
    Ok(())
}

/// Class names for the picture: the data's, or the indices.
fn names(ds: &Dataset, classes: usize) -> Vec<&str> {
    (0..classes).map(|c| ds.class_names.get(c).map_or(DIGITS[c % 10], String::as_str)).collect()
}

/// Training steps between moves of the progress bar (each move reads the step log back).
const PROGRESS_STEPS: usize = 50;

const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// What every label draw shares.
struct Run<'a> {
    gpu: &'a Gpu,
    ae: &'a Autoencoder,
    args: &'a ClassifyArgs,
    options: ClassifierOptions,
    start: Start,
    optimizer: Optimizer,
    map: Option<U8Map>,
    pseudo: Option<PseudoConfig>,
}

impl Run<'_> {
    /// Trains one classifier on `labelled`, testing it as asked; its final scores and confusion counts.
    fn fit(
        &self,
        seed: u64,
        (labelled, pool): (&Dataset, Option<(&Dataset, &[usize])>),
        (test, val): (&LabelledData, Option<&LabelledData>),
        test_set: &Dataset,
        dir: &RunDir,
    ) -> Result<(Scores, Vec<u64>, Option<f64>)> {
        let (gpu, args) = (self.gpu, self.args);
        let model = Classifier::from_encoder(gpu, self.ae, self.options, self.start, seed)?;
        let batch = args.batch.unwrap_or(if labelled.n <= 1000 { labelled.n } else { 256 });
        let config =
            FitConfig { steps: args.steps, batch, optimizer: self.optimizer, seed, pseudo: self.pseudo };
        let data = match pool {
            None => LabelledData::upload(gpu, labelled, self.map)?,
            Some((pool, chosen)) => {
                let chosen: Vec<u32> = chosen.iter().map(|&i| i as u32).collect();
                LabelledData::upload_pool(gpu, pool, &chosen, self.map)?
            }
        };
        let mut trainer = match pool {
            None => ClassifierTrainer::new(gpu, &model, &data, config)?,
            Some((_, chosen)) => {
                let chosen = chosen.iter().map(|&i| i as u32).collect();
                ClassifierTrainer::with_pool(gpu, &model, &data, chosen, config)?
            }
        };
        trainer.set_steps_per_submit(args.submit.steps_per_submit)?;
        if Some(&seed) == args.seed.first() {
            note!(
                "steps:      {} dispatches per step, {} steps per submit",
                trainer.dispatches_per_step(),
                trainer.steps_per_submit()
            );
        }
        let evaluator = ClassifierEvaluator::new(gpu, &model, test, 1000)?;
        let validator = val.map(|v| ClassifierEvaluator::new(gpu, &model, v, 1000)).transpose()?;
        let every = args.eval_every.unwrap_or(args.steps).max(1);
        let started = Instant::now();
        let (mut last, mut val_error) = (None, None);
        // Drawn on stderr only when it is a terminal; the lines below print above it.
        let bar = indicatif::ProgressBar::new(args.steps as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "seed {prefix} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_prefix(seed.to_string());
        while trainer.steps_done() < args.steps {
            // The steps up to the next test, in short runs that move the bar: their mean scores
            // are those of one long run (every step has the same batch).
            let until = (trainer.steps_done() + every).min(args.steps);
            let (mut loss, mut error, mut count) = (0.0, 0.0, 0usize);
            while trainer.steps_done() < until {
                let k = PROGRESS_STEPS.min(until - trainer.steps_done());
                let s = trainer.run(k)?;
                (loss, error, count) = (loss + s.loss * k as f64, error + s.error * k as f64, count + k);
                bar.set_position(trainer.steps_done() as u64);
            }
            let train = Scores { loss: loss / count as f64, error: error / count as f64 };
            let eval = evaluator.run()?;
            val_error = validator.as_ref().map(|v| v.run().map(|e| e.scores.error)).transpose()?;
            let line = Line {
                seed,
                step: trainer.steps_done(),
                train_loss: train.loss,
                train_error: train.error,
                test_loss: eval.scores.loss,
                test_error: eval.scores.error,
                val_error,
                elapsed_s: started.elapsed().as_secs_f64(),
            };
            bar.suspend(|| {
                say!(
                "seed {seed}  step {:>5}/{}  train_loss {:.4}  train_error {:.2}%  test_loss {:.4}  test_error {:.2}%{}  {:.1} s",
                line.step,
                args.steps,
                line.train_loss,
                100.0 * line.train_error,
                line.test_loss,
                100.0 * line.test_error,
                val_error.map(|v| format!("  val_error {:.2}%", 100.0 * v)).unwrap_or_default(),
                line.elapsed_s
                )
            });
            let path = dir.join("metrics.jsonl");
            let text = serde_json::to_string(&line).map_err(|e| Error::Config(e.to_string()))?;
            let mut file =
                std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| Error::io(&path, e))?;
            writeln!(file, "{text}").map_err(|e| Error::io(&path, e))?;
            last = Some(eval);
        }
        bar.finish_and_clear();
        let eval = last.expect("at least one step ran");
        let counts = confusion(&test_set.labels, &eval.predictions, self.options.classes)?;
        let suffix = if args.seed.len() == 1 { String::new() } else { format!("-seed{seed}") };
        let meta = [
            ("aegpu.encoder", args.checkpoint.display().to_string()),
            (
                "aegpu.classifier",
                serde_json::to_string(&self.options).map_err(|e| Error::Config(e.to_string()))?,
            ),
            ("aegpu.fit", serde_json::to_string(&config).map_err(|e| Error::Config(e.to_string()))?),
            ("aegpu.test_error", eval.scores.error.to_string()),
        ];
        model.save(gpu, &meta, &dir.join(&format!("classifier{suffix}.safetensors")))?;
        Ok((eval.scores, counts, val_error))
    }
}
