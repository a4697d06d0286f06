//! Tests of "your own images": image folders (PNG/JPEG, labels from sub-folders, sizes, corrupt
//! files), PNG export and its exact round trip, CIFAR-10 batches, `.npy` arrays, random patches
//! and whitening. Every test writes its own small files into a fresh temporary folder; the one
//! test on the real photographs reads AEGPU_DATA or `../shared/data` and skips with a note when
//! they are absent (fails instead when CI is set).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use aegpu::Error;
use aegpu::data::*;

// ---------- helpers ----------

/// A fresh, empty folder under the system temp dir, removed again on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("aegpu-images-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// `self/rel`, with its parent folders created.
    fn file(&self, rel: &str) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn expect_err<T>(r: aegpu::Result<T>, what: &str) -> Error {
    match r {
        Ok(_) => panic!("{what}: expected an error, got Ok"),
        Err(e) => e,
    }
}

/// A colour dataset: three synthetic grey sets (different seeds) as the R, G, B planes.
fn colour_dataset(n: usize, rows: usize, cols: usize, classes: usize) -> Dataset {
    let planes: Vec<Dataset> = (0..3).map(|s| synthetic(n, rows, cols, classes, 10 + s)).collect();
    let mut images = Vec::new();
    for i in 0..n {
        for p in &planes {
            images.extend_from_slice(p.image(i));
        }
    }
    Dataset::from_chw("colour", images, planes[0].labels.clone(), 3, rows, cols).unwrap()
}

/// Writes a PNG (1 or 3 channels) from interleaved pixels.
fn write_png(path: &Path, w: u32, h: u32, channels: usize, hwc: &[u8]) {
    let color = if channels == 1 { image::ExtendedColorType::L8 } else { image::ExtendedColorType::Rgb8 };
    image::save_buffer_with_format(path, hwc, w, h, color, image::ImageFormat::Png).unwrap();
}

/// Deterministic pseudo-random bytes.
fn noise(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32).map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed * 97) >> 13) as u8).collect()
}

/// `AEGPU_DATA/<sub>` (else `../shared/data/<sub>` next to the crate), or `None` with a printed
/// note when it is absent; a failure instead when the environment variable CI is set.
fn real_data(sub: &str) -> Option<PathBuf> {
    let root = std::env::var_os("AEGPU_DATA")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let dir = root.join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(std::env::var_os("CI").is_none(), "CI is set but {} is missing", dir.display());
    eprintln!("note: no {sub} data at {} (set AEGPU_DATA); real-data test skipped", dir.display());
    None
}

fn assert_same(a: &Dataset, b: &Dataset) {
    assert_eq!((a.n, a.channels, a.rows, a.cols), (b.n, b.channels, b.rows, b.cols));
    assert_eq!(a.labels, b.labels, "labels");
    assert!(a.images == b.images, "pixels differ");
}

// ---------- Dataset ----------

#[test]
fn dataset_channels_and_grey_constructor() {
    let g = Dataset::from_parts("g", vec![1; 2 * 3 * 4], vec![0, 1], 3, 4).unwrap();
    assert_eq!((g.channels, g.dim(), g.class_names.len()), (1, 12, 0));
    let c = colour_dataset(4, 5, 6, 2);
    assert_eq!((c.channels, c.dim(), c.image(3).len()), (3, 90, 90));
    assert_eq!(c.subset(1..3).channels, 3);
    assert!(matches!(Dataset::from_chw("x", vec![0; 10], vec![0], 3, 2, 2), Err(Error::Shape(_))));
    let named = c.clone().with_class_names(vec!["a".into(), "b".into()]).unwrap();
    assert_eq!((named.class_name(1), c.class_name(1)), ("b".to_string(), "1".to_string()));
    assert!(c.with_class_names(vec!["only".into()]).is_err());
}

// ---------- export and folder round trip ----------

#[test]
fn export_and_reload_grey_keeps_pixels_labels_order() {
    let tmp = TempDir::new("grey");
    // Unsorted names: label ids must come from classes.txt, not from sorting the folders.
    let names = ["zebra", "apple", "T-shirt/top", "kiwi"].map(String::from).to_vec();
    let ds = synthetic(37, 9, 7, 4, 1).with_class_names(names.clone()).unwrap();
    assert_eq!(export_png_folder(&ds, tmp.path()).unwrap(), 37);
    assert!(tmp.path().join("apple/01.png").is_file(), "DIR/<class>/<zero-padded index>.png");
    assert!(tmp.path().join("T-shirt_top/02.png").is_file(), "'/' is made folder-safe");
    let (back, report) = load_folder(tmp.path(), &FolderOptions::default()).unwrap();
    assert_same(&ds, &back);
    assert_eq!(back.class_names, names);
    assert_eq!((report.read, report.converted, report.resized, report.skipped.len()), (37, 0, 0, 0));
    // A non-empty folder is refused.
    assert!(matches!(export_png_folder(&ds, tmp.path()), Err(Error::Config(_))));
}

#[test]
fn export_and_reload_colour_with_missing_labels() {
    let tmp = TempDir::new("colour");
    let mut ds = colour_dataset(30, 6, 5, 12);
    for l in &mut ds.labels {
        if *l == 2 {
            *l = 11; // label 2 has no image; 11 must still come back as 11
        }
    }
    export_png_folder(&ds, tmp.path()).unwrap();
    let exists = |rel: &str| tmp.path().join(rel).is_file();
    assert!(exists("05/29.png") && exists("11/02.png") && !tmp.path().join("02").exists());
    let (back, _) = load_folder(tmp.path(), &FolderOptions::default()).unwrap();
    assert_same(&ds, &back);
    // Forcing grey converts every image.
    let grey = FolderOptions { channels: Some(1), ..Default::default() };
    let (g, report) = load_folder(tmp.path(), &grey).unwrap();
    assert_eq!((g.channels, report.converted), (1, 30));
}

#[test]
fn export_and_reload_mnist_like_subset_order() {
    // 1200 images: 4-digit names; per-class folders interleave, integer order restores them.
    let tmp = TempDir::new("order");
    let ds = synthetic(1200, 4, 4, 10, 7);
    export_png_folder(&ds, tmp.path()).unwrap();
    assert!(tmp.path().join("3/0993.png").is_file());
    let (back, _) = load_folder(tmp.path(), &FolderOptions::default()).unwrap();
    assert_same(&ds, &back);
}

#[test]
fn export_and_reload_real_mnist_subset() {
    let Some(dir) = real_data("mnist") else { return };
    let split = load(DatasetName::Mnist, &dir).unwrap();
    assert_eq!((split.test.channels, split.test.dim()), (1, 784), "MNIST stays one grey plane");
    let ds = split.test.subset(0..300);
    let tmp = TempDir::new("mnist");
    export_png_folder(&ds, tmp.path()).unwrap();
    assert!(tmp.path().join("7/000.png").is_file(), "the first test digit is a 7");
    let (back, _) = load_folder(tmp.path(), &FolderOptions::default()).unwrap();
    assert_same(&ds, &back);
}

// ---------- folders made by hand ----------

#[test]
fn colour_folder_with_classes_grey_and_jpeg() {
    let tmp = TempDir::new("hand");
    let rgb = noise(8 * 6 * 3, 1);
    write_png(&tmp.file("dogs/b.png"), 8, 6, 3, &rgb);
    write_png(&tmp.file("cats/a.png"), 8, 6, 1, &noise(48, 2));
    let jpeg = image::RgbImage::from_raw(8, 6, noise(144, 3)).unwrap();
    jpeg.save(tmp.file("cats/deep/c.JPG")).unwrap();
    std::fs::write(tmp.file("cats/notes.txt"), "ignored").unwrap();
    std::fs::write(tmp.file(".hidden/x.png"), "ignored").unwrap();

    let (ds, report) = load_folder(tmp.path(), &FolderOptions::default()).unwrap();
    assert_eq!((ds.n, ds.channels, ds.rows, ds.cols), (3, 3, 6, 8));
    assert_eq!(ds.class_names, ["cats", "dogs"]);
    assert_eq!(ds.labels, [0, 0, 1], "sorted paths: cats/a, cats/deep/c, dogs/b");
    assert_eq!((report.read, report.converted), (3, 1), "only the grey PNG is converted");
    let want: Vec<u8> = (0..3).flat_map(|c| rgb.iter().skip(c).step_by(3).copied()).collect();
    assert_eq!(ds.image(2), want.as_slice(), "RGB interleaved -> CHW planes");
    let grey_plane = &ds.image(0)[..48];
    assert_eq!(grey_plane, noise(48, 2).as_slice(), "grey replicated into R");

    // Loose images as well as class folders: an error naming both.
    write_png(&tmp.file("loose.png"), 8, 6, 1, &noise(48, 4));
    let e = expect_err(load_folder(tmp.path(), &FolderOptions::default()), "mixed layout").to_string();
    assert!(e.contains("loose.png") && e.contains("sub-folders"), "{e}");
}

#[test]
fn unlabelled_folder_mixed_sizes_resize_and_crop() {
    let tmp = TempDir::new("sizes");
    write_png(&tmp.file("a.png"), 8, 8, 1, &noise(64, 1));
    write_png(&tmp.file("b.png"), 8, 8, 1, &noise(64, 2));
    // 4 rows x 12 cols: dark | 200 | dark, so a centred 4x4 crop is all 200.
    let band: Vec<u8> = (0..48).map(|i| if (4..8).contains(&(i % 12)) { 200 } else { 10 }).collect();
    write_png(&tmp.file("c.png"), 12, 4, 1, &band);

    let e = expect_err(load_folder(tmp.path(), &FolderOptions::default()), "mixed sizes").to_string();
    assert!(e.contains("a.png") && e.contains("c.png") && e.contains("4x12"), "{e}");

    let opts = FolderOptions { size: Some((4, 4)), ..Default::default() };
    let (ds, report) = load_folder(tmp.path(), &opts).unwrap();
    assert_eq!((ds.n, ds.channels, ds.rows, ds.cols, report.resized), (3, 1, 4, 4, 3));
    assert!(ds.class_names.is_empty() && ds.labels == [0, 0, 0]);
    assert!(ds.image(2).iter().any(|&p| p < 150), "a plain resize keeps the dark sides");

    let crop = FolderOptions { size: Some((4, 4)), resize: ResizeMode::CentreCrop, ..Default::default() };
    let (ds, _) = load_folder(tmp.path(), &crop).unwrap();
    assert_eq!((ds.rows, ds.cols), (4, 4));
    assert!(ds.image(2).iter().all(|&p| p == 200), "{:?}", ds.image(2));

    let wide = FolderOptions { size: Some((3, 5)), resize: ResizeMode::CentreCrop, ..Default::default() };
    let (ds, _) = load_folder(tmp.path(), &wide).unwrap();
    assert_eq!((ds.n, ds.rows, ds.cols, ds.images.len()), (3, 3, 5, 45));
}

#[test]
fn corrupt_files_name_the_file_or_are_skipped() {
    let tmp = TempDir::new("corrupt");
    write_png(&tmp.file("a.png"), 32, 32, 3, &noise(32 * 32 * 3, 1));
    let good = std::fs::read(tmp.path().join("a.png")).unwrap();
    std::fs::write(tmp.file("b_garbage.png"), b"this is not a png at all").unwrap();
    std::fs::write(tmp.file("c_truncated.png"), &good[..good.len() / 2]).unwrap();

    let e = expect_err(load_folder(tmp.path(), &FolderOptions::default()), "garbage").to_string();
    assert!(e.contains("b_garbage.png"), "{e}");
    let skip = FolderOptions { skip_bad: true, ..Default::default() };
    let (ds, report) = load_folder(tmp.path(), &skip).unwrap();
    assert_eq!((ds.n, report.read, report.skipped.len()), (1, 1, 2));
    assert!(report.skipped[1].0.ends_with("c_truncated.png"), "{:?}", report.skipped);

    std::fs::remove_file(tmp.path().join("b_garbage.png")).unwrap();
    let e = expect_err(load_folder(tmp.path(), &FolderOptions::default()), "truncated").to_string();
    assert!(e.contains("c_truncated.png"), "{e}");
}

#[test]
fn missing_file_and_empty_folders_are_errors() {
    let tmp = TempDir::new("missing");
    let o = FolderOptions::default();
    let e = expect_err(load_folder(&tmp.path().join("nope"), &o), "missing");
    assert!(matches!(&e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound), "{e}");
    std::fs::write(tmp.file("file.png"), b"x").unwrap();
    let e = expect_err(load_folder(&tmp.path().join("file.png"), &o), "a file");
    assert!(e.to_string().contains("not a folder"), "{e}");
    std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
    std::fs::write(tmp.file("empty/readme.md"), b"no images").unwrap();
    let e = expect_err(load_folder(&tmp.path().join("empty"), &o), "empty");
    assert!(matches!(e, Error::BadData { .. }) && e.to_string().contains("no PNG or JPEG"), "{e}");
    let e = expect_err(load_folder(tmp.path(), &FolderOptions { channels: Some(2), ..o }), "channels");
    assert!(matches!(e, Error::Config(_)), "{e}");
}

#[test]
fn class_limits_and_name_clashes() {
    let tmp = TempDir::new("classes");
    for c in 0..257 {
        write_png(&tmp.file(&format!("c{c:03}/x.png")), 1, 1, 1, &[c as u8]);
    }
    let e = expect_err(load_folder(tmp.path(), &FolderOptions::default()), "257 classes").to_string();
    assert!(e.contains("257 classes"), "{e}");
    std::fs::remove_dir_all(tmp.path().join("c256")).unwrap();
    let (ds, _) = load_folder(tmp.path(), &FolderOptions::default()).unwrap();
    assert_eq!((ds.n, ds.labels[255], ds.images[255]), (256, 255, 255), "256 classes fit in u8 labels");

    let clash = synthetic(4, 2, 2, 2, 0).with_class_names(vec!["a/b".into(), "a:b".into()]).unwrap();
    let e = expect_err(export_png_folder(&clash, &tmp.path().join("out")), "clash").to_string();
    assert!(e.contains("a_b"), "{e}");
    let four = colour_dataset(2, 2, 2, 1);
    let four =
        Dataset::from_chw("4", [four.images.clone(), vec![0; 8]].concat(), four.labels, 4, 2, 2).unwrap();
    assert!(matches!(export_png_folder(&four, &tmp.path().join("out4")), Err(Error::Config(_))));
}

#[test]
fn random_split_is_seeded_and_keeps_order() {
    let ds = synthetic(50, 4, 4, 5, 3);
    let a = random_split(&ds, 0.2, 9).unwrap();
    let b = random_split(&ds, 0.2, 9).unwrap();
    let c = random_split(&ds, 0.2, 10).unwrap();
    assert_eq!((a.train.n, a.test.n), (40, 10));
    assert!(a.test.images == b.test.images && a.test.images != c.test.images);
    let rows: Vec<&[u8]> = (0..50).map(|i| ds.image(i)).collect();
    let pos = |img: &[u8]| rows.iter().position(|r| *r == img).unwrap();
    let order: Vec<usize> = (0..10).map(|i| pos(a.test.image(i))).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert!(random_split(&ds, 1.0, 0).is_err() && random_split(&ds, 0.0, 0).is_err());
}

// ---------- CIFAR-10 ----------

#[test]
fn cifar_batches_round_trip_and_truncation() {
    let tmp = TempDir::new("cifar");
    let dir = tmp.path().join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let files =
        ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"];
    let mut expected = Vec::new();
    for (f, name) in files.iter().enumerate() {
        let (n, mut bytes, mut images, mut labels) = (f + 2, Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let img = noise(3072, (f * 10 + i) as u32);
            let label = ((f + i) % 10) as u8;
            bytes.push(label);
            bytes.extend_from_slice(&img);
            images.extend_from_slice(&img);
            labels.push(label);
        }
        std::fs::write(dir.join(format!("{name}.bin")), bytes).unwrap();
        expected.push((images, labels));
    }
    let split = load_cifar10(tmp.path()).unwrap();
    let train_images: Vec<u8> = expected[..5].iter().flat_map(|e| e.0.clone()).collect();
    let train_labels: Vec<u8> = expected[..5].iter().flat_map(|e| e.1.clone()).collect();
    assert_eq!((split.train.n, split.train.channels, split.train.rows, split.train.cols), (20, 3, 32, 32));
    assert!(split.train.images == train_images && split.train.labels == train_labels);
    assert!(split.test.images == expected[5].0 && split.test.labels == expected[5].1);
    assert_eq!(split.test.class_names[0], "airplane");
    assert_eq!(split.test.class_name(9), "truck");

    let path = dir.join("data_batch_3.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 100);
    std::fs::write(&path, &bytes).unwrap();
    let e = expect_err(load_cifar10(tmp.path()), "truncated");
    assert!(matches!(e, Error::BadData { .. }) && e.to_string().contains("data_batch_3.bin"), "{e}");
    std::fs::remove_file(&path).unwrap();
    let e = expect_err(load_cifar10(tmp.path()), "missing batch");
    assert!(matches!(e, Error::DataNotFound { .. }) && e.to_string().contains("data_batch_3.bin"), "{e}");
}

// ---------- .npy ----------

/// A version-1 `.npy` file.
fn write_npy(path: &Path, descr: &str, fortran: bool, shape: &[usize], data: &[u8]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let f = if fortran { "True" } else { "False" };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': {f}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    std::fs::write(path, out).unwrap();
}

/// CHW images to NHWC.
fn to_nhwc(ds: &Dataset) -> Vec<u8> {
    let hw = ds.rows * ds.cols;
    (0..ds.n)
        .flat_map(|i| (0..hw).flat_map(move |p| (0..ds.channels).map(move |c| ds.image(i)[c * hw + p])))
        .collect()
}

#[test]
fn npy_uint8_layouts_labels_and_fortran_order() {
    let tmp = TempDir::new("npy");
    let ds = colour_dataset(5, 4, 6, 3);
    let (p, auto) = (tmp.path().join("x.npy"), NpyLayout::Auto);
    write_npy(&p, "|u1", false, &[5, 4, 6, 3], &to_nhwc(&ds));
    let d = load_npy(&p, None, auto).unwrap();
    assert_eq!((d.n, d.channels, d.rows, d.cols, d.name.as_str()), (5, 3, 4, 6, "x"));
    assert!(d.images == ds.images && d.labels == [0; 5], "NHWC -> CHW, no labels");
    write_npy(&p, "|u1", false, &[5, 3, 4, 6], &ds.images);
    let labels: Vec<u8> = ds.labels.iter().flat_map(|&l| i64::from(l).to_le_bytes()).collect();
    let lp = tmp.path().join("y.npy");
    write_npy(&lp, "<i8", false, &[5], &labels);
    assert_same(&ds, &load_npy(&p, Some(&lp), auto).unwrap());

    // Grey [N, H, W], stored in Fortran order (first index fastest).
    let g = synthetic(3, 4, 5, 2, 1);
    let fortran: Vec<u8> = (0..5)
        .flat_map(|w| (0..4).flat_map(move |h| (0..3).map(move |n| (n, h, w))))
        .map(|(n, h, w)| g.image(n)[h * 5 + w])
        .collect();
    write_npy(&p, "|u1", true, &[3, 4, 5], &fortran);
    let back = load_npy(&p, None, auto).unwrap();
    assert_eq!((back.channels, back.images.clone()), (1, g.images.clone()));

    // Labels: wrong length and out of range.
    write_npy(&lp, "<i8", false, &[4], &labels[..32]);
    assert!(load_npy(&p, Some(&lp), auto).unwrap_err().to_string().contains("[3]"));
    write_npy(&lp, "<i2", false, &[3], &[1, 0, 44, 1, 0, 0]);
    assert!(load_npy(&p, Some(&lp), auto).unwrap_err().to_string().contains("300"));
}

#[test]
fn npy_float32_round_trip_and_errors() {
    let tmp = TempDir::new("npyf");
    let ds = colour_dataset(4, 4, 5, 2);
    let p = tmp.path().join("f.npy");
    let floats = |bytes: &[u8], big: bool| -> Vec<u8> {
        let f = |b: u8| f32::from(b) / 255.0;
        bytes.iter().flat_map(|&b| if big { f(b).to_be_bytes() } else { f(b).to_le_bytes() }).collect()
    };
    write_npy(&p, "<f4", false, &[4, 4, 5, 3], &floats(&to_nhwc(&ds), false));
    assert_eq!(load_npy(&p, None, NpyLayout::Auto).unwrap().images, ds.images, "NHWC float32");
    write_npy(&p, ">f4", false, &[4, 3, 4, 5], &floats(&ds.images, true));
    assert_eq!(load_npy(&p, None, NpyLayout::Auto).unwrap().images, ds.images, "NCHW big-endian");

    // [2, 3, 4, 3]: channels could be last or second; ambiguous unless the layout is given.
    write_npy(&p, "|u1", false, &[2, 3, 4, 3], &[0; 72]);
    let e = expect_err(load_npy(&p, None, NpyLayout::Auto), "ambiguous").to_string();
    assert!(e.contains("ambiguous") && e.contains("layout"), "{e}");
    let (nhwc, nchw) =
        (load_npy(&p, None, NpyLayout::Nhwc).unwrap(), load_npy(&p, None, NpyLayout::Nchw).unwrap());
    assert_eq!(((nhwc.rows, nhwc.cols), (nchw.rows, nchw.cols)), ((3, 4), (4, 3)));
    write_npy(&p, "|u1", false, &[2, 5, 4, 4], &[0; 160]);
    assert!(
        expect_err(load_npy(&p, None, NpyLayout::Auto), "no channel axis").to_string().contains("1 or 3")
    );

    let mut v = floats(&ds.images, false);
    v[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    write_npy(&p, "<f4", false, &[4, 3, 4, 5], &v);
    assert!(expect_err(load_npy(&p, None, NpyLayout::Auto), "NaN").to_string().contains("NaN"));
    let big: Vec<u8> = ds.images.iter().flat_map(|&b| f32::from(b).to_le_bytes()).collect();
    write_npy(&p, "<f4", false, &[4, 3, 4, 5], &big);
    assert!(expect_err(load_npy(&p, None, NpyLayout::Auto), "0-255").to_string().contains("255"));
    write_npy(&p, "|u1", false, &[4, 3, 4, 5], &ds.images[..100]);
    assert!(matches!(load_npy(&p, None, NpyLayout::Auto), Err(Error::BadData { .. })), "truncated");
}

// ---------- patches and whitening ----------

#[test]
fn patches_count_shape_content_and_seed() {
    let ds = colour_dataset(6, 9, 11, 3);
    let a = patches_from_dataset(&ds, 200, 4, 5).unwrap();
    assert_eq!((a.n, a.channels, a.size, a.dim(), a.data.len()), (200, 3, 4, 48, 200 * 48));
    assert_eq!(a, patches_from_dataset(&ds, 200, 4, 5).unwrap(), "same seed, same patches");
    assert_ne!(a.data, patches_from_dataset(&ds, 200, 4, 6).unwrap().data);
    // Every patch is a window of its source image.
    for i in [0, 57, 199] {
        let (img, p) = (ds.image(a.source[i]), a.patch(i));
        let at = |c: usize, y: usize, x: usize| f32::from(img[c * 99 + y * 11 + x]) / 255.0;
        let found = (0..=5)
            .any(|y| (0..=7).any(|x| (0..48).all(|k| p[k] == at(k / 16, y + (k % 16) / 4, x + k % 4))));
        assert!(found, "patch {i} is not a window of image {}", a.source[i]);
    }
    let back = a.to_dataset("p", &U8Map::UNIT).unwrap();
    assert_eq!((back.n, back.channels, back.rows), (200, 3, 4));
    assert!(back.images.iter().zip(&a.data).all(|(&b, &x)| f32::from(b) / 255.0 == x), "UNIT is exact");
    assert!(patches_from_dataset(&ds, 10, 12, 0).is_err(), "patch larger than the images");

    let small = ImageU8 { path: "s".into(), channels: 1, rows: 3, cols: 3, pixels: vec![0; 9] };
    let big = ImageU8 { path: "b".into(), channels: 1, rows: 20, cols: 30, pixels: noise(600, 1) };
    let p = patches_from_images(&[small.clone(), big], 50, 5, 1).unwrap();
    assert!(p.source.iter().all(|&s| s == 1), "the too-small image is passed over");
    let rgb = ImageU8 { channels: 3, pixels: vec![0; 27], ..small };
    assert!(patches_from_images(&[p_image(), rgb], 5, 2, 0).is_err(), "mixed channel counts");
}

fn p_image() -> ImageU8 {
    ImageU8 { path: "g".into(), channels: 1, rows: 4, cols: 4, pixels: vec![1; 16] }
}

/// Correlated data: each patch is a fixed mixing of independent uniform sources with different
/// scales.
fn correlated(n: usize, d: usize) -> Patches {
    let mut state = 12345u64;
    let mut uniform = || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mix: Vec<f32> = (0..d * d).map(|k| if k % (d + 1) == 0 { 1.0 } else { 0.6 * uniform() }).collect();
    let mut data = Vec::with_capacity(n * d);
    for _ in 0..n {
        let s: Vec<f32> = (0..d).map(|j| uniform() * (1.0 + j as f32)).collect();
        data.extend((0..d).map(|r| 0.5 + 0.05 * (0..d).map(|c| mix[r * d + c] * s[c]).sum::<f32>()));
    }
    Patches { data, n, channels: 1, size: (d as f64).sqrt() as usize, source: vec![0; n] }
}

/// The covariance (about the mean) of the patch vectors.
fn covariance(p: &Patches) -> Vec<f64> {
    let d = p.dim();
    let mean: Vec<f64> =
        (0..d).map(|j| (0..p.n).map(|i| f64::from(p.patch(i)[j])).sum::<f64>() / p.n as f64).collect();
    let mut cov = vec![0.0; d * d];
    for i in 0..p.n {
        let x = p.patch(i);
        for r in 0..d {
            for c in 0..d {
                cov[r * d + c] += (f64::from(x[r]) - mean[r]) * (f64::from(x[c]) - mean[c]) / p.n as f64;
            }
        }
    }
    cov
}

#[test]
fn whitening_gives_identity_covariance_and_inverts() {
    let p = correlated(4000, 9);
    for kind in [WhitenKind::Zca, WhitenKind::Pca] {
        let opts = WhitenOptions { kind, epsilon: 1e-7, remove_patch_mean: false };
        let (z, w) = whiten(&p, &opts).unwrap();
        let cov = covariance(&z);
        for (k, v) in cov.iter().enumerate() {
            let want = if k % 10 == 0 { 1.0 } else { 0.0 };
            assert!((v - want).abs() < 1e-3, "{kind:?}: covariance[{k}] = {v}");
        }
        assert!(w.eigenvalues.windows(2).all(|e| e[0] >= e[1]), "eigenvalues sorted");
        let x = w.invert(&z).unwrap();
        let err = x.data.iter().zip(&p.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 1e-4, "{kind:?}: inverse error {err}");
        let again = w.apply(&p).unwrap();
        let err = again.data.iter().zip(&z.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 1e-3, "{kind:?}: apply differs by {err}");
        if kind == WhitenKind::Zca {
            let sym = (0..81).all(|k| (w.matrix[k] - w.matrix[(k % 9) * 9 + k / 9]).abs() < 1e-4);
            assert!(sym, "the ZCA matrix is symmetric");
        }
    }
    // With patch means removed, the constant direction has no variance left: covariance I - 11^T/d.
    let (z, _) = whiten(&p, &WhitenOptions { epsilon: 1e-7, ..Default::default() }).unwrap();
    for (k, v) in covariance(&z).iter().enumerate() {
        let want = if k % 10 == 0 { 1.0 - 1.0 / 9.0 } else { -1.0 / 9.0 };
        assert!((v - want).abs() < 1e-3, "covariance[{k}] = {v}, want {want}");
    }
    // Bytes for the pipeline: the symmetric map keeps values to half a step and clips few.
    let map = U8Map::symmetric(&z.data, 0.999).unwrap();
    let step = 1.0 / map.scale;
    let clipped = map.clipped(&z.data);
    assert!(clipped > 0 && clipped <= z.data.len() / 500, "{clipped} clipped");
    let mut inside = z.data.iter().filter(|&&x| x.abs() <= 127.0 * step);
    assert!(inside.clone().count() > 0);
    assert!(inside.all(|&x| (map.decode(map.encode(x)) - x).abs() <= 0.5 * step + 1e-6));
    assert!(whiten(&p, &WhitenOptions { epsilon: 0.0, ..Default::default() }).is_err());
}

#[test]
fn real_photographs_as_folder_and_patches() {
    let Some(dir) = real_data("photos") else { return };
    let (images, report) = load_images(&dir, &FolderOptions::default()).unwrap();
    assert_eq!((images.len(), report.skipped.len()), (10, 0), "ten photographs, README.md ignored");
    assert!(images.iter().all(|im| im.channels == 3), "some are colour, so all become RGB");
    let astronaut = images.iter().find(|im| im.path.ends_with("astronaut.png")).unwrap();
    assert_eq!((astronaut.rows, astronaut.cols), (512, 512));
    let hubble = images.iter().find(|im| im.path.ends_with("hubble_deep_field.jpg")).unwrap();
    assert_eq!((hubble.rows, hubble.cols), (872, 1000));

    let e = expect_err(load_folder(&dir, &FolderOptions::default()), "sizes differ").to_string();
    assert!(e.contains("differ in size"), "{e}");
    let opts = FolderOptions { size: Some((64, 64)), resize: ResizeMode::CentreCrop, ..Default::default() };
    let (ds, report) = load_folder(&dir, &opts).unwrap();
    assert_eq!((ds.n, ds.channels, ds.rows, ds.cols, report.resized), (10, 3, 64, 64, 10));

    let p = patches_from_images(&images, 3000, 8, 1).unwrap();
    assert_eq!((p.n, p.dim()), (3000, 192));
    let mut seen = p.source.clone();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 10, "patches come from every photograph");
    let (z, w) = whiten(&p, &WhitenOptions::default()).unwrap();
    assert!(z.data.iter().all(|v| v.is_finite()));
    assert!(w.eigenvalues[0] > 10.0 * w.eigenvalues[50], "natural images: a steep spectrum");
    let map = U8Map::symmetric(&z.data, 0.999).unwrap();
    let bytes = z.to_dataset("photo-patches", &map).unwrap();
    assert_eq!((bytes.n, bytes.channels, bytes.rows), (3000, 3, 8));
}
