//! The cooperative-matrix matmul of `shaders/matmul_coop.wgsl` (tensor cores on NVIDIA, simdgroup
//! matrices on Apple): the matmul contract on 8x8 f32 tiles ([`MatmulVariant::Coop8x8`], a variant
//! the tuner verifies and times like the others) or on 8x8 / 16x16 tiles with f16 operands and f32
//! accumulators ([`MatmulVariant::Coop8x8H`]: lavapipe's shape; [`MatmulVariant::Coop16x16H`]:
//! NVIDIA's), precision paths the tuner never picks: `aegpu bench --coop` times them,
//! `AEGPU_MATMUL=coop16x16h` opts a run into one. All need wgpu's experimental
//! cooperative-matrix feature, requested with `AEGPU_COOPERATIVE_MATRIX=1` (or
//! [`crate::gpu::GpuOptions::cooperative_matrix`]), the shape among the adapter's, and subgroups of
//! one fixed width (a workgroup is one subgroup; the pipeline cache sets `SUBGROUP_SIZE`).

use super::matmul::{MatmulVariant, Transpose};
use crate::gpu::{Gpu, PipelineKey, Shader};
use wgpu::CooperativeScalarType as Scalar;

/// `shaders/matmul_coop.wgsl` after its prelude `$pre` (tile shape and types) and the activations.
macro_rules! coop_shader {
    ($name:literal, $pre:literal) => {
        Shader {
            name: $name,
            source: concat!(
                include_str!(concat!("../../shaders/", $pre, ".wgsl")),
                include_str!("../../shaders/activation_fns.wgsl"),
                include_str!("../../shaders/matmul_coop.wgsl")
            ),
        }
    };
}

/// 8x8 f32 tiles.
pub const SHADER_8_F32: Shader = coop_shader!("matmul_coop_8_f32", "matmul_coop_8_f32");
/// 8x8 tiles, f16 operands, f32 accumulators.
pub const SHADER_8_F16: Shader = coop_shader!("matmul_coop_8_f16", "matmul_coop_8_f16");
/// 16x16 tiles, f16 operands, f32 accumulators.
pub const SHADER_16_F16: Shader = coop_shader!("matmul_coop_16_f16", "matmul_coop_16_f16");

/// The one entry point of the three shaders.
pub const ENTRY: &str = "matmul_coop";

/// The tile edge, operand and accumulator types of a cooperative variant; `None` for the others.
pub fn tile(variant: MatmulVariant) -> Option<(u32, Scalar, Scalar)> {
    match variant {
        MatmulVariant::Coop8x8 => Some((8, Scalar::F32, Scalar::F32)),
        MatmulVariant::Coop8x8H => Some((8, Scalar::F16, Scalar::F32)),
        MatmulVariant::Coop16x16H => Some((16, Scalar::F16, Scalar::F32)),
        _ => None,
    }
}

/// Whether this device runs `variant` (a cooperative one): the feature, the tile shape among the
/// adapter's, f16 in shaders for f16 operands, and one fixed subgroup width of at least 8 lanes
/// (exactly 8 on lavapipe, [`Gpu::fixed_subgroup_width`]).
pub fn runs_on(gpu: &Gpu, variant: MatmulVariant) -> bool {
    let Some((edge, ab, cr)) = tile(variant) else { return false };
    gpu.has_cooperative_matrix(edge, ab, cr) && (ab != Scalar::F16 || gpu.has_f16()) && width_ok(gpu)
}

/// Every subgroup has the same width ([`Gpu::fixed_subgroup_width`]), of at least 8 lanes (a
/// workgroup is one subgroup). lavapipe (Mesa 26.2) lists cooperative matrices at every
/// `LP_NATIVE_VECTOR_WIDTH` but crashes running them at widths other than 8 lanes, so it is only
/// used there.
fn width_ok(gpu: &Gpu) -> bool {
    let lavapipe = gpu.info.driver.to_lowercase().contains("llvmpipe");
    gpu.fixed_subgroup_width().is_some_and(|w| w >= 8 && (!lavapipe || w == 8))
}

/// Why `variant` (a cooperative one) does not run on this device, for error messages.
pub fn why_not(gpu: &Gpu, variant: MatmulVariant) -> String {
    let Some((edge, ab, cr)) = tile(variant) else { return format!("{} is not cooperative", variant.name()) };
    if !gpu.offers_cooperative_matrix() {
        return "the adapter offers no cooperative matrices".into();
    }
    if !gpu.features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        return "the device was created without cooperative matrices: set AEGPU_COOPERATIVE_MATRIX=1".into();
    }
    if !gpu.has_cooperative_matrix(edge, ab, cr) {
        return format!(
            "the adapter has no {edge}x{edge}x{edge} {ab:?} x {ab:?} -> {cr:?} cooperative matrix"
        );
    }
    if ab == Scalar::F16 && !gpu.has_f16() {
        return "the device has no f16 in shaders (Features::SHADER_F16)".into();
    }
    format!(
        "its subgroups are {}-{} invocations wide; the cooperative kernels need one width of at least 8 \
         (on lavapipe exactly 8: LP_NATIVE_VECTOR_WIDTH=256, whose cooperative matrices crash at others)",
        gpu.info.subgroup_min_size, gpu.info.subgroup_max_size
    )
}

/// Why none of the cooperative variants runs here: the device's reason, or each variant's.
pub fn why_none(gpu: &Gpu) -> String {
    let all: Vec<String> = MatmulVariant::ALL
        .into_iter()
        .filter(|v| tile(*v).is_some())
        .map(|v| (v.name(), why_not(gpu, v)))
        .map(|(name, why)| format!("{name}: {why}"))
        .collect();
    match gpu.features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        true => all.join("; "),
        false => why_not(gpu, MatmulVariant::Coop8x8),
    }
}

/// The pipeline of `variant` (a cooperative one) for one transpose form.
pub fn pipeline_key(variant: MatmulVariant, trans: Transpose) -> PipelineKey {
    let (ta, tb) = trans.flags();
    let shader = match variant {
        MatmulVariant::Coop8x8H => SHADER_8_F16,
        MatmulVariant::Coop16x16H => SHADER_16_F16,
        _ => SHADER_8_F32,
    };
    PipelineKey::new(shader, ENTRY, &[("TRANS_A", ta as u32 as f64), ("TRANS_B", tb as u32 as f64)])
}

/// Accumulator tiles along each side of a workgroup's block (`R` in the shader).
const TILES_PER_SIDE: usize = 4;

/// (columns, rows) of C one workgroup covers: 4x4 tiles.
pub fn block(variant: MatmulVariant) -> Option<(usize, usize)> {
    tile(variant).map(|(edge, _, _)| (TILES_PER_SIDE * edge as usize, TILES_PER_SIDE * edge as usize))
}

/// The listing `aegpu info` prints: each shape and type the adapter multiplies, e.g.
/// `16x16x16 f16 -> f32`.
pub fn describe(configs: &[wgpu::CooperativeMatrixProperties]) -> String {
    let name = |s: Scalar| format!("{s:?}").to_lowercase();
    let all: Vec<String> = configs
        .iter()
        .map(|c| format!("{}x{}x{} {} -> {}", c.m_size, c.n_size, c.k_size, name(c.ab_type), name(c.cr_type)))
        .collect();
    all.join(", ")
}
