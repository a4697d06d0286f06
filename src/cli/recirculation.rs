//! `aegpu train --method recirculation`: a `D-H-D` autoencoder with a sigmoid hidden layer trained
//! by recirculation (no back-propagated error), evaluated and saved like a back-propagation run:
//! metrics.jsonl (one line per epoch), model.safetensors, recon.png, filters.png.

use super::TrainArgs;
use super::data::{load_source, upload};
use super::run_dir::{Claim, RunDir};
use super::train::{psnr_db, write_pictures};
use aegpu::checkpoint;
use aegpu::error::{Error, Result};
use aegpu::expert::atomic_file::write_atomic;
use aegpu::gpu::{Gpu, GpuOptions};
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::models::dense::DenseConfig;
use aegpu::models::{Autoencoder, Init};
use aegpu::recirculation::{DEFAULT_REGRESSION, RecirculationTrainer, mean_image_baseline};
use aegpu::train::{EpochMetrics, Evaluator, Residency, TrainConfig};
use std::io::Write;
use std::time::Instant;

/// How `train` trains: back-propagation (the default) or recirculation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Method {
    Backprop,
    Recirculation,
}

/// `--method` and the options that belong to a method; an option for the other one is an error.
pub(super) fn method(args: &TrainArgs) -> Result<Method> {
    let method = match args.method.to_ascii_lowercase().as_str() {
        "backprop" | "backpropagation" => Method::Backprop,
        "recirculation" => Method::Recirculation,
        other => return Err(Error::Config(format!("--method '{other}': use backprop or recirculation"))),
    };
    let given = |flag: &str| args.given.iter().any(|g| g == flag);
    if method == Method::Backprop && given("regression") {
        return Err(Error::Config(
            "--regression does not apply here: it is recirculation's (--method recirculation)".into(),
        ));
    }
    if method == Method::Recirculation {
        let why = |flag: &str, why: &str| {
            Error::Config(format!(
                "--{} does not apply to --method recirculation: {why}",
                flag.replace('_', "-")
            ))
        };
        let one_layer =
            "it trains one sigmoid hidden layer (--layers H) and a sigmoid output, by its own rule";
        for flag in [
            "preset",
            "arch",
            "arch_file",
            "code_dim",
            "beta",
            "activation",
            "pretrain",
            "pretrain_noise",
            "activations",
        ] {
            if given(flag) {
                return Err(why(flag, one_layer));
            }
        }
        for flag in ["sparse", "noise", "contractive", "dropout"] {
            if given(flag) {
                return Err(why(
                    flag,
                    "the rule has no regulariser terms (no back-propagated error to add them to)",
                ));
            }
        }
        if args.model != "dense" {
            return Err(why("model", one_layer));
        }
        for (flag, value) in [("code_activation", &args.code_activation), ("output", &args.output)] {
            if given(flag) && !value.eq_ignore_ascii_case("sigmoid") {
                return Err(why(flag, "its units are logistic (sigmoid)"));
            }
        }
        if args.resume.is_some() {
            return Err(why("resume", "a recirculation run is not resumable; train it again"));
        }
        if given("average_from") {
            return Err(why("average_from", "its checkpoint is the last weights"));
        }
    }
    Ok(method)
}

pub(super) fn recirculation_cmd(args: TrainArgs) -> Result<()> {
    if args.epochs == 0 {
        return Err(Error::Config("--epochs must be at least 1".into()));
    }
    let hidden = match args.layers[..] {
        [h] if h > 0 => h,
        _ => {
            return Err(Error::Config(format!(
                "--method recirculation trains one hidden layer: give --layers H, not {:?}",
                args.layers
            )));
        }
    };
    let lambda = args.regression.unwrap_or(DEFAULT_REGRESSION);
    let loss = LossKind::parse(&args.loss)
        .ok_or_else(|| Error::Config(format!("--loss '{}': use mse or bce", args.loss)))?;
    let optimizer = Optimizer::parse(&args.optimizer, args.lr, args.weight_decay)?;
    let init = match &args.init {
        Some(i) => {
            Init::parse(i).ok_or_else(|| Error::Config(format!("--init '{i}': use glorot or torch")))?
        }
        None => Init::Glorot,
    };
    let source = args.data.source()?;
    let (mut split, map) = load_source(&source)?;
    if map.is_some() {
        return Err(Error::Config(
            "recirculation's visible units are logistic: whitened patches (values, not pixels in [0, 1]) do not fit"
                .into(),
        ));
    }
    for (limit, set, flag) in
        [(args.train_limit, &mut split.train, "train"), (args.test_limit, &mut split.test, "test")]
    {
        match limit {
            Some(0) => return Err(Error::Config(format!("--{flag}-limit must be at least 1"))),
            Some(n) => *set = set.subset(0..n.min(set.n)),
            None => {}
        }
    }
    let act = Activation::Sigmoid;
    let config = DenseConfig::symmetric(split.train.dim(), &[hidden], act, act, act, loss)?;
    let train = TrainConfig { epochs: args.epochs, batch: args.batch, optimizer, seed: args.seed };
    let gpu = Gpu::new(&GpuOptions::default())?;
    let model = Autoencoder::new(&gpu, config, args.seed, init)?;
    let residency = match (args.stream_data, args.chunk_mb) {
        (true, _) => Residency::Host,
        (false, Some(mb)) => Residency::Gpu { max_chunk_bytes: Some(mb.saturating_mul(1 << 20)) },
        (false, None) => Residency::Auto,
    };
    let train_gpu = upload(&gpu, &split.train, None, residency)?;
    let test_gpu = upload(&gpu, &split.test, None, residency)?;
    let mut trainer = RecirculationTrainer::new(&gpu, &model, &train_gpu, train.clone(), lambda)?;
    trainer.set_steps_per_submit(args.submit.steps_per_submit)?;
    let evaluator = Evaluator::new(&gpu, &model, &test_gpu, 1000)?;
    let (base_mse, base_bce) = mean_image_baseline(&split.train, &split.test);
    let dir = RunDir::claim(&args.out, if args.overwrite { Claim::Overwrite } else { Claim::Fresh })?;
    let meta: Vec<(&str, String)> = vec![
        ("aegpu.train", json(&train)?),
        ("aegpu.init", json(&init)?.trim_matches('"').to_string()),
        ("aegpu.method", "recirculation".into()),
        ("aegpu.regression", lambda.to_string()),
        ("aegpu.dataset", source.name()),
        ("aegpu.data", json(&source)?),
        ("aegpu.input", json(&split.train.shape())?),
        ("aegpu.adapter", gpu.describe()),
        ("aegpu.matmul", model.matmul_policy(&gpu)?.name()),
    ];
    write_atomic(&dir.join("metrics.jsonl"), b"")?;
    note!("adapter: {}", gpu.describe());
    note!(
        "model:   dense {} ({} parameters, {init:?} init), trained by recirculation (regression λ = {lambda}, no \
         back-propagated error), {optimizer:?}, batch {}, {} train / {} test examples of {}",
        model.describe(),
        model.parameter_count(),
        train.batch,
        split.train.n,
        split.test.n,
        source.name()
    );
    note!(
        "steps:   {} dispatches per step, {} steps per submit; the mean training image scores test MSE/px \
         {base_mse:.5}, BCE/px {base_bce:.5}",
        trainer.dispatches_per_step(),
        trainer.steps_per_submit(),
    );
    let steps = split.train.n / train.batch;
    for epoch in 1..=args.epochs {
        let start = Instant::now();
        let train_loss = trainer.epoch()?;
        let epoch_s = start.elapsed().as_secs_f64();
        let e = evaluator.run(0)?.metrics;
        if !e.loss.is_finite() {
            return Err(Error::Diverged {
                epoch,
                step: steps,
                what: "test loss".into(),
                loss: e.loss as f32,
                lr: optimizer.lr(),
            });
        }
        let m = EpochMetrics {
            epoch,
            train_loss,
            test_loss: e.loss,
            test_mse_px: e.mse_px,
            test_bce_px: e.bce_px,
            epoch_s,
            samples_per_s: (steps * train.batch) as f64 / epoch_s,
            test_recon_nats: None,
            test_kl: None,
            test_elbo_nats: None,
            test_code_mean: e.code_mean,
            test_code_near_zero: e.code_near_zero,
            test_jacobian_fro: e.jacobian_fro,
            avg_test_loss: None,
            avg_test_mse_px: None,
            avg_test_bce_px: None,
        };
        let mut meta = meta.clone();
        meta.push(("aegpu.epoch", epoch.to_string()));
        checkpoint::save(&gpu, &model, &meta, &dir.join("model.safetensors"))?;
        let path = dir.join("metrics.jsonl");
        let line = serde_json::to_string(&m).map_err(|e| Error::Config(e.to_string()))?;
        let mut file =
            std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| Error::io(&path, e))?;
        writeln!(file, "{line}").map_err(|e| Error::io(&path, e))?;
        say!(
            "epoch {epoch:>3}/{}  train_loss {train_loss:.5}  test_loss {:.5}  test_mse_px {:.5}  test_bce_px {:.5}  {epoch_s:.1} s  {:.0} samples/s",
            args.epochs,
            m.test_loss,
            m.test_mse_px,
            m.test_bce_px,
            m.samples_per_s
        );
    }
    let out = evaluator.run(16)?;
    write_pictures(&gpu, &model, &dir.path, &split.test, None, &out)?;
    note!("test PSNR {:.2} dB; wrote {}", psnr_db(out.metrics.mse_px), dir.path.display());
    Ok(())
}

/// A metadata value as JSON.
fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Config(e.to_string()))
}
