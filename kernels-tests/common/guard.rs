//! Guard bands: buffers uploaded with SENTINEL words past their data, read back with a check that
//! no kernel wrote past the range it was given, and bit-for-bit comparisons.

use aegpu::gpu::{Gpu, StorageBuffer};

/// Words past the kernel's range in every guarded buffer; they must keep SENTINEL.
pub const TAIL: usize = 61;
pub const SENTINEL: f32 = -12345.5;

/// `v` followed by TAIL sentinels, uploaded.
pub fn upload_with_tail(gpu: &Gpu, label: &str, v: &[f32]) -> StorageBuffer {
    let mut padded = v.to_vec();
    padded.resize(v.len() + TAIL, SENTINEL);
    StorageBuffer::from_slice(gpu, label, &padded).unwrap()
}

/// Reads the first `n` words and checks that the rest of the buffer still holds SENTINEL.
pub fn read_checked(gpu: &Gpu, what: &str, b: &StorageBuffer, n: usize) -> Vec<f32> {
    let all = b.read_all_f32(gpu).unwrap();
    if let Some(i) = all[n..].iter().position(|x| x.to_bits() != SENTINEL.to_bits()) {
        panic!("{what}: word {} past n = {n} was overwritten with {}", n + i, all[n + i]);
    }
    all[..n].to_vec()
}

/// Asserts `got` and `want` hold the same bits (NaN payloads and signed zeros included).
pub fn assert_bits_eq(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{what}: first difference at [{i}]: {} vs {}", got[i], want[i]);
    }
}
