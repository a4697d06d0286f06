//! `aegpu encode` / `aegpu decode`: the codes written as .npy (read back with a hand-written
//! header parser, as NumPy would) and as safetensors (read with the `safetensors` crate, as
//! PyTorch would) equal the codes the engine's evaluator computes; labels come along; a VAE's
//! log σ² is written on request; decode turns the file back into the decoder's images; bad
//! inputs get clear errors.

use std::path::Path;

use aegpu::checkpoint;
use aegpu::codec::files::read_codes;
use aegpu::expert::gpu_data::GpuDataset;
use aegpu::train::Evaluator;

mod common;
use common::cli::{TempDir, aegpu, fails, ok, s, train_tiny};
use common::{data_dir, gpu};

/// A `.npy` file parsed by hand (magic, version 1, header dict, little-endian f4 or i8 data).
fn parse_npy(path: &Path) -> (String, Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{} is not .npy", path.display());
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert_eq!((10 + len) % 64, 0, "NumPy aligns the data to 64 bytes");
    let descr = header.split("'descr': '").nth(1).unwrap().split('\'').next().unwrap().to_string();
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape =
        shape.split(',').filter(|t| !t.trim().is_empty()).map(|t| t.trim().parse().unwrap()).collect();
    (descr, shape, bytes[10 + len..].to_vec())
}

/// The codes (μ) of the first `n` MNIST test images through the engine's evaluator.
fn evaluator_codes(checkpoint: &Path, data: &Path, n: usize) -> (Vec<f32>, Vec<u8>) {
    let gpu = gpu();
    let ckpt = checkpoint::load(checkpoint).unwrap();
    let model = checkpoint::restore(&gpu, &ckpt, checkpoint).unwrap();
    let test = aegpu::data::load(aegpu::data::DatasetName::Mnist, data).unwrap().test.subset(0..n);
    let on_gpu = GpuDataset::upload(&gpu, &test).unwrap();
    (Evaluator::new(&gpu, &model, &on_gpu, 1000).unwrap().run(0).unwrap().codes, test.labels)
}

#[test]
fn encoded_npy_equals_the_engines_codes_and_decodes_to_the_decoders_images() {
    let Some(data) = data_dir() else { return };
    let home = TempDir::new("encode-npy");
    let ckpt = train_tiny(home.path(), &data, &home.join("ae"), &["--layers", "64,12"]);
    let out = home.join("codes.npy");
    ok(
        aegpu(home.path(), &["encode", "--checkpoint", s(&ckpt), "--limit", "37", "--out", s(&out)]),
        "encode",
    );
    let (descr, shape, raw) = parse_npy(&out);
    assert_eq!((descr.as_str(), shape.as_slice()), ("<f4", &[37, 12][..]));
    let codes: Vec<f32> = bytemuck::pod_collect_to_vec(&raw);
    let (want, labels) = evaluator_codes(&ckpt, &data, 37);
    // Separate processes with the same matmul kernel (AEGPU_MATMUL=reg) and inputs.
    common::assert_close("codes.npy vs the evaluator's codes", &codes, &want, 1e-6, 1e-5);
    let (descr, shape, raw) = parse_npy(&home.join("codes.labels.npy"));
    assert_eq!((descr.as_str(), shape.as_slice()), ("<i8", &[37][..]));
    let got: Vec<i64> = bytemuck::pod_collect_to_vec(&raw);
    assert_eq!(got, labels.iter().map(|&l| i64::from(l)).collect::<Vec<_>>());

    // Decode to a folder: the PNGs hold the decoder's images of those codes, as bytes.
    let pngs = home.join("decoded");
    ok(
        aegpu(home.path(), &["decode", "--checkpoint", s(&ckpt), s(&out), "--limit", "5", "--out", s(&pngs)]),
        "decode",
    );
    let gpu = gpu();
    let c = checkpoint::load(&ckpt).unwrap();
    let model = checkpoint::restore(&gpu, &c, &ckpt).unwrap();
    let images = aegpu::codec::decode(&gpu, &model, &codes[..5 * 12]).unwrap();
    for i in 0..5 {
        let png = image::open(pngs.join(format!("{i:05}.png"))).unwrap().to_luma8();
        assert_eq!(png.dimensions(), (28, 28));
        let want: Vec<u8> =
            images[i * 784..(i + 1) * 784].iter().map(|&v| aegpu::codec::images::to_u8(v)).collect();
        assert_eq!(png.into_raw(), want, "decoded image {i}");
    }
    // And to one grid picture.
    let grid = home.join("grid.png");
    ok(
        aegpu(home.path(), &["decode", "--checkpoint", s(&ckpt), s(&out), "--out", s(&grid)]),
        "decode to a grid",
    );
    assert!(image::open(&grid).is_ok());

    // Codes of another size, and --logvar on a plain autoencoder, are refused.
    let other = train_tiny(home.path(), &data, &home.join("ae8"), &["--layers", "64,8"]);
    fails(
        aegpu(home.path(), &["decode", "--checkpoint", s(&other), s(&out), "--out", s(&pngs)]),
        "decoding 12-D codes with an 8-D model",
        &["12-dimensional codes", "8-dimensional"],
    );
    fails(
        aegpu(home.path(), &["encode", "--checkpoint", s(&ckpt), "--logvar", "--out", s(&out)]),
        "--logvar on a plain AE",
        &["only a VAE"],
    );
    fails(
        aegpu(home.path(), &["encode", "--checkpoint", s(&ckpt), "--out", s(&home.join("codes.csv"))]),
        "an unknown extension",
        &[".npy or .safetensors"],
    );
}

#[test]
fn a_vaes_mean_and_log_variance_go_to_safetensors() {
    let Some(data) = data_dir() else { return };
    let home = TempDir::new("encode-vae");
    let ckpt = train_tiny(home.path(), &data, &home.join("vae"), &["--model", "vae", "--layers", "64,6"]);
    let out = home.join("codes.safetensors");
    let args = ["encode", "--checkpoint", s(&ckpt), "--limit", "20", "--logvar", "--out", s(&out)];
    ok(aegpu(home.path(), &args), "encode a VAE");
    // What a PyTorch user's safetensors.torch.load_file sees.
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mu = st.tensor("codes").unwrap();
    assert_eq!((mu.dtype(), mu.shape()), (safetensors::Dtype::F32, &[20, 6][..]));
    let mu: Vec<f32> = bytemuck::pod_collect_to_vec(mu.data());
    let (want, labels) = evaluator_codes(&ckpt, &data, 20);
    common::assert_close("μ vs the evaluator's codes", &mu, &want, 1e-6, 1e-5);
    let labels_t = st.tensor("labels").unwrap();
    assert_eq!(labels_t.dtype(), safetensors::Dtype::I64);
    let got: Vec<i64> = bytemuck::pod_collect_to_vec(labels_t.data());
    assert_eq!(got, labels.iter().map(|&l| i64::from(l)).collect::<Vec<_>>());
    // log σ²: the second half of the code layer's rows, as the engine computes them.
    let gpu = gpu();
    let c = checkpoint::load(&ckpt).unwrap();
    let model = checkpoint::restore(&gpu, &c, &ckpt).unwrap();
    let test = aegpu::data::load(aegpu::data::DatasetName::Mnist, &data).unwrap().test;
    let rows = aegpu::codec::encode(&gpu, &model, &test.images_f32(0..20)).unwrap();
    let logvar: Vec<f32> = rows.chunks(12).flat_map(|r| r[6..].to_vec()).collect();
    let read = read_codes(&out).unwrap();
    common::assert_close("log σ²", read.logvar.as_deref().unwrap(), &logvar, 1e-6, 1e-5);
    assert!(read.meta.get("aegpu.model_hash").is_some_and(|h| h.len() == 16), "{:?}", read.meta);
}

#[test]
fn image_files_are_encoded_with_their_names_and_class_labels() {
    let Some(data) = data_dir() else { return };
    let home = TempDir::new("encode-files");
    let ckpt = train_tiny(home.path(), &data, &home.join("ae"), &["--layers", "32"]);
    let pngs = home.join("png");
    ok(
        aegpu(home.path(), &["export-images", "--data", s(&data), "--limit", "6", "--out", s(&pngs)]),
        "export",
    );
    let out = home.join("files.npy");
    let test_dir = pngs.join("test");
    ok(
        aegpu(home.path(), &["encode", "--checkpoint", s(&ckpt), s(&test_dir), "--out", s(&out)]),
        "encode files",
    );
    let set = read_codes(&out).unwrap();
    assert_eq!((set.len(), set.dim, set.names.len()), (6, 32, 6));
    // Class folders 0..9 of the exported files: the labels are the folder names' order.
    let labels = set.labels.expect("labels from class folders");
    for (name, label) in set.names.iter().zip(&labels) {
        let folder = Path::new(name).parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
        let names: Vec<String> = {
            let mut v: Vec<String> = std::fs::read_dir(&test_dir)
                .unwrap()
                .filter_map(|e| {
                    e.ok().filter(|e| e.path().is_dir()).map(|e| e.file_name().to_string_lossy().into_owned())
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(names[*label as usize], folder, "{name}");
    }
    // The same images from the dataset give the same codes (the PNGs hold the same bytes; each
    // exported file is named after its index in the test set).
    let gpu = gpu();
    let c = checkpoint::load(&ckpt).unwrap();
    let model = checkpoint::restore(&gpu, &c, &ckpt).unwrap();
    let test = aegpu::data::load(aegpu::data::DatasetName::Mnist, &data).unwrap().test;
    for (i, name) in set.names.iter().enumerate() {
        let index: usize = Path::new(name).file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let want = aegpu::codec::encode(&gpu, &model, &test.images_f32(index..index + 1)).unwrap();
        common::assert_close(
            &format!("codes of {name}"),
            &set.codes[i * 32..(i + 1) * 32],
            &want,
            1e-6,
            1e-5,
        );
    }
    let bad = home.join("broken.png");
    std::fs::write(&bad, b"not an image").unwrap();
    fails(
        aegpu(home.path(), &["encode", "--checkpoint", s(&ckpt), s(&bad), "--out", s(&out)]),
        "an unreadable image",
        &["broken.png", "not a readable PNG or JPEG"],
    );
}
