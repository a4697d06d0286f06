//! A graphics application with the engine inside its frame loop: each frame records a few training
//! steps of a 2-D VAE on MNIST, decodes a 16x16 grid of the latent space into a texture, decodes the
//! latent point under a cursor (moving along a path) into a second texture, and draws both with a
//! render pipeline (textured quads plus a ring marking the cursor on the grid), all in one command
//! encoder and one submit per frame. Headless: the frames are written as PNGs, which show the decoded
//! space sharpening as training proceeds.
//!
//! ```text
//! cargo run --release --example latent_explorer -- [--frames 60] [--steps 8] [--grid 16]
//!     [--train N] [--every 1] [--data DIR] [--out runs/latent_explorer]
//! ```
//!
//! The host owns the device (default limits, no features), the encoder, the render pass and the
//! submit; the engine only records into its encoder. The host waits for each frame's pixels because
//! it writes them to disk; a windowed host would present them instead and never wait.

use aegpu::embed::{AtlasLayout, Decoder, Footprint, StepOptions, TextureDecode, TrainSession, ValueMap};
use aegpu::gpu::Gpu;
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::kernels::optimizer::Optimizer;
use aegpu::models::dense::{DenseConfig, Variational};
use aegpu::models::{Autoencoder, Init};
use aegpu::train::{GpuDataset, TrainConfig};
use std::path::PathBuf;
use std::time::Instant;

/// What to run.
pub struct Options {
    pub frames: usize,
    pub steps_per_frame: usize,
    /// Tiles per side of the latent grid.
    pub grid: usize,
    /// Training examples used (the first N of MNIST's 60,000; all by default).
    pub train: Option<usize>,
    /// Write every n-th frame (and always the first and the last).
    pub every: usize,
    pub data: Option<PathBuf>,
    pub out: PathBuf,
}

/// What happened.
pub struct Outcome {
    pub frames_written: Vec<PathBuf>,
    /// (first step, mean loss) per frame whose losses arrived, in order.
    pub losses: Vec<(u64, f64)>,
    /// Frame size (width, height) in pixels.
    pub size: [u32; 2],
    /// The cursor ring's centre in frame pixels, per frame.
    pub markers: Vec<[f32; 2]>,
    /// Mean wall-clock milliseconds from recording a frame to its pixels being mapped (PNG writing
    /// excluded).
    pub ms_per_frame: f64,
    pub dataset: String,
    pub footprint: Footprint,
    /// Every buffer the training session and the two decoders created, as (what, bytes).
    pub allocations: Vec<(String, u64)>,
}

const SHADER: &str = r#"
struct Frame {
    size: vec2<f32>,       // frame, pixels
    grid_at: vec2<f32>,    // grid quad's corner
    grid_px: f32,          // grid quad's side
    inset_px: f32,         // inset quad's side
    inset_at: vec2<f32>,   // inset quad's corner
    marker: vec2<f32>,     // ring centre, pixels
    radius: f32,
    _pad: f32,
};
@group(0) @binding(0) var<uniform> f: Frame;
@group(0) @binding(1) var grid_tex: texture_2d<f32>;
@group(0) @binding(2) var inset_tex: texture_2d<f32>;
@group(0) @binding(3) var nearest: sampler;

struct Out {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
    @location(1) @interpolate(flat) which: u32,
};

// Instance 0: the grid quad; 1: the inset quad; 2: the marker's quad around the cursor.
@vertex
fn vs(@builtin(vertex_index) v: u32, @builtin(instance_index) which: u32) -> Out {
    var corners = array<vec2<f32>, 6>(vec2(0.0, 0.0), vec2(1.0, 0.0), vec2(0.0, 1.0),
                                      vec2(0.0, 1.0), vec2(1.0, 0.0), vec2(1.0, 1.0));
    let uv = corners[v];
    var at = f.grid_at;
    var side = f.grid_px;
    if (which == 1u) {
        at = f.inset_at;
        side = f.inset_px;
    } else if (which == 2u) {
        at = f.marker - vec2(f.radius + 2.0);
        side = 2.0 * (f.radius + 2.0);
    }
    let px = at + uv * side;
    var out: Out;
    out.pos = vec4(px.x / f.size.x * 2.0 - 1.0, 1.0 - px.y / f.size.y * 2.0, 0.0, 1.0);
    out.uv = uv;
    out.which = which;
    return out;
}

@fragment
fn fs(in: Out) -> @location(0) vec4<f32> {
    if (in.which == 0u) {
        return vec4(textureSampleLevel(grid_tex, nearest, in.uv, 0.0).rgb, 1.0);
    }
    if (in.which == 1u) {
        return vec4(textureSampleLevel(inset_tex, nearest, in.uv, 0.0).rgb, 1.0);
    }
    let d = length((in.uv - vec2(0.5)) * 2.0 * (f.radius + 2.0));
    if (abs(d - f.radius) > 1.5) {
        discard;
    }
    return vec4(1.0, 0.25, 0.2, 1.0);
}
"#;

/// The host's uniform block (matches `Frame` above).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FrameUniform {
    size: [f32; 2],
    grid_at: [f32; 2],
    grid_px: f32,
    inset_px: f32,
    inset_at: [f32; 2],
    marker: [f32; 2],
    radius: f32,
    _pad: f32,
}

const TILE: u32 = 28;
const INSET: u32 = 140;
const MARGIN: u32 = 16;

pub fn run(opts: &Options) -> Result<Outcome, Box<dyn std::error::Error>> {
    // --- the host application's own set-up: default limits, no optional features ---
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))?;

    // --- the engine on the host's device ---
    let gpu = Gpu::from_device(device.clone(), queue.clone(), adapter.get_info());
    let mut data = match opts
        .data
        .clone()
        .or_else(|| std::env::var_os("AEGPU_DATA").map(PathBuf::from))
        .map(|dir| aegpu::data::load(aegpu::data::DatasetName::Mnist, &dir))
    {
        Some(Ok(split)) => split.train,
        Some(Err(e)) => return Err(e.into()),
        None => aegpu::data::synthetic::synthetic(8192, 28, 28, 10, 1),
    };
    if let Some(n) = opts.train {
        data = data.subset(0..n.min(data.n));
    }
    let train = GpuDataset::upload(&gpu, &data)?;
    let config = DenseConfig::symmetric(
        784,
        &[256, 2],
        Activation::Relu,
        Activation::Identity,
        Activation::Sigmoid,
        LossKind::Bce,
    )?
    .with_variational(Some(Variational { beta: 1.0 }))?;
    let model = Autoencoder::new(&gpu, config, 0, Init::Glorot)?;
    let tc = TrainConfig { epochs: 1, batch: 128, optimizer: Optimizer::parse("adam", 1e-3, 0.0)?, seed: 0 };
    let footprint = Footprint::of(&gpu, &model, tc.batch)?;
    let options = StepOptions { max_steps_per_submit: opts.steps_per_frame.max(1), ..Default::default() };
    let mut session = TrainSession::new(&gpu, &model, &train, tc, options)?;

    let g = opts.grid.max(2);
    let grid_side = g as u32 * TILE;
    let grid_texture = texture(&device, [grid_side; 2], "latent grid");
    let inset_texture = texture(&device, [INSET; 2], "cursor decoding");
    let grid_decoder = Decoder::new(&gpu, &model, g * g)?;
    grid_decoder.write_codes(&aegpu::generate::grid_codes(&model, &[], g)?)?;
    let grid_draw = TextureDecode::new(
        &gpu,
        &grid_decoder,
        &grid_texture,
        g * g,
        [1, 28, 28],
        AtlasLayout::grid(g as u32, [TILE, TILE]),
        ValueMap::UNIT,
    )?;
    let cursor_decoder = Decoder::new(&gpu, &model, 1)?;
    let cursor_draw = TextureDecode::new(
        &gpu,
        &cursor_decoder,
        &inset_texture,
        1,
        [1, 28, 28],
        AtlasLayout::single([INSET, INSET], [0, 0]),
        ValueMap::UNIT,
    )?;

    // --- the host's render pipeline: textured quads and a marker ---
    let size = [MARGIN * 3 + grid_side + INSET, MARGIN * 2 + grid_side.max(INSET + 140)];
    let target = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("frame"),
        size: wgpu::Extent3d { width: size[0], height: size[1], depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let target_view = target.create_view(&Default::default());
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("explorer"),
        source: wgpu::ShaderSource::Wgsl(SHADER.into()),
    });
    let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("explorer"),
        layout: None,
        vertex: wgpu::VertexState {
            module: &module,
            entry_point: Some("vs"),
            compilation_options: Default::default(),
            buffers: &[],
        },
        primitive: wgpu::PrimitiveState::default(),
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        fragment: Some(wgpu::FragmentState {
            module: &module,
            entry_point: Some("fs"),
            compilation_options: Default::default(),
            targets: &[Some(wgpu::TextureFormat::Rgba8Unorm.into())],
        }),
        multiview_mask: None,
        cache: None,
    });
    let uniform = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("frame uniform"),
        size: std::mem::size_of::<FrameUniform>() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let sampler = device.create_sampler(&wgpu::SamplerDescriptor::default()); // nearest
    let grid_view = grid_texture.create_view(&Default::default());
    let inset_view = inset_texture.create_view(&Default::default());
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("explorer"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&grid_view) },
            wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::TextureView(&inset_view) },
            wgpu::BindGroupEntry { binding: 3, resource: wgpu::BindingResource::Sampler(&sampler) },
        ],
    });
    let row_bytes = (4 * size[0]).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
    let pixels = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("frame pixels"),
        size: (row_bytes * size[1]) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });

    std::fs::create_dir_all(&opts.out)?;
    let mut outcome = Outcome {
        frames_written: Vec::new(),
        losses: Vec::new(),
        size,
        markers: Vec::new(),
        ms_per_frame: 0.0,
        dataset: format!("{} ({} examples)", data.name, data.n),
        footprint,
        allocations: Vec::new(),
    };
    for (owner, list) in [
        ("session", session.allocations()),
        ("grid decoder", grid_decoder.allocations()),
        ("cursor decoder", cursor_decoder.allocations()),
    ] {
        outcome.allocations.extend(list.into_iter().map(|(what, bytes)| (format!("{owner}: {what}"), bytes)));
    }
    let mut busy = 0.0;
    let grid_at = [MARGIN as f32; 2];
    let inset_at = [(2 * MARGIN + grid_side) as f32, MARGIN as f32];
    for frame in 0..opts.frames {
        let start = Instant::now();
        // The cursor's path in grid coordinates (0..1 across the tiles' centres), and its code.
        let t = frame as f64 / opts.frames.max(1) as f64;
        let (u, v) = (
            0.5 + 0.42 * (std::f64::consts::TAU * t).sin(),
            0.5 + 0.42 * (2.0 * std::f64::consts::TAU * t + 0.6).sin(),
        );
        let z = [
            aegpu::generate::inverse_normal_cdf(0.05 + 0.9 * u) as f32,
            aegpu::generate::inverse_normal_cdf(0.05 + 0.9 * (1.0 - v)) as f32,
        ];
        let tile = TILE as f64;
        let marker = [
            grid_at[0] + ((u * (g - 1) as f64 + 0.5) * tile) as f32,
            grid_at[1] + ((v * (g - 1) as f64 + 0.5) * tile) as f32,
        ];
        outcome.markers.push(marker);
        let frame_uniform = FrameUniform {
            size: [size[0] as f32, size[1] as f32],
            grid_at,
            grid_px: grid_side as f32,
            inset_px: INSET as f32,
            inset_at,
            marker,
            radius: 9.0,
            _pad: 0.0,
        };
        queue.write_buffer(&uniform, 0, bytemuck::bytes_of(&frame_uniform));
        cursor_decoder.write_codes(&z)?;

        // One encoder for the frame: training steps, decodes into textures, the render pass.
        let mut encoder = device.create_command_encoder(&Default::default());
        session.record_steps(&mut encoder, opts.steps_per_frame)?;
        grid_decoder.record(&mut encoder);
        grid_draw.record(&mut encoder);
        cursor_decoder.record(&mut encoder);
        cursor_draw.record(&mut encoder);
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("explorer"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &target_view,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color { r: 0.08, g: 0.09, b: 0.11, a: 1.0 }),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.draw(0..6, 0..3);
        }
        let write = frame == 0 || frame + 1 == opts.frames || frame % opts.every.max(1) == 0;
        if write {
            encoder.copy_texture_to_buffer(
                target.as_image_copy(),
                wgpu::TexelCopyBufferInfo {
                    buffer: &pixels,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(row_bytes),
                        rows_per_image: None,
                    },
                },
                target.size(),
            );
        }
        queue.submit([encoder.finish()]);
        session.submitted();
        while let Some(l) = session.poll_losses() {
            outcome.losses.push((l.first_step, l.mean()));
        }
        if !write {
            busy += start.elapsed().as_secs_f64();
            continue;
        }
        pixels.slice(..).map_async(wgpu::MapMode::Read, |r| r.expect("mapping the frame"));
        device.poll(wgpu::PollType::wait_indefinitely())?;
        let mut rgba = Vec::with_capacity((4 * size[0] * size[1]) as usize);
        {
            let mapped = pixels.slice(..).get_mapped_range()?;
            for y in 0..size[1] as usize {
                let row = y * row_bytes as usize;
                rgba.extend_from_slice(&mapped[row..row + 4 * size[0] as usize]);
            }
        }
        pixels.unmap();
        busy += start.elapsed().as_secs_f64();
        while let Some(l) = session.poll_losses() {
            outcome.losses.push((l.first_step, l.mean()));
        }
        let panel = [inset_at[0] as usize, (inset_at[1] + INSET as f32 + 12.0) as usize];
        annotate(&mut rgba, size[0] as usize, panel, session.steps_recorded(), &outcome.losses);
        let path = opts.out.join(format!("frame_{frame:04}.png"));
        image::RgbaImage::from_raw(size[0], size[1], rgba).ok_or("frame size")?.save(&path)?;
        outcome.frames_written.push(path);
    }
    gpu.wait()?;
    while let Some(l) = session.poll_losses() {
        outcome.losses.push((l.first_step, l.mean()));
    }
    outcome.ms_per_frame = 1e3 * busy / opts.frames.max(1) as f64;
    Ok(outcome)
}

fn texture(device: &wgpu::Device, size: [u32; 2], label: &str) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d { width: size[0], height: size[1], depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::TEXTURE_BINDING,
        view_formats: &[],
    })
}

/// The step count, the latest loss and a small loss curve under the inset, drawn on the CPU.
fn annotate(rgba: &mut [u8], width: usize, at: [usize; 2], step: u64, losses: &[(u64, f64)]) {
    let mut put = |x: usize, y: usize, c: [u8; 3]| {
        let i = 4 * (y * width + x);
        if i + 3 < rgba.len() && x < width {
            rgba[i..i + 3].copy_from_slice(&c);
        }
    };
    let text = |put: &mut dyn FnMut(usize, usize, [u8; 3]), s: &str, x0: usize, y0: usize| {
        use font8x8::UnicodeFonts;
        for (k, ch) in s.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS.get(ch).unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        put(x0 + 8 * k + col, y0 + row, [230, 230, 230]);
                    }
                }
            }
        }
    };
    text(&mut put, &format!("step {step}"), at[0], at[1]);
    if let Some((_, last)) = losses.last() {
        text(&mut put, &format!("-ELBO {last:.1}"), at[0], at[1] + 12);
    }
    // The curve: 140 x 80 pixels, losses from 140 (bottom) to 550 nats (top), clamped.
    let (x0, y0, w, h) = (at[0], at[1] + 30, 140usize, 80usize);
    for x in 0..w {
        put(x0 + x, y0 + h, [90, 90, 90]);
    }
    let n = losses.len();
    for (i, (_, l)) in losses.iter().enumerate() {
        let x = x0 + i * (w - 1) / n.max(2).saturating_sub(1).max(1);
        let frac = ((l - 140.0) / 410.0).clamp(0.0, 1.0);
        let y = y0 + h - (frac * h as f64) as usize;
        put(x, y, [255, 140, 60]);
        put(x, y.saturating_sub(1), [255, 140, 60]);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut opts = Options {
        frames: 60,
        steps_per_frame: 8,
        grid: 16,
        train: None,
        every: 1,
        data: None,
        out: PathBuf::from("runs/latent_explorer"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--frames" => opts.frames = value.parse()?,
            "--steps" => opts.steps_per_frame = value.parse()?,
            "--grid" => opts.grid = value.parse()?,
            "--train" => opts.train = Some(value.parse()?),
            "--every" => opts.every = value.parse()?,
            "--data" => opts.data = Some(PathBuf::from(value)),
            "--out" => opts.out = PathBuf::from(value),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let outcome = run(&opts)?;
    let f = outcome.footprint;
    println!("data: {}", outcome.dataset);
    println!(
        "GPU memory: model {} B (parameters, gradients, Adam moments), activations of a batch of 128: {} B",
        f.model_bytes(),
        f.activations
    );
    let listed: Vec<String> = outcome.allocations.iter().map(|(what, b)| format!("{what} {b}")).collect();
    println!("engine buffers besides the model (bytes): {}", listed.join(", "));
    if let (Some(first), Some(last)) = (outcome.losses.first(), outcome.losses.last()) {
        println!("-ELBO per image: {:.1} at step {} -> {:.1} at step {}", first.1, first.0, last.1, last.0);
    }
    println!(
        "{} frames of {} steps + 2 decodes + 1 render pass: {:.1} ms per frame; {} PNGs in {}",
        opts.frames,
        opts.steps_per_frame,
        outcome.ms_per_frame,
        outcome.frames_written.len(),
        opts.out.display()
    );
    Ok(())
}
