//! Line charts: one or more panels side by side, each with axes (linear or log), light grid lines,
//! tick values, axis names, a legend, and series drawn as anti-aliased lines (solid or dashed)
//! with optional point markers and point labels. Used for loss curves and rate-distortion plots.

use std::path::Path;

use image::{Rgb, RgbImage};

use super::{FRAME, GLYPH, GRID, INK, blend, canvas, draw_text, fill_rect, save_png, text_width, ticks};
use crate::error::{Error, Result};

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Its legend entry (the first 30 characters shown).
    pub name: String,
    /// `(x, y)` in data units, drawn in this order. Points that a log axis cannot show (≤ 0) and
    /// non-finite ones are left out.
    pub points: Vec<(f64, f64)>,
    /// Colour of the line, markers and point labels.
    pub colour: Rgb<u8>,
    /// Draw the line dashed (7 pixels on, 5 off) instead of solid.
    pub dashed: bool,
    /// Draw a dot at every point.
    pub markers: bool,
    /// Text next to each point (empty: none); as long as `points` or empty.
    pub point_labels: Vec<String>,
}

impl Series {
    /// A solid line without markers.
    pub fn line(name: impl Into<String>, points: Vec<(f64, f64)>, colour: Rgb<u8>) -> Series {
        Series { name: name.into(), points, colour, dashed: false, markers: false, point_labels: Vec::new() }
    }
}

/// One chart.
#[derive(Clone, Debug, Default)]
pub struct Panel {
    /// Centred above the plot area.
    pub title: String,
    /// Name of the x axis, under its tick values.
    pub x_label: String,
    /// Name of the y axis, above the plot area at the left.
    pub y_label: String,
    /// Logarithmic x axis (points with x ≤ 0 left out).
    pub log_x: bool,
    /// Logarithmic y axis (points with y ≤ 0 left out).
    pub log_y: bool,
    /// The lines, drawn in this order and listed in the legend.
    pub series: Vec<Series>,
}

/// Plot area width; a panel adds its axis labels and legend around it.
const PLOT_W: usize = 500;
const PANEL_H: usize = 460;
const TITLE_H: usize = 36;
/// Line half-width and marker radius, in pixels.
const LINE_R: f32 = 1.0;
const MARKER_R: f32 = 3.2;
/// Dash pattern along a line: this many pixels on, then off.
const DASH_ON: f32 = 7.0;
const DASH_PERIOD: f32 = 12.0;

/// Draws `panels` side by side (two per row at most) under `title`, and writes a PNG.
pub fn save_panels_png(path: &Path, title: &str, panels: &[Panel]) -> Result<()> {
    if panels.is_empty() {
        return Err(Error::Shape("a chart needs at least one panel".into()));
    }
    let cols = panels.len().min(2);
    let rows = panels.len().div_ceil(cols);
    let panel_w = panels.iter().map(|p| 70 + PLOT_W + 28 + legend_width(&p.series)).max().unwrap_or(PLOT_W);
    let mut img = canvas(cols * panel_w, TITLE_H + rows * PANEL_H)?;
    let tw = text_width(title, 2).min(cols * panel_w);
    draw_text(&mut img, ((cols * panel_w - tw) / 2) as i64, 10, title, INK, 2);
    for (i, panel) in panels.iter().enumerate() {
        let (x0, y0) = ((i % cols) * panel_w, TITLE_H + (i / cols) * PANEL_H);
        draw_panel(&mut img, panel, x0 as i64, y0 as i64)?;
    }
    save_png(path, &img)
}

/// An axis: data range after the log transform, and whether it is logarithmic.
#[derive(Clone, Copy)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    fn t(&self, v: f64) -> f64 {
        if self.log { v.log10() } else { v }
    }

    /// 0..1 along the axis.
    fn frac(&self, v: f64) -> f64 {
        (self.t(v) - self.lo) / (self.hi - self.lo)
    }

    fn shows(&self, v: f64) -> bool {
        v.is_finite() && (!self.log || v > 0.0)
    }

    /// The transformed range of `values`, padded by 5%; a single value gets a unit-wide range.
    fn fit(values: impl Iterator<Item = f64>, log: bool) -> Option<Axis> {
        let probe = Axis { lo: 0.0, hi: 1.0, log };
        let t: Vec<f64> = values.filter(|&v| probe.shows(v)).map(|v| probe.t(v)).collect();
        let lo = t.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() {
            return None;
        }
        let (lo, hi) = if hi - lo < 1e-12 { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
        let pad = (hi - lo) * 0.05;
        Some(Axis { lo: lo - pad, hi: hi + pad, log })
    }

    /// Tick values (data units) and their text.
    fn ticks(&self) -> Vec<(f64, String)> {
        if !self.log {
            return ticks((self.lo as f32, self.hi as f32));
        }
        let decades = self.hi - self.lo;
        let mantissas: &[f64] = if decades < 1.2 {
            &[1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
        } else if decades < 3.0 {
            &[1.0, 2.0, 5.0]
        } else {
            &[1.0]
        };
        let mut out = Vec::new();
        for e in (self.lo.floor() as i32)..=(self.hi.ceil() as i32) {
            for &m in mantissas {
                let v = m * 10f64.powi(e);
                let t = v.log10();
                if t >= self.lo && t <= self.hi {
                    out.push((v, log_label(v)));
                }
            }
        }
        out
    }
}

/// Short text for a tick on a log axis: `0.02`, `150`, `1e-5`.
fn log_label(v: f64) -> String {
    if (1e-3..1e5).contains(&v) {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        let e = v.log10().floor();
        let m = v / 10f64.powf(e);
        if (m - 1.0).abs() < 1e-9 { format!("1e{e}") } else { format!("{m:.0}e{e}") }
    }
}

fn draw_panel(img: &mut RgbImage, panel: &Panel, x0: i64, y0: i64) -> Result<()> {
    let all = || panel.series.iter().flat_map(|s| s.points.iter());
    let (Some(xa), Some(ya)) = (
        Axis::fit(all().map(|p| p.0), panel.log_x),
        Axis::fit(all().filter(|p| p.0.is_finite()).map(|p| p.1), panel.log_y),
    ) else {
        return Err(Error::Shape(format!("panel '{}' has no point to draw", panel.title)));
    };
    let legend_w = legend_width(&panel.series) as i64;
    let (left, top) = (x0 + 70, y0 + 44);
    let (right, bottom) = (left + PLOT_W as i64, y0 + PANEL_H as i64 - 50);
    let (w, h) = (right - left, bottom - top);
    let tw = text_width(&panel.title, 1) as i64;
    draw_text(img, left + (w - tw) / 2, y0 + 8, &panel.title, INK, 1);
    let px = |x: f64| left as f32 + (xa.frac(x) * w as f64) as f32;
    let py = |y: f64| bottom as f32 - (ya.frac(y) * h as f64) as f32;
    for (v, text) in xa.ticks() {
        let x = px(v).round() as i64;
        fill_rect(img, x, top, 1, h, GRID);
        fill_rect(img, x, bottom, 1, 5, FRAME);
        draw_text(img, x - text_width(&text, 1) as i64 / 2, bottom + 8, &text, INK, 1);
    }
    for (v, text) in ya.ticks() {
        let y = py(v).round() as i64;
        fill_rect(img, left, y, w, 1, GRID);
        fill_rect(img, left - 5, y, 5, 1, FRAME);
        draw_text(img, left - 8 - text_width(&text, 1) as i64, y - 4, &text, INK, 1);
    }
    for (x, y, ww, hh) in
        [(left, top, w + 1, 1), (left, bottom, w + 1, 1), (left, top, 1, h + 1), (right, top, 1, h + 1)]
    {
        fill_rect(img, x, y, ww, hh, FRAME);
    }
    let xl = text_width(&panel.x_label, 1) as i64;
    draw_text(img, left + (w - xl) / 2, bottom + 28, &panel.x_label, INK, 1);
    draw_text(img, x0 + 8, top - 16, &panel.y_label, INK, 1);

    for s in &panel.series {
        let pts: Vec<(f32, f32, usize)> = s
            .points
            .iter()
            .enumerate()
            .filter(|(_, p)| xa.shows(p.0) && ya.shows(p.1))
            .map(|(i, p)| (px(p.0), py(p.1), i))
            .collect();
        let mut along = 0.0f32;
        for pair in pts.windows(2) {
            let (a, b) = ((pair[0].0, pair[0].1), (pair[1].0, pair[1].1));
            draw_segment(img, a, b, s.colour, s.dashed.then_some(along));
            along += ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        }
        for &(x, y, i) in &pts {
            if s.markers || pts.len() == 1 {
                draw_disc(img, x, y, MARKER_R, s.colour);
            }
            if let Some(label) = s.point_labels.get(i).filter(|l| !l.is_empty()) {
                draw_text(img, x as i64 + 5, y as i64 - 12, label, s.colour, 1);
            }
        }
    }
    draw_legend(img, &panel.series, right + 12, top, legend_w);
    Ok(())
}

/// A line from `a` to `b` of half-width `LINE_R`, anti-aliased by pixel coverage; `dash_from` is
/// the distance already drawn along a dashed polyline (None: solid).
fn draw_segment(img: &mut RgbImage, a: (f32, f32), b: (f32, f32), colour: Rgb<u8>, dash_from: Option<f32>) {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = (dx * dx + dy * dy).max(1e-6);
    let pad = LINE_R + 1.0;
    let (x_lo, x_hi) = ((a.0.min(b.0) - pad).floor() as i64, (a.0.max(b.0) + pad).ceil() as i64);
    let (y_lo, y_hi) = ((a.1.min(b.1) - pad).floor() as i64, (a.1.max(b.1) + pad).ceil() as i64);
    for y in y_lo..=y_hi {
        for x in x_lo..=x_hi {
            let (cx, cy) = (x as f32 + 0.5, y as f32 + 0.5);
            let t = (((cx - a.0) * dx + (cy - a.1) * dy) / len2).clamp(0.0, 1.0);
            let (qx, qy) = (a.0 + t * dx, a.1 + t * dy);
            let dist = ((cx - qx).powi(2) + (cy - qy).powi(2)).sqrt();
            let coverage = (LINE_R + 0.5 - dist).clamp(0.0, 1.0);
            if coverage <= 0.0 {
                continue;
            }
            if let Some(start) = dash_from
                && (start + t * len2.sqrt()) % DASH_PERIOD > DASH_ON
            {
                continue;
            }
            blend(img, x, y, colour, coverage);
        }
    }
}

fn draw_disc(img: &mut RgbImage, cx: f32, cy: f32, r: f32, colour: Rgb<u8>) {
    let n = r.ceil() as i64 + 1;
    let (x0, y0) = (cx.floor() as i64, cy.floor() as i64);
    for y in y0 - n..=y0 + n {
        for x in x0 - n..=x0 + n {
            let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
            let coverage = (r + 0.5 - d).clamp(0.0, 1.0);
            if coverage > 0.0 {
                blend(img, x, y, colour, coverage);
            }
        }
    }
}

/// Width of the legend box: the longest name (up to 30 characters) after a line sample.
fn legend_width(series: &[Series]) -> usize {
    series.iter().map(|s| text_width(&s.name, 1)).max().unwrap_or(0).min(30 * GLYPH) + 44
}

/// A boxed legend: a short line sample (dashed, with a dot when the series has markers) and the
/// series name per row.
fn draw_legend(img: &mut RgbImage, series: &[Series], x: i64, y: i64, w: i64) {
    let row = 16;
    let h = series.len() as i64 * row + 10;
    for (xx, yy, ww, hh) in [(x, y, w, 1), (x, y + h - 1, w, 1), (x, y, 1, h), (x + w - 1, y, 1, h)] {
        fill_rect(img, xx, yy, ww, hh, FRAME);
    }
    for (i, s) in series.iter().enumerate() {
        let cy = (y + 9 + i as i64 * row) as f32;
        let (a, b) = ((x + 6) as f32, (x + 30) as f32);
        draw_segment(img, (a, cy), (b, cy), s.colour, s.dashed.then_some(0.0));
        if s.markers {
            draw_disc(img, (a + b) / 2.0, cy, MARKER_R, s.colour);
        }
        let name: String = s.name.chars().take(30).collect();
        draw_text(img, x + 36, cy as i64 - 4, &name, INK, 1);
    }
}
