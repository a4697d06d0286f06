//! What each registered shader may use, as naga's validator needs to be told (shared by the naga
//! tests `shaders.rs` and `translate.rs`): the subgroup matmul is only built on devices with
//! Features::SUBGROUP, the cooperative matmul on devices with cooperative matrices (and f16 for its
//! f16 tiles), the f16 SGEMMs on devices with Features::SHADER_F16.

use aegpu::kernels::{SHADERS, matmul_sgemm};
use naga::valid::Capabilities;

pub fn capabilities(name: &str) -> Capabilities {
    let source = SHADERS.iter().find(|(n, _)| *n == name).expect("a registered shader").1;
    match name {
        "matmul_subgroup" => Capabilities::default() | Capabilities::SUBGROUP,
        _ if name.starts_with("matmul_coop") => {
            let f16 = match source.contains("enable f16;") {
                true => Capabilities::SHADER_FLOAT16,
                false => Capabilities::empty(),
            };
            Capabilities::default() | Capabilities::COOPERATIVE_MATRIX | f16
        }
        _ if matmul_sgemm::uses_f16(source) => Capabilities::default() | Capabilities::SHADER_FLOAT16,
        _ => Capabilities::default(),
    }
}
