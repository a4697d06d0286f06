//! Embedding aegpu in an application that already owns a `wgpu::Device`.
//!
//! The host creates its device as usual (here headless), lends a clone of the device and queue to
//! the engine with `Gpu::from_device` (which installs no callbacks on it), trains a small dense
//! autoencoder in the background of its own work, and then uses the engine's reconstruction buffer
//! directly in its own commands (a copy here; a render pass could bind it as a storage buffer).
//!
//! `cargo run --release --example embed`

use aegpu::data::synthetic::synthetic;
use aegpu::expert::runner::Plan;
use aegpu::gpu::Gpu;
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::models::dense::DenseConfig;
use aegpu::models::{Autoencoder, Init, Pass};
use aegpu::train::{GpuDataset, TrainConfig, Trainer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // --- the host application's own set-up ---
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))?;
    println!("host device on {}", adapter.get_info().name);

    // --- lend it to the engine: same device, default limits, nothing installed on it ---
    let gpu = Gpu::from_device(device.clone(), queue.clone(), adapter.get_info());
    let data = synthetic(2048, 28, 28, 10, 7);
    let train = GpuDataset::upload(&gpu, &data)?;
    let config = DenseConfig::symmetric(
        784,
        &[64, 8],
        Activation::Relu,
        Activation::Identity,
        Activation::Sigmoid,
        LossKind::Bce,
    )?;
    let model = Autoencoder::new(&gpu, config, 0, Init::Glorot)?;
    let tc = TrainConfig { epochs: 1, batch: 128, optimizer: Optimizer::parse("adam", 2e-3, 0.0)?, seed: 0 };
    let mut trainer = Trainer::new(&gpu, &model, &train, tc)?;
    for epoch in 1..=5 {
        // Whole epochs here; a frame loop records a few steps per frame into its own encoder with
        // aegpu::embed::TrainSession (see examples/latent_explorer.rs).
        let loss = trainer.epoch(epoch, |_, _| {})?;
        println!("epoch {epoch}: train BCE/px {loss:.4}");
    }

    // --- decode a batch into a buffer the host owns and uses in its own commands ---
    let acts = model.activations(&gpu, 16)?;
    acts.input().write(&gpu, &data.images_f32(0..16))?;
    let matmul = gpu.matmul_policy()?;
    Plan::new(&gpu, "decode", &model.forward(&acts, matmul, Pass::INFER))?.run(&gpu)?;
    let logits = acts.logits();
    let host_buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host-owned reconstructions"),
        size: (logits.len * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut enc = device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(
        &logits.buffer,
        (logits.offset * 4) as u64,
        &host_buffer,
        0,
        (logits.len * 4) as u64,
    );
    queue.submit([enc.finish()]);
    println!("copied {} logits of 16 reconstructions into a host-owned buffer", logits.len);
    Ok(())
}
