// decode_to_texture.wgsl: decoded images (f32, after the output activation) drawn into an rgba8unorm
// storage texture as an atlas of tiles, so a host samples them in its own render passes.
//
//   tile t of image t: columns tiles per row, each tile_w x tile_h texels, `gap` texels apart,
//   the first at texel (origin_x, origin_y); texel (u, v) of a tile shows pixel
//   (u * width / tile_w, v * height / tile_h) of the image (nearest neighbour, integer division).
//   value  = clamp(images[t, c, py, px] * scale + offset, 0, 1)
//   stored = floor(value * 255 + 0.5) / 255 per channel: grey images (channels 1) as r = g = b,
//            colour images (channels 3) as r, g, b; alpha 1.
// Quantising in the shader makes the stored byte exactly floor(value * 255 + 0.5) whatever the
// driver's float-to-unorm rounding. Gap texels, texels of tiles past the last image and texels
// outside the texture are left as they were.
//
// Bindings: 0 uniform Params, 1 images (f32 [n, channels, height, width], read), 2 the texture
// (texture_storage_2d<rgba8unorm, write>).
// Dispatch: one invocation per texel of the atlas's bounding box, 16x16 per workgroup.
// CPU reference: src/cpu/texture.rs (decode_to_atlas).

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
    scale: f32,
    offset: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> images: array<f32>;
@group(0) @binding(2) var atlas: texture_storage_2d<rgba8unorm, write>;

fn quantise(v: f32) -> f32 {
    return floor(clamp(v * p.scale + p.offset, 0.0, 1.0) * 255.0 + 0.5) / 255.0;
}

@compute @workgroup_size(16, 16)
fn decode_to_texture(@builtin(global_invocation_id) gid: vec3<u32>) {
    let step_x = p.tile_w + p.gap;
    let step_y = p.tile_h + p.gap;
    let tx = gid.x / step_x;
    let ty = gid.y / step_y;
    let u = gid.x % step_x;
    let v = gid.y % step_y;
    if (tx >= p.columns || u >= p.tile_w || v >= p.tile_h) {
        return;
    }
    let t = ty * p.columns + tx;
    if (t >= p.n) {
        return;
    }
    let dims = textureDimensions(atlas);
    let x = p.origin_x + gid.x;
    let y = p.origin_y + gid.y;
    if (x >= dims.x || y >= dims.y) {
        return;
    }
    let px = u * p.width / p.tile_w;
    let py = v * p.height / p.tile_h;
    let plane = p.height * p.width;
    let base = t * p.channels * plane + py * p.width + px;
    var rgb = vec3<f32>(0.0);
    if (p.channels == 3u) {
        rgb = vec3<f32>(quantise(images[base]), quantise(images[base + plane]), quantise(images[base + 2u * plane]));
    } else {
        rgb = vec3<f32>(quantise(images[base]));
    }
    textureStore(atlas, vec2<u32>(x, y), vec4<f32>(rgb, 1.0));
}
