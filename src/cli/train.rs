//! `aegpu train`: a run from the flags (or resumed from its folder), its metrics, checkpoints and
//! pictures. Everything is validated (data, model, limits, batch) before the output folder is
//! touched; after every epoch the resume state, then the checkpoint, then the metrics line are
//! written, each carrying the epoch (`epoch_writer`); Ctrl-C stops after the current submit's steps
//! and saves the state.

use super::TrainArgs;
use super::data::{for_display, load_source, upload};
use super::epoch_writer::{AVERAGE_ENTRY, AVERAGE_TENSOR, EpochWriter};
use super::model_flags::model_config;
use super::run_dir::{Claim, RunDir};
use aegpu::checkpoint::{self, keys};
use aegpu::data::{self, DataSource};
use aegpu::error::{Error, Result};
use aegpu::expert::atomic_file::write_atomic;
use aegpu::expert::average::WeightAverage;
use aegpu::expert::nn::ActivationStorage;
use aegpu::expert::resume::{STATE_FILE, TrainState};
use aegpu::generate;
use aegpu::gpu::{Gpu, GpuOptions};
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::matmul_policy::MatmulPolicy;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::models::{Autoencoder, Init, ModelConfig};
use aegpu::run::{Position, run_epochs};
use aegpu::train::{EvalOutput, Evaluator, Residency, TrainConfig, Trainer};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Everything that determines a run's results, as the resume state records it.
struct RunSpec {
    model: ModelConfig,
    train: TrainConfig,
    init: Init,
    source: DataSource,
    train_limit: Option<usize>,
    test_limit: Option<usize>,
    /// Weights to start from instead of the initialisation.
    init_from: Option<std::path::PathBuf>,
    /// How the training step stores hidden activations.
    activations: ActivationStorage,
}

/// The options that describe a model (with `--init-from`, any of them means "this model, not the
/// file's").
const MODEL_FLAGS: [&str; 15] = [
    "model",
    "preset",
    "arch",
    "arch_file",
    "layers",
    "activation",
    "code_activation",
    "output",
    "loss",
    "code_dim",
    "beta",
    "sparse",
    "noise",
    "contractive",
    "dropout",
];

/// Flags that may be given with `--resume` (everything else comes from the saved run).
const RESUME_FLAGS: [&str; 7] =
    ["resume", "epochs", "quiet", "stream_data", "chunk_mb", "steps_per_submit", "average_from"];

pub(super) fn train_cmd(args: TrainArgs) -> Result<()> {
    if super::recirculation::method(&args)? == super::recirculation::Method::Recirculation {
        return super::recirculation::recirculation_cmd(args);
    }
    if args.epochs == 0 {
        return Err(Error::Config("--epochs must be at least 1".into()));
    }
    let resumed = args.resume.as_deref().map(|dir| resume_run(dir, &args)).transpose()?;
    let (source, limits) = match &resumed {
        Some(r) => (r.spec.source.clone(), (r.spec.train_limit, r.spec.test_limit)),
        None => (args.data.source()?, (args.train_limit, args.test_limit)),
    };
    let (mut split, map) = load_source(&source)?;
    for (limit, set, flag) in [(limits.0, &mut split.train, "train"), (limits.1, &mut split.test, "test")] {
        match limit {
            Some(0) => return Err(Error::Config(format!("--{flag}-limit must be at least 1"))),
            Some(n) => *set = set.subset(0..n.min(set.n)),
            None => {}
        }
    }
    let (spec, resumed) = match resumed {
        Some(Resumed { spec, state }) => (spec, Some(state)),
        None => (fresh_spec(&args, source, split.train.shape())?, None),
    };
    let gpu = Gpu::new(&GpuOptions::default())?;
    let mut model = match resumed {
        Some(_) => Autoencoder::zeroed(&gpu, spec.model.clone(), spec.train.seed)?,
        None => Autoencoder::new(&gpu, spec.model.clone(), spec.train.seed, spec.init)?,
    };
    if let Some(state) = &resumed {
        same_kernels(&gpu, &mut model, state)?;
    }
    if let Some(path) = &spec.init_from {
        let start = checkpoint::load_weights_for(path, &spec.model)?;
        model.import(&gpu, &start.tensors, path)?;
    }
    let identity = model.output_activation() == aegpu::kernels::Activation::Identity;
    if map.is_some() && (model.loss_kind() == LossKind::Bce || !identity) {
        return Err(Error::Config(
            "whitened patches are zero-mean values, not pixels in [0, 1]: use --loss mse --output identity"
                .into(),
        ));
    }
    let residency = match (args.stream_data, args.chunk_mb) {
        (true, _) => Residency::Host,
        (false, Some(mb)) => Residency::Gpu { max_chunk_bytes: Some(mb.saturating_mul(1 << 20)) },
        (false, None) => Residency::Auto,
    };
    let train_gpu = upload(&gpu, &split.train, map, residency)?;
    let test_gpu = upload(&gpu, &split.test, map, residency)?;
    let mut trainer = Trainer::new(&gpu, &model, &train_gpu, spec.train.clone())?;
    trainer.set_steps_per_submit(args.submit.steps_per_submit)?;
    if spec.activations != ActivationStorage::F32 {
        trainer.set_activation_storage(spec.activations)?;
    }
    let evaluator = Evaluator::new(&gpu, &model, &test_gpu, 1000)?;
    let layerwise = super::pretrain::spec(&args, &spec.train, &model)?;
    let average = weight_average(&args, &spec.train, resumed.as_ref())?;

    // Only now, with everything valid, the output folder.
    let claim = match (&resumed, args.overwrite) {
        (Some(_), _) => Claim::Resume,
        (None, true) => Claim::Overwrite,
        (None, false) => Claim::Fresh,
    };
    let out = args.resume.as_ref().unwrap_or(&args.out);
    let dir = RunDir::claim(out, claim)?;
    let (from, history) = match &resumed {
        Some(state) => {
            state.restore(&gpu, &model, &mut trainer)?;
            (state.position, state.history.clone())
        }
        None => (Position::START, Vec::new()),
    };
    // The history as the state recorded it: a metrics line written after the state was saved
    // (a crash in between) is dropped, a missing one restored.
    let lines: String = history
        .iter()
        .map(|m| serde_json::to_string(m).map(|l| l + "\n"))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Config(e.to_string()))?;
    write_atomic(&dir.join("metrics.jsonl"), lines.as_bytes())?;

    let datasets = (&split, &train_gpu, &test_gpu);
    super::train_log::print_header(
        &gpu,
        &model,
        &spec.train,
        spec.init,
        spec.source.name(),
        datasets,
        &trainer,
    );
    if let Some(path) = &spec.init_from {
        note!("init:    weights from {}", path.display());
    }
    if let Some(state) = &resumed {
        note!(
            "resume:  from epoch {} step {} of {} ({} epochs recorded)",
            from.epoch,
            from.batch,
            trainer.steps_per_epoch(),
            state.history.len()
        );
    }
    let mut config = spec.entries(&split, &gpu, &model)?;
    super::pretrain::record(&mut config, &layerwise, resumed.as_ref().map(|s| &s.config))?;
    if let Some(a) = &average {
        config.insert(AVERAGE_ENTRY.into(), a.from_epoch().to_string());
    }
    if let Some(l) = &layerwise {
        super::pretrain::run(&gpu, &model, &train_gpu, l, &dir)?;
    }
    let stop = install_ctrl_c();
    let mut writer = EpochWriter {
        gpu: &gpu,
        model: &model,
        dir: &dir,
        config: &config,
        history,
        epochs: spec.train.epochs,
        average,
    };
    let stopped = run_epochs(
        &mut trainer,
        &evaluator,
        from,
        &mut super::progress::EpochBar::new(!args.quiet),
        &|| stop.load(Ordering::SeqCst),
        |m, t, e| writer.epoch(m, t, e),
    )
    .map_err(|e| explain_failure(e, &dir, writer.history.len()))?;
    if let Some(at) = stopped {
        let state = writer.state(&trainer, at, &writer.history)?;
        state.save(&dir.join(STATE_FILE))?;
        return Err(Error::Interrupted(format!(
            "interrupted in epoch {} after step {} of {}; {} holds the run's state ({} holds epoch {}).\n  \
             Resume with: aegpu train --resume {}",
            at.epoch,
            at.batch,
            trainer.steps_per_epoch(),
            dir.join(STATE_FILE).display(),
            dir.join("model.safetensors").display(),
            writer.history.len(),
            dir.path.display()
        )));
    }
    let out = writer.final_evaluation(&evaluator, 16)?;
    write_pictures(&gpu, &model, &dir.path, &split.test, map, &out)?;
    let name = dir.path.file_name().map_or("run".into(), |n| n.to_string_lossy().into_owned());
    aegpu::viz::save_curves_png(&dir.join("curves.png"), &[(name, writer.history.clone())])?;
    match map {
        None => note!(
            "test PSNR {:.2} dB (10·log10(1/MSE) over pixels in [0, 1]); wrote {}",
            psnr_db(out.metrics.mse_px),
            dir.path.display()
        ),
        Some(_) => note!(
            "test MSE {:.5} per value in whitened units (unit variance); wrote {}",
            out.metrics.mse_px,
            dir.path.display()
        ),
    }
    Ok(())
}

/// The run the flags describe, for data of shape `input`.
fn fresh_spec(args: &TrainArgs, source: DataSource, input: [usize; 3]) -> Result<RunSpec> {
    let loss = LossKind::parse(&args.loss)
        .ok_or_else(|| Error::Config(format!("--loss '{}': use mse or bce", args.loss)))?;
    let optimizer = Optimizer::parse(&args.optimizer, args.lr, args.weight_decay)?;
    let init = match (&args.init, args.preset.as_deref()) {
        (Some(i), _) => {
            Init::parse(i).ok_or_else(|| Error::Config(format!("--init '{i}': use glorot or torch")))?
        }
        (None, Some("vae")) => Init::Torch,
        (None, _) => Init::Glorot,
    };
    // A checkpoint given to start from brings its model, unless the options describe one.
    let recorded = match &args.init_from {
        Some(path) if !args.given.iter().any(|g| MODEL_FLAGS.contains(&g.as_str())) => {
            checkpoint::recorded_model(path)?
        }
        _ => None,
    };
    let model = match recorded {
        Some(model) => model,
        None => model_config(args, input, loss)?,
    };
    let train = TrainConfig { epochs: args.epochs, batch: args.batch, optimizer, seed: args.seed };
    let (train_limit, test_limit, init_from) = (args.train_limit, args.test_limit, args.init_from.clone());
    let activations = ActivationStorage::parse(&args.activations)?;
    Ok(RunSpec { model, train, init, source, train_limit, test_limit, init_from, activations })
}

/// A run read back from its folder's resume state.
struct Resumed {
    spec: RunSpec,
    state: TrainState,
}

/// The run saved in `dir`, with `--epochs` applied when given.
fn resume_run(dir: &Path, args: &TrainArgs) -> Result<Resumed> {
    if let Some(flag) = args.given.iter().find(|g| !RESUME_FLAGS.contains(&g.as_str())) {
        return Err(Error::Config(format!(
            "--resume continues the run with the settings it was started with; drop --{} \
             (only --epochs, --average-from, --quiet, --stream-data, --chunk-mb and --steps-per-submit may be \
             given)",
            flag.replace('_', "-")
        )));
    }
    let path = dir.join(STATE_FILE);
    if !path.exists() {
        let why = if dir.join("model.safetensors").exists() {
            "it holds a checkpoint but no resume state (written before aegpu saved one)"
        } else {
            "it holds no training run"
        };
        return Err(Error::Config(format!("cannot resume {}: {why}", dir.display())));
    }
    let state = TrainState::load(&path)?;
    let bad = |what: &str, e: &dyn std::fmt::Display| Error::BadCheckpoint {
        path: path.clone(),
        reason: format!("'{what}': {e}"),
    };
    let entry = |key: &str| {
        state.config.get(key).ok_or_else(|| bad(key, &"missing: not a resume state written by aegpu train"))
    };
    let model = ModelConfig::from_json(Some(entry("aegpu.kind")?), entry("aegpu.model")?)
        .map_err(|e| bad("aegpu.model", &e))?;
    let mut train: TrainConfig =
        serde_json::from_str(entry("aegpu.train")?).map_err(|e| bad("aegpu.train", &e))?;
    let init =
        Init::parse(entry("aegpu.init")?).ok_or_else(|| bad("aegpu.init", &"unknown initialisation"))?;
    let source: DataSource = serde_json::from_str(entry("aegpu.data")?).map_err(|e| bad("aegpu.data", &e))?;
    let (train_limit, test_limit): (Option<usize>, Option<usize>) =
        serde_json::from_str(entry("aegpu.limits")?).map_err(|e| bad("aegpu.limits", &e))?;
    let done = state.history.len();
    if args.given.iter().any(|g| g == "epochs") {
        if args.epochs < state.position.epoch || (args.epochs == done && state.position.batch == 0) {
            return Err(Error::Config(format!(
                "{} has trained {done} epochs; --epochs is the total to reach, so pass more than {done}",
                dir.display()
            )));
        }
        train.epochs = args.epochs;
    } else if state.position.epoch > train.epochs {
        return Err(Error::Config(format!(
            "the run in {} finished its {} epochs; pass --epochs N (more than {}) to train further",
            dir.display(),
            train.epochs,
            train.epochs
        )));
    }
    // Absent in runs from before f16 storage: f32.
    let activations = match state.config.get(keys::ACTIVATIONS) {
        Some(a) => ActivationStorage::parse(a).map_err(|e| bad(keys::ACTIVATIONS, &e))?,
        None => ActivationStorage::F32,
    };
    let spec = RunSpec { model, train, init, source, train_limit, test_limit, init_from: None, activations };
    Ok(Resumed { spec, state })
}

impl RunSpec {
    /// The run's configuration as metadata entries (the resume state keeps all of them; the
    /// checkpoint all but the limits).
    fn entries(
        &self,
        split: &data::Split,
        gpu: &Gpu,
        model: &Autoencoder,
    ) -> Result<BTreeMap<String, String>> {
        let mut e = BTreeMap::new();
        let to = |r: serde_json::Result<String>| r.map_err(|e| Error::Config(e.to_string()));
        e.insert("aegpu.kind".into(), self.model.kind().to_string());
        e.insert("aegpu.model".into(), self.model.to_json()?);
        e.insert("aegpu.train".into(), to(serde_json::to_string(&self.train))?);
        e.insert("aegpu.init".into(), to(serde_json::to_string(&self.init))?.trim_matches('"').to_string());
        e.insert("aegpu.dataset".into(), self.source.name());
        e.insert("aegpu.data".into(), to(serde_json::to_string(&self.source))?);
        e.insert("aegpu.input".into(), to(serde_json::to_string(&split.train.shape()))?);
        e.insert("aegpu.limits".into(), to(serde_json::to_string(&(self.train_limit, self.test_limit)))?);
        e.insert("aegpu.adapter".into(), gpu.describe());
        e.insert("aegpu.matmul".into(), model.matmul_policy(gpu)?.name());
        e.insert(keys::ACTIVATIONS.into(), self.activations.name().into());
        e.insert("aegpu.conv_algorithms".into(), to(serde_json::to_string(&model.conv_algorithms()))?);
        Ok(e)
    }
}

/// A resumed run runs the kernels the run started with, so that it computes the same bits: the
/// recorded convolution algorithms and matmul variants are used instead of measuring again (and
/// instead of `AEGPU_CONV` / `AEGPU_MATMUL`); where this device cannot run a recorded matmul
/// variant, the tuned ones run, with a note.
fn same_kernels(gpu: &Gpu, model: &mut Autoencoder, state: &TrainState) -> Result<()> {
    if let Some(json) = state.config.get("aegpu.conv_algorithms") {
        let chosen: Vec<Option<aegpu::expert::tune::ConvAlgorithm>> =
            serde_json::from_str(json).map_err(|e| Error::Config(format!("aegpu.conv_algorithms: {e}")))?;
        model.set_conv_algorithms(&chosen)?;
    }
    let Some(then) = state.config.get("aegpu.matmul") else { return Ok(()) };
    let recorded = MatmulPolicy::parse(then).ok_or_else(|| {
        Error::Config(format!("aegpu.matmul '{then}' in the run's state is not a matmul policy"))
    })?;
    if let Err(e) = model.pin_matmul_policy(gpu, recorded) {
        let now = gpu.matmul_policy()?.name();
        note!("note: {e}; running {now}: the results will differ in the last bits");
    }
    Ok(())
}

/// Ctrl-C asks the run to stop after the current step (and save); a second one quits at once.
fn install_ctrl_c() -> &'static AtomicBool {
    static STOP: AtomicBool = AtomicBool::new(false);
    let installed = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        note!("\nstopping after the current steps to save the run (Ctrl-C again to quit without saving)");
    });
    if let Err(e) = installed {
        note!("note: Ctrl-C will not save the run ({e})");
    }
    &STOP
}

/// The weight average the flags ask for, or the one a resumed run recorded (with its mean so far).
/// A resumed run that records none may start one at an epoch still to come (`--resume DIR --epochs
/// 48 --average-from 33`).
fn weight_average(
    args: &TrainArgs,
    train: &TrainConfig,
    resumed: Option<&TrainState>,
) -> Result<Option<WeightAverage>> {
    let Some(state) = resumed else {
        return args.average_from.map(|from| WeightAverage::new(from, train.epochs)).transpose();
    };
    match (state.config.get(AVERAGE_ENTRY), args.average_from) {
        (Some(recorded), Some(from)) => Err(Error::Config(format!(
            "this run already averages its weights from epoch {recorded}; drop --average-from {from}"
        ))),
        (Some(from), None) => {
            let from = from.parse().map_err(|e| Error::Config(format!("{AVERAGE_ENTRY} '{from}': {e}")))?;
            let mean = state.tensor(AVERAGE_TENSOR).unwrap_or_default().to_vec();
            WeightAverage::restore(from, mean, state.history.len()).map(Some)
        }
        (None, Some(from)) if from <= state.history.len() => Err(Error::Config(format!(
            "--average-from {from}: the run has already finished epoch {}; give a later epoch",
            state.history.len()
        ))),
        (None, from) => from.map(|from| WeightAverage::new(from, train.epochs)).transpose(),
    }
}

/// Adds where the last good state is to a divergence (the error itself stays typed).
fn explain_failure(e: Error, dir: &RunDir, saved: usize) -> Error {
    if matches!(e, Error::Diverged { .. }) {
        match saved {
            0 => note!("no checkpoint was written: the first epoch did not finish with finite values"),
            n => note!(
                "{} and {} keep epoch {n}, the last one with finite values",
                dir.join("model.safetensors").display(),
                dir.join(STATE_FILE).display()
            ),
        }
    }
    e
}

/// Peak signal-to-noise ratio of a per-pixel MSE over values in `[0, 1]`.
/// NaN stays NaN (a diverged model must not read as a perfect one).
pub(super) fn psnr_db(mse: f64) -> f64 {
    if mse.is_nan() {
        return f64::NAN;
    }
    10.0 * (1.0 / mse.max(1e-12)).log10()
}

/// recon.png; filters.png when the first layer is a Linear reading the image; latent.png (and
/// grid.png) for a 2-D code; samples.png for a VAE.
pub(super) fn write_pictures(
    gpu: &Gpu,
    model: &Autoencoder,
    dir: &Path,
    test: &data::Dataset,
    map: Option<data::U8Map>,
    out: &EvalOutput,
) -> Result<()> {
    let shape = test.shape();
    let k = out.recon.len() / test.dim();
    let originals = test.images_f32(0..k);
    let recon = for_display(&out.recon, map);
    aegpu::viz::save_recon_png(&dir.join("recon.png"), &originals, &recon, k, shape, 16)?;
    if let Some((_, dims, weights)) = model.export(gpu)?.into_iter().next()
        && let [units, inputs] = dims[..]
        && inputs == test.dim()
    {
        let show = units.min(400);
        aegpu::viz::save_filters_png(&dir.join("filters.png"), &weights[..show * inputs], show, shape)?;
    }
    if model.code_dim() == 2 {
        let names: Vec<String> = if test.class_names.is_empty() {
            (0..=test.labels.iter().copied().max().unwrap_or(0)).map(|l| l.to_string()).collect()
        } else {
            test.class_names.clone()
        };
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let title = format!("{} test codes, {}", test.name, model.describe());
        aegpu::viz::save_latent_png(&dir.join("latent.png"), &out.codes, &test.labels, &names, &title)?;
        let steps = 15;
        let codes = generate::grid_codes(model, &out.codes, steps)?;
        let images = for_display(&generate::decode(gpu, model, &codes)?, map);
        aegpu::viz::save_image_grid(&dir.join("grid.png"), &images, steps * steps, shape, steps, 1)?;
    }
    if model.variational().is_some() {
        let codes = generate::sample_codes(model, &out.codes, 64, 0);
        let images = for_display(&generate::decode(gpu, model, &codes)?, map);
        aegpu::viz::save_image_grid(&dir.join("samples.png"), &images, 64, shape, 8, 2)?;
    }
    Ok(())
}
