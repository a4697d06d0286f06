// matmul_sgemm_a_scalar.wgsl: operand A of matmul_sgemm.wgsl, read one word at a time: the fallback
// when A's contiguous dimension is not a multiple of 4 or its view is not 16-byte aligned.
@group(0) @binding(1) var<storage, read_write> a: array<f32>;

// Words col..col+3 of row r of A as stored (rows of `stride` words), each zero unless r < r_end and
// its column < col_end.
fn quad_a(r: u32, col: u32, stride: u32, r_end: u32, col_end: u32) -> vec4<f32> {
    var q = vec4<f32>(0.0);
    if (r < r_end) {
        let base = r * stride + col;
        if (col < col_end) {
            q.x = a[base];
        }
        if (col + 1u < col_end) {
            q.y = a[base + 1u];
        }
        if (col + 2u < col_end) {
            q.z = a[base + 2u];
        }
        if (col + 3u < col_end) {
            q.w = a[base + 3u];
        }
    }
    return q;
}
