// matmul_coop_8_f32.wgsl: put before matmul_coop.wgsl for 8x8 f32 cooperative matrices (f32 operands
// and accumulators: the f32 contract of every matmul variant).
enable wgpu_cooperative_matrix;

const T: u32 = 8u;
alias Elem = f32;
alias TileA = coop_mat8x8<f32, A>;
alias TileB = coop_mat8x8<f32, B>;
alias TileC = coop_mat8x8<f32, C>;
