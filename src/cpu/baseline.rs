//! The fair CPU baseline for benchmarks: `matrixmultiply`'s cache-blocked, multi-threaded sgemm
//! (the plain loops in `cpu::matmul` are the oracle, not a speed reference).

use crate::kernels::matmul::Transpose;

/// `c[M,N] = op(a) · op(b)` with the same layouts as the GPU kernel.
pub fn sgemm(c: &mut [f32], a: &[f32], b: &[f32], m: usize, n: usize, k: usize, trans: Transpose) {
    // Row-major strides; a transposed operand is the same memory read with swapped strides.
    let (rsa, csa) = match trans {
        Transpose::Tn => (1, m as isize),
        _ => (k as isize, 1),
    };
    let (rsb, csb) = match trans {
        Transpose::Nt => (1, k as isize),
        _ => (n as isize, 1),
    };
    // SAFETY: the slices hold at least m*k, k*n and m*n elements (checked below) and the strides
    // describe row-major matrices inside them.
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "sgemm: slice too short");
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}
