//! The file readers fed damaged and random bytes (property tests with proptest): truncations, bit
//! flips, overwritten header bytes and random files, derived from valid IDX (raw and gzip),
//! checkpoint, `.npy` (uint8 in C and Fortran order, float32) and CIFAR-10 files. Whatever the bytes,
//! a reader returns a value or one of the typed errors listed for it; a panic fails the test (proptest
//! catches it and shrinks the input). Truncating a file whose length is fixed by its header is always
//! an error. No GPU: the checkpoint reader checks tensors against the model without one.
//!
//! The generator is seeded, so CI runs the same cases every time.

use aegpu::checkpoint;
use aegpu::data::{NpyLayout, load_npy, read_cifar10_batch, read_idx};
use aegpu::error::Error;
use aegpu::kernels::Activation;
use aegpu::kernels::loss::LossKind;
use aegpu::models::ModelConfig;
use aegpu::models::dense::DenseConfig;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRng, TestRunner};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What is done to a valid file.
#[derive(Clone, Debug)]
enum Damage {
    /// Keep the first n bytes.
    Truncate(usize),
    /// Flip bit b of byte i, for each (i, b).
    Flip(Vec<(usize, u8)>),
    /// Write these bytes from offset i (within the first 128 bytes: headers).
    Overwrite(usize, Vec<u8>),
    /// A file of random bytes.
    Random(Vec<u8>),
    /// A file built from random header fields (sizes, types, offsets) and random data: what bit
    /// flips seldom reach, such as huge dimensions.
    Crafted(Vec<u8>),
}

/// Damage to a valid file of `len` bytes, or (one case in four) a file from `crafted`.
fn damage(len: usize, crafted: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Damage> {
    prop_oneof![
        3 => mutation(len),
        1 => crafted.prop_map(Damage::Crafted),
    ]
}

fn mutation(len: usize) -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0..len).prop_map(Damage::Truncate),
        prop::collection::vec((0..len, 0u8..8), 1..6).prop_map(Damage::Flip),
        (0..len.min(128), prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(i, b)| Damage::Overwrite(i, b)),
        prop::collection::vec(any::<u8>(), 0..600).prop_map(Damage::Random),
    ]
}

fn apply(valid: &[u8], d: &Damage) -> Vec<u8> {
    let mut v = valid.to_vec();
    match d {
        Damage::Truncate(n) => v.truncate(*n),
        Damage::Flip(flips) => flips.iter().for_each(|&(i, b)| v[i] ^= 1 << b),
        Damage::Overwrite(at, bytes) => {
            for (k, b) in bytes.iter().enumerate() {
                if let Some(slot) = v.get_mut(at + k) {
                    *slot = *b;
                }
            }
        }
        Damage::Random(bytes) | Damage::Crafted(bytes) => v = bytes.clone(),
    }
    v
}

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("aegpu-fuzz-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cases` damaged copies of `valid` (and files from `crafted`) through `read` (given the file's path): a panic or a
/// result `check` rejects fails the test, naming the damage.
fn fuzz<T>(
    name: &str,
    valid: &[u8],
    crafted: impl Strategy<Value = Vec<u8>>,
    cases: u32,
    read: impl Fn(&Path) -> aegpu::Result<T>,
    check: impl Fn(&Damage, &aegpu::Result<T>) -> Result<(), String>,
) {
    let tmp = TempDir::new(name);
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner =
        TestRunner::new_with_rng(config.clone(), TestRng::deterministic_rng(config.rng_algorithm));
    let case = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&damage(valid.len(), crafted), |d| {
        // A new file per case: rewriting one file in place makes ext4 flush it to disk each time.
        let path = tmp.0.join(format!("{}-{name}", case.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
        std::fs::write(&path, apply(valid, &d)).unwrap();
        let result = read(&path);
        std::fs::remove_file(&path).unwrap();
        check(&d, &result).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// Accepts a value or an error of the kinds `typed` allows; `must_fail` damages must give an error.
fn typed<T>(
    allowed: fn(&Error) -> bool,
    must_fail: fn(&Damage) -> bool,
) -> impl Fn(&Damage, &aegpu::Result<T>) -> Result<(), String> {
    move |d, r| match r {
        Err(e) if !allowed(e) => Err(format!("untyped error for {d:?}: {e:?}")),
        Ok(_) if must_fail(d) => Err(format!("{d:?} was accepted")),
        _ => Ok(()),
    }
}

fn truncated(d: &Damage) -> bool {
    matches!(d, Damage::Truncate(_))
}

fn bad_data(e: &Error) -> bool {
    matches!(e, Error::BadData { .. })
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// IDX files with random element types, dimensions (small or any u32) and data.
fn crafted_idx() -> impl Strategy<Value = Vec<u8>> {
    let elem = prop_oneof![Just(8u8), any::<u8>()];
    let dim = prop_oneof![0u32..8, any::<u32>()];
    (elem, prop::collection::vec(dim, 0..5), prop::collection::vec(any::<u8>(), 0..300)).prop_map(
        |(elem, dims, data)| {
            let mut file = idx(&dims, &data);
            file[2] = elem;
            file
        },
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn pixels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 37 % 251) as u8).collect()
}

#[test]
fn idx_reader_gives_a_value_or_bad_data() {
    let raw = idx(&[10, 4, 4], &pixels(160));
    fuzz("images-idx3-ubyte", &raw, crafted_idx(), 3000, read_idx, typed(bad_data, truncated));
    // A truncated gzip stream (or one cut inside its trailer) is an error too.
    let gz = crafted_idx().prop_map(|f| gzip(&f));
    fuzz("images-idx3-ubyte.gz", &gzip(&raw), gz, 3000, read_idx, typed(bad_data, truncated));
}

#[test]
fn checkpoint_reader_gives_a_value_or_a_checkpoint_error() {
    use Activation::*;
    let config: ModelConfig =
        DenseConfig::symmetric(16, &[4], Relu, Identity, Sigmoid, LossKind::Bce).unwrap().into();
    let tensors: Vec<_> = config
        .parameters()
        .unwrap()
        .into_iter()
        .map(|(n, s)| {
            let len: usize = s.iter().product();
            (n, s, (0..len).map(|i| i as f32 / 100.0 - 0.3).collect::<Vec<f32>>())
        })
        .collect();
    let meta = [("aegpu.epoch", "2".to_string()), ("aegpu.dataset", "mnist".to_string())];
    let valid = checkpoint::encode(&config, &tensors, &meta).unwrap();
    let allowed = |e: &Error| {
        matches!(
            e,
            Error::BadCheckpoint { .. } | Error::CheckpointMismatch { .. } | Error::NonFiniteWeights { .. }
        )
    };
    let mut names: Vec<String> = tensors.iter().map(|t| t.0.clone()).collect();
    names.push("decoder.9.weight".into());
    let crafted = crafted_checkpoint(&config, names);
    fuzz("model.safetensors", &valid, crafted, 3000, checkpoint::load, typed(allowed, truncated));
}

/// Safetensors files with the model's metadata and a random subset of `names` (its parameters and
/// one more), each of a random dtype and shape (small, any u32, or usize::MAX), stored one after
/// another (or at random offsets when the sizes overflow), over random data.
fn crafted_checkpoint(config: &ModelConfig, names: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    let metadata = serde_json::json!({
        "aegpu.kind": config.kind(),
        "aegpu.model": config.to_json().unwrap(),
    });
    let dtype = prop::sample::select(vec![("F32", 4usize), ("F16", 2), ("F64", 8), ("U8", 1), ("BOOL", 1)]);
    let dim = prop_oneof![4 => 0usize..20, 1 => any::<u32>().prop_map(|d| d as usize), 1 => Just(usize::MAX)];
    let tensor = (any::<bool>(), dtype, prop::collection::vec(dim, 0..4), 0usize..4000);
    (prop::collection::vec(tensor, names.len()), prop::collection::vec(any::<u8>(), 0..300)).prop_map(
        move |(tensors, noise)| {
            let mut header = serde_json::Map::new();
            header.insert("__metadata__".into(), metadata.clone());
            let mut end = 0usize;
            for (name, (keep, (dtype, size), shape, random_end)) in names.iter().zip(tensors) {
                if !keep {
                    continue;
                }
                let bytes = shape.iter().try_fold(size, |a, &d| a.checked_mul(d)).filter(|b| *b < 1 << 16);
                let (start, stop) = match bytes {
                    Some(b) => (end, end + b),
                    None => (random_end / 2, random_end),
                };
                end = end.max(stop);
                header.insert(
                    name.clone(),
                    serde_json::json!({ "dtype": dtype, "shape": shape, "data_offsets": [start, stop] }),
                );
            }
            let header = serde_json::Value::Object(header).to_string();
            let mut file = (header.len() as u64).to_le_bytes().to_vec();
            file.extend(header.as_bytes());
            file.extend((0..end).map(|i| noise.get(i % noise.len().max(1)).copied().unwrap_or(0)));
            file
        },
    )
}

/// A `.npy` file (format 1.0): magic, header dict padded to 64 bytes, data.
fn npy(descr: &str, fortran: bool, shape: &[u64], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let order = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': ({},), }}", dims.join(", "));
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// `.npy` files with random element types, orders, shapes (small, any u64, 2^32) and data.
fn crafted_npy() -> impl Strategy<Value = Vec<u8>> {
    let descr = prop::sample::select(vec!["|u1", "<f4", ">f4", "<f8", "<i8", "|b1", "<f2", "<u2", "|V4"]);
    let dim = prop_oneof![4 => 0u64..8, 1 => any::<u64>(), 1 => Just(1u64 << 32)];
    (descr, any::<bool>(), prop::collection::vec(dim, 1..5), prop::collection::vec(any::<u8>(), 0..300))
        .prop_map(|(descr, fortran, shape, data)| npy(descr, fortran, &shape, &data))
}

#[test]
fn npy_reader_gives_a_value_or_bad_data() {
    let allowed = |e: &Error| matches!(e, Error::BadData { .. } | Error::Shape(_));
    let read = |p: &Path| load_npy(p, None, NpyLayout::Auto);
    let grey = npy("|u1", false, &[6, 4, 4], &pixels(96));
    assert_eq!(read_through(&grey, "grey.npy").n, 6, "the valid grey file loads");
    fuzz("grey.npy", &grey, crafted_npy(), 2000, read, typed(allowed, truncated));
    let fortran = npy("|u1", true, &[2, 4, 4, 3], &pixels(96));
    assert_eq!(read_through(&fortran, "fortran.npy").channels, 3, "the valid Fortran-order file loads");
    fuzz("fortran.npy", &fortran, crafted_npy(), 2000, read, typed(allowed, truncated));
    let floats: Vec<u8> = (0..48).flat_map(|i| (i as f32 / 47.0).to_le_bytes()).collect();
    let float = npy("<f4", false, &[3, 1, 4, 4], &floats);
    assert_eq!(read_through(&float, "float.npy").n, 3, "the valid float file loads");
    fuzz("float.npy", &float, crafted_npy(), 2000, read, typed(allowed, truncated));
}

/// Loads valid `.npy` bytes (so the fuzzed files start from something the reader accepts).
fn read_through(bytes: &[u8], name: &str) -> aegpu::data::Dataset {
    let tmp = TempDir::new(&format!("valid-{name}"));
    let path = tmp.0.join(name);
    std::fs::write(&path, bytes).unwrap();
    load_npy(&path, None, NpyLayout::Auto).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn cifar_reader_gives_a_value_or_bad_data() {
    let mut batch = Vec::new();
    for label in [3u8, 7] {
        batch.push(label);
        batch.extend(pixels(3072));
    }
    // Cutting at a record boundary leaves a valid, shorter batch; anywhere else is an error.
    let misaligned = |d: &Damage| matches!(d, Damage::Truncate(n) if n % 3073 != 0 || *n == 0);
    let crafted = prop::collection::vec(any::<u8>(), 0..7000);
    fuzz("data_batch_1.bin", &batch, crafted, 1000, read_cifar10_batch, typed(bad_data, misaligned));
}
