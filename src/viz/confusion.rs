//! A classifier's confusion matrix as a picture: one row per true class, one column per predicted
//! class, each cell with its count, shaded by its share of the row (the diagonal blue, errors red),
//! and each row's error rate at its right.

use std::path::Path;

use image::Rgb;

use super::{INK, WHITE, canvas, draw_text, fill_rect, save_png, text_width};
use crate::error::{Error, Result};

/// Side of a cell in pixels (five digits fit at 8 px per glyph).
const CELL: usize = 46;
const PAD: usize = 10;
const BLUE: [f32; 3] = [31.0, 119.0, 180.0];
const RED: [f32; 3] = [214.0, 39.0, 40.0];
/// Off-diagonal shares are drawn this many times stronger, so that 5% of a row reads as a mistake.
const ERROR_GAIN: f32 = 4.0;

/// Draws `counts` (`k x k`, row = true class, column = predicted class) with `class_names` (k of
/// them) and `title` on top.
pub fn save_confusion_png(path: &Path, counts: &[u64], class_names: &[&str], title: &str) -> Result<()> {
    let k = class_names.len();
    if k == 0 || counts.len() != k * k {
        return Err(Error::Shape(format!(
            "a confusion matrix of {} classes needs {} counts, got {}",
            k,
            k * k,
            counts.len()
        )));
    }
    let row_names: Vec<String> = class_names.iter().enumerate().map(|(i, n)| row_label(i, n)).collect();
    let label_w = row_names.iter().map(|n| text_width(n, 1)).max().unwrap_or(0) + 2 * PAD;
    let err_w = text_width("err 100.0%", 1) + 2 * PAD;
    let grid_w = k * CELL;
    let title_h = 36;
    let header_h = 40;
    let footer_h = 28;
    let width = (label_w + grid_w + err_w).max(text_width(title, 1) + 2 * PAD);
    let height = title_h + header_h + k * CELL + footer_h;
    let mut img = canvas(width, height)?;

    let scale = if text_width(title, 2) + 2 * PAD <= width { 2 } else { 1 };
    let tx = (width - text_width(title, scale)) / 2;
    draw_text(&mut img, tx as i64, 10, title, INK, scale);
    let top = title_h + header_h;
    let axis = "predicted class";
    let ax = label_w + grid_w.saturating_sub(text_width(axis, 1)) / 2;
    draw_text(&mut img, ax as i64, (title_h + 4) as i64, axis, INK, 1);
    draw_text(&mut img, PAD as i64, (title_h + 4) as i64, "true class", INK, 1);
    for j in 0..k {
        let name = j.to_string();
        let x = label_w + j * CELL + (CELL - text_width(&name, 1)) / 2;
        draw_text(&mut img, x as i64, (top - 14) as i64, &name, INK, 1);
    }
    for (i, name) in row_names.iter().enumerate() {
        let row = &counts[i * k..(i + 1) * k];
        let total: u64 = row.iter().sum();
        let y = top + i * CELL;
        draw_text(&mut img, PAD as i64, (y + (CELL - 8) / 2) as i64, name, INK, 1);
        for (j, &c) in row.iter().enumerate() {
            let share = if total == 0 { 0.0 } else { c as f32 / total as f32 };
            let (hue, strength) = if i == j { (BLUE, share) } else { (RED, (share * ERROR_GAIN).min(1.0)) };
            let fill = mix(hue, strength);
            let x = label_w + j * CELL;
            fill_rect(&mut img, x as i64 + 1, y as i64 + 1, CELL as i64 - 2, CELL as i64 - 2, fill);
            let text = c.to_string();
            let ink = if strength > 0.55 { WHITE } else { INK };
            let cx = x + CELL.saturating_sub(text_width(&text, 1)) / 2;
            draw_text(&mut img, cx as i64, (y + (CELL - 8) / 2) as i64, &text, ink, 1);
        }
        let err = if total == 0 { 0.0 } else { 100.0 * (1.0 - row[i] as f64 / total as f64) };
        let text = format!("err {err:.1}%");
        draw_text(&mut img, (label_w + grid_w + PAD) as i64, (y + (CELL - 8) / 2) as i64, &text, INK, 1);
    }
    let note = "cells: count; shade: share of the true class (errors x4)";
    draw_text(&mut img, PAD as i64, (top + k * CELL + 10) as i64, note, INK, 1);
    save_png(path, &img)
}

/// "3" for a class named by its index, "3 Dress" otherwise.
fn row_label(i: usize, name: &str) -> String {
    if name == i.to_string() { name.to_string() } else { format!("{i} {name}") }
}

/// White mixed with `hue` by `strength` in [0, 1].
fn mix(hue: [f32; 3], strength: f32) -> Rgb<u8> {
    let s = strength.clamp(0.0, 1.0);
    Rgb(hue.map(|c| (255.0 * (1.0 - s) + c * s).round() as u8))
}
