//! Writes a [`Dataset`] as a folder of PNG files, one sub-folder per class, that
//! [`load_folder`](super::load_folder) reads back unchanged: the same pixels, labels and order.
//!
//! Layout: `DIR/<class>/<index>.png`, where `<index>` is the image's position in the dataset,
//! zero-padded to one width (`0042.png`), and `<class>` is the class name made safe as a folder
//! name (or the label number, zero-padded, when the dataset has no names). `DIR/classes.txt` lists
//! the class names in label order, one per line. Round trip:
//! - order: the loader orders files by their integer names when all names are distinct integers,
//!   across classes, so the dataset's order survives the split into class folders;
//! - labels: the loader takes label ids from `classes.txt`, so classes keep their ids even when
//!   their names do not sort in label order (Fashion-MNIST) or some label has no image;
//! - pixels: PNG is lossless, grey stays 8-bit grey and RGB stays 8-bit RGB.

use std::path::Path;

use image::{ExtendedColorType, ImageFormat};

use super::Dataset;
use super::folder::CLASSES_FILE;
use crate::error::{Error, Result};

/// Writes `ds` under `dir` (created if missing; it must be empty) and returns the number of
/// images written. Needs 1 or 3 channels; class names that clash once made folder-safe are an
/// [`Error::Config`].
pub fn export_png_folder(ds: &Dataset, dir: &Path) -> Result<usize> {
    if ds.channels != 1 && ds.channels != 3 {
        return Err(Error::Config(format!(
            "PNG export needs 1 or 3 channels, the dataset has {}",
            ds.channels
        )));
    }
    if u32::try_from(ds.rows).is_err() || u32::try_from(ds.cols).is_err() {
        return Err(Error::Config(format!("{}x{} is too large for PNG", ds.rows, ds.cols)));
    }
    prepare(dir)?;
    let names = class_labels(ds)?;
    let folders: Vec<String> = names.iter().map(|n| folder_name(n)).collect();
    for (i, a) in folders.iter().enumerate() {
        if let Some(j) = folders[..i].iter().position(|b| b == a) {
            return Err(Error::Config(format!(
                "class names '{}' and '{}' both become the folder name '{a}'",
                names[j], names[i]
            )));
        }
    }
    let manifest = dir.join(CLASSES_FILE);
    let text: String = names.iter().map(|n| format!("{n}\n")).collect();
    std::fs::write(&manifest, text).map_err(|e| Error::io(&manifest, e))?;

    let width = ds.n.saturating_sub(1).to_string().len();
    let color = if ds.channels == 1 { ExtendedColorType::L8 } else { ExtendedColorType::Rgb8 };
    let mut made = vec![false; folders.len()];
    for i in 0..ds.n {
        let label = usize::from(ds.labels[i]);
        let class_dir = dir.join(&folders[label]);
        if !made[label] {
            std::fs::create_dir_all(&class_dir).map_err(|e| Error::io(&class_dir, e))?;
            made[label] = true;
        }
        let path = class_dir.join(format!("{i:0width$}.png"));
        let hwc = chw_to_hwc(ds.image(i), ds.channels);
        image::save_buffer_with_format(&path, &hwc, ds.cols as u32, ds.rows as u32, color, ImageFormat::Png)
            .map_err(|e| Error::Image { path: path.clone(), reason: e.to_string() })?;
    }
    Ok(ds.n)
}

/// A class name made safe as a folder name on every file system: path separators, characters
/// Windows forbids and control characters become `_`, as do a leading `.` (the loader skips
/// hidden entries) and trailing dots or spaces; an empty name becomes `_`.
pub(crate) fn folder_name(name: &str) -> String {
    let mut out: String =
        name.chars().map(|c| if c.is_control() || "/\\:*?\"<>|".contains(c) { '_' } else { c }).collect();
    if out.starts_with('.') {
        out.replace_range(..1, "_");
    }
    while out.ends_with('.') || out.ends_with(' ') {
        out.pop();
    }
    if out.is_empty() || out == CLASSES_FILE {
        out.push('_');
    }
    out
}

/// The name of every label in `0..k`: the class names, or the numbers zero-padded to one width
/// so that they sort in label order.
fn class_labels(ds: &Dataset) -> Result<Vec<String>> {
    let max = ds.labels.iter().copied().max().map_or(0, usize::from);
    if ds.class_names.is_empty() {
        let width = max.to_string().len();
        return Ok((0..=max).map(|l| format!("{l:0width$}")).collect());
    }
    if max >= ds.class_names.len() {
        return Err(Error::Shape(format!(
            "label {max} has no name: the dataset names only {} classes",
            ds.class_names.len()
        )));
    }
    Ok(ds.class_names.clone())
}

/// Creates `dir`, or checks that it is an empty folder.
fn prepare(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::Config(format!(
                    "{} is not empty; export into a new or empty folder so that nothing else is mixed in",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
        }
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Planes (CHW) to interleaved pixels (HWC).
fn chw_to_hwc(chw: &[u8], channels: usize) -> Vec<u8> {
    if channels == 1 {
        return chw.to_vec();
    }
    let plane = chw.len() / channels;
    let mut hwc = Vec::with_capacity(chw.len());
    for p in 0..plane {
        hwc.extend((0..channels).map(|c| chw[c * plane + p]));
    }
    hwc
}
