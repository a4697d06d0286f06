//! PNG outputs meant for people: image grids, original-vs-reconstruction strips, labelled rows
//! (denoising, interpolation), a 2-D latent scatter, learned filters, and line charts (training
//! curves, rate-distortion). Text uses the 8x8 bitmap glyphs of
//! `font8x8`, so no font file ships with the crate.

mod confusion;
mod curves;
mod filters;
mod plot;

use std::path::Path;

use font8x8::legacy::BASIC_LEGACY;
use image::{ImageError, ImageFormat, Rgb, RgbImage};

use crate::error::{Error, Result};

pub use confusion::save_confusion_png;
pub use curves::save_curves_png;
pub use filters::{normalised_filters, save_conv_filters_png, save_filters_png, save_filters_png_scaled};
pub use plot::{Panel, Series, save_panels_png};

/// Space between tiles and around the edge, in output pixels.
const GAP: usize = 2;
/// Extra space between the (original, reconstruction) row pairs, so pairs read as groups.
const GROUP_GAP: usize = 6;
/// Space on each side of a row label.
const LABEL_PAD: usize = 4;
/// Largest canvas side we agree to allocate; beyond it the caller asked for something unreadable.
const MAX_SIDE: usize = 16_384;
/// Glyph cell size of `font8x8`.
pub(super) const GLYPH: usize = 8;

pub(super) const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
pub(super) const INK: Rgb<u8> = Rgb([32, 32, 32]);
pub(super) const FRAME: Rgb<u8> = Rgb([90, 90, 90]);
pub(super) const GRID: Rgb<u8> = Rgb([232, 232, 232]);

/// Matplotlib's tab10: distinct hues that stay distinguishable for the common colour-vision
/// deficiencies, in the order people know from other plots.
pub(super) const TAB10: [Rgb<u8>; 10] = [
    Rgb([31, 119, 180]),
    Rgb([255, 127, 14]),
    Rgb([44, 160, 44]),
    Rgb([214, 39, 40]),
    Rgb([148, 103, 189]),
    Rgb([140, 86, 75]),
    Rgb([227, 119, 194]),
    Rgb([127, 127, 127]),
    Rgb([188, 189, 34]),
    Rgb([23, 190, 207]),
];

/// A grid of `n` images of `shape` = (channels, rows, cols), grey (1 channel) or RGB (3, planar
/// CHW), values in `[0, 1]` (clamped; NaN draws black), `cols` per row, with 2 px white gaps, each
/// pixel upscaled to `scale x scale`.
pub fn save_image_grid(
    path: &Path,
    images: &[f32],
    n: usize,
    shape: [usize; 3],
    cols: usize,
    scale: usize,
) -> Result<()> {
    let dim = image_dim(shape, scale)?;
    check_len("images", images.len(), n, dim)?;
    if cols == 0 {
        return Err(Error::Shape("an image grid needs at least one column".into()));
    }
    let rows: Vec<Row> =
        images.chunks(cols.min(n) * dim).map(|pixels| Row { label: "", pixels, gap_after: 0 }).collect();
    save_png(path, &render_rows(&rows, shape, scale)?)
}

/// Reconstructions: pairs of rows, `n` originals above their reconstructions, up to `cols` per row,
/// each row labelled "original" / "reconstruction" at its left. Images (grey or RGB, `shape` as in
/// [`save_image_grid`]) are upscaled to about 64 px (x1 to x4: 28x28 becomes 56x56).
pub fn save_recon_png(
    path: &Path,
    originals: &[f32],
    recons: &[f32],
    n: usize,
    shape: [usize; 3],
    cols: usize,
) -> Result<()> {
    let scale = (64 / shape[1].max(shape[2]).max(1)).clamp(1, 4);
    let dim = image_dim(shape, scale)?;
    check_len("originals", originals.len(), n, dim)?;
    check_len("reconstructions", recons.len(), n, dim)?;
    if cols == 0 {
        return Err(Error::Shape("a reconstruction strip needs at least one column".into()));
    }
    let chunk = cols.min(n) * dim;
    let pairs = originals.chunks(chunk).zip(recons.chunks(chunk));
    let last = n.div_ceil(cols.min(n)) - 1;
    let mut rows = Vec::new();
    for (i, (orig, recon)) in pairs.enumerate() {
        rows.push(Row { label: "original", pixels: orig, gap_after: 0 });
        rows.push(Row {
            label: "reconstruction",
            pixels: recon,
            gap_after: if i < last { GROUP_GAP } else { 0 },
        });
    }
    save_png(path, &render_rows(&rows, shape, scale)?)
}

/// Rows of labelled image strips: each `(label, images)` holds the same number of images of
/// `shape`, drawn left to right after the label (e.g. noisy | denoised | clean, or interpolation steps).
pub fn save_labelled_rows(
    path: &Path,
    rows: &[(&str, &[f32])],
    shape: [usize; 3],
    scale: usize,
) -> Result<()> {
    let dim = image_dim(shape, scale)?;
    let Some((_, first)) = rows.first() else {
        return Err(Error::Shape("no rows to draw".into()));
    };
    let count = first.len() / dim;
    for (label, pixels) in rows {
        check_len(&format!("row '{label}'"), pixels.len(), count, dim)?;
    }
    let rows: Vec<Row> = rows.iter().map(|&(label, pixels)| Row { label, pixels, gap_after: 0 }).collect();
    save_png(path, &render_rows(&rows, shape, scale)?)
}

/// `c * h * w`, after checking that no size is zero and that the image is grey or RGB.
fn image_dim([c, h, w]: [usize; 3], scale: usize) -> Result<usize> {
    if h == 0 || w == 0 || scale == 0 {
        return Err(Error::Shape(format!(
            "image size {h}x{w} at scale {scale}: every size must be at least 1"
        )));
    }
    if c != 1 && c != 3 {
        return Err(Error::Shape(format!("images of {c} channels: pictures draw 1 (grey) or 3 (RGB)")));
    }
    h.checked_mul(w)
        .and_then(|p| p.checked_mul(c))
        .ok_or_else(|| Error::Shape(format!("image size {h}x{w} overflows")))
}

/// Checks that `len` floats are `n > 0` images of `dim` pixels.
fn check_len(what: &str, len: usize, n: usize, dim: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::Shape(format!("{what}: no images to draw")));
    }
    if n.checked_mul(dim) != Some(len) {
        return Err(Error::Shape(format!(
            "{what} has {len} values, expected {n} images x {dim} pixels = {}",
            n.saturating_mul(dim)
        )));
    }
    Ok(())
}

/// One strip of tiles with an optional label at its left.
struct Row<'a> {
    label: &'a str,
    /// Whole images of `c * h * w` values.
    pixels: &'a [f32],
    /// Extra space below this row.
    gap_after: usize,
}

/// Lays rows of tiles out on a white canvas: labels in a left column as wide as the longest one,
/// tiles separated by `GAP`.
fn render_rows(rows: &[Row], shape: [usize; 3], scale: usize) -> Result<RgbImage> {
    let [_, h, w] = shape;
    let dim = shape.iter().product::<usize>();
    let (tile_h, tile_w) = (h.saturating_mul(scale), w.saturating_mul(scale));
    let label_w = match rows.iter().map(|r| text_width(r.label, 1)).max() {
        Some(0) | None => 0,
        Some(widest) => widest + 2 * LABEL_PAD,
    };
    let max_count = rows.iter().map(|r| r.pixels.len() / dim).max().unwrap_or(0);
    let width = tile_w.saturating_add(GAP).saturating_mul(max_count).saturating_add(label_w + GAP);
    let height = rows.iter().fold(GAP, |acc, r| acc.saturating_add(tile_h + GAP + r.gap_after));
    let mut img = canvas(width, height)?;

    let mut y = GAP;
    for row in rows {
        let text_y = y + tile_h.saturating_sub(GLYPH) / 2;
        draw_text(&mut img, LABEL_PAD as i64, text_y as i64, row.label, INK, 1);
        for (j, tile) in row.pixels.chunks_exact(dim).enumerate() {
            let x = label_w + GAP + j * (tile_w + GAP);
            draw_tile(&mut img, tile, x, y, shape, scale);
        }
        y += tile_h + GAP + row.gap_after;
    }
    Ok(img)
}

/// A white canvas, refusing sizes too large to be meant.
pub(super) fn canvas(width: usize, height: usize) -> Result<RgbImage> {
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(Error::Shape(format!(
            "the picture would be {width}x{height} px (limit {MAX_SIDE} per side); draw fewer images or use a smaller scale"
        )));
    }
    Ok(RgbImage::from_pixel(width as u32, height as u32, WHITE))
}

/// One grey or RGB (planar) image, upscaled by pixel replication, with its top-left corner at `(x0, y0)`.
fn draw_tile(img: &mut RgbImage, tile: &[f32], x0: usize, y0: usize, [c, h, w]: [usize; 3], scale: usize) {
    let plane = h * w;
    for i in 0..plane {
        let colour = if c == 3 {
            Rgb([to_u8(tile[i]), to_u8(tile[plane + i]), to_u8(tile[2 * plane + i])])
        } else {
            let g = to_u8(tile[i]);
            Rgb([g, g, g])
        };
        let (ty, tx) = (i / w, i % w);
        for dy in 0..scale {
            for dx in 0..scale {
                let (x, y) = (x0 + tx * scale + dx, y0 + ty * scale + dy);
                if let Some(p) = img.get_pixel_mut_checked(x as u32, y as u32) {
                    *p = colour;
                }
            }
        }
    }
}

/// `[0, 1]` to a byte, clamping; NaN becomes 0.
fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Width in pixels of `text` drawn at `scale` (8 px per character at scale 1).
pub fn text_width(text: &str, scale: usize) -> usize {
    text.chars().count() * GLYPH * scale
}

/// Draws `text` with its top-left corner at `(x, y)` in 8x8 glyphs, each glyph pixel a
/// `scale x scale` block. Characters outside ASCII draw as `?`; whatever falls off the image is
/// clipped.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, colour: Rgb<u8>, scale: usize) {
    let s = scale as i64;
    for (k, ch) in text.chars().enumerate() {
        let glyph = BASIC_LEGACY[if ch.is_ascii() { ch as usize } else { '?' as usize }];
        let gx = x + k as i64 * GLYPH as i64 * s;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..GLYPH {
                // font8x8 stores the leftmost pixel in the lowest bit.
                if bits >> col & 1 == 1 {
                    let (px, py) = (gx + col as i64 * s, y + row as i64 * s);
                    fill_rect(img, px, py, s, s, colour);
                }
            }
        }
    }
}

/// Fills a `w x h` rectangle, clipped to the image.
pub(super) fn fill_rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, colour: Rgb<u8>) {
    let (iw, ih) = (i64::from(img.width()), i64::from(img.height()));
    for py in y.max(0)..(y + h).min(ih) {
        for px in x.max(0)..(x + w).min(iw) {
            img.put_pixel(px as u32, py as u32, colour);
        }
    }
}

/// Mixes `colour` into the pixel at `(x, y)` with opacity `alpha`, if it is on the image.
pub(super) fn blend(img: &mut RgbImage, x: i64, y: i64, colour: Rgb<u8>, alpha: f32) {
    if x < 0 || y < 0 {
        return;
    }
    if let Some(p) = img.get_pixel_mut_checked(x as u32, y as u32) {
        for (dst, &src) in p.0.iter_mut().zip(&colour.0) {
            *dst = (f32::from(*dst) * (1.0 - alpha) + f32::from(src) * alpha).round() as u8;
        }
    }
}

/// Writes `img` as PNG, creating missing parent folders.
pub(super) fn save_png(path: &Path, img: &RgbImage) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    img.save_with_format(path, ImageFormat::Png).map_err(|e| match e {
        ImageError::IoError(source) => Error::io(path, source),
        other => Error::Image { path: path.to_path_buf(), reason: other.to_string() },
    })
}

/// Size of the latent scatter picture.
const PLOT_W: usize = 900;
const PLOT_H: usize = 800;

/// 2-D latent scatter: `codes` holds `n x 2` values (row-major), `labels` one class per point,
/// indexing `class_names` for the legend. A white 900x800 picture with `title` on top, axes with
/// tick values, one tab10 colour per class (cycling past 10), half-transparent dots so dense
/// clusters read, and a legend outside the plot area. The axis ranges span the 0.5%..99.5%
/// percentiles of each axis, padded by 5%; points beyond sit on the border. Points with a NaN or
/// infinite coordinate are left out.
pub fn save_latent_png(
    path: &Path,
    codes: &[f32],
    labels: &[u8],
    class_names: &[&str],
    title: &str,
) -> Result<()> {
    let n = labels.len();
    if codes.len() != 2 * n {
        return Err(Error::Shape(format!(
            "a 2-D scatter needs 2 values per label: {} codes for {n} labels",
            codes.len()
        )));
    }
    if let Some(&l) = labels.iter().find(|&&l| usize::from(l) >= class_names.len()) {
        return Err(Error::Shape(format!("label {l} has no class name ({} names given)", class_names.len())));
    }
    let points: Vec<(f32, f32, u8)> = codes
        .chunks_exact(2)
        .zip(labels)
        .filter(|(c, _)| c[0].is_finite() && c[1].is_finite())
        .map(|(c, &l)| (c[0], c[1], l))
        .collect();
    if points.is_empty() {
        return Err(Error::Shape(format!("none of the {n} latent codes is finite; nothing to plot")));
    }
    let x_range = robust_range(points.iter().map(|p| p.0).collect());
    let y_range = robust_range(points.iter().map(|p| p.1).collect());

    let mut img = canvas(PLOT_W, PLOT_H)?;
    draw_title(&mut img, title);
    let legend_w = legend_width(class_names);
    let area = Area { left: 72, top: 48, right: PLOT_W as i64 - legend_w - 24, bottom: PLOT_H as i64 - 56 };
    draw_axes(&mut img, &area, x_range, y_range);

    // Lighter dots as the count grows, so 10k points still show where they pile up.
    let alpha = (0.85 * (1500.0 / points.len() as f32).sqrt()).clamp(0.25, 0.85);
    for &(x, y, l) in &points {
        let (px, py) = area.map(x, y, x_range, y_range);
        draw_dot(&mut img, px, py, class_colour(l), alpha);
    }
    draw_legend(&mut img, area.right + 16, area.top, legend_w, class_names);
    save_png(path, &img)
}

/// The plot rectangle in pixels (edges inclusive).
struct Area {
    left: i64,
    top: i64,
    right: i64,
    bottom: i64,
}

/// Radius of a scatter dot.
const DOT_R: f32 = 2.5;

impl Area {
    /// Data coordinates to pixel centres; points outside the range stay on the border.
    fn map(&self, x: f32, y: f32, xr: (f32, f32), yr: (f32, f32)) -> (f32, f32) {
        let fx = ((x - xr.0) / (xr.1 - xr.0)).clamp(0.0, 1.0);
        let fy = ((y - yr.0) / (yr.1 - yr.0)).clamp(0.0, 1.0);
        let (l, r) = (self.left as f32 + DOT_R + 1.0, self.right as f32 - DOT_R - 1.0);
        let (t, b) = (self.top as f32 + DOT_R + 1.0, self.bottom as f32 - DOT_R - 1.0);
        (l + fx * (r - l), b - fy * (b - t))
    }
}

fn class_colour(label: u8) -> Rgb<u8> {
    TAB10[usize::from(label) % TAB10.len()]
}

/// The 0.5% and 99.5% percentiles of `v` (finite, non-empty), padded by 5% on each side; a
/// degenerate range is widened so the mapping never divides by zero.
fn robust_range(mut v: Vec<f32>) -> (f32, f32) {
    v.sort_by(f32::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    let (mut lo, mut hi) = (at(0.005), at(0.995));
    if hi - lo <= f32::EPSILON * lo.abs().max(hi.abs()).max(1.0) {
        let half = (lo.abs() * 0.1).max(0.5);
        (lo, hi) = (lo - half, hi + half);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// The title centred on top: large if it fits, small otherwise, cut with "..." if even that is too
/// wide.
fn draw_title(img: &mut RgbImage, title: &str) {
    let room = PLOT_W - 20;
    let scale = if text_width(title, 2) <= room { 2 } else { 1 };
    let max_chars = room / (GLYPH * scale);
    let text: String = if title.chars().count() > max_chars {
        let cut: String = title.chars().take(max_chars.saturating_sub(3)).collect();
        format!("{cut}...")
    } else {
        title.to_string()
    };
    let x = (PLOT_W - text_width(&text, scale)) / 2;
    let y = if scale == 2 { 12 } else { 18 };
    draw_text(img, x as i64, y, &text, INK, scale);
}

/// Frame, light grid lines, tick marks and tick values, and the axis names `z1` / `z2`.
fn draw_axes(img: &mut RgbImage, a: &Area, xr: (f32, f32), yr: (f32, f32)) {
    let (w, h) = (a.right - a.left, a.bottom - a.top);
    for (value, text) in ticks(xr) {
        let x = a.left + ((value - f64::from(xr.0)) / f64::from(xr.1 - xr.0) * w as f64).round() as i64;
        fill_rect(img, x, a.top, 1, h, GRID);
        fill_rect(img, x, a.bottom, 1, 5, FRAME);
        let tw = text_width(&text, 1) as i64;
        draw_text(img, x - tw / 2, a.bottom + 8, &text, INK, 1);
    }
    for (value, text) in ticks(yr) {
        let y = a.bottom - ((value - f64::from(yr.0)) / f64::from(yr.1 - yr.0) * h as f64).round() as i64;
        fill_rect(img, a.left, y, w, 1, GRID);
        fill_rect(img, a.left - 5, y, 5, 1, FRAME);
        let tw = text_width(&text, 1) as i64;
        draw_text(img, a.left - 8 - tw, y - 4, &text, INK, 1);
    }
    // Frame last so grid lines do not cut it.
    fill_rect(img, a.left, a.top, w + 1, 1, FRAME);
    fill_rect(img, a.left, a.bottom, w + 1, 1, FRAME);
    fill_rect(img, a.left, a.top, 1, h + 1, FRAME);
    fill_rect(img, a.right, a.top, 1, h + 1, FRAME);
    draw_text(img, a.left + w / 2 - 8, a.bottom + 26, "z1", INK, 1);
    draw_text(img, a.left - 24, a.top - 16, "z2", INK, 1);
}

/// Tick positions at a "nice" step (1, 2 or 5 times a power of ten) inside `range`, with their
/// text.
pub(super) fn ticks(range: (f32, f32)) -> Vec<(f64, String)> {
    let (lo, hi) = (f64::from(range.0), f64::from(range.1));
    let raw = (hi - lo) / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = mag
        * match raw / mag {
            f if f < 1.5 => 1.0,
            f if f < 3.0 => 2.0,
            f if f < 7.0 => 5.0,
            _ => 10.0,
        };
    if !step.is_finite() || step <= 0.0 {
        return Vec::new();
    }
    let decimals = if step >= 1.0 { 0 } else { (-step.log10()).ceil() as usize };
    let first = (lo / step).ceil() as i64;
    (first..)
        .map(|k| k as f64 * step)
        .take_while(|&v| v <= hi)
        .take(20)
        .map(|v| {
            let text = format!("{v:.decimals$}");
            // "-0" and "-0.0" read as a glitch.
            let text = if text.trim_start_matches(['-', '0', '.']).is_empty() {
                text.trim_start_matches('-').to_string()
            } else {
                text
            };
            (v, text)
        })
        .collect()
}

/// A filled disc of radius `DOT_R` centred at `(cx, cy)`.
fn draw_dot(img: &mut RgbImage, cx: f32, cy: f32, colour: Rgb<u8>, alpha: f32) {
    let r = DOT_R.ceil() as i64;
    let (x0, y0) = (cx.floor() as i64, cy.floor() as i64);
    for y in y0 - r..=y0 + r {
        for x in x0 - r..=x0 + r {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            if dx * dx + dy * dy <= DOT_R * DOT_R {
                blend(img, x, y, colour, alpha);
            }
        }
    }
}

/// Legend entries are this tall; the swatch is this wide.
const LEGEND_ROW: i64 = 16;
const SWATCH: i64 = 10;
/// Names longer than this are cut, so the legend never squeezes the plot.
const LEGEND_MAX_CHARS: usize = 24;

fn legend_width(class_names: &[&str]) -> i64 {
    let chars = class_names.iter().map(|n| n.chars().count().min(LEGEND_MAX_CHARS)).max().unwrap_or(0);
    (chars * GLYPH) as i64 + SWATCH + 6 + 16
}

/// A boxed legend: one opaque colour swatch and class name per line.
fn draw_legend(img: &mut RgbImage, x: i64, y: i64, w: i64, class_names: &[&str]) {
    let h = class_names.len() as i64 * LEGEND_ROW + 12;
    fill_rect(img, x, y, w, h, WHITE);
    fill_rect(img, x, y, w, 1, FRAME);
    fill_rect(img, x, y + h - 1, w, 1, FRAME);
    fill_rect(img, x, y, 1, h, FRAME);
    fill_rect(img, x + w - 1, y, 1, h, FRAME);
    for (i, name) in class_names.iter().enumerate() {
        let row_y = y + 7 + i as i64 * LEGEND_ROW;
        fill_rect(img, x + 8, row_y, SWATCH, SWATCH, class_colour(i as u8));
        let name: String = name.chars().take(LEGEND_MAX_CHARS).collect();
        draw_text(img, x + 8 + SWATCH + 6, row_y + 1, &name, INK, 1);
    }
}
