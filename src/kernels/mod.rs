//! One launcher per shader family. A launcher turns a typed call (views + shapes) into a [`Launch`]:
//! the pipeline key, the uniform bytes, the storage views in binding order, and the workgroup count.
//! The runner ([`crate::runner::Plan`]) turns launches into cached pipelines and bind groups.

pub mod activation;
pub mod conv;
pub mod conv_gemm;
pub mod conv_implicit_gemm;
pub mod conv_shape;
pub mod gather;
pub mod loss;
pub mod matmul;
pub mod matmul_coop;
pub mod matmul_policy;
pub mod matmul_sgemm;
pub mod optimizer;
pub mod penalty;
pub mod pool;
pub mod random;
pub mod recirculation;
pub mod reduce;
pub mod softmax_ce;
pub mod texture;
pub mod vae;

pub use crate::gpu::{Launch, grid_1d};

/// The most loop iterations one invocation may run. lavapipe (llvmpipe's gallivm) silently ends an
/// invocation's loops once they have run 65,535 iterations in total: the rest is skipped and the
/// result is wrong, with no error (`kernels-tests/long_loops.rs` shows it). Every kernel whose loops
/// grow with the data keeps its invocations under this bound by splitting the work into more launches
/// or workgroups. Half the limit leaves room for the short loops around the long one (a tiled
/// product runs up to 1.25 iterations per k). The rule holds on every adapter, so results never
/// depend on which one ran them.
pub const MAX_LOOP_STEPS: usize = 32_768;

/// Every shader a launcher dispatches, as (file stem, full WGSL source after any shared prelude):
/// the list the naga tests validate and the tuner's cache key hashes. Each launcher owns its shader
/// constants; the SGEMM's 32 load/store combinations come from [`matmul_sgemm::ALL`].
pub const SHADERS: &[(&str, &str)] = &ALL_SHADERS;

const ALL_SHADERS: [(&str, &str); OTHER_SHADERS.len() + matmul_sgemm::ALL.len()] = {
    let mut all = [("", ""); OTHER_SHADERS.len() + matmul_sgemm::ALL.len()];
    let mut i = 0;
    while i < all.len() {
        all[i] = match i < OTHER_SHADERS.len() {
            true => OTHER_SHADERS[i],
            false => matmul_sgemm::ALL[i - OTHER_SHADERS.len()],
        };
        i += 1;
    }
    all
};

const OTHER_SHADERS: [(&str, &str); 22] = [
    (matmul::SHADER.name, matmul::SHADER.source),
    (matmul::SUBGROUP_SHADER.name, matmul::SUBGROUP_SHADER.source),
    (matmul_coop::SHADER_8_F32.name, matmul_coop::SHADER_8_F32.source),
    (matmul_coop::SHADER_8_F16.name, matmul_coop::SHADER_8_F16.source),
    (matmul_coop::SHADER_16_F16.name, matmul_coop::SHADER_16_F16.source),
    (activation::SHADER.name, activation::SHADER.source),
    (activation::HALF_Y_SHADER.name, activation::HALF_Y_SHADER.source),
    (reduce::SHADER.name, reduce::SHADER.source),
    (loss::SHADER.name, loss::SHADER.source),
    (optimizer::SHADER.name, optimizer::SHADER.source),
    (gather::SHADER.name, gather::SHADER.source),
    (conv::SHADER.name, conv::SHADER.source),
    (conv_gemm::SHADER.name, conv_gemm::SHADER.source),
    (conv_implicit_gemm::SHADER.name, conv_implicit_gemm::SHADER.source),
    (pool::SHADER.name, pool::SHADER.source),
    (random::SHADER.name, random::SHADER.source),
    (vae::SHADER.name, vae::SHADER.source),
    (penalty::SHADER.name, penalty::SHADER.source),
    (texture::DECODE_SHADER.name, texture::DECODE_SHADER.source),
    (texture::ENCODE_SHADER.name, texture::ENCODE_SHADER.source),
    (softmax_ce::SHADER.name, softmax_ce::SHADER.source),
    (recirculation::SHADER.name, recirculation::SHADER.source),
];

/// The WGSL source of shader `name` (a file stem in `shaders/`), as the pipeline cache compiles it.
pub fn shader_source(name: &str) -> Option<&'static str> {
    SHADERS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Element-wise activation functions; the ids match the WGSL constants.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `f(x) = x` (also `linear`).
    Identity,
    /// `f(x) = max(x, 0)`.
    Relu,
    /// Leaky ReLU with this negative slope.
    LeakyRelu(f32),
    /// `f(x) = 1 / (1 + e^-x)`, in (0, 1).
    Sigmoid,
    /// `f(x) = tanh x`, in (-1, 1).
    Tanh,
}

impl Activation {
    /// The shaders' `ACT_*` id: 0 identity, 1 ReLU, 2 leaky ReLU, 3 sigmoid, 4 tanh.
    pub fn id(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::LeakyRelu(_) => 2,
            Activation::Sigmoid => 3,
            Activation::Tanh => 4,
        }
    }

    /// The negative slope the shaders' `slope` word carries: a leaky ReLU's, 0 for the others.
    pub fn slope(self) -> f32 {
        match self {
            Activation::LeakyRelu(s) => s,
            _ => 0.0,
        }
    }

    /// Parses `identity|linear|relu|leaky_relu[:slope]|sigmoid|tanh`.
    pub fn parse(s: &str) -> Option<Activation> {
        let s = s.trim().to_lowercase();
        Some(match s.as_str() {
            "identity" | "linear" | "none" => Activation::Identity,
            "relu" => Activation::Relu,
            "leaky_relu" | "leakyrelu" => Activation::LeakyRelu(0.01),
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            _ => {
                let slope = s.strip_prefix("leaky_relu:")?.parse().ok()?;
                Activation::LeakyRelu(slope)
            }
        })
    }

    /// The PyTorch module name, for docs and checkpoint metadata.
    pub fn torch_name(self) -> &'static str {
        match self {
            Activation::Identity => "Identity",
            Activation::Relu => "ReLU",
            Activation::LeakyRelu(_) => "LeakyReLU",
            Activation::Sigmoid => "Sigmoid",
            Activation::Tanh => "Tanh",
        }
    }
}
