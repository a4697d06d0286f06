// encode_from_texture.wgsl: the reverse of decode_to_texture.wgsl. Tiles of a texture the host owns
// (a rendered frame, a sprite sheet) resampled to the model's input, as the f32 batch an encoder
// reads, so codes come from pixels that never leave the GPU.
//
//   tile b: columns tiles per row, each tile_w x tile_h texels, `gap` texels apart, the first at
//   texel (origin_x, origin_y). Input pixel (x, y) of image b is the mean of the tile's texels in
//   the box [x0, x1) x [y0, y1) with x0 = x * tile_w / width, x1 = max(x0 + 1, (x + 1) * tile_w / width)
//   (integer division; likewise y): an area average when shrinking, nearest neighbour when growing.
//   out[b, c, y, x] = mean of channel c (colour models, channels 3), or of the Rec. 709 luma
//   0.2126 r + 0.7152 g + 0.0722 b (grey models, channels 1, as data::folder turns colour grey).
// Texels are read with textureLoad as the texture's view gives them (unorm formats in [0, 1]; sRGB
// formats already linearised). Texels outside the texture read as 0 (textureLoad out of bounds is
// not defined, so the shader checks).
//
// Bindings: 0 uniform Params, 1 out (f32 [n, channels, height, width], read_write), 2 the texture
// (texture_2d<f32>, any float format, no sampler).
// Dispatch: 1-D over n * height * width (one invocation writes every channel of one pixel), 256 per
// workgroup, folded into (x, y) like activation.wgsl.
// CPU reference: src/cpu/texture.rs (encode_from_atlas).

struct Params {
    n: u32,
    channels: u32,
    height: u32,
    width: u32,
    columns: u32,
    tile_w: u32,
    tile_h: u32,
    gap: u32,
    origin_x: u32,
    origin_y: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var source: texture_2d<f32>;

@compute @workgroup_size(256)
fn encode_from_texture(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let plane = p.height * p.width;
    if (i >= p.n * plane) {
        return;
    }
    let b = i / plane;
    let y = (i % plane) / p.width;
    let x = i % p.width;
    let x0 = x * p.tile_w / p.width;
    let x1 = max(x0 + 1u, (x + 1u) * p.tile_w / p.width);
    let y0 = y * p.tile_h / p.height;
    let y1 = max(y0 + 1u, (y + 1u) * p.tile_h / p.height);
    let tile_x = p.origin_x + (b % p.columns) * (p.tile_w + p.gap);
    let tile_y = p.origin_y + (b / p.columns) * (p.tile_h + p.gap);
    let dims = textureDimensions(source);
    var sum = vec3<f32>(0.0);
    for (var ty = y0; ty < y1; ty++) {
        for (var tx = x0; tx < x1; tx++) {
            let at = vec2<u32>(tile_x + tx, tile_y + ty);
            if (at.x < dims.x && at.y < dims.y) {
                sum += textureLoad(source, at, 0).rgb;
            }
        }
    }
    let mean = sum / f32((x1 - x0) * (y1 - y0));
    let base = b * p.channels * plane + y * p.width + x;
    if (p.channels == 3u) {
        out[base] = mean.r;
        out[base + plane] = mean.g;
        out[base + 2u * plane] = mean.b;
    } else {
        out[base] = 0.2126 * mean.r + 0.7152 * mean.g + 0.0722 * mean.b;
    }
}
