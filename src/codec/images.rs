//! Image files in and out of a model: PNG/JPEG files (or folders of them) converted to the model's
//! input shape, with a note for every kind of change made to them, and images written back as PNGs.
//!
//! The conversion is the one `data::folder` applies to training folders: colour to grey with the
//! Rec. 709 luma weights (the `image` crate's), grey to RGB by copying, alpha dropped, and a
//! Catmull-Rom resize (antialiased when shrinking) when the size differs, squeezing the aspect
//! ratio if it differs too.

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{ColorType, ImageReader};

use crate::error::{Error, Result};

/// Extensions (lower-case) read from folders.
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Images read for a model.
#[derive(Clone, Debug, Default)]
pub struct ImageFiles {
    /// `[n, c·h·w]` values in [0, 1], CHW per image.
    pub images: Vec<f32>,
    /// Each image's name: a file's name, or a folder's file relative to that folder (`7/00042.png`).
    pub names: Vec<String>,
    /// Each image's path.
    pub paths: Vec<PathBuf>,
    /// Labels from class sub-folders, when every image came from a folder whose images all lie in
    /// sub-folders (sorted names give 0, 1, ...); `None` otherwise.
    pub labels: Option<Vec<u8>>,
    /// The class sub-folders' names, sorted: label `i` is `class_names[i]`; empty without labels.
    pub class_names: Vec<String>,
    /// What was changed, one line per kind of change (resized, converted), for the user.
    pub notes: Vec<String>,
}

/// Reads `paths` (files, or folders searched recursively for PNG/JPEG files in sorted order) as
/// `shape = [c, h, w]` images. An unreadable file is an error naming it; so is a folder with no
/// images, or no path at all.
pub fn read_images(paths: &[PathBuf], shape: [usize; 3]) -> Result<ImageFiles> {
    let [c, h, w] = shape;
    if c != 1 && c != 3 {
        return Err(Error::Config(format!("the model takes {c}-channel images; image files give 1 or 3")));
    }
    // (path, name, class folder)
    let mut files: Vec<(PathBuf, String, Option<String>)> = Vec::new();
    let mut all_in_classes = true;
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found)?;
            if found.is_empty() {
                return Err(Error::BadData {
                    path: p.clone(),
                    reason: "no PNG or JPEG images in this folder".into(),
                });
            }
            found.sort();
            for f in found {
                let rel = f.strip_prefix(p).unwrap_or(&f).to_path_buf();
                let class = (rel.components().count() > 1)
                    .then(|| rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()))
                    .flatten();
                all_in_classes &= class.is_some();
                let name = rel.to_string_lossy().into_owned();
                files.push((f, name, class));
            }
        } else {
            all_in_classes = false;
            let name =
                p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned());
            files.push((p.clone(), name, None));
        }
    }
    if files.is_empty() {
        return Err(Error::Config("no images given: name image files or folders".into()));
    }
    let mut out = ImageFiles::default();
    let (mut resized, mut to_grey, mut to_rgb, mut other) = (Vec::new(), 0usize, 0usize, 0usize);
    for (path, name, _) in &files {
        let img = ImageReader::open(path)
            .map_err(|e| Error::io(path, e))?
            .with_guessed_format()
            .map_err(|e| Error::io(path, e))?
            .decode()
            .map_err(|e| Error::BadData {
                path: path.clone(),
                reason: format!("not a readable PNG or JPEG image ({e})"),
            })?;
        let want = if c == 1 { ColorType::L8 } else { ColorType::Rgb8 };
        match (img.color(), c) {
            (col, _) if col == want => {}
            (col, 1) if col.has_color() => to_grey += 1,
            (col, 3) if !col.has_color() => to_rgb += 1,
            _ => other += 1,
        }
        if (img.height() as usize, img.width() as usize) != (h, w) {
            resized.push(format!("{} ({}x{})", path.display(), img.height(), img.width()));
        }
        let hwc = if c == 1 { sized(img.to_luma8(), h, w) } else { sized(img.to_rgb8(), h, w) };
        for ch in 0..c {
            out.images.extend(hwc.iter().skip(ch).step_by(c).map(|&b| f32::from(b) / 255.0));
        }
        out.names.push(name.clone());
        out.paths.push(path.clone());
    }
    let n = files.len();
    if !resized.is_empty() {
        let shown: Vec<&str> = resized.iter().take(3).map(String::as_str).collect();
        out.notes.push(format!(
            "{} of {n} images resized to {h}x{w} (rows x cols, the model's input; aspect ratio not kept): {}{}",
            resized.len(),
            shown.join(", "),
            if resized.len() > 3 { ", ..." } else { "" }
        ));
    }
    if to_grey > 0 {
        out.notes
            .push(format!("{to_grey} of {n} colour images converted to grey (the model takes 1 channel)"));
    }
    if to_rgb > 0 {
        out.notes.push(format!("{to_rgb} of {n} grey images copied to 3 channels (the model takes RGB)"));
    }
    if other > 0 {
        out.notes
            .push(format!("{other} of {n} images converted to 8-bit (alpha or 16-bit channels dropped)"));
    }
    if all_in_classes {
        let mut names: Vec<String> = files.iter().filter_map(|(_, _, c)| c.clone()).collect();
        names.sort();
        names.dedup();
        if names.len() <= 256 {
            let label =
                |c: &Option<String>| names.iter().position(|n| Some(n) == c.as_ref()).unwrap_or(0) as u8;
            out.labels = Some(files.iter().map(|(_, _, c)| label(c)).collect());
            out.class_names = names;
        }
    }
    Ok(out)
}

/// The image's bytes (HWC) at `h x w`, resized only when it differs.
fn sized<P: image::Pixel<Subpixel = u8> + 'static>(
    img: image::ImageBuffer<P, Vec<u8>>,
    h: usize,
    w: usize,
) -> Vec<u8> {
    if img.dimensions() == (w as u32, h as u32) {
        img.into_raw()
    } else {
        imageops::resize(&img, w as u32, h as u32, FilterType::CatmullRom).into_raw()
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if kind.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|e| EXTENSIONS.contains(&e.to_string_lossy().to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Pixel values in [0, 1] to bytes, as a PNG stores them (rounded, clamped; NaN is 0).
pub fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Writes one `[c, h, w]` image (values in [0, 1], CHW) as an 8-bit grey or RGB PNG.
pub fn write_png(path: &Path, image: &[f32], [c, h, w]: [usize; 3]) -> Result<()> {
    if image.len() != c * h * w || (c != 1 && c != 3) {
        return Err(Error::Shape(format!("{} values are not a {c}x{h}x{w} image", image.len())));
    }
    let mut hwc = vec![0u8; image.len()];
    for ch in 0..c {
        for i in 0..h * w {
            hwc[i * c + ch] = to_u8(image[ch * h * w + i]);
        }
    }
    let colour = if c == 1 { image::ExtendedColorType::L8 } else { image::ExtendedColorType::Rgb8 };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    image::save_buffer_with_format(path, &hwc, w as u32, h as u32, colour, image::ImageFormat::Png).map_err(
        |e| match e {
            image::ImageError::IoError(source) => Error::io(path, source),
            other => Error::Image { path: path.to_path_buf(), reason: other.to_string() },
        },
    )
}
