//! Training curves from `metrics.jsonl` records: loss per epoch for one run or several overlaid
//! (train solid, test dashed with dots, one colour per run). A VAE's losses are nats per image, so
//! VAE runs get their own panel (negative ELBO) and a second one with the test reconstruction term
//! and the KL term; plain autoencoders' per-pixel losses share a panel. An axis is logarithmic
//! when its values span more than a factor of 2, where early epochs would flatten the rest.

use std::path::Path;

use super::TAB10;
use super::plot::{Panel, Series, save_panels_png};
use crate::error::{Error, Result};
use crate::train::EpochMetrics;

/// Values spanning more than this ratio get a log axis.
const LOG_RATIO: f64 = 2.0;

/// Draws the curves of `runs` (a name and the epochs of each, as `metrics.jsonl` holds them) and
/// writes a PNG to `path`. An error if no run has an epoch.
pub fn save_curves_png(path: &Path, runs: &[(String, Vec<EpochMetrics>)]) -> Result<()> {
    let runs: Vec<(usize, &String, &Vec<EpochMetrics>)> =
        runs.iter().enumerate().filter(|(_, (_, m))| !m.is_empty()).map(|(i, (n, m))| (i, n, m)).collect();
    if runs.is_empty() {
        return Err(Error::Shape("no epochs to plot: every run's metrics are empty".into()));
    }
    let is_vae = |m: &[EpochMetrics]| m.iter().any(|e| e.test_kl.is_some());
    let colour = |i: usize| TAB10[i % TAB10.len()];
    let curve = |m: &[EpochMetrics], f: &dyn Fn(&EpochMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        m.iter().filter_map(|e| f(e).map(|v| (e.epoch as f64, v))).collect()
    };
    let pair = |name: &str, i: usize, m: &[EpochMetrics], train: &str, test: &str| -> [Series; 2] {
        let prefix = if runs.len() > 1 { format!("{name} ") } else { String::new() };
        let mut a = Series::line(format!("{prefix}{train}"), curve(m, &|e| Some(e.train_loss)), colour(i));
        a.markers = m.len() < 30;
        let mut b = Series::line(format!("{prefix}{test}"), curve(m, &|e| Some(e.test_loss)), colour(i));
        b.dashed = true;
        b.markers = a.markers;
        [a, b]
    };
    let mut panels = Vec::new();
    let plain: Vec<Series> = runs
        .iter()
        .filter(|(_, _, m)| !is_vae(m))
        .flat_map(|&(i, n, m)| pair(n, i, m, "train", "test"))
        .collect();
    if !plain.is_empty() {
        panels.push(panel("reconstruction loss per pixel", "loss (BCE or MSE per pixel)", plain));
    }
    let vae: Vec<&(usize, &String, &Vec<EpochMetrics>)> = runs.iter().filter(|(_, _, m)| is_vae(m)).collect();
    if !vae.is_empty() {
        let elbo = vae.iter().flat_map(|&&(i, n, m)| pair(n, i, m, "train -ELBO", "test -ELBO")).collect();
        panels.push(panel("VAE: negative ELBO", "nats per image", elbo));
        let mut terms = Vec::new();
        for &&(i, n, m) in &vae {
            let prefix = if runs.len() > 1 { format!("{n} ") } else { String::new() };
            let mut recon =
                Series::line(format!("{prefix}test recon"), curve(m, &|e| e.test_recon_nats), colour(i));
            recon.markers = m.len() < 30;
            let mut kl = Series::line(format!("{prefix}test KL"), curve(m, &|e| e.test_kl), colour(i));
            kl.dashed = true;
            kl.markers = recon.markers;
            terms.extend([recon, kl]);
        }
        panels.push(panel("VAE: reconstruction and KL terms (test)", "nats per image", terms));
    }
    let title = match runs.as_slice() {
        [(_, name, _)] => format!("training curves: {name}"),
        many => format!("training curves: {} runs", many.len()),
    };
    save_panels_png(path, &title, &panels)
}

/// A panel over epochs, logarithmic in y when the values span more than [`LOG_RATIO`].
fn panel(title: &str, y_label: &str, series: Vec<Series>) -> Panel {
    let ys = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).filter(|v| v.is_finite());
    let lo = ys().fold(f64::INFINITY, f64::min);
    let hi = ys().fold(f64::NEG_INFINITY, f64::max);
    Panel {
        title: title.into(),
        x_label: "epoch".into(),
        y_label: y_label.into(),
        log_x: false,
        log_y: lo > 0.0 && hi / lo > LOG_RATIO,
        series,
    }
}
