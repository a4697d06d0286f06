//! `aegpu encode` / `decode` (codes to and from files NumPy and PyTorch read) and `aegpu compress`
//! / `decompress` (image files to one compact file of quantised codes, and back to PNGs).

use std::path::{Path, PathBuf};

use super::data::load_source;
use super::model_io::{Opened, check_input, checkpoint_source, open_model};
use aegpu::codec::container::{self, Precision};
use aegpu::codec::files::{CodeSet, read_codes, write_codes};
use aegpu::codec::images::{read_images, write_png};
use aegpu::codec::{self};
use aegpu::error::{Error, Result};

#[derive(clap::Args)]
pub struct EncodeArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    /// Image files or folders (PNG/JPEG, converted to the model's input shape). Without them, a
    /// split of the checkpoint's data (--split).
    images: Vec<PathBuf>,
    /// Which split of the checkpoint's data to encode: test or train.
    #[arg(long, default_value = "test")]
    split: String,
    /// Encode MNIST or Fashion-MNIST instead of the data the checkpoint records.
    #[arg(long)]
    dataset: Option<String>,
    /// Folder of --dataset's files (default: $AEGPU_DATA).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// A VAE: also write log σ² (codes.logvar.npy, or a `logvar` tensor).
    #[arg(long)]
    logvar: bool,
    /// codes.npy (with codes.labels.npy, codes.names.txt, codes.logvar.npy beside it) or
    /// codes.safetensors (all in one file).
    #[arg(long)]
    out: PathBuf,
}

pub(super) fn encode_cmd(args: EncodeArgs) -> Result<()> {
    let o = open_model(&args.checkpoint)?;
    if args.logvar && o.model.variational().is_none() {
        return Err(Error::Config(
            "--logvar: only a VAE has log σ²; this checkpoint is a plain autoencoder".into(),
        ));
    }
    let (images, mut set, source) = if args.images.is_empty() {
        let (images, labels, source) = split_images(&o, &args)?;
        (images, CodeSet { labels: Some(labels), ..CodeSet::default() }, source)
    } else {
        if args.dataset.is_some() || args.data.is_some() {
            return Err(Error::Config("give image files or --dataset, not both".into()));
        }
        let mut files = read_images(&args.images, o.shape())?;
        limit(&mut files.images, &mut files.names, args.limit, o.model.input_dim())?;
        files.notes.iter().for_each(|n| note!("note:    {n}"));
        let labels = files.labels.map(|l| l[..files.names.len()].iter().map(|&v| i64::from(v)).collect());
        let set = CodeSet { labels, names: files.names, ..CodeSet::default() };
        (files.images, set, "image files".to_string())
    };
    let rows = codec::encode(&o.gpu, &o.model, &images)?;
    let (width, d) = (o.model.code_width(), o.model.code_dim());
    set.codes = codec::means(&o.model, &rows);
    set.dim = d;
    if args.logvar {
        set.logvar = Some(rows.chunks(width).flat_map(|r| r[d..].iter().copied()).collect());
    }
    set.meta = provenance(&o, &args.checkpoint, &source)?;
    let written = write_codes(&args.out, &set)?;
    let files: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    note!("wrote {} codes of {d} dimensions ({source}): {}", set.len(), files.join(", "));
    Ok(())
}

/// The images and labels of a split of the checkpoint's data, as the model reads them.
fn split_images(o: &Opened, args: &EncodeArgs) -> Result<(Vec<f32>, Vec<i64>, String)> {
    let source = checkpoint_source(&o.ckpt, &args.checkpoint, args.dataset.as_deref(), args.data.as_deref())?;
    let (split, map) = load_source(&source)?;
    let ds = match args.split.as_str() {
        "test" => split.test,
        "train" => split.train,
        other => return Err(Error::Config(format!("--split '{other}': use test or train"))),
    };
    let n = match args.limit {
        Some(0) => return Err(Error::Config("--limit must be at least 1".into())),
        Some(k) => k.min(ds.n),
        None => ds.n,
    };
    check_input(&o.model, ds.dim(), &format!("{} images", ds.name))?;
    let bytes = &ds.images[..n * ds.dim()];
    // Whitened patches are stored as bytes of a map; the model reads the whitened values.
    let images = match map {
        Some(m) => bytes.iter().map(|&b| m.decode(b)).collect(),
        None => bytes.iter().map(|&b| f32::from(b) / 255.0).collect(),
    };
    let labels = ds.labels[..n].iter().map(|&l| i64::from(l)).collect();
    Ok((images, labels, format!("{} {} split", ds.name, args.split)))
}

fn limit(images: &mut Vec<f32>, names: &mut Vec<String>, limit: Option<usize>, dim: usize) -> Result<()> {
    match limit {
        Some(0) => Err(Error::Config("--limit must be at least 1".into())),
        Some(k) if k < names.len() => {
            images.truncate(k * dim);
            names.truncate(k);
            Ok(())
        }
        _ => Ok(()),
    }
}

fn provenance(
    o: &Opened,
    checkpoint: &Path,
    source: &str,
) -> Result<std::collections::BTreeMap<String, String>> {
    Ok([
        ("aegpu.checkpoint", checkpoint.display().to_string()),
        ("aegpu.model", o.model.describe()),
        ("aegpu.model_hash", format!("{:016x}", container::model_hash(&o.gpu, &o.model)?)),
        ("aegpu.source", source.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect())
}

#[derive(clap::Args)]
pub struct DecodeArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    /// A code file: .npy (float32/float64 [n, d]) or .safetensors (a `codes` tensor).
    codes: PathBuf,
    /// A folder (one PNG per code, named after the images the codes came from when the file
    /// records them), or a .png file (one grid picture).
    #[arg(long)]
    out: PathBuf,
    /// Only the first N codes.
    #[arg(long)]
    limit: Option<usize>,
}

pub(super) fn decode_cmd(args: DecodeArgs) -> Result<()> {
    let set = read_codes(&args.codes)?;
    let o = open_model(&args.checkpoint)?;
    if set.dim != o.model.code_dim() {
        return Err(Error::Shape(format!(
            "{} holds {}-dimensional codes but the checkpoint's model decodes {}-dimensional ones",
            args.codes.display(),
            set.dim,
            o.model.code_dim()
        )));
    }
    let n = match args.limit {
        Some(0) => return Err(Error::Config("--limit must be at least 1".into())),
        Some(k) => k.min(set.len()),
        None => set.len(),
    };
    let images = codec::decode(&o.gpu, &o.model, &set.codes[..n * set.dim])?;
    let names = if set.names.is_empty() { Vec::new() } else { set.names[..n].to_vec() };
    write_images(&args.out, &images, n, o.shape(), &names)
}

/// `n` images as PNG files in the folder `out`, or one grid when `out` ends in `.png`.
fn write_images(out: &Path, images: &[f32], n: usize, shape: [usize; 3], names: &[String]) -> Result<()> {
    if out.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        let cols = (n as f64).sqrt().ceil() as usize;
        aegpu::viz::save_image_grid(out, images, n, shape, cols, 2)?;
        note!("wrote {} ({n} images)", out.display());
        return Ok(());
    }
    let dim: usize = shape.iter().product();
    let files = png_names(names, n);
    for (image, file) in images.chunks(dim).zip(&files) {
        write_png(&out.join(file), image, shape)?;
    }
    note!("wrote {n} PNG files to {}", out.display());
    Ok(())
}

/// Output file names: each image's own stem (`cat.jpg` -> `cat.png`) when those are distinct,
/// else numbers.
fn png_names(names: &[String], n: usize) -> Vec<String> {
    let stems: Vec<String> = names
        .iter()
        .map(|s| Path::new(s).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default())
        .collect();
    let distinct = stems.iter().collect::<std::collections::BTreeSet<_>>().len() == stems.len();
    if stems.len() == n && distinct && stems.iter().all(|s| !s.is_empty()) {
        stems.iter().map(|s| format!("{s}.png")).collect()
    } else {
        (0..n).map(|i| format!("{i:05}.png")).collect()
    }
}

#[derive(clap::Args)]
pub struct CompressArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    /// Image files or folders (PNG/JPEG), converted to the model's input shape.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// u8 (one byte per code value, with a per-dimension offset and step) or f16 (two bytes).
    #[arg(long, default_value = "u8")]
    precision: String,
    /// Leave the file names out (decompress then numbers its PNGs).
    #[arg(long)]
    no_names: bool,
    /// The compressed file (.aegz by convention).
    #[arg(long)]
    out: PathBuf,
}

pub(super) fn compress_cmd(args: CompressArgs) -> Result<()> {
    let precision = Precision::parse(&args.precision)?;
    let o = open_model(&args.checkpoint)?;
    let files = read_images(&args.images, o.shape())?;
    files.notes.iter().for_each(|n| note!("note:    {n}"));
    let codes = codec::means(&o.model, &codec::encode(&o.gpu, &o.model, &files.images)?);
    let hash = container::model_hash(&o.gpu, &o.model)?;
    let names = if args.no_names { Vec::new() } else { files.names.clone() };
    let bytes = container::compress(&codes, o.model.code_dim(), precision, hash, o.shape(), &names)?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::write(&args.out, &bytes).map_err(|e| Error::io(&args.out, e))?;
    // What decompress will give, against the images as the model saw them.
    let back = container::decompress(&bytes, &args.out)?;
    let decoded = codec::decode(&o.gpu, &o.model, &back.codes)?;
    let as_png: Vec<f32> = decoded.iter().map(|&v| f32::from(codec::images::to_u8(v)) / 255.0).collect();
    let n = files.names.len();
    say!(
        "{}",
        serde_json::json!({
            "out": args.out.display().to_string(),
            "images": n,
            "bytes": bytes.len(),
            "bytes_per_image": bytes.len() as f64 / n as f64,
            "input_bytes": files.paths.iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).sum::<u64>(),
            "precision": args.precision,
            "code_dim": o.model.code_dim(),
            "model_hash": format!("{hash:016x}"),
            "psnr_db": aegpu::generate::mean_psnr(&as_png, &files.images, o.model.input_dim()),
        })
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct DecompressArgs {
    /// The checkpoint that compressed the file (its hash must match).
    #[arg(long)]
    checkpoint: PathBuf,
    /// A file written by `aegpu compress`.
    file: PathBuf,
    /// A folder for the PNGs (named after the compressed images), or a .png file for one grid.
    #[arg(long)]
    out: PathBuf,
}

pub(super) fn decompress_cmd(args: DecompressArgs) -> Result<()> {
    let bytes = std::fs::read(&args.file).map_err(|e| Error::io(&args.file, e))?;
    let c = container::decompress(&bytes, &args.file)?;
    let o = open_model(&args.checkpoint)?;
    let hash = container::model_hash(&o.gpu, &o.model)?;
    if hash != c.model_hash {
        return Err(Error::Config(format!(
            "{} was compressed by the model with hash {:016x}, but {} holds a different model (hash {hash:016x}, {}); \
             decompress with the checkpoint that compressed it",
            args.file.display(),
            c.model_hash,
            args.checkpoint.display(),
            o.model.describe()
        )));
    }
    if c.shape != o.shape() || c.dim != o.model.code_dim() {
        return Err(Error::BadData {
            path: args.file.clone(),
            reason: "its shape fields disagree with the model that has its hash; the file is damaged".into(),
        });
    }
    let images = codec::decode(&o.gpu, &o.model, &c.codes)?;
    write_images(&args.out, &images, c.len(), c.shape, &c.names)
}
