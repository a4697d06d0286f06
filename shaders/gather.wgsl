// gather.wgsl: builds an f32 batch from the u8 dataset resident on the GPU, one chunk at a time.
//
//   e = index[offset + b]
//   out[b, j] = (chunk_u8[(e - first) * dim + j] - zero) / scale
//                                   for b < batch, j < dim, first <= e < first + count
// zero = 0, scale = 255 (every dataset but one) gives pixels in [0, 1]; whitened patches are stored
// as bytes around zero = 127.5 and come back in their own zero-mean units.
// A dataset larger than one storage binding is split into chunks of whole examples, one buffer
// each; a training step dispatches this entry point once per chunk, and each dispatch writes only
// the rows whose example lives in its chunk (the others are left to their own chunk's dispatch).
// Addresses are relative to the chunk, so they stay below the binding size (no u32 overflow for
// big datasets). A single chunk (first 0, count >= n) is the whole dataset.
// Each chunk is packed four bytes per u32 word (little-endian, byte 0 in the low bits), exactly as
// the host uploads the u8 slice; a chunk's last word is zero-padded. index holds a shuffled
// permutation of the examples for the epoch; offset (the batch's first position in it) changes
// every step and is rewritten in Params.
//
// Bindings: 0 uniform Params, 1 chunk data (u32 words), 2 index (u32), 3 out (f32 [batch, dim]).
// Dispatch: 1-D over batch*dim, 256 per workgroup, folded into (x, y) like activation.wgsl.
// CPU reference: src/cpu/gather.rs.

struct Params {
    batch: u32,
    dim: u32,
    offset: u32,
    // The chunk's first example and its number of examples.
    first: u32,
    count: u32,
    // What a byte stands for: (byte - zero) / scale.
    zero: f32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> data: array<u32>;
@group(0) @binding(2) var<storage, read_write> index: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn gather_u8(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.batch * p.dim) {
        return;
    }
    let b = i / p.dim;
    let j = i % p.dim;
    let e = index[p.offset + b];
    // Below first, e - first wraps to a large value: one comparison covers both ends.
    let local = e - p.first;
    if (local >= p.count) {
        return;
    }
    let byte_index = local * p.dim + j;
    let word = data[byte_index / 4u];
    let value = (word >> (8u * (byte_index % 4u))) & 0xffu;
    out[i] = (f32(value) - p.zero) / p.scale;
}
