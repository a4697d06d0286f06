//! Reading an image folder: scanning, labelling, probing headers, decoding, converting and
//! resizing (the `images` feature; see the parent module for the rules).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{ColorType, ImageBuffer, ImageDecoder, ImageReader, Pixel};

use super::super::{Dataset, export::folder_name};
use super::{CLASSES_FILE, FolderOptions, FolderReport, ImageU8, ResizeMode};
use crate::error::{Error, Result};

/// Extensions (lower-case) of the files the loader reads; other files are ignored.
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Loads every PNG/JPEG under `dir` as one dataset (see the module docs for labels and order).
///
/// Errors: `dir` missing or a file ([`Error::Io`]); no images, an unreadable file without
/// `skip_bad`, or images both directly in `dir` and in sub-folders ([`Error::BadData`]); sizes
/// that differ with no `size` given (naming two such files), a bad option or more than 256
/// classes ([`Error::Config`]).
pub fn load_folder(dir: &Path, opts: &FolderOptions) -> Result<(Dataset, FolderReport)> {
    let mut scan = scan(dir, opts)?;
    let (rows, cols) = match opts.size {
        Some(size) => size,
        None => common_size(dir, &scan.files)?,
    };
    let c = scan.channels;
    let mut images = Vec::with_capacity(scan.files.len() * c * rows * cols);
    let mut labels = Vec::with_capacity(scan.files.len());
    for file in &scan.files {
        if let Some(img) = decode(file, c, Some((rows, cols)), opts, &mut scan.report)? {
            images.extend_from_slice(&img.pixels);
            labels.push(file.label);
        }
    }
    let name = dir.file_name().map_or_else(|| "images".to_string(), |n| n.to_string_lossy().into_owned());
    let ds = Dataset::from_chw(name, images, labels, c, rows, cols)?.with_class_names(scan.class_names)?;
    Ok((ds, scan.report))
}

/// Loads every PNG/JPEG under `dir` at its own size (for patch sampling from photographs), with
/// the channel rule and `skip_bad` of [`load_folder`]; `opts.size`, if given, resizes them all.
pub fn load_images(dir: &Path, opts: &FolderOptions) -> Result<(Vec<ImageU8>, FolderReport)> {
    let mut scan = scan(dir, opts)?;
    let mut out = Vec::with_capacity(scan.files.len());
    for file in &scan.files {
        if let Some(img) = decode(file, scan.channels, opts.size, opts, &mut scan.report)? {
            out.push(img);
        }
    }
    Ok((out, scan.report))
}

/// One image file found by the scan.
struct Found {
    path: PathBuf,
    label: u8,
    color: ColorType,
    /// `(rows, cols)` from the header.
    size: (usize, usize),
}

/// The files of a folder with their labels and headers, before decoding.
struct Scan {
    files: Vec<Found>,
    class_names: Vec<String>,
    channels: usize,
    report: FolderReport,
}

/// Finds, orders, labels and probes the images under `dir`.
fn scan(dir: &Path, opts: &FolderOptions) -> Result<Scan> {
    if let Some(c) = opts.channels
        && c != 1
        && c != 3
    {
        return Err(Error::Config(format!("channels must be 1 (grey) or 3 (RGB), not {c}")));
    }
    if let Some((r, c)) = opts.size
        && (r == 0 || c == 0 || r > u32::MAX as usize || c > u32::MAX as usize)
    {
        return Err(Error::Config(format!("image size {r}x{c} is not a usable size")));
    }
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if !meta.is_dir() {
        let e = std::io::Error::new(std::io::ErrorKind::NotADirectory, "a file, not a folder of images");
        return Err(Error::io(dir, e));
    }
    let mut rel = Vec::new();
    walk(dir, Path::new(""), &mut rel)?;
    if rel.is_empty() {
        return Err(Error::BadData {
            path: dir.to_path_buf(),
            reason: "no PNG or JPEG images in this folder or its sub-folders".into(),
        });
    }
    order(&mut rel);
    let (class_names, labels) = classes(dir, &rel)?;

    let mut report = FolderReport::default();
    let mut files = Vec::with_capacity(rel.len());
    for (r, label) in rel.into_iter().zip(labels) {
        let path = dir.join(r);
        match probe(&path) {
            Ok((size, color)) => files.push(Found { path, label, color, size }),
            Err(reason) => bad(path, reason, opts, &mut report)?,
        }
    }
    if files.is_empty() {
        return Err(Error::BadData {
            path: dir.to_path_buf(),
            reason: format!("none of the {} image files could be read", report.skipped.len()),
        });
    }
    let colour = files.iter().any(|f| f.color.has_color());
    let channels = opts.channels.unwrap_or(if colour { 3 } else { 1 });
    Ok(Scan { files, class_names, channels, report })
}

/// Records a bad file under `skip_bad`, or fails naming it.
fn bad(path: PathBuf, reason: String, opts: &FolderOptions, report: &mut FolderReport) -> Result<()> {
    if opts.skip_bad {
        report.skipped.push((path, reason));
        Ok(())
    } else {
        Err(Error::BadData { path, reason: format!("{reason} (skip_bad / --skip-bad skips such files)") })
    }
}

/// Collects the image files under `root/rel`, relative to `root`. Hidden entries (`.name`) are
/// ignored and symbolic links to folders are not followed (no cycles); links to files are read.
fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let here = root.join(rel);
    let entries = std::fs::read_dir(&here).map_err(|e| Error::io(&here, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&here, e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        let sub = rel.join(&name);
        if kind.is_dir() {
            walk(root, &sub, out)?;
        } else if has_image_extension(&sub) && entry.path().is_file() {
            out.push(sub);
        }
    }
    Ok(())
}

fn has_image_extension(path: &Path) -> bool {
    path.extension().is_some_and(|e| EXTENSIONS.contains(&e.to_string_lossy().to_ascii_lowercase().as_str()))
}

/// Sorts paths component by component; if every file stem is a distinct integer, by that integer.
fn order(files: &mut [PathBuf]) {
    files.sort();
    let numbers: Option<Vec<u64>> = files
        .iter()
        .map(|p| {
            let stem = p.file_stem()?.to_str()?;
            if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            stem.parse().ok()
        })
        .collect();
    if let Some(numbers) = numbers {
        let distinct: BTreeSet<u64> = numbers.iter().copied().collect();
        if distinct.len() == numbers.len() {
            let mut keyed: Vec<(u64, PathBuf)> = numbers.into_iter().zip(files.iter().cloned()).collect();
            keyed.sort();
            for (slot, (_, p)) in files.iter_mut().zip(keyed) {
                *slot = p;
            }
        }
    }
}

/// Class names and each file's label, from the first path component of every file.
fn classes(dir: &Path, rel: &[PathBuf]) -> Result<(Vec<String>, Vec<u8>)> {
    let top = |p: &PathBuf| p.components().count() == 1;
    match (rel.iter().find(|p| top(p)), rel.iter().find(|p| !top(p))) {
        (_, None) => return Ok((Vec::new(), vec![0; rel.len()])),
        (None, Some(_)) => {}
        (Some(a), Some(b)) => {
            return Err(Error::BadData {
                path: dir.to_path_buf(),
                reason: format!(
                    "holds images both directly ({}) and in sub-folders ({}); put every image in a \
                     class sub-folder, or none",
                    a.display(),
                    b.display()
                ),
            });
        }
    }
    let folder_of = |p: &PathBuf| p.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned());
    let folders: BTreeSet<String> = rel.iter().filter_map(folder_of).collect();
    let manifest = dir.join(CLASSES_FILE);
    let names: Vec<String> = if manifest.is_file() {
        let text = std::fs::read_to_string(&manifest).map_err(|e| Error::io(&manifest, e))?;
        let names: Vec<String> = text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
        let known: BTreeSet<String> = names.iter().map(|n| folder_name(n)).collect();
        if let Some(f) = folders.iter().find(|f| !known.contains(*f)) {
            return Err(Error::BadData {
                path: manifest,
                reason: format!("sub-folder '{f}' is not one of the classes listed here"),
            });
        }
        names
    } else {
        folders.into_iter().collect()
    };
    if names.len() > 256 {
        return Err(Error::Config(format!(
            "{} has {} classes, but labels are bytes (at most 256 classes)",
            dir.display(),
            names.len()
        )));
    }
    let id: BTreeMap<String, u8> = names.iter().enumerate().map(|(i, n)| (folder_name(n), i as u8)).collect();
    let labels = rel.iter().map(|p| folder_of(p).and_then(|f| id.get(&f).copied()).unwrap_or(0)).collect();
    Ok((names, labels))
}

/// Size (`(rows, cols)`) and colour type from the file's header, without decoding the pixels.
fn probe(path: &Path) -> std::result::Result<((usize, usize), ColorType), String> {
    let reader = ImageReader::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let reader = reader.with_guessed_format().map_err(|e| format!("cannot read: {e}"))?;
    let decoder = reader.into_decoder().map_err(|e| format!("not a readable image: {e}"))?;
    let (w, h) = decoder.dimensions();
    Ok(((h as usize, w as usize), decoder.color_type()))
}

/// The size every file shares, or an error naming a file of the most common size and one other.
fn common_size(dir: &Path, files: &[Found]) -> Result<(usize, usize)> {
    let mut sizes: BTreeMap<(usize, usize), (usize, &Path)> = BTreeMap::new();
    for f in files {
        sizes.entry(f.size).or_insert((0, &f.path)).0 += 1;
    }
    let (&common, &(count, first)) = sizes.iter().max_by_key(|(_, (n, _))| *n).expect("files is not empty");
    if let Some((&(r, c), &(_, other))) = sizes.iter().find(|(s, _)| **s != common) {
        return Err(Error::Config(format!(
            "the images in {} differ in size: {} is {}x{} but {} is {r}x{c} (rows x cols; {} sizes in all, \
             {count} files of the most common, {}x{}); give a size (--size ROWSxCOLS) to resize them all",
            dir.display(),
            first.display(),
            common.0,
            common.1,
            other.display(),
            sizes.len(),
            common.0,
            common.1
        )));
    }
    Ok(common)
}

/// Decodes one file into `channels` planes at `size` (or its own size); `None` if skipped.
fn decode(
    file: &Found,
    channels: usize,
    size: Option<(usize, usize)>,
    opts: &FolderOptions,
    report: &mut FolderReport,
) -> Result<Option<ImageU8>> {
    let decoded = ImageReader::open(&file.path)
        .map_err(|e| format!("cannot open: {e}"))
        .and_then(|r| r.with_guessed_format().map_err(|e| format!("cannot read: {e}")))
        .and_then(|r| r.decode().map_err(|e| format!("corrupt image: {e}")));
    let img = match decoded {
        Ok(img) => img,
        Err(reason) => {
            bad(file.path.clone(), reason, opts, report)?;
            return Ok(None);
        }
    };
    let target = size.unwrap_or(file.size);
    let want = if channels == 1 { ColorType::L8 } else { ColorType::Rgb8 };
    report.converted += usize::from(img.color() != want);
    report.resized += usize::from((img.height() as usize, img.width() as usize) != target);
    let hwc = if channels == 1 {
        fit(img.to_luma8(), target, opts.resize).into_raw()
    } else {
        fit(img.to_rgb8(), target, opts.resize).into_raw()
    };
    report.read += 1;
    Ok(Some(ImageU8 {
        path: file.path.clone(),
        channels,
        rows: target.0,
        cols: target.1,
        pixels: hwc_to_chw(&hwc, channels),
    }))
}

/// Brings an image to `(rows, cols)` the way `mode` says; the same image if it already fits.
fn fit<P: Pixel<Subpixel = u8> + 'static>(
    img: ImageBuffer<P, Vec<u8>>,
    (rows, cols): (usize, usize),
    mode: ResizeMode,
) -> ImageBuffer<P, Vec<u8>> {
    let (w, h) = (cols as u32, rows as u32);
    if img.dimensions() == (w, h) {
        return img;
    }
    let img = match mode {
        ResizeMode::Resize => img,
        ResizeMode::CentreCrop => {
            let (sw, sh) = (u64::from(img.width()), u64::from(img.height()));
            // The largest (cw, ch) inside (sw, sh) with cw / ch = w / h, rounded to whole pixels.
            let (cw, ch) = if sw * u64::from(h) > sh * u64::from(w) {
                (((sh * u64::from(w) + u64::from(h) / 2) / u64::from(h)).max(1), sh)
            } else {
                (sw, ((sw * u64::from(h) + u64::from(w) / 2) / u64::from(w)).max(1))
            };
            let (x, y) = ((sw - cw) / 2, (sh - ch) / 2);
            imageops::crop_imm(&img, x as u32, y as u32, cw as u32, ch as u32).to_image()
        }
    };
    if img.dimensions() == (w, h) { img } else { imageops::resize(&img, w, h, FilterType::CatmullRom) }
}

/// Interleaved pixels (HWC) to planes (CHW).
fn hwc_to_chw(hwc: &[u8], channels: usize) -> Vec<u8> {
    if channels == 1 {
        return hwc.to_vec();
    }
    let mut chw = Vec::with_capacity(hwc.len());
    for c in 0..channels {
        chw.extend(hwc.iter().skip(c).step_by(channels));
    }
    chw
}
