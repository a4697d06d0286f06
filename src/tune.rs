//! Per-adapter kernel choice by measurement, cached in memory and on disk.
//!
//! The register-blocked matmul wins on CPU adapters and the workgroup-tiled one on real GPUs, but
//! which one wins is measured, never guessed: each variant runs the three products of a dense layer
//! on one shape, and the faster total is kept. `AEGPU_MATMUL=reg|tiled` forces a variant;
//! the cache lives in `$XDG_CACHE_HOME/aegpu/tuning.json` (or `~/.cache/aegpu/`), keyed by adapter
//! and driver, and `AEGPU_RETUNE=1` ignores it.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer};
use crate::kernels::Activation;
use crate::kernels::matmul::{Matmul, MatmulVariant, Transpose};
use crate::runner::{Plan, View};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// The chosen matmul variant and how it was chosen.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Tuning {
    pub matmul: MatmulVariant,
    /// GFLOP/s measured for each variant (empty when forced by the environment).
    pub measured: Vec<(MatmulVariant, f64)>,
    /// "measured", "cache" or "env".
    pub source: String,
    /// The shape measured, M x N x K.
    pub shape: [usize; 3],
}

const SHAPE: [usize; 3] = [256, 256, 256];

impl Gpu {
    /// The matmul variant for this adapter (measured once per process, cached on disk).
    pub fn tuning(&self) -> Result<&Tuning> {
        if let Some(t) = self.tuning_cell().get() {
            return Ok(t);
        }
        let t = choose(self)?;
        Ok(self.tuning_cell().get_or_init(|| t))
    }

    pub fn matmul_variant(&self) -> Result<MatmulVariant> {
        Ok(self.tuning()?.matmul)
    }

    /// A key naming the adapter, its driver, and the device features the variants depend on (a
    /// borrowed device may lack subgroups the same adapter offers), for the on-disk cache.
    pub fn adapter_key(&self) -> String {
        let i = &self.info;
        let subgroups = self.features.contains(wgpu::Features::SUBGROUP);
        format!(
            "{}|{:?}|{:x}:{:x}|{}|{}|subgroups={subgroups}",
            i.name, i.backend, i.vendor, i.device, i.driver, i.driver_info
        )
    }
}

fn choose(gpu: &Gpu) -> Result<Tuning> {
    if let Ok(v) = std::env::var("AEGPU_MATMUL") {
        let matmul = MatmulVariant::parse(&v)
            .ok_or_else(|| Error::Config(format!("AEGPU_MATMUL={v}: use 'reg', 'tiled' or 'subgroup'")))?;
        if !MatmulVariant::available(gpu).contains(&matmul) {
            return Err(Error::Config(format!(
                "AEGPU_MATMUL={v}: this device cannot run it (the subgroup kernel needs Features::SUBGROUP \
                 and subgroups of at least 8)"
            )));
        }
        return Ok(Tuning { matmul, measured: Vec::new(), source: "env".into(), shape: SHAPE });
    }
    let key = gpu.adapter_key();
    let retune = std::env::var("AEGPU_RETUNE").is_ok_and(|v| v != "0");
    let mut cache = read_cache();
    // The cache is per adapter, but a borrowed device may lack a feature the cached choice needs.
    if !retune
        && let Some(t) = cache.get(&key)
        && MatmulVariant::available(gpu).contains(&t.matmul)
    {
        let mut t = t.clone();
        t.source = "cache".into();
        return Ok(t);
    }
    let measured = MatmulVariant::available(gpu)
        .into_iter()
        .map(|v| Ok((v, measure(gpu, v, SHAPE)?)))
        .collect::<Result<Vec<_>>>()?;
    let best =
        measured.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|&(v, _)| v).unwrap_or(MatmulVariant::Reg);
    let t = Tuning { matmul: best, measured, source: "measured".into(), shape: SHAPE };
    cache.insert(key, t.clone());
    write_cache(&cache); // best effort: a read-only home only costs a re-measure next time
    Ok(t)
}

/// GFLOP/s of `variant` over the three dense-layer products of shape M x N x K (best of a few runs,
/// each run stopping after ~30 ms of work).
pub fn measure(gpu: &Gpu, variant: MatmulVariant, [m, n, k]: [usize; 3]) -> Result<f64> {
    let size = m.max(n).max(k);
    let data: Vec<f32> = (0..size * size).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
    let a = StorageBuffer::from_slice(gpu, "tune a", &data)?;
    let b = StorageBuffer::from_slice(gpu, "tune b", &data)?;
    let c = StorageBuffer::zeroed(gpu, "tune c", size * size)?;
    let launches: Vec<_> = Transpose::ALL
        .iter()
        .map(|&trans| {
            Matmul {
                c: View::whole(&c),
                a: View::whole(&a),
                b: View::whole(&b),
                bias: None,
                m,
                n,
                k,
                trans,
                act: Activation::Identity,
                accumulate: false,
                variant,
            }
            .launch()
        })
        .collect();
    let plan = Plan::new(gpu, "tune", &launches)?;
    plan.run(gpu)?; // warm-up: pipeline compilation and first-touch costs stay out of the timing
    let flops = 3.0 * Matmul::flops(m, n, k);
    let mut best = 0.0f64;
    for _ in 0..3 {
        let mut reps = 0u32;
        let start = Instant::now();
        while reps == 0 || (start.elapsed().as_secs_f64() < 0.03 && reps < 64) {
            plan.run(gpu)?;
            reps += 1;
        }
        let gflops = flops * reps as f64 / start.elapsed().as_secs_f64() / 1e9;
        best = best.max(gflops);
    }
    Ok(best)
}

fn cache_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("aegpu").join("tuning.json"))
}

fn read_cache() -> BTreeMap<String, Tuning> {
    cache_path()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn write_cache(cache: &BTreeMap<String, Tuning>) {
    if let Some(p) = cache_path() {
        let _ = p.parent().map(std::fs::create_dir_all);
        if let Ok(json) = serde_json::to_vec_pretty(cache) {
            let _ = std::fs::write(p, json);
        }
    }
}
