//! One launcher per shader family. A launcher turns a typed call (views + shapes) into a [`Launch`]:
//! the pipeline key, the uniform bytes, the storage views in binding order, and the workgroup count.
//! The runner ([`crate::runner::Plan`]) turns launches into cached pipelines and bind groups.

pub mod activation;
pub mod conv;
pub mod conv_gemm;
pub mod gather;
pub mod loss;
pub mod matmul;
pub mod optimizer;
pub mod penalty;
pub mod pool;
pub mod random;
pub mod reduce;
pub mod vae;

use crate::gpu::PipelineKey;
use crate::runner::View;

/// Every shader, embedded at compile time: (file stem, WGSL source).
pub const SHADERS: &[(&str, &str)] = &[
    ("matmul", include_str!("../../shaders/matmul.wgsl")),
    ("matmul_subgroup", include_str!("../../shaders/matmul_subgroup.wgsl")),
    ("activation", include_str!("../../shaders/activation.wgsl")),
    ("reduce", include_str!("../../shaders/reduce.wgsl")),
    ("loss", include_str!("../../shaders/loss.wgsl")),
    ("optimizer", include_str!("../../shaders/optimizer.wgsl")),
    ("gather", include_str!("../../shaders/gather.wgsl")),
    ("conv2d", include_str!("../../shaders/conv2d.wgsl")),
    ("conv_gemm", include_str!("../../shaders/conv_gemm.wgsl")),
    ("pool", include_str!("../../shaders/pool.wgsl")),
    ("random", include_str!("../../shaders/random.wgsl")),
    ("vae", include_str!("../../shaders/vae.wgsl")),
    ("penalty", include_str!("../../shaders/penalty.wgsl")),
];

/// The WGSL source of shader `name` (a file stem in `shaders/`).
pub fn shader_source(name: &str) -> &'static str {
    SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .unwrap_or_else(|| panic!("shader '{name}' is not registered in kernels::SHADERS"))
}

/// Element-wise activation functions; the ids match the WGSL constants.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Identity,
    Relu,
    /// Leaky ReLU with this negative slope.
    LeakyRelu(f32),
    Sigmoid,
    Tanh,
}

impl Activation {
    pub fn id(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::LeakyRelu(_) => 2,
            Activation::Sigmoid => 3,
            Activation::Tanh => 4,
        }
    }

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

/// Everything the runner needs to record one dispatch.
#[derive(Clone, Debug)]
pub struct Launch {
    pub key: PipelineKey,
    pub uniform: Vec<u8>,
    /// Storage bindings 1.. in order.
    pub views: Vec<View>,
    pub workgroups: [u32; 3],
    /// A short name for profiles and error messages.
    pub label: &'static str,
}

/// Workgroups for a 1-D dispatch of `n` items, `per_group` each, folded into y past the 65535 limit.
/// Shaders recover the flat index as `gid.x + gid.y * num_workgroups.x * per_group`.
pub fn grid_1d(n: usize, per_group: usize) -> [u32; 3] {
    let groups = n.div_ceil(per_group).max(1);
    if groups <= 65535 {
        [groups as u32, 1, 1]
    } else {
        let y = groups.div_ceil(65535);
        [groups.div_ceil(y) as u32, y as u32, 1]
    }
}
