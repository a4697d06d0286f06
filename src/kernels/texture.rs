//! Launchers for `shaders/decode_to_texture.wgsl` and `shaders/encode_from_texture.wgsl`: images
//! drawn into a host's rgba8unorm storage texture as an atlas of tiles, and tiles of a host's
//! texture resampled into a model's input batch.
//!
//! These kernels bind a texture, which the plan's storage-buffer-only layouts cannot, so each is
//! its own pipeline with an explicit layout ([`TexturePipeline`]), built once by the object that
//! records it, with one bind group per (buffer, texture) pair, also built once.

use super::grid_1d;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Shader, View};

/// `shaders/decode_to_texture.wgsl`.
pub const DECODE_SHADER: Shader =
    Shader { name: "decode_to_texture", source: include_str!("../../shaders/decode_to_texture.wgsl") };

/// `shaders/encode_from_texture.wgsl`.
pub const ENCODE_SHADER: Shader =
    Shader { name: "encode_from_texture", source: include_str!("../../shaders/encode_from_texture.wgsl") };

/// Where the images go in (or come from) a texture: `columns` tiles per row of `tile` texels
/// (width, height) each, `gap` texels apart, the first tile's corner at texel `origin`. Image `t` is
/// tile `t`, row-major.
///
/// ```
/// use aegpu::embed::AtlasLayout;
/// // 10 digits, 4 per row, 28x28 texels each, 2 texels apart, 8 texels from the corner.
/// let layout = AtlasLayout { columns: 4, tile: [28, 28], gap: 2, origin: [8, 8] };
/// assert_eq!(layout.span(10), [4 * 30 - 2, 3 * 30 - 2]);
/// assert_eq!(layout.texture_size(10), [126, 96]);
/// assert!(layout.validate(10, [126, 95]).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AtlasLayout {
    /// Tiles per row (at least 1).
    pub columns: u32,
    /// A tile's size in texels, (width, height).
    pub tile: [u32; 2],
    /// Texels between neighbouring tiles, left untouched when drawing.
    pub gap: u32,
    /// The first tile's top-left texel.
    pub origin: [u32; 2],
}

impl AtlasLayout {
    /// `columns` tiles per row, each `tile` texels, no gap, from the texture's corner.
    pub fn grid(columns: u32, tile: [u32; 2]) -> AtlasLayout {
        AtlasLayout { columns, tile, gap: 0, origin: [0, 0] }
    }

    /// One tile: a single image at `origin`.
    pub fn single(tile: [u32; 2], origin: [u32; 2]) -> AtlasLayout {
        AtlasLayout { columns: 1, tile, gap: 0, origin }
    }

    /// The texels (width, height) the tiles of `n` images span, gaps between them included, from
    /// the first tile's corner.
    pub fn span(&self, n: usize) -> [u32; 2] {
        let columns = self.columns.max(1) as usize;
        let rows = n.div_ceil(columns);
        let cols = n.min(columns);
        let extent = |count: usize, tile: u32| {
            (count as u64 * (tile + self.gap) as u64).saturating_sub(self.gap as u64) as u32
        };
        [extent(cols, self.tile[0]), extent(rows, self.tile[1])]
    }

    /// The texture size (width, height) that holds `n` tiles from `origin`.
    pub fn texture_size(&self, n: usize) -> [u32; 2] {
        let [w, h] = self.span(n);
        [self.origin[0] + w, self.origin[1] + h]
    }

    /// Checks the layout for `n` tiles against a texture of `size` texels.
    pub fn validate(&self, n: usize, size: [u32; 2]) -> Result<()> {
        if self.columns == 0 || self.tile[0] == 0 || self.tile[1] == 0 {
            return Err(Error::Config(format!(
                "an atlas needs at least one column and tiles of at least 1x1 texels, got {self:?}"
            )));
        }
        let need = self.texture_size(n);
        if need[0] > size[0] || need[1] > size[1] {
            return Err(Error::Shape(format!(
                "{n} tiles of {}x{} texels in {} columns (gap {}) from ({}, {}) need a {}x{} texture; this \
                 one is {}x{}",
                self.tile[0],
                self.tile[1],
                self.columns,
                self.gap,
                self.origin[0],
                self.origin[1],
                need[0],
                need[1],
                size[0],
                size[1]
            )));
        }
        Ok(())
    }
}

/// How decoded values become texel brightness: `clamp(v * scale + offset, 0, 1)`. [`ValueMap::UNIT`]
/// suits sigmoid outputs; a model with an identity output in other units (whitened data) needs its
/// own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ValueMap {
    /// Multiplies the value.
    pub scale: f32,
    /// Added after scaling.
    pub offset: f32,
}

impl ValueMap {
    /// Values already in [0, 1].
    pub const UNIT: ValueMap = ValueMap { scale: 1.0, offset: 0.0 };
}

/// The image shape both kernels work on: (channels, height, width), channels 1 or 3.
pub fn image_shape(shape: [usize; 3]) -> Result<[u32; 3]> {
    let [c, h, w] = shape;
    if c != 1 && c != 3 {
        return Err(Error::Config(format!(
            "textures hold grey (1 channel) or colour (3 channel) images; this model's images have {c} channels"
        )));
    }
    Ok([c as u32, h as u32, w as u32])
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct TileParams {
    n: u32,
    channels: u32,
    height: u32,
    width: u32,
    columns: u32,
    tile_w: u32,
    tile_h: u32,
    gap: u32,
    origin_x: u32,
    origin_y: u32,
    /// decode: (scale, offset) as f32 bits; encode: padding.
    scale: u32,
    offset: u32,
}

fn tile_params(n: usize, [c, h, w]: [u32; 3], layout: &AtlasLayout, map: ValueMap) -> TileParams {
    TileParams {
        n: n as u32,
        channels: c,
        height: h,
        width: w,
        columns: layout.columns,
        tile_w: layout.tile[0],
        tile_h: layout.tile[1],
        gap: layout.gap,
        origin_x: layout.origin[0],
        origin_y: layout.origin[1],
        scale: map.scale.to_bits(),
        offset: map.offset.to_bits(),
    }
}

/// One texture kernel bound to its buffer and texture: pipeline, uniform, bind group, workgroups.
pub struct TexturePipeline {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    uniform: wgpu::Buffer,
    workgroups: [u32; 3],
}

impl TexturePipeline {
    /// `decode_to_texture`: `n` images of `shape` from `images` into `target` (rgba8unorm with
    /// `STORAGE_BINDING`) at `layout`.
    pub fn decode(
        gpu: &Gpu,
        images: &View,
        n: usize,
        shape: [usize; 3],
        target: &wgpu::Texture,
        layout: &AtlasLayout,
        map: ValueMap,
    ) -> Result<TexturePipeline> {
        let shape = image_shape(shape)?;
        if target.format() != wgpu::TextureFormat::Rgba8Unorm {
            return Err(Error::Config(format!(
                "decoding draws into an Rgba8Unorm texture; this one is {:?}",
                target.format()
            )));
        }
        if !target.usage().contains(wgpu::TextureUsages::STORAGE_BINDING) {
            return Err(Error::Config("the target texture needs TextureUsages::STORAGE_BINDING".into()));
        }
        check_images(images, n, shape)?;
        layout.validate(n, [target.width(), target.height()])?;
        let span = layout.span(n);
        let texture = wgpu::BindingType::StorageTexture {
            access: wgpu::StorageTextureAccess::WriteOnly,
            format: wgpu::TextureFormat::Rgba8Unorm,
            view_dimension: wgpu::TextureViewDimension::D2,
        };
        let params = tile_params(n, shape, layout, map);
        let workgroups = [span[0].div_ceil(16), span[1].div_ceil(16), 1];
        build(gpu, DECODE_SHADER, "decode_to_texture", params, images, true, texture, target, workgroups)
    }

    /// `encode_from_texture`: `n` tiles of `source` (any float-filterable format with
    /// `TEXTURE_BINDING`) at `layout`, resampled into `out` as `n` images of `shape`.
    pub fn encode(
        gpu: &Gpu,
        out: &View,
        n: usize,
        shape: [usize; 3],
        source: &wgpu::Texture,
        layout: &AtlasLayout,
    ) -> Result<TexturePipeline> {
        let shape = image_shape(shape)?;
        if !source.usage().contains(wgpu::TextureUsages::TEXTURE_BINDING) {
            return Err(Error::Config("the source texture needs TextureUsages::TEXTURE_BINDING".into()));
        }
        let float = source.format().sample_type(None, None);
        if !matches!(float, Some(wgpu::TextureSampleType::Float { .. })) {
            return Err(Error::Config(format!(
                "encoding reads a float (unorm, float or sRGB) colour texture; this one is {:?}",
                source.format()
            )));
        }
        check_images(out, n, shape)?;
        layout.validate(n, [source.width(), source.height()])?;
        // One invocation averages a box of up to (tile/size + 1)² texels in two loops (each row's
        // exit counts too): keep it within what lavapipe runs before it silently stops a loop.
        let [_, h, w] = shape;
        let (box_h, box_w) =
            (layout.tile[1].div_ceil(h) as usize + 1, layout.tile[0].div_ceil(w) as usize + 1);
        if box_h * (box_w + 1) > super::MAX_LOOP_STEPS {
            return Err(Error::Config(format!(
                "tiles of {}x{} texels average boxes of up to {box_w}x{box_h} texels into each of the \
                 model's {w}x{h} pixels, more than one invocation may loop over ({}): downscale the \
                 texture first (e.g. a mip level)",
                layout.tile[0],
                layout.tile[1],
                super::MAX_LOOP_STEPS
            )));
        }
        let texture = wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable: false },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        };
        let params = tile_params(n, shape, layout, ValueMap { scale: 0.0, offset: 0.0 });
        let workgroups = grid_1d(n * (shape[1] * shape[2]) as usize, 256);
        build(gpu, ENCODE_SHADER, "encode_from_texture", params, out, false, texture, source, workgroups)
    }

    /// Records the dispatch into `pass`.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }

    /// Bytes of the uniform buffer it created.
    pub fn uniform_bytes(&self) -> u64 {
        self.uniform.size()
    }
}

fn check_images(view: &View, n: usize, [c, h, w]: [u32; 3]) -> Result<()> {
    let need = n * (c * h * w) as usize;
    if n == 0 || need > view.len {
        return Err(Error::Shape(format!(
            "{n} images of {c}x{h}x{w} need {need} values; the buffer has {}",
            view.len
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn build(
    gpu: &Gpu,
    shader: Shader,
    entry: &str,
    params: TileParams,
    buffer: &View,
    read_only: bool,
    texture_binding: wgpu::BindingType,
    texture: &wgpu::Texture,
    workgroups: [u32; 3],
) -> Result<TexturePipeline> {
    if workgroups.iter().any(|&w| w > gpu.limits.max_compute_workgroups_per_dimension) {
        return Err(Error::Shape(format!("{entry}: dispatch {workgroups:?} too large")));
    }
    gpu.scoped(&format!("building the {entry} pipeline"), || {
        let module = gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(shader.name),
            source: wgpu::ShaderSource::Wgsl(shader.source.into()),
        });
        let entry_layout = |binding, ty| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty,
            count: None,
        };
        let layout = gpu.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(entry),
            entries: &[
                entry_layout(
                    0,
                    wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                ),
                entry_layout(
                    1,
                    wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                ),
                entry_layout(2, texture_binding),
            ],
        });
        let pipeline_layout = gpu.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        let uniform = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(entry),
            size: std::mem::size_of::<TileParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.queue.write_buffer(&uniform, 0, bytemuck::bytes_of(&params));
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &buffer.buffer,
                        offset: buffer.offset as u64 * 4,
                        size: wgpu::BufferSize::new(buffer.len.max(1) as u64 * 4),
                    }),
                },
                wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::TextureView(&view) },
            ],
        });
        TexturePipeline { pipeline, bind_group, uniform, workgroups }
    })
}
