//! Compute pipelines, created once per (shader, entry point, constants) and cached.
//!
//! Bind group layouts are explicit: binding 0 is the op's uniform block, bindings 1.. are storage
//! buffers. Storage bindings are declared `read_write` in every shader because the engine binds views
//! of one arena (activations, gradients) both as an input and as an output of the same dispatch, and
//! wgpu forbids mixing read-only and read-write usage of one buffer inside a dispatch.

use super::{Gpu, Shader};
use crate::error::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Identifies a pipeline: shader, entry point, and override constants (name, value).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    /// The shader module.
    pub shader: Shader,
    /// The entry point.
    pub entry: &'static str,
    /// (name, value as bits) so the key is hashable; values are WGSL override constants.
    pub constants: Vec<(&'static str, u64)>,
}

impl PipelineKey {
    /// The key of `shader`'s `entry` with override `constants`.
    pub fn new(shader: Shader, entry: &'static str, constants: &[(&'static str, f64)]) -> PipelineKey {
        PipelineKey { shader, entry, constants: constants.iter().map(|&(k, v)| (k, v.to_bits())).collect() }
    }
}

/// A pipeline with its bind group layout and the number of storage bindings it expects.
pub struct CachedPipeline {
    /// The compute pipeline.
    pub pipeline: wgpu::ComputePipeline,
    /// Its bind group layout: the uniform at 0, storage buffers at 1..
    pub layout: wgpu::BindGroupLayout,
    /// How many storage buffers follow the uniform.
    pub storage_bindings: u32,
}

/// Shader modules and pipelines, built once each and shared by every plan on the device.
#[derive(Default)]
pub struct PipelineCache {
    modules: Mutex<HashMap<Shader, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<CachedPipeline>>>,
}

impl PipelineCache {
    /// Number of pipelines built so far (tests check that the hot path builds none).
    pub fn len(&self) -> usize {
        self.pipelines.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// Whether no pipeline was built yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Gpu {
    /// The cached pipeline for `key`, creating it (and its shader module) on first use.
    /// `storage_bindings` storage buffers follow the uniform at binding 0.
    pub fn pipeline(&self, key: &PipelineKey, storage_bindings: u32) -> Result<Arc<CachedPipeline>> {
        if let Some(p) = self.pipelines.pipelines.lock().expect("pipeline cache poisoned").get(key) {
            return Ok(p.clone());
        }
        let context = format!("building pipeline {}::{} {:?}", key.shader.name, key.entry, key.constants);
        let built = self.scoped(&context, || {
            let module = {
                let mut modules = self.pipelines.modules.lock().expect("module cache poisoned");
                modules
                    .entry(key.shader)
                    .or_insert_with(|| {
                        self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(key.shader.name),
                            source: wgpu::ShaderSource::Wgsl(key.shader.source.into()),
                        })
                    })
                    .clone()
            };
            let mut entries = vec![wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            }];
            for i in 0..storage_bindings {
                entries.push(wgpu::BindGroupLayoutEntry {
                    binding: i + 1,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: false },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                });
            }
            let layout = self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(key.entry),
                entries: &entries,
            });
            let pipeline_layout = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(key.entry),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let mut constants: Vec<(&str, f64)> =
                key.constants.iter().map(|&(k, v)| (k, f64::from_bits(v))).collect();
            // The one override the device decides: a kernel whose workgroup is one subgroup (the
            // cooperative matmul) declares it, and runs only where the width is fixed.
            if key.shader.source.contains("override SUBGROUP_SIZE")
                && let Some(width) = self.fixed_subgroup_width()
            {
                constants.push(("SUBGROUP_SIZE", width as f64));
            }
            let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(key.entry),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(key.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
            CachedPipeline { pipeline, layout, storage_bindings }
        })?;
        let built = Arc::new(built);
        self.pipelines.pipelines.lock().expect("pipeline cache poisoned").insert(key.clone(), built.clone());
        Ok(built)
    }
}
