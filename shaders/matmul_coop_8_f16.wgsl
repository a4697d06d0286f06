// matmul_coop_8_f16.wgsl: put before matmul_coop.wgsl for 8x8 cooperative matrices with f16 operands
// and f32 accumulators (lavapipe's shape). A precision path: op(A) and op(B) are rounded to f16 as
// they are staged, so products differ from f32 by about 2^-11 of each term.
enable f16;
enable wgpu_cooperative_matrix;

const T: u32 = 8u;
alias Elem = f16;
alias TileA = coop_mat8x8<f16, A>;
alias TileB = coop_mat8x8<f16, B>;
alias TileC = coop_mat8x8<f32, C>;
