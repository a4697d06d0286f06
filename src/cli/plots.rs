//! `aegpu filters` (a checkpoint's first-layer weights as a picture) and `aegpu plot` (training
//! curves of one or more runs from their `metrics.jsonl`).

use std::path::{Path, PathBuf};

use super::model_io::open_model;
use aegpu::error::{Error, Result};
use aegpu::train::EpochMetrics;

#[derive(clap::Args)]
pub struct FiltersArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    /// Draw at most this many units (dense) or output channels (conv), the first ones.
    #[arg(long, default_value_t = 256)]
    max: usize,
    /// Pixels per weight of a dense unit's tile (default: 2 for 28x28 inputs, about 56 px a tile).
    #[arg(long)]
    scale: Option<usize>,
    #[arg(long, default_value = "filters.png")]
    out: PathBuf,
}

pub(super) fn filters_cmd(args: FiltersArgs) -> Result<()> {
    if args.max == 0 {
        return Err(Error::Config("--max must be at least 1".into()));
    }
    let o = open_model(&args.checkpoint)?;
    let shape = o.shape();
    let tensors = o.model.export(&o.gpu)?;
    let (name, dims, w) = tensors.into_iter().next().ok_or_else(|| Error::BadCheckpoint {
        path: args.checkpoint.clone(),
        reason: "the model has no parameters".into(),
    })?;
    match dims[..] {
        [units, inputs] if inputs == o.model.input_dim() => {
            let k = units.min(args.max);
            let scale = args.scale.unwrap_or((56 / shape[1].max(shape[2]).max(1)).clamp(1, 8));
            if scale == 0 || scale > 16 {
                return Err(Error::Config(format!("--scale {scale}: use 1 to 16")));
            }
            aegpu::viz::save_filters_png_scaled(&args.out, &w[..k * inputs], k, shape, scale)?;
            note!(
                "wrote {}: {k} of the {units} units of {name} ([{units}, {inputs}]) as {}x{}x{} images",
                args.out.display(),
                shape[0],
                shape[1],
                shape[2]
            );
        }
        [out, inp, kh, kw] => {
            let k = out.min(args.max);
            aegpu::viz::save_conv_filters_png(&args.out, &w[..k * inp * kh * kw], [k, inp, kh, kw])?;
            note!(
                "wrote {}: {k} of the {out} kernels of {name} ([{out}, {inp}, {kh}, {kw}])",
                args.out.display()
            );
        }
        _ => {
            return Err(Error::Config(format!(
                "the first layer ({name}, shape {dims:?}) does not read the image: nothing to draw as filters"
            )));
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct PlotArgs {
    /// Run folders (each with a metrics.jsonl) or metrics.jsonl files; overlaid in one picture.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Names in the legend, comma-separated, one per run (default: the folder names).
    #[arg(long, value_delimiter = ',')]
    names: Vec<String>,
    #[arg(long, default_value = "curves.png")]
    out: PathBuf,
}

pub(super) fn plot_cmd(args: PlotArgs) -> Result<()> {
    if !args.names.is_empty() && args.names.len() != args.runs.len() {
        return Err(Error::Config(format!("{} --names for {} runs", args.names.len(), args.runs.len())));
    }
    let mut runs = Vec::new();
    for (i, run) in args.runs.iter().enumerate() {
        let file = if run.is_dir() { run.join("metrics.jsonl") } else { run.clone() };
        let name = args.names.get(i).cloned().unwrap_or_else(|| run_name(run));
        runs.push((name, read_metrics(&file)?));
    }
    aegpu::viz::save_curves_png(&args.out, &runs)?;
    note!("wrote {} ({} runs)", args.out.display(), runs.len());
    Ok(())
}

/// A run's name: its folder's name (a metrics file's folder).
fn run_name(run: &Path) -> String {
    let dir = if run.is_dir() { run } else { run.parent().unwrap_or(run) };
    std::path::absolute(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| run.display().to_string())
}

/// The epochs of a `metrics.jsonl`, one JSON object per line (blank lines ignored).
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        out.push(serde_json::from_str(line).map_err(|e| Error::BadData {
            path: path.to_path_buf(),
            reason: format!("line {}: not an epoch record of metrics.jsonl ({e})", i + 1),
        })?);
    }
    if out.is_empty() {
        return Err(Error::BadData { path: path.to_path_buf(), reason: "no epochs recorded yet".into() });
    }
    Ok(out)
}
