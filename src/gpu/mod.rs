//! The GPU context: an owned device picked from the environment, or a host application's borrowed one.
//!
//! Everything else in the crate takes a `&Gpu`. Errors from wgpu come back as values through error
//! scopes ([`Gpu::scoped`]); an owned device also gets an uncaptured-error handler that records instead
//! of panicking, a borrowed one gets nothing installed (the host owns its device's callbacks).

#![warn(missing_docs)]

mod buffers;
mod launch;
mod pipelines;

pub(crate) use buffers::read_words;
pub use buffers::{Readback, StorageBuffer};
pub use launch::{Launch, PerStep, Shader, StepState, View, grid_1d};
pub use pipelines::{CachedPipeline, PipelineCache, PipelineKey};

use crate::error::{Error, Result};
use std::sync::{Arc, Mutex};

/// How to pick an adapter when the engine owns its device.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Restrict to these backends; `None` honours `WGPU_BACKEND` (vulkan, metal, dx12), else all.
    pub backends: Option<wgpu::Backends>,
    /// Case-insensitive substring of the adapter name; `None` honours `WGPU_ADAPTER_NAME`.
    pub adapter_name: Option<String>,
    /// Request wgpu's experimental cooperative-matrix feature where the adapter offers it (the
    /// `coop*` matmul variants); `AEGPU_COOPERATIVE_MATRIX=1` does the same.
    /// Off by default: wgpu marks the feature experimental.
    pub cooperative_matrix: bool,
}

/// Whether `AEGPU_COOPERATIVE_MATRIX` asks for cooperative matrices (set and not `0`).
fn cooperative_matrix_from_env() -> bool {
    std::env::var("AEGPU_COOPERATIVE_MATRIX").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The backends `WGPU_BACKEND` names (comma-separated, as wgpu reads it; unset or empty: `None`).
/// A word wgpu does not know is an error here: wgpu would drop it and find no adapter.
fn backends_from_env() -> Result<Option<wgpu::Backends>> {
    let Some(value) = std::env::var_os("WGPU_BACKEND") else { return Ok(None) };
    let value = value.to_string_lossy();
    if value.trim().is_empty() {
        return Ok(None);
    }
    if let Some(word) =
        value.split(',').find(|w| !w.trim().is_empty() && wgpu::Backends::from_comma_list(w).is_empty())
    {
        return Err(Error::Config(format!(
            "WGPU_BACKEND={value:?}: '{}' is not a backend; use vulkan, metal or dx12 (several comma-separated), \
             or unset it to try all",
            word.trim()
        )));
    }
    Ok(Some(wgpu::Backends::from_comma_list(&value)))
}

/// A device and queue plus what the engine learned about them.
pub struct Gpu {
    /// The device every buffer and pipeline is created on (the host's, when borrowed).
    pub device: wgpu::Device,
    /// Its queue: the engine's own work is submitted here (a host records into its encoders instead).
    pub queue: wgpu::Queue,
    /// The adapter, for logs and the per-adapter kernel tuning cache.
    pub info: wgpu::AdapterInfo,
    /// The device's limits (what was requested, not what the adapter could offer).
    pub limits: wgpu::Limits,
    /// The device's features: kernels that need one (subgroups) are only chosen when it is here.
    pub features: wgpu::Features,
    /// What the adapter offers (for `aegpu info`); a borrowed device reports its own features here.
    pub adapter_features: wgpu::Features,
    /// The cooperative-matrix shapes and types the adapter multiplies (empty when it offers none; a
    /// host that lends a device with `Features::EXPERIMENTAL_COOPERATIVE_MATRIX` sets them from
    /// `Adapter::cooperative_matrix_properties`).
    pub cooperative_matrices: Vec<wgpu::CooperativeMatrixProperties>,
    /// True when we created the device; false when a host lent it to us.
    pub owned: bool,
    /// Compute pipelines built so far, by (shader, entry, constants).
    pub pipelines: PipelineCache,
    /// Errors nobody scoped (owned device only): surfaced by [`Gpu::check_uncaptured`].
    uncaptured: Arc<Mutex<Vec<String>>>,
}

impl Gpu {
    /// Creates a device on the best adapter: high-performance first, filtered by `options` or the
    /// `WGPU_BACKEND` / `WGPU_ADAPTER_NAME` environment variables. With no driver at all the
    /// error is [`Error::NoAdapter`], which says what to install.
    ///
    /// ```
    /// use aegpu::{Error, Gpu, GpuOptions};
    ///
    /// match Gpu::new(&GpuOptions::default()) {
    ///     Ok(gpu) => println!("{}", gpu.describe()), // e.g. "NVIDIA H100 (Vulkan)"
    ///     Err(Error::NoAdapter { .. }) => println!("no GPU driver here"),
    ///     Err(e) => panic!("{e}"),
    /// }
    /// ```
    pub fn new(options: &GpuOptions) -> Result<Gpu> {
        let backends = match options.backends {
            Some(b) => b,
            None => backends_from_env()?.unwrap_or(wgpu::Backends::PRIMARY),
        };
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let wanted_name = options
            .adapter_name
            .clone()
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
            .map(|s| s.to_lowercase());

        let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
        let found: Vec<String> = adapters.iter().map(|a| describe(&a.get_info())).collect();
        if let Some(name) = &wanted_name {
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(name));
        }
        // Compute needs no surface; prefer discrete, then integrated, then virtual, then CPU.
        adapters.sort_by_key(|a| match a.get_info().device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        });
        let Some(adapter) = adapters.into_iter().next() else {
            let detail = match (&wanted_name, found.is_empty()) {
                (_, true) => format!("backends {backends:?} offer none"),
                (Some(name), false) => {
                    format!("none named like '{name}' among: {}", found.join("; "))
                }
                (None, false) => "all adapters were filtered out".to_string(),
            };
            return Err(Error::NoAdapter { detail });
        };

        let info = adapter.get_info();
        let adapter_features = adapter.features();
        let cooperative_matrices = adapter.cooperative_matrix_properties();
        // SHADER_F16: the opt-in f16 activation storage (`--activations f16`) needs it.
        let mut wanted =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP | wgpu::Features::SHADER_F16;
        let cooperative = options.cooperative_matrix || cooperative_matrix_from_env();
        if cooperative {
            wanted |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
        }
        let features = adapter_features & wanted;
        let experimental = if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
            // SAFETY: wgpu asks the caller to acknowledge that its experimental features may have
            // bugs. Only the cooperative-matrix matmul uses this one; the tuner and the bench verify
            // it against the CPU reference on this adapter first (`AEGPU_MATMUL` forces it
            // unverified, as it forces any variant), and it was asked for explicitly.
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        } else {
            wgpu::ExperimentalFeatures::disabled()
        };
        let limits = wanted_limits(&adapter.limits());
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("aegpu"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: experimental,
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::DeviceRequest { adapter: info.name.clone(), reason: e.to_string() })?;

        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            features,
            adapter_features,
            cooperative_matrices,
            owned: true,
            pipelines: PipelineCache::default(),
            uncaptured,
        })
    }

    /// Borrows a host application's device and queue. Installs no device-wide callbacks; the engine
    /// works within the limits and features the host requested (the defaults are enough: 128 MiB
    /// bindings, no optional features; without `Features::SUBGROUP` the subgroup matmul is simply
    /// never chosen). Errors from the engine's resource creation still come back as values, through
    /// error scopes.
    ///
    /// ```no_run
    /// # async fn host() -> Result<(), Box<dyn std::error::Error>> {
    /// let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    /// let adapter = instance.request_adapter(&wgpu::RequestAdapterOptions::default()).await?;
    /// let (device, queue) = adapter.request_device(&wgpu::DeviceDescriptor::default()).await?;
    /// // wgpu devices and queues are cheap handles: the host keeps its own.
    /// let gpu = aegpu::gpu::Gpu::from_device(device.clone(), queue.clone(), adapter.get_info());
    /// assert!(!gpu.owned);
    /// # Ok(()) }
    /// ```
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo) -> Gpu {
        let limits = device.limits();
        let features = device.features();
        Gpu {
            device,
            queue,
            info,
            limits,
            features,
            adapter_features: features,
            cooperative_matrices: Vec::new(),
            owned: false,
            pipelines: PipelineCache::default(),
            uncaptured: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// One line naming the adapter, its backend and driver.
    pub fn describe(&self) -> String {
        describe(&self.info)
    }

    /// Runs `f` inside validation and out-of-memory error scopes and turns what they caught into
    /// an [`Error`]. Use around resource creation and command recording.
    pub fn scoped<T>(&self, context: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let validation = pollster::block_on(validation.pop());
        let oom = pollster::block_on(oom.pop());
        if let Some(e) = validation {
            return Err(Error::GpuValidation { context: context.to_string(), message: e.to_string() });
        }
        if oom.is_some() {
            return Err(Error::GpuOutOfMemory { context: context.to_string() });
        }
        self.check_uncaptured(context)?;
        Ok(value)
    }

    /// Returns the first error that escaped every scope since the last call (owned device only).
    pub fn check_uncaptured(&self, context: &str) -> Result<()> {
        let mut v = self.uncaptured.lock().map_err(|_| Error::GpuValidation {
            context: context.to_string(),
            message: "error log poisoned".into(),
        })?;
        match v.drain(..).next() {
            Some(message) => Err(Error::GpuValidation { context: context.to_string(), message }),
            None => Ok(()),
        }
    }

    /// Blocks until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Readback { context: "waiting for the GPU".into(), message: e.to_string() })
    }

    /// Alignment of storage-buffer binding offsets, in bytes.
    pub fn storage_alignment(&self) -> u64 {
        self.limits.min_storage_buffer_offset_alignment as u64
    }

    /// Largest storage binding, in bytes.
    pub fn max_binding(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    /// Whether timestamp queries are enabled (the benchmark's per-kernel timings).
    pub fn has_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Whether the device can store f16 in buffers (`Features::SHADER_F16`): the f16 activation path.
    pub fn has_f16(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_F16)
    }

    /// Whether the adapter offers cooperative-matrix products (wgpu's experimental feature: Metal's
    /// simdgroup matrices, Vulkan's `VK_KHR_cooperative_matrix`).
    pub fn offers_cooperative_matrix(&self) -> bool {
        self.adapter_features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
    }

    /// Whether the device can multiply `edge` x `edge` x `edge` cooperative matrices of `ab`
    /// operands into `cr` accumulators: the feature was requested and the adapter lists the shape.
    pub fn has_cooperative_matrix(
        &self,
        edge: u32,
        ab: wgpu::CooperativeScalarType,
        cr: wgpu::CooperativeScalarType,
    ) -> bool {
        self.features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
            && self.cooperative_matrices.iter().any(|c| {
                (c.m_size, c.n_size, c.k_size) == (edge, edge, edge) && c.ab_type == ab && c.cr_type == cr
            })
    }

    /// The width of every subgroup, where the device has one width: Vulkan's reported minimum and
    /// maximum when they agree; on Metal, 32 for Apple's GPUs (wgpu reports 4-64 there because
    /// Metal does not say, but every Apple GPU runs 32-wide SIMD groups). `None` where subgroups may
    /// differ (AMD's wave32 / wave64) or the device has no subgroup operations.
    pub fn fixed_subgroup_width(&self) -> Option<u32> {
        let (min, max) = (self.info.subgroup_min_size, self.info.subgroup_max_size);
        let apple = self.info.backend == wgpu::Backend::Metal && self.info.name.starts_with("Apple");
        match (self.features.contains(wgpu::Features::SUBGROUP), apple) {
            (false, _) => None,
            (true, true) => Some(32),
            (true, false) => (min == max).then_some(min),
        }
    }

    /// Whether this adapter runs on the CPU (lavapipe, WARP, llvmpipe): it changes which kernels win.
    pub fn is_cpu(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }
}

fn describe(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} ({:?}, {:?}, driver {} {})",
        info.name, info.backend, info.device_type, info.driver, info.driver_info
    )
}

/// The defaults, raised to what the adapter offers where the engine benefits: big storage buffers
/// (the whole dataset lives on the GPU), more storage bindings per stage.
fn wanted_limits(adapter: &wgpu::Limits) -> wgpu::Limits {
    wgpu::Limits {
        max_buffer_size: adapter.max_buffer_size,
        max_storage_buffer_binding_size: adapter.max_storage_buffer_binding_size,
        max_storage_buffers_per_shader_stage: adapter.max_storage_buffers_per_shader_stage.min(16),
        max_compute_workgroup_storage_size: adapter.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: adapter.max_compute_invocations_per_workgroup,
        max_compute_workgroups_per_dimension: adapter.max_compute_workgroups_per_dimension,
        ..wgpu::Limits::default()
    }
}
