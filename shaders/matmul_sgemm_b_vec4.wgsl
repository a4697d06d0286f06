// matmul_sgemm_b_vec4.wgsl: operand B of matmul_sgemm.wgsl, read a vec4 at a time. The host binds B
// this way only when its contiguous dimension is a multiple of 4 and its view starts at a multiple of 4
// words (src/kernels/matmul_sgemm.rs), so a quad is wholly inside the matrix or wholly outside it.
@group(0) @binding(2) var<storage, read_write> b4: array<vec4<f32>>;

// Words col..col+3 of row r of B as stored (rows of `stride` words), zero unless r < r_end and
// col < col_end (col is a multiple of 4).
fn quad_b(r: u32, col: u32, stride: u32, r_end: u32, col_end: u32) -> vec4<f32> {
    if (r >= r_end || col >= col_end) {
        return vec4<f32>(0.0);
    }
    return b4[(r * stride + col) / 4u];
}
