//! The data flags shared by `train` and `export-images`: which source (`--dataset`, `--data-folder`,
//! `--npy`), how to read it (`--channels`, `--size`, `--crop`, `--skip-bad`), the test split, and
//! patches (`--patches N:SIZE`, `--whiten`); and the `export-images` command.

use std::path::{Path, PathBuf};

use aegpu::data::source::{Layout, Whiten};
use aegpu::data::{self, DataSource, Dataset, FolderSpec, PatchSpec, SourceKind, Split, U8Map};
use aegpu::error::{Error, Result};
use aegpu::gpu::Gpu;
use aegpu::train::{GpuDataset, Residency};

#[derive(clap::Args, Clone, Debug)]
pub struct DataArgs {
    /// A bundled-format dataset: mnist, fashion-mnist (IDX files) or cifar10 (binary batches),
    /// read from --data or $AEGPU_DATA.
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// Folder with the dataset's files (or with mnist/, fashion-mnist/, cifar-10-batches-bin/
    /// inside). Default: $AEGPU_DATA.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Your own images instead: a folder of PNG/JPEG files, searched recursively. Sub-folders are
    /// classes (DIR/cat/*.png); DIR/train and DIR/test, if both exist, are the two splits.
    #[arg(long, conflicts_with_all = ["npy"])]
    data_folder: Option<PathBuf>,
    /// A separate folder of test images for --data-folder (else a random --test-fraction is held out).
    #[arg(long, requires = "data_folder")]
    test_folder: Option<PathBuf>,
    /// Your own images as a NumPy array (uint8 0-255 or float 0-1; [N,H,W], NHWC or NCHW).
    #[arg(long)]
    npy: Option<PathBuf>,
    /// Integer labels for --npy ([N] or [N,1]).
    #[arg(long, requires = "npy")]
    npy_labels: Option<PathBuf>,
    /// Channel axis of a 4-D --npy array: auto, nhwc or nchw.
    #[arg(long, default_value = "auto", requires = "npy")]
    npy_layout: String,
    /// Fraction of a folder or array (or of the patches) held out, at random, as the test set.
    #[arg(long, default_value_t = 0.1)]
    test_fraction: f64,
    /// Seed of the held-out split and of the patch positions (independent of --seed, so the test set
    /// stays the same across training seeds).
    #[arg(long, default_value_t = 0)]
    data_seed: u64,
    /// Folder images: 1 (grey) or 3 (RGB). Default: 3 if any image is in colour.
    #[arg(long)]
    channels: Option<usize>,
    /// Folder images: resize every image to ROWSxCOLS (or SIDE for a square). Default: the size they
    /// all share (an error names two files when they differ).
    #[arg(long)]
    size: Option<String>,
    /// With --size: centre-crop each image to the target's aspect ratio before scaling (else the
    /// whole image is scaled, and squeezed if its aspect differs).
    #[arg(long)]
    crop: bool,
    /// Folder images: skip unreadable or corrupt files (they are counted and listed) instead of
    /// stopping at the first.
    #[arg(long)]
    skip_bad: bool,
    /// Train on N random SIZE x SIZE patches of the images (photographs), e.g. 50000:8.
    #[arg(long)]
    patches: Option<String>,
    /// Whiten the patches: zca or pca (fitted on the training patches), optionally with the
    /// regulariser as a fraction of the mean eigenvalue, e.g. zca:0.1 (default 0.01).
    #[arg(long, requires = "patches")]
    whiten: Option<String>,
}

impl DataArgs {
    /// MNIST (or Fashion-MNIST) from `dir` or $AEGPU_DATA: what a checkpoint's `--dataset` override means.
    pub(super) fn idx(dataset: &str, dir: Option<PathBuf>) -> DataArgs {
        DataArgs {
            dataset: dataset.into(),
            data: dir,
            data_folder: None,
            test_folder: None,
            npy: None,
            npy_labels: None,
            npy_layout: "auto".into(),
            test_fraction: 0.1,
            data_seed: 0,
            channels: None,
            size: None,
            crop: false,
            skip_bad: false,
            patches: None,
            whiten: None,
        }
    }

    /// The source these flags describe, with absolute paths (a checkpoint records it).
    pub fn source(&self) -> Result<DataSource> {
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(Error::Config(format!(
                "--test-fraction {} must lie strictly between 0 and 1",
                self.test_fraction
            )));
        }
        let folder_only = [
            ("--channels", self.channels.is_some()),
            ("--size", self.size.is_some()),
            ("--crop", self.crop),
            ("--skip-bad", self.skip_bad),
        ];
        if self.data_folder.is_none()
            && let Some((flag, _)) = folder_only.iter().find(|(_, set)| *set)
        {
            return Err(Error::Config(format!("{flag} applies to --data-folder images")));
        }
        if self.crop && self.size.is_none() {
            return Err(Error::Config("--crop needs a target --size".into()));
        }
        let kind = if let Some(dir) = &self.data_folder {
            SourceKind::Folder(FolderSpec {
                dir: absolute(dir),
                test_dir: self.test_folder.as_deref().map(absolute),
                test_fraction: self.test_fraction,
                seed: self.data_seed,
                channels: self.channels,
                size: self.size.as_deref().map(parse_size).transpose()?,
                crop: self.crop,
                skip_bad: self.skip_bad,
            })
        } else if let Some(images) = &self.npy {
            SourceKind::Npy {
                images: absolute(images),
                labels: self.npy_labels.as_deref().map(absolute),
                layout: match self.npy_layout.to_ascii_lowercase().as_str() {
                    "auto" => Layout::Auto,
                    "nhwc" => Layout::Nhwc,
                    "nchw" => Layout::Nchw,
                    other => {
                        return Err(Error::Config(format!("--npy-layout '{other}': use auto, nhwc or nchw")));
                    }
                },
                test_fraction: self.test_fraction,
                seed: self.data_seed,
            }
        } else {
            let dir = absolute(&data::resolve_data_dir(self.data.as_deref())?);
            match self.dataset.trim().to_ascii_lowercase().as_str() {
                "cifar10" | "cifar-10" => SourceKind::Cifar10 { dir },
                name => SourceKind::Idx { name: name.parse::<data::DatasetName>()?.to_string(), dir },
            }
        };
        let patches = self.patches.as_deref().map(|p| self.patch_spec(p)).transpose()?;
        Ok(DataSource { kind, patches })
    }

    fn patch_spec(&self, arg: &str) -> Result<PatchSpec> {
        let bad = || Error::Config(format!("--patches '{arg}': use N:SIZE, e.g. 50000:8"));
        let (n, size) = arg.split_once(':').ok_or_else(bad)?;
        let n: usize = n.trim().replace('_', "").parse().map_err(|_| bad())?;
        let size: usize = size.trim().parse().map_err(|_| bad())?;
        if n == 0 || size == 0 {
            return Err(bad());
        }
        let arg = self.whiten.as_deref().map(str::to_ascii_lowercase);
        let bad = || {
            Error::Config(format!(
                "--whiten '{}': use zca, pca or none, optionally :EPSILON",
                arg.as_deref().unwrap_or("")
            ))
        };
        let (kind, epsilon) = match arg.as_deref().map(|a| a.split_once(':').unwrap_or((a, ""))) {
            None => (None, ""),
            Some((kind, eps)) => (Some(kind), eps),
        };
        let whiten = match kind {
            None | Some("none") => None,
            Some("zca") => Some(Whiten::Zca),
            Some("pca") => Some(Whiten::Pca),
            Some(_) => return Err(bad()),
        };
        let epsilon = match epsilon {
            "" => None,
            e => Some(e.parse::<f64>().ok().filter(|e| *e > 0.0 && e.is_finite()).ok_or_else(bad)?),
        };
        Ok(PatchSpec { n, size, seed: self.data_seed, test_fraction: self.test_fraction, whiten, epsilon })
    }
}

/// Loads `source`, printing what loading did; with the byte map of whitened patches.
pub(super) fn load_source(source: &DataSource) -> Result<(Split, Option<U8Map>)> {
    let (split, report) = source.load()?;
    for line in &report.lines {
        note!("data:    {line}");
    }
    Ok((split, report.byte_map))
}

/// Uploads a split's data for the GPU to read, through `map` when the bytes are whitened values.
pub(super) fn upload(
    gpu: &Gpu,
    ds: &Dataset,
    map: Option<U8Map>,
    residency: Residency,
) -> Result<GpuDataset> {
    let data = GpuDataset::upload_with(gpu, ds, residency)?;
    Ok(match map {
        Some(m) => data.with_byte_map(m),
        None => data,
    })
}

/// Model outputs as picture values in [0, 1]: whitened values go back through the byte map.
pub(super) fn for_display(values: &[f32], map: Option<U8Map>) -> Vec<f32> {
    match map {
        Some(m) => values.iter().map(|&x| f32::from(m.encode(x)) / 255.0).collect(),
        None => values.to_vec(),
    }
}

/// `ROWSxCOLS` or `SIDE`.
fn parse_size(s: &str) -> Result<(usize, usize)> {
    let bad = || Error::Config(format!("--size '{s}': use ROWSxCOLS (e.g. 32x32) or one side (32)"));
    let parse = |t: &str| t.trim().parse::<usize>().ok().filter(|&v| v > 0 && v <= 16_384);
    let (r, c) = match s.split_once(['x', 'X']) {
        Some((r, c)) => (parse(r), parse(c)),
        None => (parse(s), parse(s)),
    };
    r.zip(c).ok_or_else(bad)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Write only the first N images of each split.
    #[arg(long)]
    limit: Option<usize>,
    /// Output folder (must be empty or absent): OUT/train/<class>/*.png, OUT/test/<class>/*.png.
    #[arg(long)]
    out: PathBuf,
}

/// `aegpu export-images`: a dataset as PNG folders that `--data-folder OUT` reads back unchanged.
pub(super) fn export_cmd(args: ExportArgs) -> Result<()> {
    if args.limit == Some(0) {
        return Err(Error::Config("--limit must be at least 1".into()));
    }
    let source = args.data.source()?;
    let (split, _) = load_source(&source)?;
    for (part, ds) in [("train", &split.train), ("test", &split.test)] {
        let ds = match args.limit {
            Some(n) => ds.subset(0..n),
            None => ds.clone(),
        };
        let dir = args.out.join(part);
        let written = data::export_png_folder(&ds, &dir)?;
        note!("wrote {written} images of {}x{}x{} to {}", ds.channels, ds.rows, ds.cols, dir.display());
    }
    Ok(())
}
