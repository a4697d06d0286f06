//! The GPU-grade tiled SGEMM of `shaders/matmul_sgemm.wgsl`: its tile configurations (each one
//! [`MatmulVariant`] the tuner verifies and times) and how an operand is read, a vec4 at a time or
//! one word at a time, decided per product from its shape and its views.

use super::matmul::{MatmulVariant, Transpose};
use crate::gpu::{PipelineKey, Shader, View};

/// The kernel with operand A read as `VEC_A` words and B as `VEC_B` words per load (4 = vec4).
macro_rules! sgemm_shader {
    ($name:literal, $a:literal, $b:literal) => {
        Shader {
            name: $name,
            source: concat!(
                include_str!("../../shaders/activation_fns.wgsl"),
                include_str!("../../shaders/matmul_sgemm.wgsl"),
                include_str!(concat!("../../shaders/matmul_sgemm_a_", $a, ".wgsl")),
                include_str!(concat!("../../shaders/matmul_sgemm_b_", $b, ".wgsl"))
            ),
        }
    };
}

/// `shaders/matmul_sgemm.wgsl` with each combination of operand loads: `[[a1_b1, a1_b4], [a4_b1, a4_b4]]`.
pub const SHADERS: [[Shader; 2]; 2] = [
    [
        sgemm_shader!("matmul_sgemm_a1_b1", "scalar", "scalar"),
        sgemm_shader!("matmul_sgemm_a1_b4", "scalar", "vec4"),
    ],
    [
        sgemm_shader!("matmul_sgemm_a4_b1", "vec4", "scalar"),
        sgemm_shader!("matmul_sgemm_a4_b4", "vec4", "vec4"),
    ],
];

/// One tile configuration: a workgroup of 256 invocations, `wg_x` across the columns, each owning a
/// `micro` x `micro` block of C, over k-tiles of depth `bk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgemmConfig {
    pub micro: u32,
    pub wg_x: u32,
    pub bk: u32,
}

impl SgemmConfig {
    /// (columns, rows) of C one workgroup covers.
    pub fn block(self) -> (usize, usize) {
        ((self.wg_x * self.micro) as usize, ((256 / self.wg_x) * self.micro) as usize)
    }

    pub fn entry(self) -> &'static str {
        if self.micro == 8 { "sgemm_8x8" } else { "sgemm_4x4" }
    }

    /// The override constants (besides TRANS_A / TRANS_B) the host passes.
    pub fn constants(self) -> [(&'static str, f64); 3] {
        [("WG_X", self.wg_x as f64), ("MICRO", self.micro as f64), ("BK", self.bk as f64)]
    }
}

/// The configuration of an SGEMM variant; `None` for the others.
pub fn config(variant: MatmulVariant) -> Option<SgemmConfig> {
    match variant {
        MatmulVariant::Sgemm128x128 => Some(SgemmConfig { micro: 8, wg_x: 16, bk: 8 }),
        MatmulVariant::Sgemm64x64 => Some(SgemmConfig { micro: 4, wg_x: 16, bk: 16 }),
        MatmulVariant::Sgemm32x128 => Some(SgemmConfig { micro: 4, wg_x: 32, bk: 16 }),
        _ => None,
    }
}

/// Whether an operand stored as rows of `row_len` words can be read a vec4 at a time: its rows (and
/// so every quad the kernel reads) start at a multiple of 4 words, and so does the view, which
/// array<vec4<f32>> indexes from its start.
pub fn vec4_ok(view: &View, row_len: usize) -> bool {
    row_len > 0 && row_len.is_multiple_of(4) && view.offset.is_multiple_of(4)
}

/// The pipeline of `config` for one transpose form and operand load widths.
pub fn pipeline_key(config: SgemmConfig, trans: Transpose, vec_a: bool, vec_b: bool) -> PipelineKey {
    let (ta, tb) = trans.flags();
    let [wg_x, micro, bk] = config.constants();
    PipelineKey::new(
        SHADERS[vec_a as usize][vec_b as usize],
        config.entry(),
        &[("TRANS_A", ta as u32 as f64), ("TRANS_B", tb as u32 as f64), wg_x, micro, bk],
    )
}

/// Every pipeline the host may build for `config` and `trans` (the four load-width combinations).
pub fn pipeline_keys(config: SgemmConfig, trans: Transpose) -> Vec<PipelineKey> {
    [(false, false), (false, true), (true, false), (true, true)]
        .into_iter()
        .map(|(va, vb)| pipeline_key(config, trans, va, vb))
        .collect()
}
