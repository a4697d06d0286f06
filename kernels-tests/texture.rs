//! Textures in and out: `shaders/decode_to_texture.wgsl` and `shaders/encode_from_texture.wgsl`
//! against their CPU references (src/cpu/texture.rs) on awkward layouts, grey and colour; decoding a
//! model into a texture equals its buffer decode quantised to 8 bits; encoding from a texture equals
//! encoding the same pixels from a buffer; layouts and textures that do not fit are errors.

mod common;

use aegpu::embed::{AtlasLayout, Decoder, TextureDecode, TextureEncoder, ValueMap};
use aegpu::expert::cpu::texture::{decode_to_atlas, encode_from_atlas, quantise};
use aegpu::gpu::{Gpu, StorageBuffer, View};
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::texture::TexturePipeline;
use aegpu::models::dense::DenseConfig;
use aegpu::models::{Autoencoder, Init};

fn texture(
    gpu: &Gpu,
    size: [u32; 2],
    usage: wgpu::TextureUsages,
    format: wgpu::TextureFormat,
) -> wgpu::Texture {
    gpu.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("test texture"),
        size: wgpu::Extent3d { width: size[0], height: size[1], depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: usage | wgpu::TextureUsages::COPY_DST | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    })
}

fn write_texture(gpu: &Gpu, t: &wgpu::Texture, bytes: &[u8]) {
    gpu.queue.write_texture(
        t.as_image_copy(),
        bytes,
        wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(4 * t.width()), rows_per_image: None },
        t.size(),
    );
}

/// Reads an RGBA8 texture back as tightly packed bytes.
fn read_texture(gpu: &Gpu, t: &wgpu::Texture) -> Vec<u8> {
    let row = (4 * t.width()).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("texture readback"),
        size: (row * t.height()) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    enc.copy_texture_to_buffer(
        t.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &staging,
            layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(row), rows_per_image: None },
        },
        t.size(),
    );
    gpu.queue.submit([enc.finish()]);
    staging.slice(..).map_async(wgpu::MapMode::Read, |r| r.expect("mapping the readback"));
    gpu.wait().unwrap();
    let mapped = staging.slice(..).get_mapped_range().unwrap();
    let mut out = Vec::new();
    for y in 0..t.height() as usize {
        out.extend_from_slice(&mapped[y * row as usize..y * row as usize + 4 * t.width() as usize]);
    }
    out
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 37 % 251) as u8).collect()
}

/// Texel bytes equal the reference everywhere, except by one level where the reference value sits
/// within 1e-3 of a level's rounding boundary (the GPU may fuse v·255 + 0.5 into one rounding).
fn assert_texels(what: &str, got: &[u8], want: &[u8], values_at: impl Fn(usize) -> Option<f32>) {
    assert_eq!(got.len(), want.len());
    let mut ties = 0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if g == w {
            continue;
        }
        let near_tie = values_at(i).is_some_and(|v| {
            let scaled = v.clamp(0.0, 1.0) * 255.0;
            (scaled - scaled.floor() - 0.5).abs() < 1e-3
        });
        assert!(
            near_tie && g.abs_diff(w) == 1,
            "{what}: texel byte {i} (x {}, channel {}) is {g}, reference {w}",
            i / 4,
            i % 4
        );
        ties += 1;
    }
    assert!(ties <= 2, "{what}: {ties} rounding ties");
}

#[test]
fn decode_to_texture_matches_its_cpu_reference() {
    let gpu = common::gpu();
    // (channels, image h, w, n, layout, texture size): magnified non-integer tiles with a gap and an
    // offset; shrunk tiles; one tile in a corner; 7 images in 3 columns (a partial last row).
    let cases: [(usize, usize, usize, usize, AtlasLayout, [u32; 2]); 4] = [
        (1, 4, 5, 7, AtlasLayout { columns: 3, tile: [13, 9], gap: 2, origin: [3, 1] }, [50, 33]),
        (3, 6, 5, 5, AtlasLayout { columns: 2, tile: [3, 2], gap: 1, origin: [0, 2] }, [9, 11]),
        (3, 3, 3, 1, AtlasLayout::single([7, 7], [9, 4]), [16, 11]),
        (1, 28, 28, 4, AtlasLayout::grid(4, [28, 28]), [112, 28]),
    ];
    for (case, (c, h, w, n, layout, size)) in cases.into_iter().enumerate() {
        // Mapped values (k + r) / 255 with k in -20..275 (beyond [0, 1]: the clamp) and r at least 0.1
        // from a rounding tie, so the GPU's rounding of v·255 + 0.5 (fused or not) cannot differ from
        // the reference's; scale 2 and offset -0.5 are exact, so the map is computed alike.
        let map = ValueMap { scale: 2.0, offset: -0.5 };
        let images: Vec<f32> = common::random_vec(2 * n * c * h * w, case as u64)
            .chunks(2)
            .map(|pair| {
                let k = ((pair[0] + 1.0) * 147.5).floor() - 20.0;
                let r = 0.25 + 0.15 * pair[1] + if pair[1] > 0.0 { 0.35 } else { 0.0 };
                let mapped = (k + r) / 255.0;
                (mapped + 0.5) / 2.0
            })
            .collect();
        let buffer = StorageBuffer::from_slice(&gpu, "images", &images).unwrap();
        let target =
            texture(&gpu, size, wgpu::TextureUsages::STORAGE_BINDING, wgpu::TextureFormat::Rgba8Unorm);
        let before = pattern((4 * size[0] * size[1]) as usize);
        write_texture(&gpu, &target, &before);
        let kernel =
            TexturePipeline::decode(&gpu, &View::whole(&buffer), n, [c, h, w], &target, &layout, map)
                .unwrap();
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        kernel.record(&mut enc.begin_compute_pass(&Default::default()));
        gpu.queue.submit([enc.finish()]);
        let got = read_texture(&gpu, &target);
        let mut want = before.clone();
        decode_to_atlas(&mut want, size[0] as usize, &images, n, [c, h, w], &layout, map);
        assert_ne!(want, before, "case {case}: the reference drew something");
        assert_texels(&format!("case {case}"), &got, &want, |_| None);
    }
}

/// A dense model decoded into a texture: the texels equal its buffer decode (`generate::decode`,
/// activation on the CPU) quantised to 8 bits, tile by tile.
#[test]
fn decode_to_texture_equals_the_buffer_decode_quantised() {
    let gpu = common::gpu();
    let config = DenseConfig::symmetric(
        64,
        &[16, 2],
        Activation::Relu,
        Activation::Identity,
        Activation::Sigmoid,
        LossKind::Bce,
    )
    .unwrap();
    let model = Autoencoder::new(&gpu, config, 9, Init::Glorot).unwrap();
    let codes: Vec<f32> = common::random_vec(12, 4).iter().map(|v| 3.0 * v).collect();
    let want = aegpu::generate::decode(&gpu, &model, &codes).unwrap();
    let decoder = Decoder::new(&gpu, &model, 6).unwrap();
    decoder.write_codes(&codes).unwrap();
    let layout = AtlasLayout { columns: 4, tile: [16, 16], gap: 1, origin: [1, 1] };
    let size = layout.texture_size(6);
    let target = texture(&gpu, size, wgpu::TextureUsages::STORAGE_BINDING, wgpu::TextureFormat::Rgba8Unorm);
    let draw = TextureDecode::new(&gpu, &decoder, &target, 6, [1, 8, 8], layout, ValueMap::UNIT).unwrap();
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    decoder.record(&mut enc);
    draw.record(&mut enc);
    gpu.queue.submit([enc.finish()]);
    let got = read_texture(&gpu, &target);
    let width = size[0] as usize;
    let mut reference = vec![0u8; got.len()];
    decode_to_atlas(&mut reference, width, &want, 6, [1, 8, 8], &layout, ValueMap::UNIT);
    // The decoded value each texel shows, to tell rounding ties.
    let value_at = |i: usize| {
        let (x, y) = ((i / 4) % width, (i / 4) / width);
        let (x, y) = (x.checked_sub(1)?, y.checked_sub(1)?);
        let (tx, ty, u, v) = (x / 17, y / 17, x % 17, y % 17);
        (u < 16 && v < 16 && tx < 4 && ty * 4 + tx < 6)
            .then(|| want[(ty * 4 + tx) * 64 + (v / 2) * 8 + u / 2])
    };
    assert_texels("decoded atlas", &got, &reference, value_at);
    assert_eq!(quantise(0.5, ValueMap::UNIT), 128);
}

/// A grey model encodes tiles of a random RGBA texture (area-averaged 2.5x) exactly as it encodes
/// the same pixels from a buffer, and the resampled inputs equal the CPU reference; colour tiles
/// grown by nearest neighbour equal their reference too.
#[test]
fn encode_from_texture_equals_encoding_the_same_pixels_from_a_buffer() {
    let gpu = common::gpu();
    let config = DenseConfig::symmetric(
        64,
        &[16, 3],
        Activation::Relu,
        Activation::Identity,
        Activation::Sigmoid,
        LossKind::Bce,
    )
    .unwrap();
    let model = Autoencoder::new(&gpu, config, 2, Init::Glorot).unwrap();
    let layout = AtlasLayout { columns: 2, tile: [20, 21], gap: 3, origin: [2, 5] };
    let size = [47, 80];
    let source = texture(&gpu, size, wgpu::TextureUsages::TEXTURE_BINDING, wgpu::TextureFormat::Rgba8Unorm);
    let bytes = pattern((4 * size[0] * size[1]) as usize);
    write_texture(&gpu, &source, &bytes);
    let mut encoder = TextureEncoder::new(&gpu, &model, &source, 5, [1, 8, 8], layout).unwrap();
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    encoder.record(&mut enc);
    assert!(encoder.record_read(&mut enc));
    gpu.queue.submit([enc.finish()]);
    encoder.submitted();
    gpu.wait().unwrap();
    let from_texture = encoder.poll().expect("a finished read");
    let inputs = encoder.inputs().read(&gpu).unwrap();
    let want_inputs = encode_from_atlas(&bytes, size[0] as usize, 5, [1, 8, 8], &layout);
    common::assert_close("resampled grey inputs", &inputs, &want_inputs, 1e-6, 1e-6);

    encoder.inputs().write(&gpu, &want_inputs).unwrap();
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    encoder.record_from_inputs(&mut enc);
    gpu.queue.submit([enc.finish()]);
    let from_buffer = encoder.codes().read(&gpu).unwrap();
    assert_eq!(from_texture.len(), 5 * 3);
    common::assert_close(
        "codes from the texture vs from the buffer",
        &from_texture,
        &from_buffer,
        1e-5,
        1e-4,
    );

    let out = StorageBuffer::zeroed(&gpu, "colour inputs", 3 * 3 * 5 * 4).unwrap();
    let colour = AtlasLayout { columns: 3, tile: [3, 2], gap: 0, origin: [36, 70] };
    let kernel = TexturePipeline::encode(&gpu, &View::whole(&out), 3, [3, 5, 4], &source, &colour).unwrap();
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    kernel.record(&mut enc.begin_compute_pass(&Default::default()));
    gpu.queue.submit([enc.finish()]);
    let want = encode_from_atlas(&bytes, size[0] as usize, 3, [3, 5, 4], &colour);
    common::assert_close("resampled colour inputs", &out.read_all_f32(&gpu).unwrap(), &want, 1e-6, 1e-6);
}

#[test]
fn textures_and_layouts_that_do_not_fit_are_errors() {
    let gpu = common::gpu();
    let images = StorageBuffer::zeroed(&gpu, "images", 4 * 64).unwrap();
    let v = View::whole(&images);
    let storage = wgpu::TextureUsages::STORAGE_BINDING;
    let ok = texture(&gpu, [32, 32], storage, wgpu::TextureFormat::Rgba8Unorm);
    let grid = AtlasLayout::grid(2, [16, 16]);
    let map = ValueMap::UNIT;
    assert!(TexturePipeline::decode(&gpu, &v, 4, [1, 8, 8], &ok, &grid, map).is_ok());
    let cases: Vec<(&str, aegpu::Result<TexturePipeline>)> = vec![
        (
            "too small",
            TexturePipeline::decode(&gpu, &v, 4, [1, 8, 8], &ok, &AtlasLayout::grid(2, [17, 16]), map),
        ),
        (
            "off the edge",
            TexturePipeline::decode(&gpu, &v, 1, [1, 8, 8], &ok, &AtlasLayout::single([8, 8], [30, 0]), map),
        ),
        (
            "no columns",
            TexturePipeline::decode(&gpu, &v, 4, [1, 8, 8], &ok, &AtlasLayout::grid(0, [8, 8]), map),
        ),
        ("2 channels", TexturePipeline::decode(&gpu, &v, 2, [2, 8, 8], &ok, &grid, map)),
        ("more images than values", TexturePipeline::decode(&gpu, &v, 5, [1, 8, 8], &ok, &grid, map)),
        (
            "sRGB target",
            TexturePipeline::decode(
                &gpu,
                &v,
                4,
                [1, 8, 8],
                &texture(
                    &gpu,
                    [32, 32],
                    wgpu::TextureUsages::TEXTURE_BINDING,
                    wgpu::TextureFormat::Rgba8UnormSrgb,
                ),
                &grid,
                map,
            ),
        ),
        (
            "no storage usage",
            TexturePipeline::decode(
                &gpu,
                &v,
                4,
                [1, 8, 8],
                &texture(
                    &gpu,
                    [32, 32],
                    wgpu::TextureUsages::TEXTURE_BINDING,
                    wgpu::TextureFormat::Rgba8Unorm,
                ),
                &grid,
                map,
            ),
        ),
        ("encode without texture usage", TexturePipeline::encode(&gpu, &v, 4, [1, 8, 8], &ok, &grid)),
    ];
    for (what, result) in cases {
        assert!(result.is_err(), "{what}: accepted");
    }
    // 1x1 images from 256x256 tiles average boxes of 257x257 texels, past the loop bound; 64x64
    // tiles (65x65 boxes) are fine.
    let big =
        texture(&gpu, [256, 256], wgpu::TextureUsages::TEXTURE_BINDING, wgpu::TextureFormat::Rgba8Unorm);
    let encode =
        |tile| TexturePipeline::encode(&gpu, &v, 1, [1, 1, 1], &big, &AtlasLayout::single(tile, [0, 0]));
    let Err(e) = encode([256, 256]) else { panic!("boxes of 257x257 texels accepted") };
    assert!(e.to_string().contains("downscale the texture"), "{e}");
    assert!(encode([64, 64]).is_ok());
    let config = DenseConfig::symmetric(
        64,
        &[2],
        Activation::Relu,
        Activation::Identity,
        Activation::Sigmoid,
        LossKind::Bce,
    )
    .unwrap();
    let model = Autoencoder::new(&gpu, config, 2, Init::Glorot).unwrap();
    let decoder = Decoder::new(&gpu, &model, 4).unwrap();
    assert!(TextureDecode::new(&gpu, &decoder, &ok, 4, [1, 7, 9], grid, map).is_err(), "63 values for 64");
    assert!(TextureDecode::new(&gpu, &decoder, &ok, 5, [1, 8, 8], grid, map).is_err(), "5 of 4 images");
    assert_eq!(aegpu::embed::image_shape(&model), Some([1, 8, 8]));
}
