//! Pictures of the tools: training curves (`save_curves_png`, `aegpu plot`), first-layer filters
//! (`aegpu filters`, dense and conv), checked for what they must show, and their errors.

use aegpu::train::EpochMetrics;
use image::Rgb;

mod common;
use common::cli::{TempDir, aegpu, fails, ok, s, train_tiny};
use common::data_dir;

/// `n` epochs of falling losses, built from JSON like `metrics.jsonl` lines (so that fields added
/// to `EpochMetrics` later, optional or defaulted, need no change here).
fn epochs(n: usize, start: f64, vae: bool) -> Vec<EpochMetrics> {
    (1..=n)
        .map(|e| {
            let loss = start / e as f64;
            let mut j = serde_json::json!({
                "epoch": e, "train_loss": loss * 1.1, "test_loss": loss, "test_mse_px": loss,
                "test_bce_px": loss, "epoch_s": 1.0, "samples_per_s": 1.0,
            });
            if vae {
                j["test_recon_nats"] = (loss * 0.8).into();
                j["test_kl"] = (loss * 0.2).into();
                j["test_elbo_nats"] = loss.into();
            }
            serde_json::from_value(j).expect("an epoch record")
        })
        .collect()
}

fn count(img: &image::RgbImage, colour: Rgb<u8>) -> usize {
    img.pixels().filter(|p| **p == colour).count()
}

#[test]
fn curves_draw_each_run_in_its_colour_and_vaes_in_their_own_panels() {
    let home = TempDir::new("curves");
    let path = home.join("curves.png");
    let blue = Rgb([31, 119, 180]);
    let orange = Rgb([255, 127, 14]);
    aegpu::viz::save_curves_png(&path, &[("ae".into(), epochs(8, 0.2, false))]).unwrap();
    let one = image::open(&path).unwrap().to_rgb8();
    assert!(count(&one, blue) > 200, "the run's lines are drawn in its colour");
    assert_eq!(count(&one, orange), 0, "one run, one colour");
    aegpu::viz::save_curves_png(
        &path,
        &[("ae".into(), epochs(8, 0.2, false)), ("vae".into(), epochs(5, 150.0, true))],
    )
    .unwrap();
    let three = image::open(&path).unwrap().to_rgb8();
    assert!(count(&three, orange) > 200, "the second run has the second colour");
    assert!(three.width() > one.width() && three.height() > one.height(), "AE panel + two VAE panels");
    let err = aegpu::viz::save_curves_png(&path, &[("empty".into(), Vec::new())]).unwrap_err().to_string();
    assert!(err.contains("no epochs"), "{err}");
}

#[test]
fn plot_reads_runs_and_names_bad_lines() {
    let home = TempDir::new("plot");
    for (name, n) in [("a", 4), ("b", 6)] {
        std::fs::create_dir_all(home.join(name)).unwrap();
        let text: Vec<String> =
            epochs(n, 0.1, false).iter().map(|m| serde_json::to_string(m).unwrap()).collect();
        std::fs::write(home.join(name).join("metrics.jsonl"), text.join("\n")).unwrap();
    }
    let out = home.join("both.png");
    let a = home.join("a");
    let b = home.join("b").join("metrics.jsonl");
    ok(aegpu(home.path(), &["plot", s(&a), s(&b), "--out", s(&out)]), "plot");
    assert!(image::open(&out).is_ok());
    std::fs::write(home.join("bad.jsonl"), "{\"epoch\": 1}\n").unwrap();
    fails(
        aegpu(home.path(), &["plot", s(&home.join("bad.jsonl"))]),
        "a bad metrics file",
        &["bad.jsonl", "line 1"],
    );
    fails(
        aegpu(home.path(), &["plot", s(&a), "--names", "x,y"]),
        "names that do not match",
        &["2 --names for 1 runs"],
    );
}

#[test]
fn filters_draw_dense_units_and_conv_kernels() {
    let Some(data) = data_dir() else { return };
    let home = TempDir::new("filters");
    let dense = train_tiny(home.path(), &data, &home.join("dense"), &["--layers", "20"]);
    let out = home.join("dense.png");
    ok(
        aegpu(home.path(), &["filters", "--checkpoint", s(&dense), "--max", "9", "--out", s(&out)]),
        "dense filters",
    );
    // 9 tiles of 28x28 at x2 (56 px), 3 per row, 2 px gaps.
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (3 * 58 + 2, 3 * 58 + 2));
    let conv = train_tiny(
        home.path(),
        &data,
        &home.join("conv"),
        &["--arch", "conv 6 k3 s2 relu, flatten, linear 8"],
    );
    let out = home.join("conv.png");
    ok(aegpu(home.path(), &["filters", "--checkpoint", s(&conv), "--out", s(&out)]), "conv filters");
    // 6 kernels of 3x3 at x8 (24 px), 3 per row.
    let img = image::open(&out).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (3 * 26 + 2, 2 * 26 + 2));
    // Each kernel is scaled to its largest |w|: every tile has a pure black or white pixel.
    for t in 0..6 {
        let (x0, y0) = (2 + (t % 3) * 26, 2 + (t / 3) * 26);
        let extreme = (0..24).flat_map(|y| (0..24).map(move |x| (x, y))).any(|(x, y)| {
            let p = img.get_pixel((x0 + x) as u32, (y0 + y) as u32).0[0];
            p == 0 || p == 255
        });
        assert!(extreme, "kernel {t} is not scaled to its extremes");
    }
    fails(aegpu(home.path(), &["filters", "--checkpoint", s(&out)]), "a PNG as a checkpoint", &["conv.png"]);
}
