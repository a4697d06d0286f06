//! Reference for `shaders/decode_to_texture.wgsl` and `shaders/encode_from_texture.wgsl`, on an
//! RGBA8 texture held as bytes, row-major, 4 per texel.

use crate::kernels::texture::{AtlasLayout, ValueMap};

/// The byte a texel channel gets for value `v`: `floor(clamp(v * scale + offset, 0, 1) * 255 + 0.5)`.
pub fn quantise(v: f32, map: ValueMap) -> u8 {
    ((v * map.scale + map.offset).clamp(0.0, 1.0) * 255.0 + 0.5).floor() as u8
}

/// Draws `n` images (`[n, c, h, w]` f32, c = 1 or 3) into `texture` (`width` texels per row) as tiles
/// of `layout`: tile texel (u, v) shows pixel (u·w/tile_w, v·h/tile_h); grey as r = g = b; alpha 255.
/// Texels outside the tiles, or outside the texture, are left as they are.
#[allow(clippy::too_many_arguments)]
pub fn decode_to_atlas(
    texture: &mut [u8],
    width: usize,
    images: &[f32],
    n: usize,
    [c, h, w]: [usize; 3],
    layout: &AtlasLayout,
    map: ValueMap,
) {
    let height = texture.len() / 4 / width.max(1);
    let (tw, th) = (layout.tile[0] as usize, layout.tile[1] as usize);
    let gap = layout.gap as usize;
    let plane = h * w;
    for t in 0..n {
        let col = t % layout.columns as usize;
        let row = t / layout.columns as usize;
        for v in 0..th {
            for u in 0..tw {
                let x = layout.origin[0] as usize + col * (tw + gap) + u;
                let y = layout.origin[1] as usize + row * (th + gap) + v;
                if x >= width || y >= height {
                    continue;
                }
                let (px, py) = (u * w / tw, v * h / th);
                let base = t * c * plane + py * w + px;
                let rgb = if c == 3 {
                    [images[base], images[base + plane], images[base + 2 * plane]]
                } else {
                    [images[base]; 3]
                };
                let at = (y * width + x) * 4;
                for (k, value) in rgb.into_iter().enumerate() {
                    texture[at + k] = quantise(value, map);
                }
                texture[at + 3] = 255;
            }
        }
    }
}

/// Resamples `n` tiles of `texture` (`width` texels per row) at `layout` into images `[n, c, h, w]`:
/// pixel (x, y) is the mean of the tile's texels in [x0, x1) x [y0, y1), x0 = x·tile_w/w,
/// x1 = max(x0 + 1, (x + 1)·tile_w/w) (likewise y), each texel channel read as byte / 255; colour
/// models (c = 3) keep r, g, b, grey ones (c = 1) take the Rec. 709 luma 0.2126 r + 0.7152 g + 0.0722 b.
/// Texels outside the texture count as 0.
pub fn encode_from_atlas(
    texture: &[u8],
    width: usize,
    n: usize,
    [c, h, w]: [usize; 3],
    layout: &AtlasLayout,
) -> Vec<f32> {
    let height = texture.len() / 4 / width.max(1);
    let (tw, th) = (layout.tile[0] as usize, layout.tile[1] as usize);
    let gap = layout.gap as usize;
    let plane = h * w;
    let mut out = vec![0.0f32; n * c * plane];
    for b in 0..n {
        let tile_x = layout.origin[0] as usize + (b % layout.columns as usize) * (tw + gap);
        let tile_y = layout.origin[1] as usize + (b / layout.columns as usize) * (th + gap);
        for y in 0..h {
            for x in 0..w {
                let x0 = x * tw / w;
                let x1 = (x0 + 1).max((x + 1) * tw / w);
                let y0 = y * th / h;
                let y1 = (y0 + 1).max((y + 1) * th / h);
                let mut sum = [0.0f32; 3];
                for ty in y0..y1 {
                    for tx in x0..x1 {
                        let (ax, ay) = (tile_x + tx, tile_y + ty);
                        if ax < width && ay < height {
                            let at = (ay * width + ax) * 4;
                            for k in 0..3 {
                                sum[k] += texture[at + k] as f32 / 255.0;
                            }
                        }
                    }
                }
                let count = ((x1 - x0) * (y1 - y0)) as f32;
                let mean = sum.map(|s| s / count);
                let base = b * c * plane + y * w + x;
                if c == 3 {
                    for k in 0..3 {
                        out[base + k * plane] = mean[k];
                    }
                } else {
                    out[base] = 0.2126 * mean[0] + 0.7152 * mean[1] + 0.0722 * mean[2];
                }
            }
        }
    }
    out
}
