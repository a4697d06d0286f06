// matmul_sgemm_c_f32.wgsl: C of matmul_sgemm.wgsl (binding 4) stored as f32.
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

fn c_get(i: u32) -> f32 {
    return c[i];
}

fn c_set(i: u32, v: f32) {
    c[i] = v;
}
