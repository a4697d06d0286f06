//! CIFAR-10 in its binary form (`cifar-10-binary.tar.gz`, unpacked): five training batches
//! `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`. Each file is a run of 3073-byte
//! records: one label byte (0-9), then a 32x32 RGB image as three 1024-byte planes (R, G, B), each
//! row-major, which is exactly the CHW layout [`Dataset`] keeps.

use std::path::{Path, PathBuf};

use super::{Dataset, Split};
use crate::error::{Error, Result};

/// Names of the CIFAR-10 labels 0..9 (from `batches.meta.txt`).
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// Side of a CIFAR image.
const SIDE: usize = 32;
/// Bytes of one record: the label, then 3 planes of 32x32.
const RECORD: usize = 1 + 3 * SIDE * SIDE;
/// The training batches, in the order they are concatenated.
const TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
const TEST_FILE: &str = "test_batch.bin";
/// The folder the official archive unpacks to.
const ARCHIVE_DIR: &str = "cifar-10-batches-bin";

/// Loads CIFAR-10's train split (the five batches in order, 50,000 images) and test split (10,000)
/// from `dir` or `dir/cifar-10-batches-bin`, with [`CIFAR10_CLASSES`] as class names.
/// All six files must be in one folder ([`Error::DataNotFound`] lists what is missing).
pub fn load_cifar10(dir: &Path) -> Result<Split> {
    let folder = find_folder(dir)?;
    let mut train = read_cifar10_batch(&folder.join(TRAIN_FILES[0]))?;
    for name in &TRAIN_FILES[1..] {
        let batch = read_cifar10_batch(&folder.join(name))?;
        train.images.extend_from_slice(&batch.images);
        train.labels.extend_from_slice(&batch.labels);
        train.n += batch.n;
    }
    train.name = "cifar-10".into();
    let mut test = read_cifar10_batch(&folder.join(TEST_FILE))?;
    test.name = "cifar-10".into();
    Ok(Split { train, test })
}

/// Reads one batch file as a 3x32x32 dataset named after the file, with the CIFAR-10 class names.
/// A size that is not a whole number of 3073-byte records, an empty file or a label above 9 is an
/// [`Error::BadData`] naming the file.
pub fn read_cifar10_batch(path: &Path) -> Result<Dataset> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |reason: String| Error::BadData { path: path.to_path_buf(), reason };
    if bytes.is_empty() {
        return Err(bad("empty file: a CIFAR-10 batch holds 3073-byte records".into()));
    }
    if bytes.len() % RECORD != 0 {
        return Err(bad(format!(
            "{} bytes is not a whole number of {RECORD}-byte records (1 label + 3x32x32 pixels): \
             {} complete records and {} bytes left over; the file is truncated or not a CIFAR-10 batch",
            bytes.len(),
            bytes.len() / RECORD,
            bytes.len() % RECORD
        )));
    }
    let n = bytes.len() / RECORD;
    let mut labels = Vec::with_capacity(n);
    let mut images = Vec::with_capacity(n * (RECORD - 1));
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        if record[0] >= 10 {
            return Err(bad(format!("record {i} has label {}, outside 0..=9", record[0])));
        }
        labels.push(record[0]);
        images.extend_from_slice(&record[1..]);
    }
    let name = path.file_stem().map_or_else(|| "cifar-10".into(), |s| s.to_string_lossy().into_owned());
    Dataset::from_chw(name, images, labels, 3, SIDE, SIDE)?
        .with_class_names(CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect())
}

/// The first of `dir`, `dir/cifar-10-batches-bin` that holds all six batch files.
fn find_folder(dir: &Path) -> Result<PathBuf> {
    let mut looked = Vec::new();
    for folder in [dir.to_path_buf(), dir.join(ARCHIVE_DIR)] {
        if let Some(problem) = super::locate::folder_problem(&folder) {
            looked.push(format!("  {} ({problem})", folder.display()));
            continue;
        }
        let missing: Vec<&str> =
            TRAIN_FILES.iter().chain([&TEST_FILE]).copied().filter(|f| !folder.join(f).is_file()).collect();
        if missing.is_empty() {
            return Ok(folder);
        }
        looked.push(format!("  {} (missing {})", folder.display(), missing.join(", ")));
    }
    Err(Error::DataNotFound {
        what: "CIFAR-10 binary batches".into(),
        looked: looked.join("\n"),
        expected: format!("{}, {TEST_FILE} (from cifar-10-binary.tar.gz)", TRAIN_FILES.join(", ")),
    })
}
