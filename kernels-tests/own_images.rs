//! Training on your own images through the `aegpu` binary: MNIST exported to a PNG folder trains
//! bit-identically to the IDX files; a colour folder trains a conv preset and draws colour
//! pictures, which `eval` redraws from the source the checkpoint records; patches of the bundled
//! photographs (whitened) train and have a PCA baseline; and every bad input gets an error that
//! names it.

use std::path::Path;

use image::{Rgb, RgbImage};

mod common;
use common::cli::{TempDir, aegpu, fails, ok, result_of, s};
use common::data_dir;

#[test]
fn mnist_exported_to_png_trains_bit_identically() {
    let Some(data) = data_dir() else { return };
    let tmp = TempDir::new("own-images-mnist");
    let t = tmp.path();
    let png = t.join("mnist-png");
    ok(aegpu(t, &["export-images", "--data", s(&data), "--limit", "300", "--out", s(&png)]), "export");
    assert!(png.join("train/classes.txt").is_file() && png.join("test/7").is_dir());
    let common = ["train", "--epochs", "2", "--batch", "32", "--seed", "3", "--quiet", "--layers", "48,16"];
    let idx = t.join("idx");
    let mut a = common.to_vec();
    a.extend(["--data", s(&data), "--train-limit", "300", "--test-limit", "300", "--out", s(&idx)]);
    ok(aegpu(t, &a), "train on IDX");
    // DIR/train and DIR/test are found as the two splits.
    let folder = t.join("folder");
    let mut b = common.to_vec();
    b.extend(["--data-folder", s(&png), "--out", s(&folder)]);
    let log = ok(aegpu(t, &b), "train on the PNG folder");
    assert!(log.contains("300 images read"), "{log}");
    let (ma, ta) = result_of(&idx);
    let (mb, tb) = result_of(&folder);
    assert_eq!(ma, mb, "metrics differ between the IDX files and their PNG export");
    assert_eq!(ta, tb, "weights differ between the IDX files and their PNG export");
}

/// `n` 32x32 RGB images per class, reddish or bluish checkerboards of random phase.
fn colour_folder(dir: &Path, n: usize) {
    for (class, base) in [("red", [210u8, 50, 40]), ("blue", [40, 70, 220])] {
        std::fs::create_dir_all(dir.join(class)).expect("class dir");
        for i in 0..n {
            let img = RgbImage::from_fn(32, 32, |x, y| {
                let on = ((x as usize + i) / 8 + y as usize / 8).is_multiple_of(2);
                Rgb(base.map(|c| if on { c } else { c / 2 }))
            });
            img.save(dir.join(class).join(format!("img{i}.png"))).expect("write png");
        }
    }
}

fn has_colour(path: &Path) -> bool {
    let img = image::open(path).expect("a PNG").to_rgb8();
    img.pixels().any(|p| p[0].abs_diff(p[2]) > 40)
}

#[test]
fn colour_folder_trains_a_conv_preset_and_draws_colour() {
    let tmp = TempDir::new("own-images-colour");
    let t = tmp.path();
    let photos = t.join("colour");
    colour_folder(&photos, 24);
    let out = t.join("run");
    let log = ok(
        aegpu(
            t,
            &[
                "train",
                "--model",
                "conv",
                "--preset",
                "strided",
                "--data-folder",
                s(&photos),
                "--epochs",
                "1",
                "--batch",
                "8",
                "--quiet",
                "--out",
                s(&out),
            ],
        ),
        "colour training",
    );
    assert!(log.contains("conv 3x32x32"), "{log}");
    assert!(has_colour(&out.join("recon.png")), "recon.png should be in colour");
    let meta = std::fs::read(out.join("model.safetensors")).expect("checkpoint");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&meta).expect("metadata");
    let meta = meta.metadata().clone().unwrap_or_default();
    assert_eq!(meta.get("aegpu.input").map(String::as_str), Some("[3,32,32]"));
    assert!(meta.get("aegpu.data").is_some_and(|d| d.contains("\"kind\":\"folder\"")), "{meta:?}");
    // eval reloads the same held-out images from the recorded source and redraws them in colour.
    let again = t.join("eval");
    let ckpt = out.join("model.safetensors");
    let log = ok(aegpu(t, &["eval", "--checkpoint", s(&ckpt), "--out", s(&again)]), "eval");
    assert!(log.contains("\"test_psnr_db\""), "{log}");
    assert!(has_colour(&again.join("recon.png")), "eval's recon.png should be in colour");
    let interp = t.join("interp.png");
    ok(
        aegpu(t, &["interpolate", "--checkpoint", s(&ckpt), "--from", "0", "--to", "4", "--out", s(&interp)]),
        "interpolate",
    );
    assert!(has_colour(&interp));
}

#[test]
fn whitened_photo_patches_train_and_pca_gives_a_baseline() {
    let Some(data) = data_dir() else { return };
    let photos = data.join("photos");
    let tmp = TempDir::new("own-images-patches");
    let t = tmp.path();
    let out = t.join("sparse");
    let log = ok(
        aegpu(
            t,
            &[
                "train",
                "--data-folder",
                s(&photos),
                "--channels",
                "1",
                "--patches",
                "3000:8",
                "--whiten",
                "zca",
                "--layers",
                "100",
                "--code-activation",
                "relu",
                "--output",
                "identity",
                "--loss",
                "mse",
                "--sparse",
                "l1:1e-4",
                "--epochs",
                "1",
                "--batch",
                "100",
                "--quiet",
                "--out",
                s(&out),
            ],
        ),
        "sparse training on whitened patches",
    );
    assert!(log.contains("Zca whitening"), "{log}");
    assert!(log.contains("dense 64-100"), "{log}");
    assert!(out.join("filters.png").is_file());
    // Whitened values are not pixels: a sigmoid output with BCE is refused.
    let args =
        ["train", "--data-folder", s(&photos), "--patches", "500:8", "--whiten", "zca:0.5", "--layers", "8"];
    fails(aegpu(t, &args), "BCE on whitened patches", &["--loss mse --output identity"]);
    let pca = ok(
        aegpu(
            t,
            &[
                "pca",
                "--data-folder",
                s(&photos),
                "--channels",
                "3",
                "--patches",
                "2000:8",
                "--components",
                "16",
                "--out",
                s(&t.join("pca")),
            ],
        ),
        "pca",
    );
    let line = pca.lines().find(|l| l.starts_with('{')).expect("a JSON line");
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
    let explained = v["explained_variance"].as_f64().expect("explained");
    let psnr = v["test_psnr_db"].as_f64().expect("psnr");
    // 16 of 192 components of natural 8x8 colour patches keep most of the variance.
    assert!(explained > 0.9 && explained < 1.0, "{v}");
    assert!(psnr > 20.0, "{v}");
}

#[test]
fn bad_image_inputs_get_errors_that_name_them() {
    let tmp = TempDir::new("own-images-errors");
    let t = tmp.path();
    let train = |extra: &[&str]| {
        let mut a = vec!["train", "--epochs", "1", "--batch", "4", "--quiet", "--out", "/nonexistent/never"];
        a.extend_from_slice(extra);
        aegpu(t, &a)
    };
    fails(train(&["--data-folder", s(&t.join("missing"))]), "missing folder", &["missing"]);
    let mixed = t.join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    RgbImage::new(8, 8).save(mixed.join("a.png")).unwrap();
    RgbImage::new(8, 8).save(mixed.join("b.png")).unwrap();
    RgbImage::new(9, 8).save(mixed.join("c.png")).unwrap();
    fails(train(&["--data-folder", s(&mixed)]), "mixed sizes", &["c.png", "--size"]);
    std::fs::write(mixed.join("d.png"), b"\x89PNG\r\n\x1a\n truncated").unwrap();
    fails(train(&["--data-folder", s(&mixed), "--size", "8"]), "corrupt file", &["d.png", "--skip-bad"]);
    fails(train(&["--data-folder", s(&mixed), "--size", "0x8"]), "zero size", &["--size"]);
    fails(train(&["--data-folder", s(&mixed), "--channels", "2"]), "two channels", &["channels"]);
    fails(
        train(&["--data-folder", s(&mixed), "--test-fraction", "1.5"]),
        "test fraction",
        &["--test-fraction"],
    );
    fails(train(&["--data-folder", s(&mixed), "--patches", "10"]), "patch spec", &["N:SIZE"]);
    fails(train(&["--channels", "3"]), "folder flag on MNIST", &["--data-folder"]);
    fails(
        train(&["--data-folder", s(&mixed), "--size", "30", "--skip-bad", "--model", "conv"]),
        "keras preset at 30x30",
        &["30x30", "keras"],
    );
    let empty = t.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(train(&["--data-folder", s(&empty)]), "no images", &["no PNG or JPEG"]);
    // --skip-bad trains on the readable images and says which file it skipped.
    let out = t.join("skipped");
    let mut a = vec!["train", "--epochs", "1", "--batch", "2", "--quiet", "--layers", "4", "--skip-bad"];
    a.extend(["--data-folder", s(&mixed), "--size", "8", "--out", s(&out)]);
    let log = ok(aegpu(t, &a), "--skip-bad");
    assert!(log.contains("1 skipped") && log.contains("d.png"), "{log}");
}
