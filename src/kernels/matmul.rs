//! Launcher for the matmul shaders (`shaders/matmul.wgsl`, `matmul_subgroup.wgsl`,
//! `matmul_sgemm.wgsl`): the three products a dense layer needs, with a fused bias + activation
//! epilogue, in variants chosen per adapter by verification and measurement (see `tune`).

use super::matmul_coop;
use super::matmul_policy::MatmulPolicy;
use super::matmul_sgemm::{self, Load};
use super::{Activation, Launch, MAX_LOOP_STEPS};
use crate::gpu::View;
use crate::gpu::{PipelineKey, Shader};

/// `shaders/matmul.wgsl`, after the shared activation functions of `shaders/activation_fns.wgsl`.
pub const SHADER: Shader = Shader {
    name: "matmul",
    source: concat!(
        include_str!("../../shaders/activation_fns.wgsl"),
        include_str!("../../shaders/matmul.wgsl")
    ),
};

/// `shaders/matmul_subgroup.wgsl`, after the shared activation functions of `shaders/activation_fns.wgsl`.
pub const SUBGROUP_SHADER: Shader = Shader {
    name: "matmul_subgroup",
    source: concat!(
        include_str!("../../shaders/activation_fns.wgsl"),
        include_str!("../../shaders/matmul_subgroup.wgsl")
    ),
};

/// Which operands are stored transposed. `Nt` = A·Bᵀ (forward), `Nn` = A·B (backward to the input),
/// `Tn` = Aᵀ·B (backward to the weights).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transpose {
    /// A stored `[M, K]`, B stored `[K, N]`: `dX = dZ · W`.
    Nn,
    /// B stored `[N, K]`: `Y = X · Wᵀ`.
    Nt,
    /// A stored `[K, M]`: `dW = dZᵀ · X`.
    Tn,
}

impl Transpose {
    /// The three forms, in the order the tuner and the tests visit them.
    pub const ALL: [Transpose; 3] = [Transpose::Nn, Transpose::Nt, Transpose::Tn];

    /// The shaders' `(TRANS_A, TRANS_B)` overrides.
    pub fn flags(self) -> (bool, bool) {
        match self {
            Transpose::Nn => (false, false),
            Transpose::Nt => (false, true),
            Transpose::Tn => (true, false),
        }
    }
}

/// The kernels with the same contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatmulVariant {
    /// Register-blocked 4x4 per invocation, no workgroup memory (fast on CPU adapters).
    Reg,
    /// 64x64 workgroup tiles staged through workgroup memory (fast on real GPUs).
    Tiled,
    /// 8 rows of A shared through subgroupBroadcast (needs subgroups of >= 8; fast on CPU adapters).
    Subgroup,
    /// Tiled SGEMM (`matmul_sgemm.wgsl`), 128x128 blocks in k-steps of 8, 8x8 per invocation.
    Sgemm128x128,
    /// Tiled SGEMM, 64x64 blocks in k-steps of 16, 4x4 per invocation.
    Sgemm64x64,
    /// Tiled SGEMM for few rows (small batches), 32x128 blocks in k-steps of 16, 4x4 per invocation.
    Sgemm32x128,
    /// Cooperative matrices (`matmul_coop.wgsl`), 8x8 f32 tiles, a 32x32 block per subgroup.
    Coop8x8,
    /// Cooperative matrices, 8x8 tiles with f16 operands and f32 accumulators (lavapipe's shape), a
    /// 32x32 block per subgroup: a precision path the tuner never chooses ([`MatmulVariant::rounds_operands`]).
    Coop8x8H,
    /// The same with 16x16 tiles (NVIDIA's tensor-core shape), a 64x64 block per subgroup.
    Coop16x16H,
}

impl MatmulVariant {
    /// Every variant, whether or not this adapter runs it (see [`MatmulVariant::available`]).
    pub const ALL: [MatmulVariant; 9] = [
        MatmulVariant::Reg,
        MatmulVariant::Tiled,
        MatmulVariant::Subgroup,
        MatmulVariant::Sgemm128x128,
        MatmulVariant::Sgemm64x64,
        MatmulVariant::Sgemm32x128,
        MatmulVariant::Coop8x8,
        MatmulVariant::Coop8x8H,
        MatmulVariant::Coop16x16H,
    ];

    /// The shader entry point that runs it.
    pub fn entry(self) -> &'static str {
        match self {
            MatmulVariant::Reg => "matmul_reg",
            MatmulVariant::Tiled => "matmul_tiled",
            MatmulVariant::Subgroup => "matmul_subgroup",
            v if matmul_coop::tile(v).is_some() => matmul_coop::ENTRY,
            v => matmul_sgemm::config(v).map_or("", |c| c.entry()),
        }
    }

    /// Whether the variant rounds its operands below f32 (f16 tensor-core tiles): a precision path,
    /// run only when asked for (`AEGPU_MATMUL`, `aegpu bench --coop`), never chosen by the tuner.
    pub fn rounds_operands(self) -> bool {
        matches!(self, MatmulVariant::Coop8x8H | MatmulVariant::Coop16x16H)
    }

    /// The lower-case name `AEGPU_MATMUL`, the cache and `aegpu bench` use.
    pub fn name(self) -> String {
        format!("{self:?}").to_lowercase()
    }

    /// The variants this device can run: the subgroup one needs the feature and subgroups of >= 8,
    /// the cooperative ones what [`matmul_coop::runs_on`] says.
    pub fn available(gpu: &crate::gpu::Gpu) -> Vec<MatmulVariant> {
        let subgroups = gpu.features.contains(wgpu::Features::SUBGROUP) && gpu.info.subgroup_min_size >= 8;
        let runs = |v: MatmulVariant| match v {
            MatmulVariant::Subgroup => subgroups,
            v if matmul_coop::tile(v).is_some() => matmul_coop::runs_on(gpu, v),
            _ => true,
        };
        MatmulVariant::ALL.into_iter().filter(|&v| runs(v)).collect()
    }

    /// (columns, rows) of C one workgroup covers.
    fn block(self) -> (usize, usize) {
        if let Some(block) = matmul_coop::block(self) {
            return block;
        }
        match (self, matmul_sgemm::config(self)) {
            (_, Some(c)) => c.block(),
            (MatmulVariant::Subgroup, _) => (256, 16),
            _ => (64, 64),
        }
    }

    /// The variant of this lower-case [`MatmulVariant::name`] (e.g. `sgemm64x64`); `None` otherwise.
    pub fn parse(s: &str) -> Option<MatmulVariant> {
        MatmulVariant::ALL.into_iter().find(|v| v.name() == s)
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    has_bias: u32,
    accumulate: u32,
    slope: f32,
    k_chunk: u32,
    k_first: u32,
    _pad: [u32; 3],
}

/// How a launch writes C (the shaders' `accumulate` word).
#[derive(Clone, Copy)]
enum Store {
    /// `C = act(acc + bias)`
    Write = 0,
    /// `C += act(acc + bias)`
    Add = 1,
    /// `C = act(C + acc + bias)`: the last k range of a product split over several launches.
    Finish = 2,
}

/// Which of a product's matrices are stored as f16 (the opt-in f16 activation storage: the
/// arithmetic stays f32, the bias is f32). Views of f16 matrices hold two values per word.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Half {
    /// A is f16.
    pub a: bool,
    /// B is f16.
    pub b: bool,
    /// C is f16 (written rounded from the f32 result).
    pub c: bool,
}

impl Half {
    /// Every matrix f32.
    pub const NONE: Half = Half { a: false, b: false, c: false };

    /// Whether any of the three is f16.
    pub fn any(self) -> bool {
        self.a || self.b || self.c
    }
}

/// One product `c = act(op(a) · op(b) + bias)` (or `c += ...`), shapes M x N with inner size K.
#[derive(Clone, Debug)]
pub struct Matmul {
    /// The result, row-major `[m, n]` (`[splits, m, n]` with split-K).
    pub c: View,
    /// Left operand: row-major `[m, k]`, or `[k, m]` when `trans` is `Tn`.
    pub a: View,
    /// Right operand: row-major `[k, n]`, or `[n, k]` when `trans` is `Nt`.
    pub b: View,
    /// Per-column bias, `n` values, added before the activation; `None` for none.
    pub bias: Option<View>,
    /// Rows of C (and of op(A)).
    pub m: usize,
    /// Columns of C (and of op(B)).
    pub n: usize,
    /// Inner dimension: columns of op(A), rows of op(B).
    pub k: usize,
    /// Which operands are stored transposed.
    pub trans: Transpose,
    /// Activation fused into the store, after the bias.
    pub act: Activation,
    /// `c += act(...)` instead of `c = act(...)`.
    pub accumulate: bool,
    /// The kernel asked for (see [`Matmul::runs`] for the one that runs).
    pub variant: MatmulVariant,
    /// Split-K: the inner dimension in this many chunks, each product written to its own `[m, n]`
    /// slice of `c` (`c` then holds `splits·m·n` values for the caller to sum). 1 = no split; more
    /// needs no bias, identity activation and no accumulate.
    pub splits: usize,
    /// Matrices stored as f16. Only the SGEMM reads and writes f16: a product with any runs
    /// `variant` when it is an SGEMM, else [`MatmulVariant::Sgemm64x64`].
    pub half: Half,
}

impl Matmul {
    /// Every pipeline the host may build for `variant` and `trans` (the SGEMM: one per combination
    /// of operand load widths).
    pub fn pipeline_keys(variant: MatmulVariant, trans: Transpose) -> Vec<PipelineKey> {
        if let Some(config) = matmul_sgemm::config(variant) {
            return matmul_sgemm::pipeline_keys(config, trans);
        }
        if matmul_coop::tile(variant).is_some() {
            return vec![matmul_coop::pipeline_key(variant, trans)];
        }
        let (ta, tb) = trans.flags();
        let shader = if variant == MatmulVariant::Subgroup { SUBGROUP_SHADER } else { SHADER };
        vec![PipelineKey::new(
            shader,
            variant.entry(),
            &[("TRANS_A", ta as u32 as f64), ("TRANS_B", tb as u32 as f64)],
        )]
    }

    /// The variant that runs: `variant`, unless the product stores a matrix as f16 and `variant`
    /// is not an SGEMM (only the SGEMM has f16 loads and stores).
    pub fn runs(&self) -> MatmulVariant {
        match matmul_sgemm::config(self.variant) {
            None if self.half.any() => MatmulVariant::Sgemm64x64,
            _ => self.variant,
        }
    }

    /// The pipeline of this product. The SGEMM reads an f32 operand a vec4 at a time when its
    /// contiguous dimension (K for A, N for B; M for A and K for B when stored transposed) is a
    /// multiple of 4 and its view starts at a multiple of 4 words; else one word at a time. An f16
    /// operand likewise, a vec4<f16> or one value at a time ([`Load::of`]).
    fn pipeline_key(&self) -> PipelineKey {
        let variant = self.runs();
        let Some(config) = matmul_sgemm::config(variant) else {
            return Matmul::pipeline_keys(variant, self.trans).remove(0);
        };
        let (ta, tb) = self.trans.flags();
        let a = Load::of(self.half.a, &self.a, if ta { self.m } else { self.k });
        let b = Load::of(self.half.b, &self.b, if tb { self.k } else { self.n });
        matmul_sgemm::pipeline_key(config, self.trans, a, b, self.half.c)
    }

    /// Split-K chunk: the SGEMM's is a multiple of 4 so a quad along K never straddles two chunks.
    fn k_chunk(&self) -> u32 {
        let chunk = self.k.div_ceil(self.splits.max(1)).max(1);
        if matmul_sgemm::config(self.runs()).is_some() {
            chunk.next_multiple_of(4) as u32
        } else {
            chunk as u32
        }
    }

    /// The product as one launch. Its invocations loop over a whole split's k range, so each range
    /// must stay within [`MAX_LOOP_STEPS`] (lavapipe): use [`Matmul::launches`] for any K.
    pub fn launch(&self) -> Launch {
        debug_assert!(
            self.splits <= 1 || (self.bias.is_none() && self.act == Activation::Identity && !self.accumulate),
            "split-K products are partial sums: no bias, activation or accumulate"
        );
        let store = if self.accumulate { Store::Add } else { Store::Write };
        self.launch_range(0, self.k_chunk(), store, self.act, self.bias.as_ref())
    }

    /// The product as launches over consecutive k ranges of at most [`MAX_LOOP_STEPS`] each, so no
    /// invocation loops past lavapipe's limit: one launch (the same as [`Matmul::launch`]) when K
    /// fits. With more, the first writes its partial sum, the middle ones add theirs, and the last
    /// adds its own and applies the bias and activation; with `accumulate` (identity activation
    /// only) every range adds to C. The sums run range after range, in a fixed order. Split-K
    /// products (`splits` > 1) must keep their chunks within the bound themselves.
    pub fn launches(&self) -> Vec<Launch> {
        let ranges = self.k.div_ceil(MAX_LOOP_STEPS);
        if ranges <= 1 || self.splits > 1 {
            debug_assert!(self.k_chunk() as usize <= MAX_LOOP_STEPS, "split-K chunk past the loop bound");
            return vec![self.launch()];
        }
        debug_assert!(
            !self.accumulate || self.act == Activation::Identity,
            "an accumulated product over several launches must have the identity activation"
        );
        let identity = Activation::Identity;
        (0..ranges)
            .map(|r| {
                let (first, last) = (r == 0, r + 1 == ranges);
                let store = match (self.accumulate, first) {
                    (true, _) => Store::Add,
                    (false, true) => Store::Write,
                    (false, false) => Store::Finish,
                };
                let (act, bias) = if last { (self.act, self.bias.as_ref()) } else { (identity, None) };
                self.launch_range(r * MAX_LOOP_STEPS, MAX_LOOP_STEPS as u32, store, act, bias)
            })
            .collect()
    }

    /// One launch over k in [k_first, k_first + splits·k_chunk) (clamped to K).
    fn launch_range(
        &self,
        k_first: usize,
        k_chunk: u32,
        store: Store,
        act: Activation,
        bias: Option<&View>,
    ) -> Launch {
        let params = Params {
            m: self.m as u32,
            n: self.n as u32,
            k: self.k as u32,
            act: act.id(),
            has_bias: bias.is_some() as u32,
            accumulate: store as u32,
            slope: act.slope(),
            k_chunk,
            k_first: k_first as u32,
            _pad: [0; 3],
        };
        // Any buffer satisfies the layout when there is no bias; the shader never reads it.
        let bias = bias.cloned().unwrap_or_else(|| self.c.clone());
        Launch {
            key: self.pipeline_key(),
            uniform: bytemuck::bytes_of(&params).to_vec(),
            views: vec![self.a.clone(), self.b.clone(), bias, self.c.clone()],
            workgroups: {
                let (cols, rows) = self.runs().block();
                [self.n.div_ceil(cols) as u32, self.m.div_ceil(rows) as u32, self.splits.max(1) as u32]
            },
            label: "matmul",
            per_step: None,
        }
    }

    /// Floating-point operations of the product (2·M·N·K).
    pub fn flops(m: usize, n: usize, k: usize) -> f64 {
        2.0 * m as f64 * n as f64 * k as f64
    }
}

/// Forward of a dense layer: `out[B, OUT] = act(inp[B, IN] · weight[OUT, IN]ᵀ + bias)`. `half`:
/// which of `inp` (a) and `out` (c) are stored as f16.
#[allow(clippy::too_many_arguments)]
pub fn linear_forward(
    out: &View,
    inp: &View,
    weight: &View,
    bias: &View,
    batch: usize,
    in_dim: usize,
    out_dim: usize,
    act: Activation,
    policy: MatmulPolicy,
    half: Half,
) -> Vec<Launch> {
    Matmul {
        c: out.clone(),
        a: inp.clone(),
        b: weight.clone(),
        bias: Some(bias.clone()),
        m: batch,
        n: out_dim,
        k: in_dim,
        trans: Transpose::Nt,
        act,
        accumulate: false,
        variant: policy.pick(batch, out_dim),
        splits: 1,
        half,
    }
    .launches()
}

/// Backward of a dense layer to its input: `dinp[B, IN] = dout[B, OUT] · weight[OUT, IN]`.
pub fn linear_backward_input(
    dinp: &View,
    dout: &View,
    weight: &View,
    batch: usize,
    in_dim: usize,
    out_dim: usize,
    policy: MatmulPolicy,
) -> Vec<Launch> {
    Matmul {
        c: dinp.clone(),
        a: dout.clone(),
        b: weight.clone(),
        bias: None,
        m: batch,
        n: in_dim,
        k: out_dim,
        trans: Transpose::Nn,
        act: Activation::Identity,
        accumulate: false,
        variant: policy.pick(batch, in_dim),
        splits: 1,
        half: Half::NONE,
    }
    .launches()
}

/// Backward of a dense layer to its weights: `dweight[OUT, IN] = dout[B, OUT]ᵀ · inp[B, IN]`;
/// `inp_half`: `inp` is stored as f16.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward_weight(
    dweight: &View,
    dout: &View,
    inp: &View,
    batch: usize,
    in_dim: usize,
    out_dim: usize,
    policy: MatmulPolicy,
    inp_half: bool,
) -> Vec<Launch> {
    Matmul {
        c: dweight.clone(),
        a: dout.clone(),
        b: inp.clone(),
        bias: None,
        m: out_dim,
        n: in_dim,
        k: batch,
        trans: Transpose::Tn,
        act: Activation::Identity,
        accumulate: false,
        variant: policy.pick(out_dim, in_dim),
        splits: 1,
        half: Half { a: false, b: inp_half, c: false },
    }
    .launches()
}
