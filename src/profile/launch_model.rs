//! A launch model of an epoch: what its dispatches, passes and submits cost before any kernel
//! does work, from per-launch costs the adapter's kind suggests (or the caller measured), so that
//! a profile can say at once whether an epoch is launch-bound or compute-bound.
//!
//! floor = steps x (dispatches x dispatch_us + passes x pass_us) + submits x submit_us, on the GPU's
//! timeline; the host's recording (steps x record_us) runs beside it, one submit ahead, so the
//! epoch cannot be faster than the larger of the two.

/// Per-launch costs in µs.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct LaunchCosts {
    /// The GPU's gap per dispatch inside one compute pass.
    pub dispatch_us: f64,
    /// The extra cost of a pass boundary (barrier and pass set-up) per pass.
    pub pass_us: f64,
    /// One submit: driver, queue and the wait the loop eventually makes for it.
    pub submit_us: f64,
}

impl LaunchCosts {
    /// Public figures by kind of adapter, for what cannot be measured here: a GPU on Vulkan / DX12
    /// gaps ~0.6 µs per dispatch inside a pass, ~3 µs per pass boundary, ~40 µs per submit and
    /// wait (NVIDIA, Dawn); Metal ~1 µs, ~3 µs and ~1,000 µs (Apple M2); a CPU driver (lavapipe)
    /// ~14 µs per dispatch (DESIGN.md). `aegpu profile` measures the pass and submit costs on the
    /// adapter and replaces these two.
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> LaunchCosts {
        match (info.device_type, info.backend) {
            (wgpu::DeviceType::Cpu, _) => LaunchCosts { dispatch_us: 14.0, pass_us: 3.0, submit_us: 40.0 },
            (_, wgpu::Backend::Metal) => LaunchCosts { dispatch_us: 1.0, pass_us: 3.0, submit_us: 1000.0 },
            _ => LaunchCosts { dispatch_us: 0.6, pass_us: 3.0, submit_us: 40.0 },
        }
    }

    /// The epoch's floor for `steps` steps of `dispatches` dispatches in `passes` passes, recorded
    /// `steps_per_submit` at a time, with the host recording each step in `record_us`.
    pub fn floor(
        &self,
        steps: usize,
        dispatches: usize,
        passes: usize,
        steps_per_submit: usize,
        record_us: f64,
    ) -> LaunchFloor {
        let submits = steps.div_ceil(steps_per_submit.max(1));
        let gpu_us = steps as f64 * (dispatches as f64 * self.dispatch_us + passes as f64 * self.pass_us)
            + submits as f64 * self.submit_us;
        LaunchFloor {
            costs: *self,
            steps,
            submits,
            gpu_launch_ms: gpu_us / 1e3,
            host_record_ms: steps as f64 * record_us / 1e3,
        }
    }
}

/// An epoch's launch floor (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct LaunchFloor {
    /// The per-launch costs it assumed.
    pub costs: LaunchCosts,
    /// Steps of the epoch.
    pub steps: usize,
    /// Submits of the epoch.
    pub submits: usize,
    /// Launch cost on the GPU's timeline, ms.
    pub gpu_launch_ms: f64,
    /// The host's recording of every step, ms.
    pub host_record_ms: f64,
}

impl LaunchFloor {
    /// The larger of the two timelines: no epoch of these launches is faster, ms.
    pub fn ms(&self) -> f64 {
        self.gpu_launch_ms.max(self.host_record_ms)
    }

    /// "launch-bound" when the floor is at least half of `measured_ms` (the epoch measured or
    /// predicted from the step's GPU time), else "compute-bound".
    pub fn verdict(&self, measured_ms: f64) -> &'static str {
        if self.ms() >= 0.5 * measured_ms { "launch-bound" } else { "compute-bound" }
    }
}
