//! User-written architectures: `--arch "conv 32 k3 s2 relu, conv 64 k3 s2 relu, flatten, linear 16"`.
//!
//! Layers are separated by commas; an optional `|` separates the encoder from a decoder written out
//! in full, otherwise the decoder mirrors the encoder (transposed convolutions for convolutions,
//! up-sampling for max-pools, linear layers back to the feature map they flattened). The encoder's
//! last layer is the code. Words of a layer:
//!
//! - `conv OUT [kK] [sS] [pP] [ACT]`: Conv2d, kernel 3, stride 1, padding K/2 by default;
//! - `convt OUT [kK] [sS] [pP] [opN] [ACT]`: ConvTranspose2d;
//! - `maxpool`, `upsample`, `flatten` (a linear layer flattens by itself), `unflatten CxHxW`;
//! - `linear OUT [ACT]` (also `dense`);
//! - an activation name alone (`relu`, `sigmoid`, `tanh`, `leaky_relu[:slope]`, `identity`): fused
//!   into the layer before when that one has parameters and no activation yet, else its own layer.
//!
//! Mirrored decoder layers take the activation of the encoder layer before the one they mirror; the
//! last one takes the output activation. Errors name the layer and the shape it was given.

use super::conv::{ConvConfig, Layer};
use crate::error::{Error, Result};
use crate::kernels::Activation;
use crate::kernels::loss::LossKind;

/// Parses `text` into a configuration for `input`-shaped examples.
///
/// ```
/// use aegpu::prelude::*;
///
/// let text = "conv 32 k3 s2 relu, conv 64 k3 s2 relu, flatten, linear 16";
/// let config = aegpu::models::arch::parse(text, [1, 28, 28], LossKind::Bce, Activation::Sigmoid)?;
/// println!("{}", ModelConfig::from(config).describe());
///
/// let bad = aegpu::models::arch::parse("conv 8, bogus 3", [1, 28, 28], LossKind::Bce, Activation::Sigmoid);
/// assert!(bad.unwrap_err().to_string().contains("bogus 3")); // the error names the layer
/// # Ok::<(), aegpu::Error>(())
/// ```
pub fn parse(text: &str, input: [usize; 3], loss: LossKind, output: Activation) -> Result<ConvConfig> {
    let (enc_text, dec_text) = match text.split_once('|') {
        Some((e, d)) => (e, Some(d)),
        None => (text, None),
    };
    let encoder = parse_layers(enc_text)?;
    if encoder.is_empty() {
        return Err(Error::Config("--arch: the encoder has no layers".into()));
    }
    let code_layer = encoder.len() - 1;
    let decoder = match dec_text {
        Some(d) => parse_layers(d)?,
        None => mirror(&encoder, input, output)?,
    };
    let mut layers = encoder;
    layers.extend(decoder);
    let config = ConvConfig {
        input,
        layers,
        code_layer,
        loss,
        variational: None,
        noise: None,
        sparse: None,
        dropout: None,
    };
    config.validate().map_err(|e| Error::Config(format!("--arch \"{}\": {e}", text.trim())))?;
    Ok(config)
}

fn parse_layers(text: &str) -> Result<Vec<Layer>> {
    let mut layers: Vec<Layer> = Vec::new();
    for (i, part) in text.split(',').map(str::trim).filter(|p| !p.is_empty()).enumerate() {
        let bad = |why: &str| Error::Config(format!("--arch layer {i} '{part}': {why}"));
        let words: Vec<&str> = part.split_whitespace().collect();
        let number = |w: Option<&&str>, what: &str| -> Result<usize> {
            w.and_then(|w| w.parse().ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| bad(&format!("needs {what} (a positive number)")))
        };
        let layer = match words[0].to_lowercase().as_str() {
            "conv" | "convt" => {
                let out = number(words.get(1), "the output channels")?;
                let (mut kernel, mut stride, mut padding, mut op, mut act) =
                    (3, 1, None, 0, Activation::Identity);
                for w in &words[2..] {
                    let opt = |p: &str| w.strip_prefix(p).and_then(|v| v.parse::<usize>().ok());
                    if let Some(v) = opt("op") {
                        op = v;
                    } else if let Some(v) = opt("k") {
                        kernel = v;
                    } else if let Some(v) = opt("s") {
                        stride = v;
                    } else if let Some(v) = opt("p") {
                        padding = Some(v);
                    } else if let Some(a) = Activation::parse(w) {
                        act = a;
                    } else {
                        return Err(bad(&format!("unknown word '{w}' (kK, sS, pP, opN or an activation)")));
                    }
                }
                let padding = padding.unwrap_or(kernel / 2);
                if words[0].eq_ignore_ascii_case("conv") {
                    if op != 0 {
                        return Err(bad("output padding (op) is for convt"));
                    }
                    Layer::Conv { out, kernel, stride, padding, act }
                } else {
                    Layer::ConvTranspose { out, kernel, stride, padding, output_padding: op, act }
                }
            }
            "linear" | "dense" => {
                let out = number(words.get(1), "the output width")?;
                let act = match words.get(2) {
                    Some(w) => {
                        Activation::parse(w).ok_or_else(|| bad(&format!("unknown activation '{w}'")))?
                    }
                    None => Activation::Identity,
                };
                Layer::Linear { out, act }
            }
            "maxpool" | "pool" => Layer::MaxPool,
            "upsample" => Layer::Upsample,
            "flatten" => continue,
            "unflatten" => {
                let dims: Vec<usize> = words
                    .get(1)
                    .map(|s| s.split('x').filter_map(|d| d.parse().ok()).collect())
                    .unwrap_or_default();
                let [c, h, w] = dims[..] else { return Err(bad("needs CxHxW, e.g. unflatten 64x7x7")) };
                Layer::Unflatten { c, h, w }
            }
            word => {
                let act = Activation::parse(word).ok_or_else(|| {
                    bad("unknown layer: use conv, convt, maxpool, upsample, flatten, unflatten, linear or an activation")
                })?;
                match layers.last_mut() {
                    Some(l) if l.act() == Some(Activation::Identity) => {
                        l.set_act(act);
                        continue;
                    }
                    _ => Layer::Activation { act },
                }
            }
        };
        layers.push(layer);
    }
    Ok(layers)
}

/// The decoder that undoes `encoder` shape by shape.
fn mirror(encoder: &[Layer], input: [usize; 3], output: Activation) -> Result<Vec<Layer>> {
    // Shapes the encoder reads, layer by layer.
    let probe = ConvConfig {
        input,
        layers: encoder.to_vec(),
        code_layer: 0,
        loss: LossKind::Mse,
        variational: None,
        noise: None,
        sparse: None,
        dropout: None,
    };
    let shapes = probe.layer_input_shapes()?;
    let acts: Vec<Option<Activation>> = encoder.iter().map(Layer::act).collect();
    let mut decoder = Vec::new();
    for (i, layer) in encoder.iter().enumerate().rev() {
        let [c, h, w] = shapes[i];
        // The activation of the encoder layer with parameters before this one; the output's for the first.
        let act = acts[..i].iter().rev().flatten().next().copied().unwrap_or(output);
        let cannot = |why: String| {
            Error::Config(format!(
                "--arch: cannot mirror layer {i} ({layer:?}): {why}; write the decoder after a '|'"
            ))
        };
        match *layer {
            Layer::Conv { kernel, stride, padding, .. } => {
                let [_, oh, ow] = shapes[i + 1];
                let base = |o: usize| (o - 1) * stride + kernel;
                let op_h = (h + 2 * padding).checked_sub(base(oh));
                let op_w = (w + 2 * padding).checked_sub(base(ow));
                match (op_h, op_w) {
                    (Some(a), Some(b)) if a == b && a < stride.max(1) => decoder.push(Layer::ConvTranspose {
                        out: c,
                        kernel,
                        stride,
                        padding,
                        output_padding: a,
                        act,
                    }),
                    _ => return Err(cannot(format!("no transposed convolution maps back to {c}x{h}x{w}"))),
                }
            }
            Layer::ConvTranspose { kernel, stride, padding, .. } => {
                decoder.push(Layer::Conv { out: c, kernel, stride, padding, act });
            }
            Layer::MaxPool => {
                if h % 2 != 0 || w % 2 != 0 {
                    return Err(cannot(format!("up-sampling doubles {h}x{w} rounded up, not back to it")));
                }
                decoder.push(Layer::Upsample);
            }
            Layer::Upsample => decoder.push(Layer::MaxPool),
            Layer::Linear { .. } => {
                decoder.push(Layer::Linear { out: c * h * w, act });
                if h * w > 1 {
                    decoder.push(Layer::Unflatten { c, h, w });
                }
            }
            Layer::Unflatten { .. } => {} // the Linear before it reads the map flattened
            Layer::Activation { .. } => {} // carried by the mirrored layers' activations
        }
    }
    // The output activation belongs to the last layer with parameters.
    if let Some(last) = decoder.iter_mut().rev().find(|l| l.has_params()) {
        last.set_act(output);
    }
    Ok(decoder)
}
