//! The GPU-grade tiled SGEMM of `shaders/matmul_sgemm.wgsl`: its tile configurations (each one
//! [`MatmulVariant`] the tuner verifies and times) and how an operand is read, a vec4 at a time or
//! one word at a time, decided per product from its shape and its views, and the same for an
//! operand stored as f16 (the opt-in f16 activation storage, which may store C as f16 too).

use super::matmul::{MatmulVariant, Transpose};
use crate::gpu::{PipelineKey, Shader, View};

/// The kernel with operand A read as `$a`, B as `$b` (scalar: one word per load, vec4: a vec4,
/// half: one f16, half4: a vec4<f16>) and C stored as `$c` (f32 or half); `$pre` is `enable f16;`
/// when any of them is f16.
macro_rules! sgemm_shader {
    ($name:literal, $pre:literal, $a:literal, $b:literal, $c:literal) => {
        Shader {
            name: $name,
            source: concat!(
                $pre,
                include_str!("../../shaders/activation_fns.wgsl"),
                include_str!("../../shaders/matmul_sgemm.wgsl"),
                include_str!(concat!("../../shaders/matmul_sgemm_a_", $a, ".wgsl")),
                include_str!(concat!("../../shaders/matmul_sgemm_b_", $b, ".wgsl")),
                include_str!(concat!("../../shaders/matmul_sgemm_c_", $c, ".wgsl"))
            ),
        }
    };
}

/// How the kernel reads an operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Load {
    /// One f32 word at a time (any shape and offset).
    Scalar = 0,
    /// A vec4 of f32 at a time (see [`vec4_ok`]).
    Vec4 = 1,
    /// One f16 value at a time, widened to f32 (the opt-in f16 activation storage).
    Half = 2,
    /// A vec4 of f16 (8 bytes) at a time, widened to f32 (see [`half4_ok`]).
    Half4 = 3,
}

impl Load {
    /// Every load, in the order of [`SHADERS`]' indices.
    pub const ALL: [Load; 4] = [Load::Scalar, Load::Vec4, Load::Half, Load::Half4];

    /// How an operand stored as rows of `row_len` values at `view` is read: a quad at a time when
    /// its rows and view allow it, else one value at a time; f16 when `half`.
    pub fn of(half: bool, view: &View, row_len: usize) -> Load {
        match (half, half && half4_ok(view, row_len), vec4_ok(view, row_len)) {
            (true, true, _) => Load::Half4,
            (true, false, _) => Load::Half,
            (false, _, true) => Load::Vec4,
            (false, _, false) => Load::Scalar,
        }
    }
}

const F16: &str = "enable f16;\n";

/// `shaders/matmul_sgemm.wgsl` with each combination of operand loads and C storage, indexed
/// `[a as Load][b as Load][c is half]`.
pub const SHADERS: [[[Shader; 2]; 4]; 4] = [
    [
        [
            sgemm_shader!("matmul_sgemm_a1_b1", "", "scalar", "scalar", "f32"),
            sgemm_shader!("matmul_sgemm_a1_b1_ch", "enable f16;\n", "scalar", "scalar", "half"),
        ],
        [
            sgemm_shader!("matmul_sgemm_a1_b4", "", "scalar", "vec4", "f32"),
            sgemm_shader!("matmul_sgemm_a1_b4_ch", "enable f16;\n", "scalar", "vec4", "half"),
        ],
        [
            sgemm_shader!("matmul_sgemm_a1_bh", "enable f16;\n", "scalar", "half", "f32"),
            sgemm_shader!("matmul_sgemm_a1_bh_ch", "enable f16;\n", "scalar", "half", "half"),
        ],
        [
            sgemm_shader!("matmul_sgemm_a1_bh4", "enable f16;\n", "scalar", "half4", "f32"),
            sgemm_shader!("matmul_sgemm_a1_bh4_ch", "enable f16;\n", "scalar", "half4", "half"),
        ],
    ],
    [
        [
            sgemm_shader!("matmul_sgemm_a4_b1", "", "vec4", "scalar", "f32"),
            sgemm_shader!("matmul_sgemm_a4_b1_ch", "enable f16;\n", "vec4", "scalar", "half"),
        ],
        [
            sgemm_shader!("matmul_sgemm_a4_b4", "", "vec4", "vec4", "f32"),
            sgemm_shader!("matmul_sgemm_a4_b4_ch", "enable f16;\n", "vec4", "vec4", "half"),
        ],
        [
            sgemm_shader!("matmul_sgemm_a4_bh", "enable f16;\n", "vec4", "half", "f32"),
            sgemm_shader!("matmul_sgemm_a4_bh_ch", "enable f16;\n", "vec4", "half", "half"),
        ],
        [
            sgemm_shader!("matmul_sgemm_a4_bh4", "enable f16;\n", "vec4", "half4", "f32"),
            sgemm_shader!("matmul_sgemm_a4_bh4_ch", "enable f16;\n", "vec4", "half4", "half"),
        ],
    ],
    [
        [
            sgemm_shader!("matmul_sgemm_ah_b1", "enable f16;\n", "half", "scalar", "f32"),
            sgemm_shader!("matmul_sgemm_ah_b1_ch", "enable f16;\n", "half", "scalar", "half"),
        ],
        [
            sgemm_shader!("matmul_sgemm_ah_b4", "enable f16;\n", "half", "vec4", "f32"),
            sgemm_shader!("matmul_sgemm_ah_b4_ch", "enable f16;\n", "half", "vec4", "half"),
        ],
        [
            sgemm_shader!("matmul_sgemm_ah_bh", "enable f16;\n", "half", "half", "f32"),
            sgemm_shader!("matmul_sgemm_ah_bh_ch", "enable f16;\n", "half", "half", "half"),
        ],
        [
            sgemm_shader!("matmul_sgemm_ah_bh4", "enable f16;\n", "half", "half4", "f32"),
            sgemm_shader!("matmul_sgemm_ah_bh4_ch", "enable f16;\n", "half", "half4", "half"),
        ],
    ],
    [
        [
            sgemm_shader!("matmul_sgemm_ah4_b1", "enable f16;\n", "half4", "scalar", "f32"),
            sgemm_shader!("matmul_sgemm_ah4_b1_ch", "enable f16;\n", "half4", "scalar", "half"),
        ],
        [
            sgemm_shader!("matmul_sgemm_ah4_b4", "enable f16;\n", "half4", "vec4", "f32"),
            sgemm_shader!("matmul_sgemm_ah4_b4_ch", "enable f16;\n", "half4", "vec4", "half"),
        ],
        [
            sgemm_shader!("matmul_sgemm_ah4_bh", "enable f16;\n", "half4", "half", "f32"),
            sgemm_shader!("matmul_sgemm_ah4_bh_ch", "enable f16;\n", "half4", "half", "half"),
        ],
        [
            sgemm_shader!("matmul_sgemm_ah4_bh4", "enable f16;\n", "half4", "half4", "f32"),
            sgemm_shader!("matmul_sgemm_ah4_bh4_ch", "enable f16;\n", "half4", "half4", "half"),
        ],
    ],
];

/// [`SHADERS`] in one list, for [`super::SHADERS`].
pub const ALL: [(&str, &str); 32] = {
    let mut all = [("", ""); 32];
    let mut i = 0;
    while i < 32 {
        let shader = SHADERS[i / 8][(i / 2) % 4][i % 2];
        all[i] = (shader.name, shader.source);
        i += 1;
    }
    all
};

/// Whether `shader` stores or reads f16 (it needs `Features::SHADER_F16`).
pub fn uses_f16(source: &str) -> bool {
    source.starts_with(F16)
}

/// One tile configuration: a workgroup of 256 invocations, `wg_x` across the columns, each owning a
/// `micro` x `micro` block of C, over k-tiles of depth `bk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgemmConfig {
    /// Side of the square block of C each invocation accumulates (4 or 8).
    pub micro: u32,
    /// Invocations across the columns; `256 / wg_x` go down the rows.
    pub wg_x: u32,
    /// Depth of each k-tile staged in workgroup memory.
    pub bk: u32,
}

impl SgemmConfig {
    /// (columns, rows) of C one workgroup covers.
    pub fn block(self) -> (usize, usize) {
        ((self.wg_x * self.micro) as usize, ((256 / self.wg_x) * self.micro) as usize)
    }

    /// The entry point: `sgemm_8x8` or `sgemm_4x4`, by `micro`.
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
/// `array<vec4<f32>>` indexes from its start.
pub fn vec4_ok(view: &View, row_len: usize) -> bool {
    row_len > 0 && row_len.is_multiple_of(4) && view.offset.is_multiple_of(4)
}

/// The same for an f16 operand (two values per word): rows of a multiple of 4 values, and a view
/// starting at a multiple of 4 values (an even word), which `array<vec4<f16>>` indexes from its start.
pub fn half4_ok(view: &View, row_len: usize) -> bool {
    row_len > 0 && row_len.is_multiple_of(4) && view.offset.is_multiple_of(2)
}

/// The pipeline of `config` for one transpose form, operand loads and C storage.
pub fn pipeline_key(config: SgemmConfig, trans: Transpose, a: Load, b: Load, c_half: bool) -> PipelineKey {
    let (ta, tb) = trans.flags();
    let [wg_x, micro, bk] = config.constants();
    PipelineKey::new(
        SHADERS[a as usize][b as usize][c_half as usize],
        config.entry(),
        &[("TRANS_A", ta as u32 as f64), ("TRANS_B", tb as u32 as f64), wg_x, micro, bk],
    )
}

/// Every pipeline the host may build for `config` and `trans` (each combination of operand loads
/// and C storage).
pub fn pipeline_keys(config: SgemmConfig, trans: Transpose) -> Vec<PipelineKey> {
    let mut keys = Vec::new();
    for a in Load::ALL {
        for b in Load::ALL {
            for c_half in [false, true] {
                keys.push(pipeline_key(config, trans, a, b, c_half));
            }
        }
    }
    keys
}
