//! A host application that owns its `wgpu::Device` and embeds aegpu through the public API only.
//!
//! Each "frame" records a few training steps of a 2-D VAE into the host's own encoder and submits
//! it; the losses come back without a wait. Then the engine decodes a 6x6 grid of its latent space
//! into the host's `Rgba8Unorm` texture, which the host reads back and compares with the engine's
//! own decode of the same codes. Exits 1 (with the reason) if the loss does not fall by 10% or the
//! texture does not hold the decoded grid.
//!
//! `cargo run --release --manifest-path examples/host-app/Cargo.toml`

use aegpu::prelude::*;

/// Side of one decoded tile and of the grid, in pixels and tiles.
const TILE: u32 = 28;
const GRID: u32 = 6;

fn main() {
    if let Err(e) = run() {
        eprintln!("host-app: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    // --- the host's own device, as any wgpu application makes it ---
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))?;
    println!("host device: {}", adapter.get_info().name);

    // --- lent to the engine: nothing installed on it, default limits ---
    let gpu = Gpu::from_device(device.clone(), queue.clone(), adapter.get_info());
    let data = aegpu::data::synthetic(2048, 28, 28, 10, 7);
    let train = GpuDataset::upload(&gpu, &data)?;
    let config = DenseConfig::symmetric(
        784,
        &[64, 2],
        Activation::Relu,
        Activation::Identity,
        Activation::Sigmoid,
        LossKind::Bce,
    )?
    .with_variational(Some(Variational { beta: 1.0 }))?;
    let model = Autoencoder::new(&gpu, config, 0, Init::Glorot)?;
    let optimizer = Optimizer::parse("adam", 2e-3, 0.0)?;
    let tc = TrainConfig { epochs: 1, batch: 128, optimizer, seed: 0 };
    let steps_per_frame = 8;
    let options = StepOptions { max_steps_per_submit: steps_per_frame, ..Default::default() };
    let mut session = TrainSession::new(&gpu, &model, &train, tc, options)?;

    // --- 12 frames of training, each one encoder and one submit of the host's ---
    let mut losses = Vec::new();
    for _frame in 0..12 {
        let mut encoder = device.create_command_encoder(&Default::default());
        session.record_steps(&mut encoder, steps_per_frame)?;
        queue.submit([encoder.finish()]);
        session.submitted();
        while let Some(l) = session.poll_losses() {
            losses.push(l.mean());
        }
    }
    device.poll(wgpu::PollType::wait_indefinitely())?;
    while let Some(l) = session.poll_losses() {
        losses.push(l.mean());
    }
    let (first, last) = (losses.first().copied(), losses.last().copied());
    println!("{} submits' losses read back: first {first:?}, last {last:?} nats/image", losses.len());
    match (first, last) {
        (Some(a), Some(b)) if b.is_finite() && b < 0.9 * a => {}
        _ => return Err(format!("the training loss did not fall by 10%: {losses:?}").into()),
    }

    // --- the latent grid decoded into the host's texture ---
    let side = GRID * TILE;
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("host texture"),
        size: wgpu::Extent3d { width: side, height: side, depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let n = (GRID * GRID) as usize;
    let decoder = Decoder::new(&gpu, &model, n)?;
    let codes = aegpu::generate::grid_codes(&model, &[], GRID as usize)?;
    decoder.write_codes(&codes)?;
    let layout = AtlasLayout::grid(GRID, [TILE, TILE]);
    let draw = TextureDecode::new(&gpu, &decoder, &texture, n, [1, 28, 28], layout, ValueMap::UNIT)?;
    let row_bytes = (4 * side).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
    let pixels = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host readback"),
        size: u64::from(row_bytes * side),
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    decoder.record(&mut encoder);
    draw.record(&mut encoder);
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &pixels,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(row_bytes),
                rows_per_image: None,
            },
        },
        texture.size(),
    );
    queue.submit([encoder.finish()]);
    pixels.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let grey: Vec<u8> = {
        let mapped = pixels.slice(..).get_mapped_range()?;
        (0..side as usize)
            .flat_map(|y| (0..side as usize).map(move |x| (y, x)))
            .map(|(y, x)| mapped[y * row_bytes as usize + 4 * x])
            .collect()
    };
    pixels.unmap();
    // The texture holds exactly the decoded images (the engine's own decode of the same codes,
    // read back to the host, times 255), tile by tile, and the tiles differ from one another
    // (the latent grid spans the prior).
    let images = aegpu::generate::decode(&gpu, &model, &codes)?;
    let mut worst = 0.0f32;
    for t in 0..n {
        let (ty, tx) = (t / GRID as usize, t % GRID as usize);
        for y in 0..TILE as usize {
            for x in 0..TILE as usize {
                let texel =
                    f32::from(grey[(ty * TILE as usize + y) * side as usize + tx * TILE as usize + x]);
                let want = 255.0 * images[t * 784 + y * 28 + x].clamp(0.0, 1.0);
                worst = worst.max((texel - want).abs());
            }
        }
    }
    let tile = |t: usize| &images[t * 784..(t + 1) * 784];
    let distinct = (1..n).filter(|&t| tile(t) != tile(0)).count();
    println!(
        "decoded {n} tiles into the host's {side}x{side} texture: at most {worst:.2} of 255 from the engine's \
         decode of the same codes; {distinct} tiles differ from the first"
    );
    if worst > 1.0 || distinct < n / 2 {
        return Err("the texture does not hold the decoded latent grid".into());
    }
    println!("host-app: ok");
    Ok(())
}
