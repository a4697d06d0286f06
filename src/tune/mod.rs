//! Per-adapter kernel choice by verification, then measurement, cached in memory and on disk.
//!
//! Which matmul variant wins is measured, never guessed, and only among the variants that first
//! computed the CPU reference's results on awkward shapes on this adapter (`verify`): a fast but
//! wrong kernel is excluded and the reason logged and cached. The survivors run the three products
//! of a dense layer on one shape per class, many repetitions per submit (so the time is the GPU's,
//! not a submit-and-wait round trip's), and the fastest is kept for each shape class of product
//! ([`ShapeClass`]: outputs with a side under 64, the dense layers' sizes, 1024x1024 and more),
//! timed on a shape of that class, so every product a model runs uses the variant that won on
//! products like it ([`MatmulPolicy`]). `AEGPU_MATMUL=reg|tiled|subgroup|
//! sgemm128x128|sgemm64x64|sgemm32x128|coop8x8|coop8x8h|coop16x16h` forces one variant for every class (the
//! cooperative-matrix ones need `AEGPU_COOPERATIVE_MATRIX=1`; those with f16 operands are only ever
//! run when forced); the cache lives in
//! `$XDG_CACHE_HOME/aegpu/tuning.json` (or `~/.cache/aegpu/`), keyed by adapter, backend, driver,
//! engine version and a hash of the shader sources (a changed kernel is verified and measured
//! again), and `AEGPU_RETUNE=1` ignores it.
//!
//! Convolutions are chosen per layer shape among the direct kernels, the GEMM formulation (im2col +
//! the chosen matmul) and the implicit GEMM (tiled products that read im2col elements on the fly),
//! each verified against the CPU reference at batch 2, then timed on that
//! layer's forward and backward at batch 32; the choice is cached with the matmul's and recorded in
//! a run's checkpoint (`aegpu.conv_algorithms`).
//! Neither wins everywhere: on lavapipe (idle `aegpu bench`, batch 128) the GEMM is 5x faster for
//! 32 -> 64 channels and 2-7x slower for a 1-channel output, whose product is too thin.
//! `AEGPU_CONV=direct|gemm|implicit_gemm` forces one.

mod conv_choice;
mod verify;
mod verify_half;
pub use conv_choice::{ConvAlgorithm, measure_conv, verify_conv_algorithm};
use conv_choice::{choose_conv, direct_fits};
pub use verify::{MatmulCandidate, verify_matmul};
pub use verify_half::{check_f16_policy, verify_f16_products};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, StorageBuffer};
use crate::kernels::Activation;
use crate::kernels::conv::{self, Conv2dShape};
use crate::kernels::matmul::{Half, Matmul, MatmulVariant, Transpose};
use crate::kernels::matmul_coop;
use crate::kernels::matmul_policy::{MatmulPolicy, ShapeClass};
use crate::runner::{Plan, View};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// The chosen matmul variants and how they were chosen.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Tuning {
    /// The variant of each shape class.
    pub policy: MatmulPolicy,
    /// Each class's timing (empty when forced by the environment).
    pub classes: Vec<ClassTiming>,
    /// "measured", "cache" or "env".
    pub source: String,
    /// Candidates excluded because they computed a wrong result here: (name, first difference).
    #[serde(default)]
    pub failed: Vec<(String, String)>,
}

/// The variants timed on one shape class's products.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ClassTiming {
    /// The class's name (`narrow`, `wide`, `large`).
    pub class: String,
    /// The shape timed, M x N x K.
    pub shape: [usize; 3],
    /// GFLOP/s of each variant timed.
    pub measured: Vec<(MatmulVariant, f64)>,
}

/// What [`select_matmul`] found.
pub struct Selection {
    /// Index of the fastest correct candidate.
    pub chosen: usize,
    /// GFLOP/s of every correct candidate, by index.
    pub measured: Vec<(usize, f64)>,
    /// Every wrong candidate's index and first difference.
    pub failed: Vec<(usize, String)>,
}

/// Batch size at which a layer's algorithms are timed.
const CONV_TUNE_BATCH: usize = 32;

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
        // Another thread may have measured too, meanwhile: the first choice stored is the one
        // everybody in this process runs (a model built with it and one restored later agree).
        Ok(matmul_choices().lock().map_err(|_| poisoned())?.entry(key).or_insert(t).clone())
    }

    /// The matmul variant of each shape class of product.
    pub fn matmul_policy(&self) -> Result<MatmulPolicy> {
        Ok(self.tuning()?.policy)
    }

    /// The faster convolution algorithm for a conv2d of this shape (a transposed convolution: its
    /// adjoint's), timed at batch 32 once per process; `AEGPU_CONV=direct|gemm|implicit_gemm` forces one.
    pub fn conv_algorithm(&self, shape: &Conv2dShape) -> Result<ConvAlgorithm> {
        if let Ok(v) = std::env::var("AEGPU_CONV") {
            let forced = ConvAlgorithm::ALL.into_iter().find(|a| a.name() == v).ok_or_else(|| {
                Error::Config(format!("AEGPU_CONV={v}: use 'direct', 'gemm' or 'implicit_gemm'"))
            })?;
            if forced == ConvAlgorithm::Direct && !direct_fits(shape) {
                return Err(Error::Config(format!(
                    "AEGPU_CONV=direct: a layer of {} input and {} output channels with a {}x{} kernel \
                     loops {} times per invocation, past what lavapipe runs ({}); use gemm or implicit_gemm",
                    shape.c_in,
                    shape.c_out,
                    shape.kh,
                    shape.kw,
                    conv::direct_loop_steps(shape),
                    crate::kernels::MAX_LOOP_STEPS
                )));
            }
            return Ok(forced);
        }
        let key = (self.adapter_key(), Conv2dShape { n: CONV_TUNE_BATCH, ..*shape });
        if let Some(&a) = conv_choices().lock().map_err(|_| poisoned())?.get(&key) {
            return Ok(a);
        }
        let disk_key = format!("{}|{:?}", key.0, key.1);
        let retune = std::env::var("AEGPU_RETUNE").is_ok_and(|v| v != "0");
        let mut cache = read_cache();
        let best = match cache.conv.get(&disk_key) {
            Some(&a) if !retune => a,
            _ => {
                let best = choose_conv(self, &key.1)?;
                cache.conv.insert(disk_key, best);
                write_cache(&cache);
                best
            }
        };
        // As for the matmul: the first choice stored in this process wins, so two threads that
        // measured the same layer at once still run the same algorithm.
        Ok(*conv_choices().lock().map_err(|_| poisoned())?.entry(key).or_insert(best))
    }

    /// A key naming the adapter, its driver, and the device features the variants depend on (a
    /// borrowed device may lack subgroups the same adapter offers), for the on-disk cache.
    /// The engine version and a hash of every shader's source are part of it: a changed kernel
    /// is verified and measured again.
    pub fn adapter_key(&self) -> String {
        let i = &self.info;
        let subgroups = self.features.contains(wgpu::Features::SUBGROUP);
        // Only a device with cooperative matrices adds this: the keys of the others stay as they were.
        let coop = if self.features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
            "|cooperative matrices"
        } else {
            ""
        };
        format!(
            "{}|{:?}|{:x}:{:x}|{}|{}|subgroups={subgroups}{coop}|aegpu {}|shaders {:016x}",
            i.name,
            i.backend,
            i.vendor,
            i.device,
            i.driver,
            i.driver_info,
            env!("CARGO_PKG_VERSION"),
            shader_hash()
        )
    }
}

/// FNV-1a over every shader's name and source: stable across Rust releases (unlike std's hasher),
/// which a key written to disk needs.
fn shader_hash() -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for (name, source) in crate::kernels::SHADERS {
        for byte in name.bytes().chain([0]).chain(source.bytes()) {
            h = (h ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn poisoned() -> Error {
    Error::Config("the kernel tuning table was poisoned by a panic in another thread".into())
}

fn choose(gpu: &Gpu) -> Result<Tuning> {
    if let Ok(v) = std::env::var("AEGPU_MATMUL") {
        let matmul = MatmulVariant::parse(&v).ok_or_else(|| {
            let names: Vec<String> = MatmulVariant::ALL.iter().map(|v| v.name()).collect();
            Error::Config(format!("AEGPU_MATMUL={v}: use one of {}", names.join(", ")))
        })?;
        if !MatmulVariant::available(gpu).contains(&matmul) {
            let why = match matmul_coop::tile(matmul) {
                Some(_) => matmul_coop::why_not(gpu, matmul),
                None => "the subgroup kernel needs Features::SUBGROUP and subgroups of at least 8".into(),
            };
            return Err(Error::Config(format!("AEGPU_MATMUL={v}: this device cannot run it ({why})")));
        }
        return Ok(Tuning {
            policy: MatmulPolicy::uniform(matmul),
            classes: Vec::new(),
            source: "env".into(),
            failed: Vec::new(),
        });
    }
    let key = gpu.adapter_key();
    let retune = std::env::var("AEGPU_RETUNE").is_ok_and(|v| v != "0");
    let mut cache = read_cache();
    // The cache is per adapter, but a borrowed device may lack a feature the cached choice needs.
    if !retune
        && let Some(t) = cache.matmul.get(&key)
        && ShapeClass::ALL.iter().all(|&c| MatmulVariant::available(gpu).contains(&t.policy.class(c)))
    {
        let mut t = t.clone();
        t.source = "cache".into();
        return Ok(t);
    }
    // A variant that rounds its operands (f16 tensor-core tiles) is a precision path: asked for, not chosen.
    let candidates: Vec<MatmulCandidate> = MatmulVariant::available(gpu)
        .into_iter()
        .filter(|v| !v.rounds_operands())
        .map(MatmulCandidate::variant)
        .collect();
    let (correct, failed) = verified(gpu, &candidates)?;
    let variant = |i: usize| candidates[i].variant.expect("the engine's variants");
    let mut policy = MatmulPolicy::uniform(variant(correct[0]));
    let mut classes = Vec::new();
    // Wide first: a variant under a quarter of its best there is not timed on the large shape
    // (its products take seconds on a CPU adapter, for a variant that cannot win).
    let mut wide_best = 0.0f64;
    for class in [ShapeClass::Wide, ShapeClass::Narrow, ShapeClass::Large] {
        let shape = class.tuning_shape();
        let mut measured = Vec::new();
        for &i in &correct {
            let wide =
                classes.first().and_then(|w: &ClassTiming| w.measured.iter().find(|m| m.0 == variant(i)));
            if class == ShapeClass::Large && wide.is_some_and(|w| w.1 < wide_best / 4.0) {
                continue;
            }
            measured.push((variant(i), measure_candidate(gpu, &candidates[i], shape)?));
        }
        let best = *measured.iter().max_by(|a, b| a.1.total_cmp(&b.1)).expect("at least one timed");
        match class {
            ShapeClass::Narrow => policy.narrow = best.0,
            ShapeClass::Wide => (policy.wide, wide_best) = best,
            ShapeClass::Large => policy.large = best.0,
        }
        classes.push(ClassTiming { class: class.name().into(), shape, measured });
    }
    let t = Tuning {
        policy,
        classes,
        source: "measured".into(),
        failed: failed.iter().map(|(i, why)| (candidates[*i].name.clone(), why.clone())).collect(),
    };
    for (name, why) in &t.failed {
        log_line(&format!(
            "aegpu: the {name} matmul computes wrong results on this adapter and is not used: {why}"
        ));
    }
    cache.matmul.insert(key, t.clone());
    write_cache(&cache); // best effort: a read-only home only costs a re-measure next time
    Ok(t)
}

/// Verifies every candidate against the CPU reference, then times the correct ones on the three
/// products of shape `shape` and picks the fastest. An error when none is correct.
pub fn select_matmul(gpu: &Gpu, candidates: &[MatmulCandidate], shape: [usize; 3]) -> Result<Selection> {
    let (correct, failed) = verified(gpu, candidates)?;
    let mut measured = Vec::new();
    for i in correct {
        measured.push((i, measure_candidate(gpu, &candidates[i], shape)?));
    }
    let chosen = measured.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|&(i, _)| i).expect("one correct");
    Ok(Selection { chosen, measured, failed })
}

/// Candidates by index, each wrong one with its first difference.
type Verdicts = (Vec<usize>, Vec<(usize, String)>);

/// The indices of the candidates that compute the CPU reference's results here, and every other
/// one's first difference; an error when none is correct.
fn verified(gpu: &Gpu, candidates: &[MatmulCandidate]) -> Result<Verdicts> {
    let (mut correct, mut failed) = (Vec::new(), Vec::new());
    for (i, c) in candidates.iter().enumerate() {
        match verify_matmul(gpu, c)? {
            Ok(()) => correct.push(i),
            Err(why) => failed.push((i, why)),
        }
    }
    if correct.is_empty() {
        let reasons: Vec<String> =
            failed.iter().map(|(i, w)| format!("{}: {w}", candidates[*i].name)).collect();
        return Err(Error::Config(format!(
            "no matmul kernel computes correct results on this adapter (a driver bug?): {}",
            reasons.join("; ")
        )));
    }
    Ok((correct, failed))
}

/// A warning through the `log` facade (the library never prints; the CLI shows warnings).
fn log_line(line: &str) {
    log::warn!("{line}");
}

/// GFLOP/s of `variant` over the three dense-layer products of shape M x N x K.
pub fn measure(gpu: &Gpu, variant: MatmulVariant, shape: [usize; 3]) -> Result<f64> {
    measure_candidate(gpu, &MatmulCandidate::variant(variant), shape)
}

/// GFLOP/s of `candidate` over the three dense-layer products of shape M x N x K: the best of
/// three submits, each holding as many repetitions as ~30 ms of the warm-up's pace allow, so that
/// the time is the GPU's and not the submit-and-wait latency's.
pub fn measure_candidate(gpu: &Gpu, candidate: &MatmulCandidate, [m, n, k]: [usize; 3]) -> Result<f64> {
    let size = m.max(n).max(k);
    let data: Vec<f32> = (0..size * size).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
    let a = StorageBuffer::from_slice(gpu, "tune a", &data)?;
    let b = StorageBuffer::from_slice(gpu, "tune b", &data)?;
    let c = StorageBuffer::zeroed(gpu, "tune c", size * size)?;
    let launches: Vec<_> = Transpose::ALL
        .iter()
        .map(|&trans| {
            candidate.launch(&Matmul {
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
                variant: MatmulVariant::Reg,
                splits: 1,
                half: Half::NONE,
            })
        })
        .collect();
    let plan = Plan::new(gpu, "tune", &launches)?;
    let start = Instant::now();
    plan.run(gpu)?; // warm-up: pipeline compilation and first-touch costs stay out of the timing
    let once = start.elapsed().as_secs_f64().max(1e-6);
    let reps = ((0.03 / once) as usize).clamp(2, 64);
    let flops = 3.0 * Matmul::flops(m, n, k);
    let mut best = 0.0f64;
    for _ in 0..3 {
        let start = Instant::now();
        plan.run_repeated(gpu, reps)?;
        best = best.max(flops * reps as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    Ok(best)
}

/// The on-disk cache: the matmul tuning by adapter key, the conv choices by adapter key and shape.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Cache {
    #[serde(default)]
    matmul: BTreeMap<String, Tuning>,
    #[serde(default)]
    conv: BTreeMap<String, ConvAlgorithm>,
}

fn cache_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("aegpu").join("tuning.json"))
}

fn read_cache() -> Cache {
    cache_path()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn write_cache(cache: &Cache) {
    if let Some(p) = cache_path() {
        let _ = p.parent().map(std::fs::create_dir_all);
        if let Ok(json) = serde_json::to_vec_pretty(cache) {
            let _ = std::fs::write(p, json);
        }
    }
}
