// matmul_sgemm_b_half.wgsl: operand B of matmul_sgemm.wgsl stored as f16 (the opt-in f16
// activation storage), read one value at a time and widened to f32: the products and sums run in f32.
@group(0) @binding(2) var<storage, read_write> b_h: array<f16>;

// Values col..col+3 of row r of B as stored (rows of `stride` values), each zero unless r < r_end and
// its column < col_end.
fn quad_b(r: u32, col: u32, stride: u32, r_end: u32, col_end: u32) -> vec4<f32> {
    var q = vec4<f32>(0.0);
    if (r < r_end) {
        let base = r * stride + col;
        if (col < col_end) {
            q.x = f32(b_h[base]);
        }
        if (col + 1u < col_end) {
            q.y = f32(b_h[base + 1u]);
        }
        if (col + 2u < col_end) {
            q.z = f32(b_h[base + 2u]);
        }
        if (col + 3u < col_end) {
            q.w = f32(b_h[base + 3u]);
        }
    }
    return q;
}
