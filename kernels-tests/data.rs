//! Tests of the data loaders (IDX files, MNIST / Fashion-MNIST, synthetic data) and of the PNG
//! outputs.
//!
//! The real-data tests read AEGPU_DATA, else `../shared/data` next to the crate, and skip with a
//! note when neither exists. Everything else builds its own small files in a fresh temporary
//! folder.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use aegpu::Error;
use aegpu::data::*;
use aegpu::viz::*;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

// ---------- helpers ----------

/// The real data directory, or `None` (with a printed note) when it is not on this machine.
fn real_data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("AEGPU_DATA")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("note: no data directory at {} (set AEGPU_DATA); real-data test skipped", dir.display());
        None
    }
}

/// A fresh, empty folder under the system temp dir, removed again on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "aegpu-test-{}-{tag}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An unsigned-byte IDX file with the given dimensions and data (not checked against each other).
fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Writes a complete small dataset (gzipped, original names): `n_train` / `n_test` images of 4x3
/// whose pixels encode their index, labels `i % 10`.
fn write_small_dataset(dir: &Path, n_train: u32, n_test: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let pixels: Vec<u8> = (0..n * 12).map(|i| (i % 256) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let images = gzip(&idx_bytes(&[n, 4, 3], &pixels));
        let labels = gzip(&idx_bytes(&[n], &labels));
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte.gz")), images).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte.gz")), labels).unwrap();
    }
}

/// The error of `r`, or a panic that says what unexpectedly succeeded.
fn expect_err<T>(r: aegpu::Result<T>, what: &str) -> Error {
    match r {
        Ok(_) => panic!("{what}: expected an error, got Ok"),
        Err(e) => e,
    }
}

fn histogram(labels: &[u8]) -> [usize; 10] {
    let mut h = [0; 10];
    for &l in labels {
        h[usize::from(l)] += 1;
    }
    h
}

// ---------- real data ----------

#[test]
fn mnist_real_train_and_test() {
    let Some(dir) = real_data_dir() else { return };
    let t = std::time::Instant::now();
    let split = load(DatasetName::Mnist, &dir).expect("load MNIST");
    eprintln!("MNIST loaded in {:.2} s", t.elapsed().as_secs_f64());
    let (train, test) = (&split.train, &split.test);

    assert_eq!((train.n, train.rows, train.cols), (60_000, 28, 28));
    assert_eq!((test.n, test.rows, test.cols), (10_000, 28, 28));
    assert_eq!(train.images.len(), 60_000 * 784);
    assert_eq!(train.labels.len(), 60_000);
    assert_eq!(test.images.len(), 10_000 * 784);
    assert_eq!(train.dim(), 784);
    assert_eq!(train.name, "mnist");
    assert_eq!(train.labels[0], 5, "the first MNIST training digit is a 5");
    assert_eq!(test.labels[0], 7, "the first MNIST test digit is a 7");

    // MNIST's classes are roughly balanced: 5421..6742 per class in train, 892..1135 in test.
    let h = histogram(&train.labels);
    assert!(h.iter().all(|&c| (5_000..=7_000).contains(&c)), "{h:?}");
    let h = histogram(&test.labels);
    assert!(h.iter().all(|&c| (800..=1_200).contains(&c)), "{h:?}");

    // Ink on a black background: both ends of the byte range occur, most pixels are background.
    assert_eq!(train.images.iter().max(), Some(&255));
    assert_eq!(train.images.iter().min(), Some(&0));
    let zeros = train.images.iter().filter(|&&p| p == 0).count();
    assert!(zeros > train.images.len() / 2);
    let f = train.images_f32(0..2);
    assert_eq!(f.len(), 2 * 784);
    assert!(f.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(f.contains(&1.0));

    // The folder holding the files directly works as well as its parent.
    if dir.join("mnist").is_dir() {
        let direct = load(DatasetName::Mnist, &dir.join("mnist")).expect("load from mnist/");
        assert_eq!(direct.test.labels, test.labels);
    }
}

#[test]
fn fashion_mnist_real_is_balanced() {
    let Some(dir) = real_data_dir() else { return };
    if !dir.join("fashion-mnist").is_dir() {
        eprintln!("note: no fashion-mnist/ under {}; skipped", dir.display());
        return;
    }
    let split = load(DatasetName::FashionMnist, &dir).expect("load Fashion-MNIST");
    assert_eq!((split.train.n, split.test.n), (60_000, 10_000));
    assert_eq!((split.train.rows, split.train.cols), (28, 28));
    assert_eq!(split.train.name, "fashion-mnist");
    assert_eq!(histogram(&split.train.labels), [6_000; 10]);
    assert_eq!(histogram(&split.test.labels), [1_000; 10]);
    assert_eq!(split.train.labels[0], 9, "the first Fashion-MNIST item is an ankle boot");
}

#[test]
fn raw_unpacked_label_file_reads_like_the_gz() {
    let Some(dir) = real_data_dir() else { return };
    let gz_path = [dir.join("mnist"), dir.clone()]
        .iter()
        .map(|d| d.join("train-labels-idx1-ubyte.gz"))
        .find(|p| p.is_file());
    let Some(gz_path) = gz_path else {
        eprintln!("note: no train-labels-idx1-ubyte.gz under {}; skipped", dir.display());
        return;
    };
    let mut raw = Vec::new();
    GzDecoder::new(std::fs::File::open(&gz_path).unwrap()).read_to_end(&mut raw).unwrap();
    assert_eq!(raw.len(), 60_008);
    let tmp = TempDir::new("raw-labels");
    let raw_path = tmp.write("train-labels-idx1-ubyte", &raw);

    let from_raw = read_idx(&raw_path).expect("read raw labels");
    let from_gz = read_idx(&gz_path).expect("read gz labels");
    assert_eq!(from_raw.dims, vec![60_000]);
    assert_eq!(from_raw, from_gz);
    assert_eq!(from_raw.data[0], 5);
}

// ---------- loading from hand-made files ----------

#[test]
fn load_small_gz_dataset_round_trips() {
    let tmp = TempDir::new("small");
    write_small_dataset(tmp.path(), 30, 20);
    let split = load(DatasetName::Mnist, tmp.path()).expect("load small set");
    assert_eq!((split.train.n, split.train.rows, split.train.cols), (30, 4, 3));
    assert_eq!(split.test.n, 20);
    assert_eq!(split.train.image(2), &[24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35]);
    assert_eq!(split.train.labels[13], 3);
    assert_eq!(split.test.labels, (0..20).map(|i| i % 10).collect::<Vec<u8>>());
}

#[test]
fn load_accepts_unpacked_and_dotted_names() {
    let tmp = TempDir::new("names");
    let px: Vec<u8> = (0..5 * 4).map(|i| i as u8).collect();
    let labels = [1u8, 2, 3, 4, 5];
    // Unpacked, dotted, gzipped-dotted and original: one of each.
    tmp.write("train-images.idx3-ubyte", &idx_bytes(&[5, 2, 2], &px));
    tmp.write("train-labels-idx1-ubyte", &idx_bytes(&[5], &labels));
    tmp.write("t10k-images.idx3-ubyte.gz", &gzip(&idx_bytes(&[5, 2, 2], &px)));
    tmp.write("t10k-labels-idx1-ubyte.gz", &gzip(&idx_bytes(&[5], &labels)));
    let split = load(DatasetName::FashionMnist, tmp.path()).expect("mixed names load");
    assert_eq!(split.train.images, px);
    assert_eq!(split.test.images, px);
    assert_eq!(split.train.labels, labels);
    assert_eq!(split.train.name, "fashion-mnist");
}

#[test]
fn load_finds_the_dataset_subfolder_of_a_parent() {
    let tmp = TempDir::new("parent");
    write_small_dataset(&tmp.path().join("fashion-mnist"), 10, 10);
    let split = load(DatasetName::FashionMnist, tmp.path()).expect("load via parent");
    assert_eq!(split.train.n, 10);
    // MNIST is not there: the error names both places it looked.
    let err = expect_err(load(DatasetName::Mnist, tmp.path()), "mnist absent");
    assert!(matches!(err, Error::DataNotFound { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&tmp.path().join("mnist").display().to_string()), "{msg}");
}

#[test]
fn missing_dir_lists_the_paths_looked_at() {
    let tmp = TempDir::new("missing");
    let dir = tmp.path().join("nowhere");
    let err = expect_err(load(DatasetName::Mnist, &dir), "missing dir");
    assert!(matches!(err, Error::DataNotFound { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
    assert!(msg.contains(&dir.join("mnist").display().to_string()), "{msg}");
    for name in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        assert!(msg.contains(name), "{name} not in: {msg}");
    }
    assert!(msg.contains("AEGPU_DATA"), "{msg}");
}

#[test]
fn partial_dir_names_the_missing_file() {
    let tmp = TempDir::new("partial");
    write_small_dataset(tmp.path(), 10, 10);
    std::fs::remove_file(tmp.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let err = expect_err(load(DatasetName::Mnist, tmp.path()), "partial dir");
    assert!(matches!(err, Error::DataNotFound { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("missing t10k-labels-idx1-ubyte"), "{msg}");
    assert!(!msg.contains("missing train-images"), "{msg}");
}

#[test]
fn wrong_magic_is_bad_data() {
    let tmp = TempDir::new("magic");
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("not-idx", b"\x89PNG\r\n\x1a\n-not-an-idx".to_vec(), "not an IDX file"),
        ("float", vec![0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0], "element type 0x0d"),
        ("tiny", vec![0, 0], "too short"),
        ("nodims", vec![0, 0, 8, 0], "0 dimensions"),
    ];
    for (name, bytes, expected) in cases {
        let path = tmp.write(name, &bytes);
        let err = expect_err(read_idx(&path), name);
        assert!(matches!(err, Error::BadData { .. }), "{name}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(expected), "{name}: {msg}");
        assert!(msg.contains(name), "the message should name the file: {msg}");
    }
    // Through `load`, a bad image file surfaces with its path.
    write_small_dataset(tmp.path(), 5, 5);
    tmp.write("t10k-images-idx3-ubyte.gz", &[1, 2, 3, 4, 5, 6]);
    let err = expect_err(load(DatasetName::Mnist, tmp.path()), "bad magic via load");
    assert!(err.to_string().contains("t10k-images-idx3-ubyte.gz"), "{err}");
}

#[test]
fn truncated_data_reports_expected_and_found() {
    let tmp = TempDir::new("truncated");
    let bytes = idx_bytes(&[3, 2, 2], &[7; 10]);
    for (name, file) in [("raw", bytes.clone()), ("gz", gzip(&bytes))] {
        let err = expect_err(read_idx(&tmp.write(name, &file)), name);
        assert!(matches!(err, Error::BadData { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("truncated"), "{msg}");
        assert!(msg.contains("need 12 data bytes, found 10"), "{msg}");
    }
    // A header cut short is reported too.
    let err = expect_err(read_idx(&tmp.write("short-header", &[0, 0, 8, 3, 0, 0])), "header");
    assert!(err.to_string().contains("truncated header"), "{err}");
}

#[test]
fn trailing_bytes_are_an_error() {
    let tmp = TempDir::new("trailing");
    let path = tmp.write("extra", &idx_bytes(&[2, 2], &[1, 2, 3, 4, 5, 6, 7]));
    let err = expect_err(read_idx(&path), "trailing bytes");
    assert!(matches!(err, Error::BadData { .. }), "{err}");
    assert!(err.to_string().contains("3 unexpected trailing bytes"), "{err}");
    // The exact length is fine.
    let ok = read_idx(&tmp.write("exact", &idx_bytes(&[2, 2], &[1, 2, 3, 4]))).unwrap();
    assert_eq!((ok.dims, ok.data), (vec![2, 2], vec![1, 2, 3, 4]));
}

#[test]
fn mismatched_counts_name_both_counts() {
    let tmp = TempDir::new("counts");
    write_small_dataset(tmp.path(), 6, 5);
    tmp.write("t10k-labels-idx1-ubyte.gz", &gzip(&idx_bytes(&[4], &[0, 1, 2, 3])));
    let err = expect_err(load(DatasetName::Mnist, tmp.path()), "count mismatch");
    assert!(matches!(err, Error::BadData { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("4 labels"), "{msg}");
    assert!(msg.contains("5 images"), "{msg}");
}

#[test]
fn corrupt_gzip_is_bad_data() {
    let tmp = TempDir::new("gzip");
    let good = gzip(&idx_bytes(&[64], &(0..64).collect::<Vec<u8>>()));
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    for b in &mut flipped[mid..mid + 4] {
        *b ^= 0xA5;
    }
    let cut = good[..good.len() - 6].to_vec();
    let garbage = [&[0x1f, 0x8b][..], &[0xFF; 40]].concat();
    for (name, bytes) in [("flipped", flipped), ("cut", cut), ("garbage", garbage)] {
        let err = expect_err(read_idx(&tmp.write(name, &bytes)), name);
        assert!(matches!(err, Error::BadData { .. }), "{name}: {err}");
        assert!(err.to_string().contains("gzip"), "{name}: {err}");
    }
    assert_eq!(read_idx(&tmp.write("good", &good)).unwrap().dims, vec![64]);
}

#[test]
fn labels_of_ten_or_more_are_rejected() {
    let tmp = TempDir::new("labels");
    write_small_dataset(tmp.path(), 4, 4);
    tmp.write("train-labels-idx1-ubyte.gz", &gzip(&idx_bytes(&[4], &[0, 9, 10, 3])));
    let err = expect_err(load(DatasetName::Mnist, tmp.path()), "label 10");
    assert!(matches!(err, Error::BadData { .. }), "{err}");
    assert!(err.to_string().contains("label 10 at index 2"), "{err}");
}

#[test]
fn images_must_be_3d_labels_1d_and_sizes_agree() {
    let tmp = TempDir::new("dims");
    write_small_dataset(tmp.path(), 4, 4);
    tmp.write("train-images-idx3-ubyte.gz", &gzip(&idx_bytes(&[4, 12], &[0; 48])));
    let err = expect_err(load(DatasetName::Mnist, tmp.path()), "2-D images");
    assert!(err.to_string().contains("3-D"), "{err}");

    write_small_dataset(tmp.path(), 4, 4);
    tmp.write("train-labels-idx1-ubyte.gz", &gzip(&idx_bytes(&[2, 2], &[0; 4])));
    let err = expect_err(load(DatasetName::Mnist, tmp.path()), "2-D labels");
    assert!(err.to_string().contains("1-D"), "{err}");

    // Train and test images must have the same size.
    write_small_dataset(tmp.path(), 4, 4);
    tmp.write("t10k-images-idx3-ubyte.gz", &gzip(&idx_bytes(&[4, 2, 6], &[0; 48])));
    let err = expect_err(load(DatasetName::Mnist, tmp.path()), "2x6 test images");
    assert!(err.to_string().contains("test images are 2x6"), "{err}");
}

// ---------- names, directories, dataset helpers ----------

#[test]
fn dataset_names_parse_and_display() {
    for (text, name) in [
        ("mnist", DatasetName::Mnist),
        ("MNIST", DatasetName::Mnist),
        ("fashion-mnist", DatasetName::FashionMnist),
        ("fashion_mnist", DatasetName::FashionMnist),
        ("fashion", DatasetName::FashionMnist),
    ] {
        assert_eq!(text.parse::<DatasetName>().unwrap(), name, "{text}");
    }
    for name in [DatasetName::Mnist, DatasetName::FashionMnist] {
        assert_eq!(name.to_string().parse::<DatasetName>().unwrap(), name);
        assert_eq!(name.to_string(), name.dir_name());
    }
    let err = expect_err("cifar".parse::<DatasetName>(), "unknown name");
    let msg = err.to_string();
    assert!(msg.contains("cifar") && msg.contains("mnist") && msg.contains("fashion-mnist"), "{msg}");

    assert_eq!(DatasetName::Mnist.class_names()[7], "7");
    let fashion = DatasetName::FashionMnist.class_names();
    assert_eq!((fashion[0], fashion[9]), ("T-shirt/top", "Ankle boot"));
}

#[test]
fn resolve_data_dir_prefers_the_flag_then_the_env() {
    let flag = Path::new("/some/where");
    assert_eq!(resolve_data_dir(Some(flag)).unwrap(), flag);
    // The environment is shared by every test thread, so read it rather than set it.
    match std::env::var_os("AEGPU_DATA").filter(|v| !v.is_empty()) {
        Some(env) => assert_eq!(resolve_data_dir(None).unwrap(), PathBuf::from(env)),
        None => {
            let err = expect_err(resolve_data_dir(None), "no flag, no env");
            assert!(matches!(err, Error::DataNotFound { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains("--data") && msg.contains("AEGPU_DATA"), "{msg}");
        }
    }
}

#[test]
fn dataset_helpers_index_scale_and_subset() {
    let d = synthetic(12, 5, 4, 3, 1);
    assert_eq!(d.dim(), 20);
    assert_eq!(d.image(3), &d.images[60..80]);
    let f = d.images_f32(2..4);
    assert_eq!(f.len(), 40);
    for (x, &b) in f.iter().zip(&d.images[40..80]) {
        assert_eq!(*x, f32::from(b) / 255.0);
    }
    let s = d.subset(0..5);
    assert_eq!((s.n, s.rows, s.cols), (5, 5, 4));
    assert_eq!(s.images, d.images[..100]);
    assert_eq!(s.labels, d.labels[..5]);
    let tail = d.subset(10..100);
    assert_eq!(tail.n, 2, "ranges past n are clamped");
    assert_eq!(tail.image(1), d.image(11));
    assert_eq!(d.subset(50..60).n, 0);

    let built = Dataset::from_parts("x", vec![0; 8], vec![0, 1], 2, 2).unwrap();
    assert_eq!(built.n, 2);
    let err = expect_err(Dataset::from_parts("x", vec![0; 7], vec![0, 1], 2, 2), "7 bytes");
    assert!(matches!(err, Error::Shape(_)), "{err}");
}

// ---------- synthetic data ----------

/// FNV-1a, to pin the synthetic bytes without storing them.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[test]
fn synthetic_is_deterministic() {
    let a = synthetic(200, 28, 28, 10, 42);
    let b = synthetic(200, 28, 28, 10, 42);
    let c = synthetic(200, 28, 28, 10, 43);
    assert_eq!(a.images, b.images);
    assert_eq!(a.labels, b.labels);
    assert_ne!(a.images, c.images);
    assert_eq!((a.n, a.rows, a.cols, a.images.len()), (200, 28, 28, 200 * 784));
    assert_eq!(a.name, "synthetic");
    assert!(a.labels.iter().enumerate().all(|(i, &l)| usize::from(l) == i % 10));
    // The same bytes on every machine: a change here means the generator changed.
    let s = synthetic(64, 16, 12, 5, 7);
    assert_eq!((fnv1a(&s.images), fnv1a(&s.labels)), (SYNTHETIC_IMAGES_FNV, SYNTHETIC_LABELS_FNV));
    // Degenerate arguments give an empty or one-class set, never a panic.
    assert_eq!(synthetic(0, 28, 28, 10, 0).images.len(), 0);
    assert!(synthetic(5, 8, 8, 0, 0).labels.iter().all(|&l| l == 0));
    assert_eq!(synthetic(3, 0, 5, 10, 0).images.len(), 0);
}

const SYNTHETIC_IMAGES_FNV: u64 = 12450498828840810883;
const SYNTHETIC_LABELS_FNV: u64 = 3886659973415363121;

#[test]
fn synthetic_classes_are_distinct_and_samples_vary() {
    let classes = 10;
    let train = synthetic(1_000, 28, 28, classes, 5);
    let test = synthetic(500, 28, 28, classes, 6);
    let dim = train.dim();

    // Class means from train; a test sample must be nearest to its own class's mean.
    let mut means = vec![0f32; classes * dim];
    let mut counts = vec![0f32; classes];
    for i in 0..train.n {
        let c = usize::from(train.labels[i]);
        counts[c] += 1.0;
        for (m, &p) in means[c * dim..(c + 1) * dim].iter_mut().zip(train.image(i)) {
            *m += f32::from(p);
        }
    }
    for c in 0..classes {
        means[c * dim..(c + 1) * dim].iter_mut().for_each(|m| *m /= counts[c]);
    }
    let nearest = |img: &[u8]| {
        (0..classes)
            .min_by(|&a, &b| {
                let d = |c: usize| -> f32 {
                    img.iter()
                        .zip(&means[c * dim..(c + 1) * dim])
                        .map(|(&p, &m)| (f32::from(p) - m).powi(2))
                        .sum()
                };
                d(a).total_cmp(&d(b))
            })
            .unwrap()
    };
    let correct = (0..test.n).filter(|&i| nearest(test.image(i)) == usize::from(test.labels[i])).count();
    assert!(correct * 100 >= test.n * 95, "nearest-mean accuracy {correct}/{}", test.n);

    // Samples of one class differ (jitter and noise), and strokes use the full intensity range.
    assert_ne!(train.image(0), train.image(classes));
    let max = *train.images.iter().max().unwrap();
    assert!(max >= 200, "brightest pixel {max}");
    let ink = train.images.iter().filter(|&&p| p > 64).count() as f64 / train.images.len() as f64;
    assert!((0.02..0.3).contains(&ink), "ink fraction {ink}");
}

// ---------- PNG outputs ----------

fn open_rgb(path: &Path) -> image::RgbImage {
    image::open(path).expect("re-read PNG").to_rgb8()
}

#[test]
fn image_grid_has_the_expected_size_and_pixels() {
    let tmp = TempDir::new("grid");
    let (n, h, w) = (10, 28, 28);
    let mut images = vec![0.25f32; n * h * w];
    images[h * w..2 * h * w].fill(2.0); // clamped to white
    images[2 * h * w..3 * h * w].fill(0.5);
    images[3 * h * w..4 * h * w].fill(f32::NAN); // drawn black
    images[..h * w].fill(-1.0); // clamped to black
    let path = tmp.path().join("grid.png");
    save_image_grid(&path, &images, n, [1, h, w], 4, 2).expect("grid");
    let img = open_rgb(&path);
    // 4 tiles of 56 px and 5 gaps of 2 px across, 3 rows down.
    assert_eq!(img.dimensions(), (4 * 56 + 5 * 2, 3 * 56 + 4 * 2));
    let px = |x, y| img.get_pixel(x, y).0;
    assert_eq!(px(0, 0), [255; 3], "gap");
    assert_eq!(px(2, 2), [0; 3], "tile 0, clamped from -1");
    assert_eq!(px(57, 30), [0; 3], "tile 0, last column");
    assert_eq!(px(58, 30), [255; 3], "gap between tiles");
    assert_eq!(px(60, 30), [255; 3], "tile 1, clamped from 2");
    assert_eq!(px(118, 30), [128; 3], "tile 2 at 0.5");
    assert_eq!(px(176, 30), [0; 3], "tile 3, NaN");
    assert_eq!(px(2, 60), [64; 3], "tile 4 at 0.25");
    // Fewer images than columns: the grid shrinks to them.
    save_image_grid(&path, &images[..2 * h * w], 2, [1, h, w], 8, 1).unwrap();
    assert_eq!(open_rgb(&path).dimensions(), (2 * 28 + 3 * 2, 28 + 2 * 2));
}

#[test]
fn recon_png_pairs_rows_and_labels_them() {
    let tmp = TempDir::new("recon");
    let (n, h, w, cols) = (10, 28, 28, 4);
    let originals = vec![1.0f32; n * h * w];
    let recons = vec![0.0f32; n * h * w];
    let path = tmp.path().join("nested/dir/recon.png");
    save_recon_png(&path, &originals, &recons, n, [1, h, w], cols).expect("recon");
    let img = open_rgb(&path);
    // 28 px images at x2; a label column as wide as "reconstruction" (14 glyphs) plus 4 px each
    // side; 3 pairs of rows with 6 px between pairs.
    let label_w = 14 * 8 + 8;
    assert_eq!(img.dimensions(), (label_w + 2 + 4 * 58, 2 + 6 * 58 + 2 * 6));
    // Originals (white) above reconstructions (black) in the first tile column.
    let x = label_w + 2 + 10;
    assert_eq!(img.get_pixel(x, 2 + 10).0, [255; 3]);
    assert_eq!(img.get_pixel(x, 2 + 58 + 10).0, [0; 3]);
    // Dark label text in the left column of both rows.
    let dark = |y0: u32| {
        (y0..y0 + 56)
            .flat_map(|y| (0..label_w).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 100)
            .count()
    };
    assert!(dark(2) > 20, "no 'original' label");
    assert!(dark(2 + 58) > 40, "no 'reconstruction' label");
}

#[test]
fn labelled_rows_have_the_expected_size() {
    let tmp = TempDir::new("rows");
    let (h, w, scale) = (8, 8, 3);
    let noisy = vec![0.4f32; 5 * h * w];
    let clean = vec![0.9f32; 5 * h * w];
    let rows: [(&str, &[f32]); 3] = [("noisy", &noisy), ("denoised", &clean), ("clean", &clean)];
    let path = tmp.path().join("rows.png");
    save_labelled_rows(&path, &rows, [1, h, w], scale).expect("rows");
    let img = open_rgb(&path);
    let label_w = 8 * 8 + 8; // "denoised"
    assert_eq!(img.dimensions(), (label_w + 2 + 5 * 26, 2 + 3 * 26));
    assert_eq!(img.get_pixel(label_w + 2, 2).0, [102; 3]);

    let short = vec![0.0f32; 4 * h * w];
    let bad: [(&str, &[f32]); 2] = [("a", &noisy), ("b", &short)];
    let err = expect_err(save_labelled_rows(&path, &bad, [1, h, w], scale), "unequal rows");
    assert!(matches!(err, Error::Shape(_)), "{err}");
    assert!(err.to_string().contains("row 'b'"), "{err}");
}

const TAB10: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

#[test]
fn latent_png_draws_classes_legend_and_resists_outliers() {
    let tmp = TempDir::new("latent");
    // Four clusters on a 2x2 layout, plus two huge outliers and one NaN point.
    let mut codes = Vec::new();
    let mut labels = Vec::new();
    for i in 0..2_000u32 {
        let class = (i % 4) as u8;
        let jitter = (i as f32 * 0.618).fract() - 0.5;
        codes.push(f32::from(class % 2) * 4.0 + jitter);
        codes.push(f32::from(class / 2) * 4.0 - jitter);
        labels.push(class);
    }
    codes.extend([1e9, -1e9, f32::NAN, 0.0]);
    labels.extend([0, 1]);
    let names = ["zero", "one", "two", "three"];
    let path = tmp.path().join("latent.png");
    save_latent_png(&path, &codes, &labels, &names, "latent space, 4 classes").expect("latent");
    let img = open_rgb(&path);
    assert_eq!(img.dimensions(), (900, 800));
    assert_eq!(img.get_pixel(0, 0).0, [255; 3], "white background");
    assert_eq!(img.get_pixel(899, 799).0, [255; 3], "white background");

    // Each used class colour appears at full strength (its legend swatch), unused ones do not.
    for (c, colour) in TAB10.iter().enumerate() {
        let count = img.pixels().filter(|p| p.0 == *colour).count();
        if c < 4 {
            assert!(count >= 100, "class {c} swatch: {count} pixels");
        } else {
            assert_eq!(count, 0, "class {c} is not in the data");
        }
    }
    // The clusters spread over the plot: the outliers did not squash them into a corner.
    let tinted: std::collections::HashSet<u32> = img
        .enumerate_pixels()
        .filter(|(x, _, p)| *x < 780 && !(p.0[0] == p.0[1] && p.0[1] == p.0[2]))
        .map(|(x, _, _)| x)
        .collect();
    assert!(tinted.len() > 200, "points cover only {} columns", tinted.len());

    // A single repeated point and a one-class plot still draw.
    save_latent_png(&path, &[1.0, 1.0, 1.0, 1.0], &[0, 0], &["only"], "degenerate").unwrap();
    assert_eq!(open_rgb(&path).dimensions(), (900, 800));
}

#[test]
fn latent_png_rejects_bad_input() {
    let tmp = TempDir::new("latent-bad");
    let path = tmp.path().join("bad.png");
    let names = ["a", "b"];
    let cases: [(&[f32], &[u8], &str); 4] = [
        (&[0.0, 1.0, 2.0], &[0, 1], "2 values per label"),
        (&[0.0, 1.0], &[0, 1], "2 values per label"),
        (&[0.0, 1.0, 2.0, 3.0], &[0, 2], "label 2 has no class name"),
        (&[f32::NAN, 1.0], &[0], "finite"),
    ];
    for (codes, labels, expected) in cases {
        let err = expect_err(save_latent_png(&path, codes, labels, &names, "t"), expected);
        assert!(matches!(err, Error::Shape(_)), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
    }
    assert!(!path.exists(), "nothing is written on bad input");
}

#[test]
fn viz_rejects_bad_lengths_and_sizes() {
    let tmp = TempDir::new("viz-bad");
    let path = tmp.path().join("bad.png");
    let img = vec![0.5f32; 3 * 16];
    let shape = |r: aegpu::Result<()>, what: &str| {
        let err = expect_err(r, what);
        assert!(matches!(err, Error::Shape(_)), "{what}: {err}");
    };
    shape(save_image_grid(&path, &img, 4, [1, 4, 4], 2, 1), "too few values");
    shape(save_image_grid(&path, &img, 2, [1, 4, 4], 2, 1), "too many values");
    shape(save_image_grid(&path, &img, 3, [1, 4, 4], 0, 1), "zero columns");
    shape(save_image_grid(&path, &img, 3, [1, 4, 4], 2, 0), "zero scale");
    shape(save_image_grid(&path, &[], 0, [1, 4, 4], 2, 1), "no images");
    shape(save_image_grid(&path, &img, 3, [1, 4, 4], 3, 2_000), "absurd scale");
    shape(save_recon_png(&path, &img, &img[..32], 3, [1, 4, 4], 2), "short recons");
    shape(save_recon_png(&path, &img, &img, 3, [1, 0, 4], 2), "zero height");
    shape(save_labelled_rows(&path, &[], [1, 4, 4], 1), "no rows");
    assert!(!path.exists(), "nothing is written on bad input");
    // The same input with a right length draws.
    save_image_grid(&path, &img, 3, [1, 4, 4], 2, 1).unwrap();
    assert!(path.is_file());
}

#[test]
fn viz_reports_write_failures_with_the_path() {
    let tmp = TempDir::new("viz-io");
    let file = tmp.write("plain-file", b"x");
    // A parent that is a file cannot become a folder.
    let path = file.join("out.png");
    let err = expect_err(save_image_grid(&path, &[0.0; 4], 1, [1, 2, 2], 1, 1), "parent is a file");
    assert!(matches!(err, Error::Io { .. } | Error::Image { .. }), "{err}");
    assert!(err.to_string().contains("plain-file"), "{err}");
    // Writing onto a folder fails the same way.
    let err = expect_err(save_image_grid(tmp.path(), &[0.0; 4], 1, [1, 2, 2], 1, 1), "path is a dir");
    assert!(matches!(err, Error::Io { .. } | Error::Image { .. }), "{err}");
}
