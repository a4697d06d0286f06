//! CPU baselines of every kernel: plain loops that are the readable spec, the test oracle and the
//! benchmark's reference point. `baseline` holds the fair (cache-blocked, threaded) matmul.

pub mod activation;
#[cfg(feature = "bench")]
pub mod baseline;
pub mod conv;
pub mod conv_gemm;
pub mod gather;
pub mod loss;
pub mod matmul;
pub mod optimizer;
pub mod penalty;
pub mod pool;
pub mod random;
pub mod recirculation;
pub mod reduce;
pub mod softmax;
pub mod texture;
pub mod vae;
