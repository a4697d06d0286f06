//! Where a run's images come from: one value that names a dataset and every choice made while
//! loading it (split, channels, size, patches, whitening), so that a checkpoint can record it
//! (`aegpu.data`) and `eval`, `sample`, ... load the very same test set later.
//!
//! Sources: MNIST and Fashion-MNIST (IDX), CIFAR-10 (binary batches), an image folder (with a
//! separate test folder, `train/` and `test/` sub-folders, or a seeded random split), and `.npy`
//! arrays; any of them can be cut into random patches, optionally whitened.

use std::path::{Path, PathBuf};

use super::{
    DatasetName, FolderOptions, FolderReport, NpyLayout, Patches, ResizeMode, Split, U8Map, WhitenKind,
    WhitenOptions,
};
use crate::error::{Error, Result};

/// The data of a run, as the command line describes it; serialised into checkpoints.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataSource {
    /// The dataset and how to read it.
    pub kind: SourceKind,
    /// Cut random patches out of the images instead of using them whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patches: Option<PatchSpec>,
}

/// The container the images come in.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SourceKind {
    /// MNIST or Fashion-MNIST: the four IDX files in `dir` (or `dir/<name>`).
    Idx {
        /// The dataset's canonical name, `mnist` or `fashion-mnist` ([`DatasetName`]).
        name: String,
        /// The folder holding the files, or their parent (absolute when the command line made it).
        dir: PathBuf,
    },
    /// CIFAR-10's binary batches in `dir` (or `dir/cifar-10-batches-bin`).
    Cifar10 {
        /// The folder holding `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`, or
        /// its parent.
        dir: PathBuf,
    },
    /// An image folder; see [`FolderSpec`].
    Folder(FolderSpec),
    /// A `.npy` image array with optional labels, split at random.
    Npy {
        /// The image array: uint8 (0-255) or float (0-1), `[N, H, W]`, NHWC or NCHW.
        images: PathBuf,
        /// An integer array of the `N` labels (0..=255), `[N]` or `[N, 1]`; `None`: all labels 0.
        #[serde(default)]
        labels: Option<PathBuf>,
        /// Where the channel axis of a 4-D `images` array is.
        #[serde(default)]
        layout: Layout,
        /// Fraction of the images held out at random as the test set, in (0, 1).
        test_fraction: f64,
        /// Seed of the held-out split.
        seed: u64,
    },
}

/// An image folder and how to read it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FolderSpec {
    /// The image folder (PNG/JPEG, searched recursively; first-level sub-folders are classes).
    pub dir: PathBuf,
    /// A separate test folder; without it, `dir/train` + `dir/test` if both exist, else a seeded
    /// random split of `dir`.
    #[serde(default)]
    pub test_dir: Option<PathBuf>,
    /// Fraction of `dir`'s images held out as the test set, in (0, 1), when the split is random.
    pub test_fraction: f64,
    /// Seed of the random split.
    pub seed: u64,
    /// 1 or 3; `None`: 3 if any file is colour.
    #[serde(default)]
    pub channels: Option<usize>,
    /// `(rows, cols)`; `None`: the size all images share.
    #[serde(default)]
    pub size: Option<(usize, usize)>,
    /// Centre-crop to the target's aspect ratio before scaling (else scale the whole image).
    #[serde(default)]
    pub crop: bool,
    /// Skip unreadable or corrupt files (listed in the load report) instead of failing on the first.
    #[serde(default)]
    pub skip_bad: bool,
}

/// `.npy` channel layout, as written on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// NHWC if only the last axis is 1 or 3, NCHW if only the second is; an error if both are.
    #[default]
    Auto,
    /// `[N, H, W, C]` (the NumPy/TensorFlow habit).
    Nhwc,
    /// `[N, C, H, W]` (PyTorch's).
    Nchw,
}

/// Random patches: `n` training patches of `size x size` (and `ceil(n * test_fraction)` test
/// patches), whitened if asked.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PatchSpec {
    /// Training patches to cut (1 to 10,000,000).
    pub n: usize,
    /// Side of a square patch, in pixels.
    pub size: usize,
    /// Seed of the patch positions.
    pub seed: u64,
    /// The test set's size relative to `n`: `ceil(n * test_fraction)` test patches (at least 1).
    pub test_fraction: f64,
    /// ZCA or PCA whitening fitted on the training patches (patch means removed, ε = 0.01 of the
    /// mean eigenvalue), stored as bytes through a symmetric map that clips the 0.1% largest |z|.
    #[serde(default)]
    pub whiten: Option<Whiten>,
    /// The whitening's regulariser as a fraction of the mean eigenvalue (default 0.01): larger
    /// values damp more of the high frequencies (pixel noise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
}

/// The whitening of [`PatchSpec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Whiten {
    /// Zero-phase (ZCA) whitening: the whitened patch stays image-like.
    Zca,
    /// Principal components scaled to unit variance, largest first.
    Pca,
}

/// What loading did, for the log.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// One line per notable fact (files skipped, images resized, the split used, clipping).
    pub lines: Vec<String>,
    /// Whitened patches: how bytes map back to whitened values.
    pub byte_map: Option<U8Map>,
}

/// Quantile of |z| that the byte range of whitened patches covers.
const WHITE_QUANTILE: f64 = 0.999;
/// Largest number of patches one run may ask for (they are held in memory as f32 while cut).
const MAX_PATCHES: usize = 10_000_000;

impl DataSource {
    /// A built-in or container source, whole images.
    pub fn new(kind: SourceKind) -> DataSource {
        DataSource { kind, patches: None }
    }

    /// A short name for logs and plot titles.
    pub fn name(&self) -> String {
        let base = match &self.kind {
            SourceKind::Idx { name, .. } => name.clone(),
            SourceKind::Cifar10 { .. } => "cifar-10".into(),
            SourceKind::Folder(f) => leaf(&f.dir),
            SourceKind::Npy { images, .. } => leaf(images),
        };
        match &self.patches {
            Some(p) => format!("{base} {}x{} patches", p.size, p.size),
            None => base,
        }
    }

    /// Loads the train and test splits this source describes.
    pub fn load(&self) -> Result<(Split, LoadReport)> {
        let mut report = LoadReport::default();
        let split = match &self.patches {
            None => self.load_whole(&mut report)?,
            Some(p) => self.load_patches(p, &mut report)?,
        };
        check_split(&split)?;
        Ok((split, report))
    }

    fn load_whole(&self, report: &mut LoadReport) -> Result<Split> {
        match &self.kind {
            SourceKind::Idx { name, dir } => super::load(name.parse::<DatasetName>()?, dir),
            SourceKind::Cifar10 { dir } => super::load_cifar10(dir),
            SourceKind::Folder(f) => load_folder_split(f, report),
            SourceKind::Npy { images, labels, layout, test_fraction, seed } => {
                let ds = super::load_npy(images, labels.as_deref(), layout.npy())?;
                report.lines.push(format!(
                    "{} images of {}x{}x{}; a random {:.0}% (seed {seed}) held out for testing",
                    ds.n,
                    ds.channels,
                    ds.rows,
                    ds.cols,
                    test_fraction * 100.0
                ));
                super::random_split(&ds, *test_fraction, *seed)
            }
        }
    }

    /// Patches of a folder's images at their own sizes (photographs), or of both splits of any other
    /// source; whitened with a map fitted on the training patches.
    fn load_patches(&self, p: &PatchSpec, report: &mut LoadReport) -> Result<Split> {
        if p.n == 0 || p.n > MAX_PATCHES {
            return Err(Error::Config(format!("--patches: {} patches; use 1 to {MAX_PATCHES}", p.n)));
        }
        let n_test = ((p.n as f64 * p.test_fraction).ceil() as usize).max(1);
        let (train, test) = match &self.kind {
            SourceKind::Folder(f) if f.test_dir.is_none() && !has_train_test(&f.dir) => {
                // One folder of large images: cut every patch from all of them, then hold a random
                // part of the patches out.
                let (images, folder) = super::load_images(&f.dir, &f.options())?;
                note_folder(report, &f.dir, &folder);
                let all = super::patches_from_images(&images, p.n + n_test, p.size, p.seed)?;
                report.lines.push(format!(
                    "{} + {n_test} patches of {}x{}x{} cut at random (seed {}) from {} images; \
                     the last {n_test} are the test set",
                    p.n,
                    all.channels,
                    p.size,
                    p.size,
                    p.seed,
                    images.len()
                ));
                split_patches(all, p.n)
            }
            _ => {
                let whole = self.load_whole(report)?;
                let train = super::patches_from_dataset(&whole.train, p.n, p.size, p.seed)?;
                let test = super::patches_from_dataset(&whole.test, n_test, p.size, p.seed ^ 0x7E57)?;
                report.lines.push(format!(
                    "{} train patches of {}x{} from {} images, {n_test} test patches from {} test images",
                    p.n, p.size, p.size, whole.train.n, whole.test.n
                ));
                (train, test)
            }
        };
        let name = self.name();
        let Some(kind) = p.whiten else {
            return Ok(Split {
                train: train.to_dataset(&name, &U8Map::UNIT)?,
                test: test.to_dataset(&name, &U8Map::UNIT)?,
            });
        };
        let defaults = WhitenOptions::default();
        let opts =
            WhitenOptions { kind: kind.into(), epsilon: p.epsilon.unwrap_or(defaults.epsilon), ..defaults };
        let (train_w, map) = super::whiten(&train, &opts)?;
        let test_w = map.apply(&test)?;
        let bytes = U8Map::symmetric(&train_w.data, WHITE_QUANTILE)?;
        report.lines.push(format!(
            "{kind:?} whitening fitted on the training patches; bytes hold z in ±{:.2} ({:.2}% of the values clipped)",
            127.5 / bytes.scale,
            100.0 * bytes.clipped(&train_w.data) as f64 / train_w.data.len() as f64
        ));
        report.byte_map = Some(bytes);
        Ok(Split { train: train_w.to_dataset(&name, &bytes)?, test: test_w.to_dataset(&name, &bytes)? })
    }
}

impl FolderSpec {
    fn options(&self) -> FolderOptions {
        FolderOptions {
            channels: self.channels,
            size: self.size,
            resize: if self.crop { ResizeMode::CentreCrop } else { ResizeMode::Resize },
            skip_bad: self.skip_bad,
        }
    }
}

impl Layout {
    fn npy(self) -> NpyLayout {
        match self {
            Layout::Auto => NpyLayout::Auto,
            Layout::Nhwc => NpyLayout::Nhwc,
            Layout::Nchw => NpyLayout::Nchw,
        }
    }
}

impl From<Whiten> for WhitenKind {
    fn from(w: Whiten) -> WhitenKind {
        match w {
            Whiten::Zca => WhitenKind::Zca,
            Whiten::Pca => WhitenKind::Pca,
        }
    }
}

/// `dir/train` and `dir/test` both exist: the folder holds its own split.
fn has_train_test(dir: &Path) -> bool {
    dir.join("train").is_dir() && dir.join("test").is_dir()
}

/// The train and test sets of a folder source.
fn load_folder_split(f: &FolderSpec, report: &mut LoadReport) -> Result<Split> {
    let opts = f.options();
    let (train_dir, test_dir) = match &f.test_dir {
        Some(t) => (f.dir.clone(), Some(t.clone())),
        None if has_train_test(&f.dir) => (f.dir.join("train"), Some(f.dir.join("test"))),
        None => (f.dir.clone(), None),
    };
    let (mut train, r) = super::load_folder(&train_dir, &opts)?;
    train.name = leaf(&f.dir);
    note_folder(report, &train_dir, &r);
    let Some(test_dir) = test_dir else {
        report.lines.push(format!(
            "a random {:.0}% of {} (seed {}) held out for testing",
            f.test_fraction * 100.0,
            train_dir.display(),
            f.seed
        ));
        return super::random_split(&train, f.test_fraction, f.seed);
    };
    // The test images take the training set's channels and size, so the model fits both.
    let test_opts =
        FolderOptions { channels: Some(train.channels), size: Some((train.rows, train.cols)), ..opts };
    let (mut test, r) = super::load_folder(&test_dir, &test_opts)?;
    test.name = leaf(&f.dir);
    note_folder(report, &test_dir, &r);
    if !train.class_names.is_empty() && !test.class_names.is_empty() && train.class_names != test.class_names
    {
        return Err(Error::BadData {
            path: test_dir,
            reason: format!(
                "its classes ({}) differ from the training folder's ({}); give both the same sub-folders \
                 (or the same classes.txt)",
                test.class_names.join(", "),
                train.class_names.join(", ")
            ),
        });
    }
    Ok(Split { train, test })
}

fn note_folder(report: &mut LoadReport, dir: &Path, r: &FolderReport) {
    let mut line = format!("{}: {} images read", dir.display(), r.read);
    if r.resized > 0 {
        line += &format!(", {} resized", r.resized);
    }
    if r.converted > 0 {
        line += &format!(", {} converted to the channel count", r.converted);
    }
    if !r.skipped.is_empty() {
        line += &format!(", {} skipped (unreadable):", r.skipped.len());
        for (path, why) in r.skipped.iter().take(5) {
            line += &format!("\n    {}: {why}", path.display());
        }
        if r.skipped.len() > 5 {
            line += &format!("\n    ... and {} more", r.skipped.len() - 5);
        }
    }
    report.lines.push(line);
}

/// The first `n_train` patches for training, the rest for testing.
fn split_patches(all: Patches, n_train: usize) -> (Patches, Patches) {
    let d = all.dim();
    let (a, b) = all.data.split_at(n_train * d);
    let part = |data: &[f32], source: &[usize]| Patches {
        data: data.to_vec(),
        n: source.len(),
        channels: all.channels,
        size: all.size,
        source: source.to_vec(),
    };
    let (sa, sb) = all.source.split_at(n_train);
    (part(a, sa), part(b, sb))
}

/// Both splits hold images of one shape.
fn check_split(s: &Split) -> Result<()> {
    let (a, b) = (&s.train, &s.test);
    if (a.channels, a.rows, a.cols) != (b.channels, b.rows, b.cols) {
        return Err(Error::Shape(format!(
            "train images are {}x{}x{} but test images are {}x{}x{}",
            a.channels, a.rows, a.cols, b.channels, b.rows, b.cols
        )));
    }
    if a.n == 0 || b.n == 0 {
        return Err(Error::Config(format!("{} train and {} test images: both sets need images", a.n, b.n)));
    }
    Ok(())
}

fn leaf(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}
