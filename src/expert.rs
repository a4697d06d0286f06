//! The engine's inner layers, public for the command line's tools, the tests and benchmarks, and
//! people who write kernels: the CPU reference of every kernel, the layer list, plans of
//! dispatches, the kernel tuner, GPU timestamps, the datasets' GPU residency, evaluation, the
//! multi-step runner, resumable runs. What an application needs is reachable from the crate root's
//! modules; these change when the engine does.
//!
//! (The files stay where they were, `src/runner.rs`, `src/tune/`, ...: this module only groups
//! them under one public name.)

#[path = "atomic_file.rs"]
pub mod atomic_file;
#[path = "average.rs"]
pub mod average;
#[path = "cpu/mod.rs"]
pub mod cpu;
#[path = "evaluate.rs"]
pub mod evaluate;
#[path = "gpu_data.rs"]
pub mod gpu_data;
#[path = "nn/mod.rs"]
pub mod nn;
#[path = "profile.rs"]
pub mod profile;
#[path = "resume.rs"]
pub mod resume;
#[path = "runner.rs"]
pub mod runner;
#[path = "steps.rs"]
pub mod steps;
#[path = "tune/mod.rs"]
pub mod tune;
