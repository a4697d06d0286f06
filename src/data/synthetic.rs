//! A small structured dataset for tests and demos that must run without MNIST.
//!
//! Each class is one soft pen stroke with its own position and angle; a sample is its class's
//! stroke shifted by a pixel or two, with jittered brightness and thickness plus faint noise. That
//! is about four continuous degrees of freedom per class, so a small autoencoder learns it quickly.
//!
//! The bytes depend only on the arguments: the generator is Xoshiro256++ and every pixel is
//! computed with `+ - * /` alone (no `exp`/`sin` from the platform's libm), so any machine gives
//! the same data.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::Dataset;

/// Distance of a class's stroke centre from the image centre, as a fraction of the image side.
const RING: f32 = 0.2;
/// Half length of a stroke, as a fraction of the image side.
const HALF_LEN: f32 = 0.18;
/// Stroke radius, as a fraction of the image side (about 2 px at 28x28).
const RADIUS: f32 = 0.075;
/// Largest random shift, as a fraction of the image side.
const SHIFT: f32 = 0.05;
/// Amplitude of the uniform pixel noise.
const NOISE: f32 = 0.03;

/// `n` images of `rows x cols` in `classes` classes (clamped to 1..=256, labels are u8), labels
/// cycling 0, 1, 2, ... so every prefix is balanced. The same arguments give the same bytes.
pub fn synthetic(n: usize, rows: usize, cols: usize, classes: usize, seed: u64) -> Dataset {
    let classes = classes.clamp(1, 256);
    let side = rows.min(cols) as f32;
    let strokes: Vec<Stroke> = (0..classes).map(|c| Stroke::prototype(c, classes, rows, cols)).collect();

    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut images = Vec::with_capacity(n * rows * cols);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % classes;
        let shift = SHIFT * side;
        let dx = uniform(&mut rng, -shift, shift);
        let dy = uniform(&mut rng, -shift, shift);
        let amp = uniform(&mut rng, 0.7, 1.0);
        let radius = RADIUS * side * uniform(&mut rng, 0.8, 1.25);
        let stroke = strokes[class].shifted(dx, dy);
        for y in 0..rows {
            for x in 0..cols {
                let d2 = stroke.dist2(x as f32 + 0.5, y as f32 + 0.5);
                let v = amp * bump(d2, radius) + uniform(&mut rng, -NOISE, NOISE);
                images.push((v.clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
        labels.push(class as u8);
    }
    Dataset { name: "synthetic".into(), images, labels, n, channels: 1, rows, cols, class_names: Vec::new() }
}

/// A uniform sample in `[lo, hi)`; unlike `random_range` it accepts an empty range (gives `lo`).
fn uniform(rng: &mut Xoshiro256PlusPlus, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

/// A smooth falloff: 1 on the stroke's spine, 0 from distance `radius` on (C1 at the edge).
fn bump(d2: f32, radius: f32) -> f32 {
    let t = 1.0 - d2 / (radius * radius);
    if t > 0.0 { t * t } else { 0.0 }
}

/// A line segment in pixel coordinates.
#[derive(Clone, Copy)]
struct Stroke {
    ax: f32,
    ay: f32,
    bx: f32,
    by: f32,
}

impl Stroke {
    /// Class `c` of `k`: centres spread around a ring, angles spread over a half turn, so that
    /// neighbouring classes differ in both position and direction.
    fn prototype(c: usize, k: usize, rows: usize, cols: usize) -> Stroke {
        let side = rows.min(cols) as f32;
        let (sin_p, cos_p) = sin_cos(std::f64::consts::TAU * c as f64 / k as f64);
        let (sin_a, cos_a) = sin_cos(std::f64::consts::PI * c as f64 / k as f64);
        let cx = cols as f32 / 2.0 + RING * side * cos_p as f32;
        let cy = rows as f32 / 2.0 + RING * side * sin_p as f32;
        let hx = HALF_LEN * side * cos_a as f32;
        let hy = HALF_LEN * side * sin_a as f32;
        Stroke { ax: cx - hx, ay: cy - hy, bx: cx + hx, by: cy + hy }
    }

    fn shifted(self, dx: f32, dy: f32) -> Stroke {
        Stroke { ax: self.ax + dx, ay: self.ay + dy, bx: self.bx + dx, by: self.by + dy }
    }

    /// Squared distance from `(px, py)` to the segment.
    fn dist2(&self, px: f32, py: f32) -> f32 {
        let (vx, vy) = (self.bx - self.ax, self.by - self.ay);
        let len2 = vx * vx + vy * vy;
        let t = if len2 > 0.0 {
            (((px - self.ax) * vx + (py - self.ay) * vy) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let (ex, ey) = (px - (self.ax + t * vx), py - (self.ay + t * vy));
        ex * ex + ey * ey
    }
}

/// `(sin x, cos x)` for `x` in `[0, 2*pi]` by Taylor series: only basic arithmetic, which IEEE 754
/// rounds the same everywhere, unlike libm's `sin`, which may differ in the last bit between
/// systems.
fn sin_cos(x: f64) -> (f64, f64) {
    let x = if x > std::f64::consts::PI { x - std::f64::consts::TAU } else { x };
    let (mut sin, mut cos) = (0.0, 0.0);
    // term = x^k / k!, for k = 0, 1, 2, ...; |x| <= pi, so 30 terms leave an error far below f64's.
    let mut term = 1.0;
    for k in 0..30 {
        match k % 4 {
            0 => cos += term,
            1 => sin += term,
            2 => cos -= term,
            _ => sin -= term,
        }
        term *= x / f64::from(k + 1);
    }
    (sin, cos)
}
