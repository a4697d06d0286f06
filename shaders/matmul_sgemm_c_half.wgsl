// matmul_sgemm_c_half.wgsl: C of matmul_sgemm.wgsl (binding 4) stored as f16 (the opt-in f16
// activation storage): the epilogue runs in f32 and only the stored value is rounded to f16.
@group(0) @binding(4) var<storage, read_write> c_h: array<f16>;

fn c_get(i: u32) -> f32 {
    return f32(c_h[i]);
}

fn c_set(i: u32, v: f32) {
    c_h[i] = f16(v);
}
