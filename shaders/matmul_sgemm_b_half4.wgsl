// matmul_sgemm_b_half4.wgsl: operand B of matmul_sgemm.wgsl stored as f16 (the opt-in f16
// activation storage), read a vec4<f16> (8 bytes) at a time and widened to f32. The host binds B
// this way only when its contiguous dimension is a multiple of 4 and its view starts at a multiple
// of 4 values (src/kernels/matmul_sgemm.rs), so a quad is wholly inside the matrix or wholly outside.
@group(0) @binding(2) var<storage, read_write> b_h4: array<vec4<f16>>;

// Values col..col+3 of row r of B as stored (rows of `stride` values), zero unless r < r_end and
// col < col_end (col is a multiple of 4).
fn quad_b(r: u32, col: u32, stride: u32, r_end: u32, col_end: u32) -> vec4<f32> {
    if (r >= r_end || col >= col_end) {
        return vec4<f32>(0.0);
    }
    return vec4<f32>(b_h4[(r * stride + col) / 4u]);
}
