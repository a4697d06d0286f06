//! `train --pretrain layerwise[:EPOCHS] [--pretrain-noise masking:P]`: greedy layer-wise
//! pre-training of a dense autoencoder before the usual end-to-end training (the fine-tuning),
//! with its epochs in `pretrain.jsonl`.

use super::TrainArgs;
use super::run_dir::RunDir;
use aegpu::error::{Error, Result};
use aegpu::expert::atomic_file::write_atomic;
use aegpu::expert::nn::Noise;
use aegpu::gpu::Gpu;
use aegpu::layerwise::{LayerwiseSpec, layer_pairs, parse_spec, pretrain};
use aegpu::models::Autoencoder;
use aegpu::train::{GpuDataset, TrainConfig};
use std::collections::BTreeMap;
use std::io::Write;

/// The pre-training the flags ask for, checked against the model (before the output folder is touched).
pub(super) fn spec(
    args: &TrainArgs,
    train: &TrainConfig,
    model: &Autoencoder,
) -> Result<Option<LayerwiseSpec>> {
    let Some(arg) = &args.pretrain else {
        if args.pretrain_noise.is_some() {
            return Err(Error::Config(
                "--pretrain-noise does not apply here: it is for --pretrain layerwise".into(),
            ));
        }
        return Ok(None);
    };
    let epochs = parse_spec(arg)?;
    let masking = match args.pretrain_noise.as_deref().map(Noise::parse).transpose()? {
        None => None,
        Some(Noise::Masking(p)) => Some(p),
        Some(other) => {
            return Err(Error::Config(format!(
                "--pretrain-noise {other:?}: use masking:P (it corrupts each layer's input, codes included, which \
                 are not pixels in [0, 1])"
            )));
        }
    };
    layer_pairs(model)?;
    let (batch, optimizer, seed) = (train.batch, train.optimizer, train.seed);
    let steps_per_submit = args.submit.steps_per_submit;
    Ok(Some(LayerwiseSpec { epochs, masking, batch, optimizer, seed, steps_per_submit }))
}

/// Records the pre-training in the run's metadata (a resumed run keeps what its state recorded).
pub(super) fn record(
    config: &mut BTreeMap<String, String>,
    spec: &Option<LayerwiseSpec>,
    saved: Option<&BTreeMap<String, String>>,
) -> Result<()> {
    let value = match (spec, saved.and_then(|s| s.get("aegpu.pretrain"))) {
        (Some(s), _) => serde_json::to_string(s).map_err(|e| Error::Config(e.to_string()))?,
        (None, Some(v)) => v.clone(),
        (None, None) => return Ok(()),
    };
    config.insert("aegpu.pretrain".into(), value);
    Ok(())
}

/// Pre-trains the model's layers, one line per layer epoch on stdout and in `pretrain.jsonl`.
pub(super) fn run(
    gpu: &Gpu,
    model: &Autoencoder,
    train: &GpuDataset,
    spec: &LayerwiseSpec,
    dir: &RunDir,
) -> Result<()> {
    let path = dir.join("pretrain.jsonl");
    write_atomic(&path, b"")?;
    note!(
        "pretrain: greedy layer-wise, {} epoch(s) per layer{}, up to {} steps per submit, then end-to-end training",
        spec.epochs,
        spec.masking.map(|p| format!(", masking noise {p} (stacked denoising)")).unwrap_or_default(),
        spec.steps_per_submit
    );
    pretrain(gpu, model, train, spec, |e| {
        say!(
            "pretrain layer {} ({})  epoch {}/{}  train_loss {:.5} ({:?} per value)  {:.1} s",
            e.layer,
            e.autoencoder,
            e.epoch,
            spec.epochs,
            e.train_loss,
            e.loss,
            e.epoch_s
        );
        let line = serde_json::to_string(e).map_err(|e| Error::Config(e.to_string()))?;
        let mut file =
            std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| Error::io(&path, e))?;
        writeln!(file, "{line}").map_err(|e| Error::io(&path, e))
    })?;
    Ok(())
}
