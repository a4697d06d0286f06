//! `aegpu compress` / `decompress` / `compress-bench`: compress -> decompress stays within the
//! quantisation error of a plain encode -> decode (codes within half a step for u8, 2⁻¹¹ relative
//! for f16; PNGs are exactly the decoder's images of the stored codes); a different checkpoint is
//! refused; resizing and grey conversion are reported; damaged files and unreadable images get
//! clear errors; the benchmark's sizes follow the file format.

use std::path::Path;

use aegpu::checkpoint;
use aegpu::codec::container::{self, Precision};
use aegpu::codec::images::to_u8;
use aegpu::generate::mean_psnr;

mod common;
use common::cli::{TempDir, aegpu, fails, ok, ok_split, s, train_tiny};
use common::{data_dir, gpu};

/// A compressed file's images: the stored codes (dequantised) and the PNGs decompress wrote,
/// against the exact codes and the plain decode of the same images.
#[test]
fn compress_then_decompress_is_a_plain_encode_decode_up_to_quantisation() {
    let Some(data) = data_dir() else { return };
    let home = TempDir::new("roundtrip");
    let ckpt = train_tiny(home.path(), &data, &home.join("ae"), &["--layers", "64,16"]);
    let pngs = home.join("png");
    ok(
        aegpu(home.path(), &["export-images", "--data", s(&data), "--limit", "20", "--out", s(&pngs)]),
        "export",
    );
    let gpu = gpu();
    let c = checkpoint::load(&ckpt).unwrap();
    let model = checkpoint::restore(&gpu, &c, &ckpt).unwrap();
    let files = aegpu::codec::images::read_images(&[pngs.join("test")], [1, 28, 28]).unwrap();
    assert!(files.notes.is_empty(), "MNIST PNGs need no conversion: {:?}", files.notes);
    let exact = aegpu::codec::means(&model, &aegpu::codec::encode(&gpu, &model, &files.images).unwrap());
    let plain: Vec<f32> = aegpu::codec::decode(&gpu, &model, &exact).unwrap().iter().map(|&v| q(v)).collect();
    let test_dir = pngs.join("test");
    for (precision, min_psnr) in [("u8", 30.0), ("f16", 45.0)] {
        let file = home.join(&format!("x-{precision}.aegz"));
        let args =
            ["compress", "--checkpoint", s(&ckpt), s(&test_dir), "--precision", precision, "--out", s(&file)];
        let (stdout, _) = ok_split(aegpu(home.path(), &args), "compress");
        let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(report["bytes"], bytes.len());
        let stored = container::decompress(&bytes, &file).unwrap();
        assert_eq!((stored.len(), stored.dim, stored.shape), (20, 16, [1, 28, 28]));
        assert_eq!(stored.names, files.names);
        for (i, (&x, &y)) in exact.iter().zip(&stored.codes).enumerate() {
            let bound = match stored.precision {
                Precision::U8 => 0.5 * stored.steps[i % 16] + 1e-6 * x.abs(),
                Precision::F16 => x.abs() * 2f32.powi(-11) + 1e-7,
            };
            assert!((x - y).abs() <= bound, "{precision}: code value {i}: {x} stored as {y} (bound {bound})");
        }
        let out = home.join(&format!("out-{precision}"));
        ok(
            aegpu(home.path(), &["decompress", "--checkpoint", s(&ckpt), s(&file), "--out", s(&out)]),
            "decompress",
        );
        let want = aegpu::codec::decode(&gpu, &model, &stored.codes).unwrap();
        let mut got = Vec::new();
        for (i, name) in files.names.iter().enumerate() {
            let stem = Path::new(name).file_stem().unwrap().to_str().unwrap();
            let png = image::open(out.join(format!("{stem}.png"))).unwrap().to_luma8().into_raw();
            let expect: Vec<u8> = want[i * 784..(i + 1) * 784].iter().map(|&v| to_u8(v)).collect();
            assert_eq!(png, expect, "{precision}: {name} is not the decoder's image of its stored code");
            got.extend(png.iter().map(|&b| f32::from(b) / 255.0));
        }
        let psnr = mean_psnr(&got, &plain, 784);
        assert!(psnr >= min_psnr, "{precision}: decompressed vs plain decode only {psnr:.1} dB");
    }

    // Another checkpoint (same architecture, another seed) is refused, naming both hashes.
    let other = train_tiny(home.path(), &data, &home.join("other"), &["--layers", "64,16", "--seed", "1"]);
    fails(
        aegpu(
            home.path(),
            &[
                "decompress",
                "--checkpoint",
                s(&other),
                s(&home.join("x-u8.aegz")),
                "--out",
                s(&home.join("o")),
            ],
        ),
        "decompressing with another model",
        &["different model", "the checkpoint that compressed it"],
    );
}

fn q(v: f32) -> f32 {
    f32::from(to_u8(v)) / 255.0
}

#[test]
fn converted_images_are_reported_and_bad_files_are_refused() {
    let Some(data) = data_dir() else { return };
    let home = TempDir::new("notes");
    let ckpt = train_tiny(home.path(), &data, &home.join("ae"), &["--layers", "16"]);
    let colour = home.join("colour.png");
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 90]))
        .save(&colour)
        .unwrap();
    let file = home.join("c.aegz");
    let (_, stderr) = ok_split(
        aegpu(home.path(), &["compress", "--checkpoint", s(&ckpt), s(&colour), "--out", s(&file)]),
        "compress colour",
    );
    assert!(stderr.contains("resized to 28x28") && stderr.contains("colour.png (30x40)"), "{stderr}");
    assert!(stderr.contains("converted to grey"), "{stderr}");
    let bad = home.join("bad.jpg");
    std::fs::write(&bad, b"\xff\xd8 not really a jpeg").unwrap();
    fails(
        aegpu(home.path(), &["compress", "--checkpoint", s(&ckpt), s(&bad), "--out", s(&file)]),
        "an unreadable image",
        &["bad.jpg", "not a readable PNG or JPEG"],
    );
    fails(
        aegpu(home.path(), &["decompress", "--checkpoint", s(&ckpt), s(&bad), "--out", s(&home.join("o"))]),
        "a file that is not compressed",
        &["not an aegpu compressed file"],
    );
    let bytes = std::fs::read(&file).unwrap();
    let cut = home.join("cut.aegz");
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    fails(
        aegpu(home.path(), &["decompress", "--checkpoint", s(&ckpt), s(&cut), "--out", s(&home.join("o"))]),
        "a truncated file",
        &["truncated"],
    );
}

#[test]
fn the_container_refuses_bad_codes_and_damaged_bytes() {
    let codes = [0.5f32, -1.0, 2.0, 0.25];
    let err = container::compress(&[f32::NAN, 1.0], 2, Precision::U8, 1, [1, 2, 2], &[]).unwrap_err();
    assert!(err.to_string().contains("NaN"), "{err}");
    // A finite code past f16's range would be stored as infinity: refused for f16, fine for u8.
    let err = container::compress(&[7e4, 1.0], 2, Precision::F16, 1, [1, 2, 2], &[]).unwrap_err();
    assert!(err.to_string().contains("f16's range"), "{err}");
    assert!(container::compress(&[7e4, 1.0], 2, Precision::U8, 1, [1, 2, 2], &[]).is_ok());
    assert!(
        container::compress(&codes, 3, Precision::U8, 1, [1, 2, 2], &[]).is_err(),
        "4 values are not rows of 3"
    );
    let bytes = container::compress(&codes, 2, Precision::U8, 42, [1, 2, 2], &[]).unwrap();
    // Header 31 bytes, 8 per dimension for the u8 table, one per value.
    assert_eq!(bytes.len(), 31 + 8 * 2 + 4);
    let back = container::decompress(&bytes, Path::new("mem")).unwrap();
    assert_eq!(back.model_hash, 42);
    // Each dimension's extremes are exact; the step is (max - min) / 255.
    assert_eq!((back.codes[0], back.codes[2]), (0.5, 2.0));
    let mut longer = bytes.clone();
    longer.push(0);
    let err = container::decompress(&longer, Path::new("mem")).unwrap_err().to_string();
    assert!(err.contains("after the codes"), "{err}");
    let mut version = bytes.clone();
    version[6] = 9;
    let err = container::decompress(&version, Path::new("mem")).unwrap_err().to_string();
    assert!(err.contains("version 9"), "{err}");
}

#[test]
fn compress_bench_sizes_follow_the_format_and_draw_a_picture() {
    let Some(data) = data_dir() else { return };
    let home = TempDir::new("bench");
    let ckpt = train_tiny(home.path(), &data, &home.join("ae"), &["--layers", "64,8"]);
    let png = home.join("rd.png");
    let args = [
        "compress-bench",
        "--checkpoint",
        s(&ckpt),
        "--data",
        s(&data),
        "--limit",
        "30",
        "--jpeg",
        "10,50",
        "--out",
        s(&png),
    ];
    let (stdout, _) = ok_split(aegpu(home.path(), &args), "compress-bench");
    let rows: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // Per dataset: float32, u8, f16; two JPEG qualities, each per image and as a mosaic; PNG twice.
    assert_eq!(rows.len(), 2 * (3 + 4 + 2));
    let find = |ds: &str, m: &str| rows.iter().find(|r| r["dataset"] == ds && r["method"] == m).unwrap();
    let u8_row = find("mnist", "ae-u8");
    assert_eq!(u8_row["bytes_per_image"].as_f64().unwrap(), (31.0 + 8.0 * 8.0 + 30.0 * 8.0) / 30.0);
    assert_eq!(u8_row["single_file_bytes"], 31 + 8 * 8 + 8);
    assert_eq!(find("mnist", "ae-f16")["bytes_per_image"].as_f64().unwrap(), (31.0 + 30.0 * 16.0) / 30.0);
    let jpeg = find("fashion-mnist", "jpeg");
    assert!(jpeg["bytes_per_image"].as_f64().unwrap() > 100.0, "a JPEG file carries its tables: {jpeg}");
    let img = image::open(&png).unwrap();
    assert!(img.width() > 1000 && img.height() > 400, "two panels side by side");
}
