//! Datasets: MNIST and Fashion-MNIST read from their original IDX files, the user's own images
//! (an image folder, CIFAR-10 binary batches, `.npy` arrays), random patches of large photographs
//! with optional whitening, and a synthetic set for tests that must run without real data. Pixels
//! stay `u8` in memory (a quarter of the f32 size) and are scaled to `[0, 1]` only when a batch is
//! converted.

pub mod cifar;
#[cfg(feature = "images")]
pub mod export;
pub mod folder;
pub mod idx;
pub mod locate;
pub mod npy;
pub mod patches;
pub mod source;
pub mod split;
pub mod synthetic;
pub mod whiten;

use std::ops::Range;
use std::path::{Path, PathBuf};

pub use cifar::{CIFAR10_CLASSES, load_cifar10, read_cifar10_batch};
#[cfg(feature = "images")]
pub use export::export_png_folder;

/// Without the `images` feature (PNG encoding): [`Error::FeatureDisabled`].
#[cfg(not(feature = "images"))]
pub fn export_png_folder(_ds: &Dataset, dir: &Path) -> Result<usize> {
    Err(Error::FeatureDisabled { feature: "images", what: format!("writing PNG files to {}", dir.display()) })
}
pub use folder::{FolderOptions, FolderReport, ImageU8, ResizeMode, load_folder, load_images};
pub use idx::{Idx, read_idx};
pub use npy::{NpyLayout, load_npy};
pub use patches::{Patches, U8Map, patches_from_dataset, patches_from_images};
pub use source::{DataSource, FolderSpec, LoadReport, PatchSpec, SourceKind};
pub use split::random_split;
pub use synthetic::synthetic;
pub use whiten::{WhitenKind, WhitenOptions, Whitening, whiten};

use crate::error::{Error, Result};
use locate::Found;

/// Environment variable naming the data directory when no `--data` flag is given.
pub const DATA_ENV: &str = "AEGPU_DATA";

/// The datasets the loader knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetName {
    /// MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28 grey, labels 0-9.
    Mnist,
    /// Zalando's Fashion-MNIST: the same format and sizes, ten clothing classes.
    FashionMnist,
}

impl DatasetName {
    /// Every dataset, for help texts and loops.
    pub const ALL: [DatasetName; 2] = [DatasetName::Mnist, DatasetName::FashionMnist];

    /// The canonical name, also the folder name under a shared data directory.
    pub fn dir_name(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
        }
    }

    /// Human-readable names of the labels 0..9.
    pub fn class_names(self) -> [&'static str; 10] {
        match self {
            DatasetName::Mnist => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetName::FashionMnist => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        }
    }
}

impl std::str::FromStr for DatasetName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mnist" => Ok(DatasetName::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fashion" => Ok(DatasetName::FashionMnist),
            _ => Err(Error::Config(format!(
                "unknown dataset '{s}'; valid names: mnist, fashion-mnist (also fashion_mnist, fashion)"
            ))),
        }
    }
}

impl std::fmt::Display for DatasetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.dir_name())
    }
}

/// Images as u8 with one label each; pixels are scaled to `[0, 1]` only when converted to f32.
///
/// Each image is `channels x rows x cols` bytes, stored planar (CHW: all of channel 0 row by row,
/// then channel 1, ...), PyTorch's layout; `images` holds the `n` images one after another. Grey
/// data (MNIST) has `channels == 1`, so its layout is plain row-major.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Where the data came from ("mnist", "fashion-mnist", "synthetic"), for logs and plot titles.
    pub name: String,
    /// `n * channels * rows * cols` pixel bytes (0-255), image after image, each CHW.
    pub images: Vec<u8>,
    /// One label per image (`n` bytes); all 0 for unlabelled data.
    pub labels: Vec<u8>,
    /// Number of images.
    pub n: usize,
    /// Colour planes per image: 1 (grey) or 3 (RGB) from the loaders.
    pub channels: usize,
    /// Image height, in pixels.
    pub rows: usize,
    /// Image width, in pixels.
    pub cols: usize,
    /// Names of the labels `0..class_names.len()`; empty when labels are just numbers.
    pub class_names: Vec<String>,
}

impl Dataset {
    /// Builds a grey dataset (`channels = 1`) after checking that `images` holds `labels.len()`
    /// images of `rows x cols`.
    pub fn from_parts(
        name: impl Into<String>,
        images: Vec<u8>,
        labels: Vec<u8>,
        rows: usize,
        cols: usize,
    ) -> Result<Dataset> {
        Dataset::from_chw(name, images, labels, 1, rows, cols)
    }

    /// Builds a dataset of `channels x rows x cols` images stored planar (CHW) after checking
    /// that `images` holds exactly `labels.len()` of them; `channels` must be at least 1.
    pub fn from_chw(
        name: impl Into<String>,
        images: Vec<u8>,
        labels: Vec<u8>,
        channels: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Dataset> {
        if channels == 0 {
            return Err(Error::Shape("an image needs at least one channel".into()));
        }
        let n = labels.len();
        let expected =
            n.checked_mul(channels).and_then(|v| v.checked_mul(rows)).and_then(|v| v.checked_mul(cols));
        if expected != Some(images.len()) {
            let shape =
                if channels == 1 { format!("{rows}x{cols}") } else { format!("{channels}x{rows}x{cols}") };
            return Err(Error::Shape(format!(
                "{} image bytes do not hold {n} images of {shape}",
                images.len()
            )));
        }
        Ok(Dataset { name: name.into(), images, labels, n, channels, rows, cols, class_names: Vec::new() })
    }

    /// The same dataset with names for its labels; every label must be below `names.len()`
    /// (an empty list clears the names).
    pub fn with_class_names(mut self, names: Vec<String>) -> Result<Dataset> {
        if !names.is_empty()
            && let Some((i, &l)) =
                self.labels.iter().enumerate().find(|&(_, &l)| usize::from(l) >= names.len())
        {
            return Err(Error::Shape(format!(
                "label {l} of image {i} has no name: only {} class names given",
                names.len()
            )));
        }
        self.class_names = names;
        Ok(self)
    }

    /// The name of label `label`: its class name when there are names, else the number.
    pub fn class_name(&self, label: u8) -> String {
        self.class_names.get(usize::from(label)).cloned().unwrap_or_else(|| label.to_string())
    }

    /// `[channels, rows, cols]` of every image.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.rows, self.cols]
    }

    /// Bytes (and f32 inputs) per image: `channels * rows * cols`.
    pub fn dim(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// The pixels of image `i` (CHW).
    ///
    /// # Panics
    /// If `i >= n`, like slice indexing.
    pub fn image(&self, i: usize) -> &[u8] {
        let d = self.dim();
        &self.images[i * d..(i + 1) * d]
    }

    /// Images `range` as f32 in `[0, 1]` (pixel / 255), CHW per image, ready to upload as a batch.
    ///
    /// # Panics
    /// If the range reaches past `n`, like slice indexing.
    pub fn images_f32(&self, range: Range<usize>) -> Vec<f32> {
        let d = self.dim();
        self.images[range.start * d..range.end * d].iter().map(|&p| f32::from(p) / 255.0).collect()
    }

    /// A copy of images `range`; the range is clamped to `0..n`, so `subset(0..k)` gives the first
    /// `min(k, n)` images.
    pub fn subset(&self, range: Range<usize>) -> Dataset {
        let end = range.end.min(self.n);
        let start = range.start.min(end);
        let d = self.dim();
        Dataset {
            name: self.name.clone(),
            images: self.images[start * d..end * d].to_vec(),
            labels: self.labels[start..end].to_vec(),
            n: end - start,
            channels: self.channels,
            rows: self.rows,
            cols: self.cols,
            class_names: self.class_names.clone(),
        }
    }

    /// A copy of the images at `indices`, in that order (indices may repeat).
    ///
    /// # Panics
    /// If an index is `>= n`, like slice indexing.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(indices.len() * self.dim());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        Dataset {
            name: self.name.clone(),
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            n: indices.len(),
            channels: self.channels,
            rows: self.rows,
            cols: self.cols,
            class_names: self.class_names.clone(),
        }
    }
}

/// The standard train/test split of a dataset.
#[derive(Clone, Debug)]
pub struct Split {
    /// The training images.
    pub train: Dataset,
    /// The held-out test images, of the same `channels x rows x cols` as `train` (checked by
    /// [`DataSource::load`]).
    pub test: Dataset,
}

/// The data directory: `flag` if given, else the `AEGPU_DATA` environment variable, else
/// [`Error::DataNotFound`] explaining both ways.
pub fn resolve_data_dir(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_path_buf());
    }
    match std::env::var_os(DATA_ENV) {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => Err(Error::DataNotFound {
            what: "data directory".into(),
            looked: format!("  --data: not given\n  {DATA_ENV}: not set"),
            expected: format!(
                "a folder with {} (or one holding mnist/ and fashion-mnist/)",
                FILES.map(|names| names[0]).join(", ")
            ),
        }),
    }
}

const TRAIN_IMAGES: usize = 0;
const TRAIN_LABELS: usize = 1;
const TEST_IMAGES: usize = 2;
const TEST_LABELS: usize = 3;

/// The four files of a dataset, each under the names mirrors use for it: the original `.gz` name
/// first, then unpacked, then the dotted variant.
const FILES: [[&str; 4]; 4] = [
    [
        "train-images-idx3-ubyte.gz",
        "train-images-idx3-ubyte",
        "train-images.idx3-ubyte",
        "train-images.idx3-ubyte.gz",
    ],
    [
        "train-labels-idx1-ubyte.gz",
        "train-labels-idx1-ubyte",
        "train-labels.idx1-ubyte",
        "train-labels.idx1-ubyte.gz",
    ],
    [
        "t10k-images-idx3-ubyte.gz",
        "t10k-images-idx3-ubyte",
        "t10k-images.idx3-ubyte",
        "t10k-images.idx3-ubyte.gz",
    ],
    [
        "t10k-labels-idx1-ubyte.gz",
        "t10k-labels-idx1-ubyte",
        "t10k-labels.idx1-ubyte",
        "t10k-labels.idx1-ubyte.gz",
    ],
];

/// Loads the train and test splits of `name`.
///
/// `dir` may hold the four IDX files directly, or be a parent holding `mnist/` and `fashion-mnist/`
/// subfolders. Each file may be gzipped or unpacked, under its original name or the dotted variant
/// (`t10k-images.idx3-ubyte`). All four must come from the same folder.
///
/// ```
/// use aegpu::data::{DatasetName, load, resolve_data_dir};
/// use aegpu::Error;
///
/// // The folder the `AEGPU_DATA` variable names (the command line's `--data` overrides it).
/// match resolve_data_dir(None).and_then(|dir| load(DatasetName::Mnist, &dir)) {
///     Ok(split) => assert_eq!((split.train.n, split.test.n), (60_000, 10_000)),
///     // The error lists the folders it looked in and the file names it expected.
///     Err(Error::DataNotFound { looked, .. }) => println!("no MNIST here; looked in:\n{looked}"),
///     Err(e) => panic!("{e}"),
/// }
/// ```
pub fn load(name: DatasetName, dir: &Path) -> Result<Split> {
    let paths = find_files(name, dir)?;
    let train = load_split(name, &paths[TRAIN_IMAGES], &paths[TRAIN_LABELS])?;
    let test = load_split(name, &paths[TEST_IMAGES], &paths[TEST_LABELS])?;
    if (test.rows, test.cols) != (train.rows, train.cols) {
        return Err(Error::BadData {
            path: paths[TEST_IMAGES].clone(),
            reason: format!(
                "test images are {}x{} but train images are {}x{}",
                test.rows, test.cols, train.rows, train.cols
            ),
        });
    }
    Ok(Split { train, test })
}

/// The four file paths, from the first folder (`dir`, then `dir/<name>`) that has all of them.
fn find_files(name: DatasetName, dir: &Path) -> Result<[PathBuf; 4]> {
    let folders = [dir.to_path_buf(), dir.join(name.dir_name())];
    let mut looked = Vec::new();
    for folder in &folders {
        if let Some(problem) = locate::folder_problem(folder) {
            looked.push(format!("  {} ({problem})", folder.display()));
            continue;
        }
        let found = FILES.map(|names| locate::find_file(folder, &names));
        if let [Found::File(a), Found::File(b), Found::File(c), Found::File(d)] = found {
            return Ok([a, b, c, d]);
        }
        let problems: Vec<String> = FILES
            .iter()
            .zip(&found)
            .filter_map(|(names, f)| match f {
                Found::File(_) => None,
                Found::Missing => Some(format!("missing {}[.gz]", names[1])),
                Found::Unreadable(why) => Some(why.clone()),
            })
            .collect();
        looked.push(format!("  {} ({})", folder.display(), problems.join("; ")));
    }
    Err(Error::DataNotFound {
        what: format!("{name} data files"),
        looked: looked.join("\n"),
        expected: format!("{}; each may also be unpacked (no .gz)", FILES.map(|names| names[0]).join(", ")),
    })
}

/// Reads one split and checks that images and labels belong together.
fn load_split(name: DatasetName, images_path: &Path, labels_path: &Path) -> Result<Dataset> {
    let images = read_idx(images_path)?;
    let labels = read_idx(labels_path)?;
    let &[n, rows, cols] = images.dims.as_slice() else {
        return Err(Error::BadData {
            path: images_path.to_path_buf(),
            reason: format!("expected 3-D images (count x rows x cols), found dimensions {:?}", images.dims),
        });
    };
    let &[n_labels] = labels.dims.as_slice() else {
        return Err(Error::BadData {
            path: labels_path.to_path_buf(),
            reason: format!("expected 1-D labels, found dimensions {:?}", labels.dims),
        });
    };
    if n_labels != n {
        return Err(Error::BadData {
            path: labels_path.to_path_buf(),
            reason: format!("{n_labels} labels, but {} holds {n} images", images_path.display()),
        });
    }
    if n == 0 || rows == 0 || cols == 0 {
        return Err(Error::BadData {
            path: images_path.to_path_buf(),
            reason: format!("empty image set: dimensions {:?}", images.dims),
        });
    }
    if let Some((i, &l)) = labels.data.iter().enumerate().find(|&(_, &l)| l >= 10) {
        return Err(Error::BadData {
            path: labels_path.to_path_buf(),
            reason: format!("label {l} at index {i} is outside 0..=9"),
        });
    }
    Ok(Dataset {
        name: name.to_string(),
        images: images.data,
        labels: labels.data,
        n,
        channels: 1,
        rows,
        cols,
        class_names: name.class_names().map(String::from).to_vec(),
    })
}
