//! Per-adapter kernel choice by measurement, cached in memory and on disk.
//!
//! The register-blocked matmul wins on CPU adapters and the workgroup-tiled one on real GPUs, but
//! which one wins is measured, never guessed: each variant runs the three products of a dense layer
//! on one shape, and the faster total is kept. `AEGPU_MATMUL=reg|tiled` forces a variant;
//! the cache lives in `$XDG_CACHE_HOME/aegpu/tuning.json` (or `~/.cache/aegpu/`), keyed by adapter
//! and driver, and `AEGPU_RETUNE=1` ignores it.
//!
//! Convolutions are chosen per layer shape: the direct kernels against the GEMM formulation (im2col +
//! the chosen matmul), timed on that layer's forward and backward at batch 32, once per process.
//! Neither wins everywhere: on lavapipe (idle `aegpu bench`, batch 128) the GEMM is 5x faster for
//! 32 -> 64 channels and 2-7x slower for a 1-channel output, whose product is too thin.
//! `AEGPU_CONV=direct|gemm` forces one.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer};
use crate::kernels::Activation;
use crate::kernels::conv::{self, Conv2dShape};
use crate::kernels::conv_gemm::{self, GemmScratch, ScratchLens};
use crate::kernels::matmul::{Matmul, MatmulVariant, Transpose};
use crate::runner::{Plan, View};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
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

/// How convolutions run: the direct kernels of conv2d.wgsl, or im2col + matmul (conv_gemm.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvAlgorithm {
    Direct,
    Gemm,
}

/// Batch size at which a layer's algorithms are timed.
const CONV_TUNE_BATCH: usize = 32;

const SHAPE: [usize; 3] = [256, 256, 256];

/// The choices made in this process, by adapter key: the tuning state lives here, not in [`Gpu`]
/// (a host's borrowed device and the engine's own one on the same adapter share it).
fn matmul_choices() -> &'static Mutex<HashMap<String, Tuning>> {
    static CHOICES: OnceLock<Mutex<HashMap<String, Tuning>>> = OnceLock::new();
    CHOICES.get_or_init(Default::default)
}

/// Convolution algorithm by (adapter key, layer shape at the tuning batch), measured once per process.
fn conv_choices() -> &'static Mutex<HashMap<(String, Conv2dShape), ConvAlgorithm>> {
    static CHOICES: OnceLock<Mutex<HashMap<(String, Conv2dShape), ConvAlgorithm>>> = OnceLock::new();
    CHOICES.get_or_init(Default::default)
}

impl Gpu {
    /// The matmul variant for this adapter (measured once per process, cached on disk).
    pub fn tuning(&self) -> Result<Tuning> {
        let key = self.adapter_key();
        if let Some(t) = matmul_choices().lock().map_err(|_| poisoned())?.get(&key) {
            return Ok(t.clone());
        }
        let t = choose(self)?;
        matmul_choices().lock().map_err(|_| poisoned())?.insert(key, t.clone());
        Ok(t)
    }

    pub fn matmul_variant(&self) -> Result<MatmulVariant> {
        Ok(self.tuning()?.matmul)
    }

    /// The faster convolution algorithm for a conv2d of this shape (a transposed convolution: its
    /// adjoint's), timed at batch 32 once per process; `AEGPU_CONV=direct|gemm` forces one.
    pub fn conv_algorithm(&self, shape: &Conv2dShape) -> Result<ConvAlgorithm> {
        if let Ok(v) = std::env::var("AEGPU_CONV") {
            return match v.as_str() {
                "direct" => Ok(ConvAlgorithm::Direct),
                "gemm" => Ok(ConvAlgorithm::Gemm),
                _ => Err(Error::Config(format!("AEGPU_CONV={v}: use 'direct' or 'gemm'"))),
            };
        }
        let key = (self.adapter_key(), Conv2dShape { n: CONV_TUNE_BATCH, ..*shape });
        if let Some(&a) = conv_choices().lock().map_err(|_| poisoned())?.get(&key) {
            return Ok(a);
        }
        let variant = self.matmul_variant()?;
        let direct = measure_conv(self, ConvAlgorithm::Direct, variant, &key.1)?;
        let gemm = measure_conv(self, ConvAlgorithm::Gemm, variant, &key.1)?;
        let best = if gemm < direct { ConvAlgorithm::Gemm } else { ConvAlgorithm::Direct };
        conv_choices().lock().map_err(|_| poisoned())?.insert(key, best);
        Ok(best)
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

fn poisoned() -> Error {
    Error::Config("the kernel tuning table was poisoned by a panic in another thread".into())
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
    let cache = read_cache();
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
    let mut cache = cache;
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
                splits: 1,
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

/// Milliseconds of a conv2d layer's forward and backward with `algo` (best of three runs, after a
/// warm-up).
pub fn measure_conv(gpu: &Gpu, algo: ConvAlgorithm, variant: MatmulVariant, s: &Conv2dShape) -> Result<f64> {
    let s = *s;
    let buf = |label: &str, len: usize| -> Result<View> {
        let data: Vec<f32> = (0..len).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
        Ok(View::whole(&StorageBuffer::from_slice(gpu, label, &data)?))
    };
    let (x, w, b, y, dy) = (
        buf("tune x", s.input_len())?,
        buf("tune w", s.weight_len())?,
        buf("tune b", s.bias_len())?,
        buf("tune y", s.output_len())?,
        buf("tune dy", s.output_len())?,
    );
    let (dx, dw, db) =
        (buf("tune dx", s.input_len())?, buf("tune dw", s.weight_len())?, buf("tune db", s.bias_len())?);
    let mut launches = match algo {
        ConvAlgorithm::Direct => vec![
            conv::conv2d_forward(&y, &x, &w, Some(&b), &s, Activation::Relu),
            conv::conv2d_backward_weight(&dw, &dy, &x, &s),
            conv::conv2d_backward_input(&dx, &dy, &w, &s),
        ],
        ConvAlgorithm::Gemm => {
            let l = ScratchLens::of(&s);
            let scratch = GemmScratch {
                col: buf("tune col", l.col)?,
                cn: buf("tune cn", l.cn)?,
                parts: buf("tune parts", l.parts)?,
            };
            let mut v =
                conv_gemm::conv2d_forward(&y, &x, &w, Some(&b), &s, Activation::Relu, &scratch, variant);
            v.extend(conv_gemm::conv2d_backward(&dw, Some(&dx), &dy, &x, &w, &s, &scratch, variant));
            v
        }
    };
    launches.push(conv::conv2d_backward_bias(&db, &dy, &s));
    let plan = Plan::new(gpu, "tune conv", &launches)?;
    plan.run(gpu)?;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        plan.run(gpu)?;
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
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
