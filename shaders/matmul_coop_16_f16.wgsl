// matmul_coop_16_f16.wgsl: put before matmul_coop.wgsl for 16x16 cooperative matrices with f16 operands
// and f32 accumulators (NVIDIA's tensor-core shape). A precision path: op(A) and op(B) are rounded
// to f16 as they are staged, so products differ from f32 by about 2^-11 of each term.
enable f16;
enable wgpu_cooperative_matrix;

const T: u32 = 16u;
alias Elem = f16;
alias TileA = coop_mat16x16<f16, A>;
alias TileB = coop_mat16x16<f16, B>;
alias TileC = coop_mat16x16<f32, C>;
