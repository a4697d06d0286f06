//! `aegpu compress-bench`: the learned compressor against JPEG and PNG on a dataset's test images,
//! in bytes per image and PSNR, and a rate-distortion picture (PSNR against bytes per image, one
//! panel per dataset: the data a model was trained on, and data it was not).

use std::path::PathBuf;

use image::Rgb;

use super::DataArgs;
use super::data::load_source;
use super::model_io::{Opened, check_input, open_model};
use aegpu::codec::baseline::{jpeg, mosaic, png_bytes, unmosaic};
use aegpu::codec::container::{self, Precision};
use aegpu::codec::images::to_u8;
use aegpu::error::{Error, Result};
use aegpu::generate::mean_psnr;
use aegpu::viz::{Panel, Series, save_panels_png};

#[derive(clap::Args)]
pub struct RateArgs {
    /// Checkpoints to compress with (e.g. the same architecture at code sizes 8, 16, 32, 64).
    #[arg(long, required = true)]
    checkpoint: Vec<PathBuf>,
    /// Datasets whose test images are compressed: mnist, fashion-mnist (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "mnist,fashion-mnist")]
    dataset: Vec<String>,
    /// Folder of the datasets' files (default: $AEGPU_DATA).
    #[arg(long)]
    data: Option<PathBuf>,
    /// The first N test images of each dataset.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// JPEG qualities to compare with.
    #[arg(long, value_delimiter = ',', default_value = "5,10,20,30,50,70,90")]
    jpeg: Vec<u8>,
    /// The rate-distortion picture.
    #[arg(long, default_value = "rate-distortion.png")]
    out: PathBuf,
    /// Also draw the first 12 images of each dataset as each method gives them back (original,
    /// the autoencoders with u8 codes, JPEG at each quality) into DIR/examples-<dataset>.png.
    #[arg(long)]
    examples: Option<PathBuf>,
}

/// Images per row of the example pictures.
const SHOWN: usize = 12;

/// One measured point.
struct Point {
    method: &'static str,
    setting: String,
    bytes_per_image: f64,
    /// One image alone in a file (headers not shared).
    single_file_bytes: Option<usize>,
    psnr_db: Option<f64>,
}

pub(super) fn rate_cmd(args: RateArgs) -> Result<()> {
    if args.limit == 0 {
        return Err(Error::Config("--limit must be at least 1".into()));
    }
    let mut models = args.checkpoint.iter().map(|p| open_model(p)).collect::<Result<Vec<Opened>>>()?;
    models.sort_by_key(|o| o.model.code_dim());
    let mut panels = Vec::new();
    for name in &args.dataset {
        let (split, _) = load_source(&DataArgs::idx(name, args.data.clone()).source()?)?;
        let test = split.test.subset(0..args.limit);
        let (n, shape, dim) = (test.n, test.shape(), test.dim());
        let bytes = &test.images[..n * dim];
        let pixels: Vec<f32> = bytes.iter().map(|&b| f32::from(b) / 255.0).collect();
        let psnr = |decoded: &[u8]| {
            mean_psnr(&decoded.iter().map(|&b| f32::from(b) / 255.0).collect::<Vec<_>>(), &pixels, dim)
        };
        let mut points = Vec::new();
        let shown = n.min(SHOWN);
        let mut rows: Vec<(String, Vec<f32>)> = vec![("original".into(), pixels[..shown * dim].to_vec())];
        let mut keep = |label: String, decoded: &[u8]| {
            rows.push((label, decoded[..shown * dim].iter().map(|&b| f32::from(b) / 255.0).collect()));
        };
        for o in &models {
            check_input(&o.model, dim, &format!("{} images", test.name))?;
            let codes = aegpu::codec::means(&o.model, &aegpu::codec::encode(&o.gpu, &o.model, &pixels)?);
            let d = o.model.code_dim();
            let as_u8 = |images: Vec<f32>| images.into_iter().map(to_u8).collect::<Vec<u8>>();
            let plain = as_u8(aegpu::codec::decode(&o.gpu, &o.model, &codes)?);
            points.push(Point {
                method: "ae-float32",
                setting: format!("d={d}"),
                bytes_per_image: 4.0 * d as f64,
                single_file_bytes: None,
                psnr_db: Some(psnr(&plain)),
            });
            let hash = container::model_hash(&o.gpu, &o.model)?;
            for (method, precision) in [("ae-u8", Precision::U8), ("ae-f16", Precision::F16)] {
                let file = container::compress(&codes, d, precision, hash, shape, &[])?;
                let single = container::compress(&codes[..d], d, precision, hash, shape, &[])?.len();
                let back = container::decompress(&file, std::path::Path::new("(in memory)"))?;
                let decoded = as_u8(aegpu::codec::decode(&o.gpu, &o.model, &back.codes)?);
                if precision == Precision::U8 {
                    keep(format!("AE d={d} u8"), &decoded);
                }
                points.push(Point {
                    method,
                    setting: format!("d={d}"),
                    bytes_per_image: file.len() as f64 / n as f64,
                    single_file_bytes: Some(single),
                    psnr_db: Some(psnr(&decoded)),
                });
            }
        }
        let cols = (n as f64).sqrt().ceil() as usize;
        let (m, mshape) = mosaic(bytes, n, shape, cols);
        for &q in &args.jpeg {
            let (mut total, mut decoded) = (0usize, Vec::with_capacity(bytes.len()));
            for img in bytes.chunks(dim) {
                let c = jpeg(img, shape, q)?;
                total += c.bytes;
                decoded.extend(c.decoded);
            }
            keep(format!("JPEG q={q}"), &decoded);
            points.push(Point {
                method: "jpeg",
                setting: format!("q={q}"),
                bytes_per_image: total as f64 / n as f64,
                single_file_bytes: Some(total / n),
                psnr_db: Some(psnr(&decoded)),
            });
            let c = jpeg(&m, mshape, q)?;
            points.push(Point {
                method: "jpeg-mosaic",
                setting: format!("q={q}"),
                bytes_per_image: c.bytes as f64 / n as f64,
                single_file_bytes: None,
                psnr_db: Some(psnr(&unmosaic(&c.decoded, n, shape, cols))),
            });
        }
        let png_total: usize = bytes.chunks(dim).map(|img| png_bytes(img, shape)).sum::<Result<usize>>()?;
        points.push(Point {
            method: "png",
            setting: "lossless".into(),
            bytes_per_image: png_total as f64 / n as f64,
            single_file_bytes: Some(png_total / n),
            psnr_db: None,
        });
        points.push(Point {
            method: "png-mosaic",
            setting: "lossless".into(),
            bytes_per_image: png_bytes(&m, mshape)? as f64 / n as f64,
            single_file_bytes: None,
            psnr_db: None,
        });
        for p in &points {
            say!(
                "{}",
                serde_json::json!({
                    "dataset": test.name, "images": n, "method": p.method, "setting": p.setting,
                    "bytes_per_image": p.bytes_per_image, "single_file_bytes": p.single_file_bytes,
                    "psnr_db": p.psnr_db,
                })
            );
        }
        if let Some(dir) = &args.examples {
            let rows: Vec<(&str, &[f32])> = rows.iter().map(|(l, v)| (l.as_str(), v.as_slice())).collect();
            let path = dir.join(format!("examples-{}.png", test.name));
            aegpu::viz::save_labelled_rows(&path, &rows, shape, 2)?;
            note!("wrote {}", path.display());
        }
        // What the models were trained on, as their checkpoints record it.
        let trained_on = |o: &Opened| o.ckpt.metadata.get("aegpu.dataset").is_some_and(|d| *d == test.name);
        let role = if models.iter().all(trained_on) { "" } else { " (not the training data)" };
        panels.push(panel(&format!("{} test, {n} images{role}", test.name), &points));
    }
    save_panels_png(&args.out, "compression: PSNR against size", &panels)?;
    note!("wrote {}", args.out.display());
    Ok(())
}

const AE: Rgb<u8> = Rgb([31, 119, 180]);
const JPEG: Rgb<u8> = Rgb([255, 127, 14]);
const PNG: Rgb<u8> = Rgb([127, 127, 127]);

/// PSNR (dB) against bytes per image (log axis): the autoencoder at each code size (u8 and f16),
/// JPEG per image and as a mosaic at each quality, PNG as a vertical line (lossless).
fn panel(title: &str, points: &[Point]) -> Panel {
    let series = |method: &str, name: &str, colour, dashed, labels: bool| {
        let pts: Vec<&Point> = points.iter().filter(|p| p.method == method).collect();
        let mut s = Series::line(
            name,
            pts.iter().filter_map(|p| Some((p.bytes_per_image, p.psnr_db?))).collect(),
            colour,
        );
        s.dashed = dashed;
        s.markers = true;
        if labels {
            s.point_labels =
                pts.iter().map(|p| p.setting.trim_start_matches(['d', 'q', '=']).to_string()).collect();
        }
        s
    };
    let mut out = vec![
        series("ae-u8", "autoencoder, u8 codes (d)", AE, false, true),
        series("ae-f16", "autoencoder, f16 codes", AE, true, false),
        series("jpeg", "JPEG, one file per image (q)", JPEG, false, true),
        series("jpeg-mosaic", "JPEG, all in one mosaic", JPEG, true, false),
    ];
    let ys: Vec<f64> = points.iter().filter_map(|p| p.psnr_db).collect();
    let (lo, hi) = (
        ys.iter().cloned().fold(f64::INFINITY, f64::min),
        ys.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    );
    for (method, name, dashed) in
        [("png", "PNG (lossless), per image", false), ("png-mosaic", "PNG (lossless), mosaic", true)]
    {
        if let Some(p) = points.iter().find(|p| p.method == method) {
            let mut s = Series::line(name, vec![(p.bytes_per_image, lo), (p.bytes_per_image, hi)], PNG);
            s.dashed = dashed;
            out.push(s);
        }
    }
    Panel {
        title: title.into(),
        x_label: "bytes per image".into(),
        y_label: "PSNR (dB), mean over images".into(),
        log_x: true,
        log_y: false,
        series: out,
    }
}
