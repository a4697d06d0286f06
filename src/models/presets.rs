//! The conv presets (keras, strided, conv-vae), written for 1x28x28 MNIST and adapted to other
//! input sizes where their poolings and strides can give the size back.

use super::conv::{ConvConfig, Layer};
use crate::error::{Error, Result};
use crate::kernels::Activation;
use crate::kernels::loss::LossKind;
use crate::models::dense::Variational;

impl ConvConfig {
    /// Models people know, written for 1x28x28 MNIST; they take any channel count, and other sizes
    /// where their poolings and strides can give the size back (the keras preset: multiples of 8 or
    /// 4 less than one, e.g. 32x32; strided: rows and columns of the same parity pattern), or an
    /// error says why not:
    /// - `keras`: the Keras blog's convolutional autoencoder (Conv 16-8-8 3x3 with max-pooling to an
    ///   8x4x4 code, then Conv 8-8-16 with up-sampling and a sigmoid Conv 1), trained with BCE;
    /// - `strided`: Conv 32 and 64 (3x3, stride 2, padding 1) to a 64x7x7 code, then transposed
    ///   convolutions back to 1x28x28; with `code_dim` a dense bottleneck to a `code_dim` code;
    /// - `conv-vae`: the strided encoder, a dense layer to μ and log σ² of a `code_dim` (default 20)
    ///   latent, and the mirrored decoder (a convolutional VAE, BCE + β·KL).
    pub fn preset(
        name: &str,
        input: [usize; 3],
        code_dim: Option<usize>,
        loss: LossKind,
    ) -> Result<ConvConfig> {
        use Activation::{Identity, Relu, Sigmoid};
        let c = input[0];
        let (layers, code_layer, variational) = match name {
            "keras" => {
                if code_dim.is_some() {
                    return Err(Error::Config(
                        "the keras preset has a fixed 8x4x4 code: drop --code-dim".into(),
                    ));
                }
                let pad = keras_padding(input)?;
                let layers = vec![
                    Layer::conv(16, 3, 1, 1, Relu),
                    Layer::MaxPool,
                    Layer::conv(8, 3, 1, 1, Relu),
                    Layer::MaxPool,
                    Layer::conv(8, 3, 1, 1, Relu),
                    Layer::MaxPool,
                    Layer::conv(8, 3, 1, 1, Relu),
                    Layer::Upsample,
                    Layer::conv(8, 3, 1, 1, Relu),
                    Layer::Upsample,
                    Layer::conv(16, 3, 1, pad, Relu),
                    Layer::Upsample,
                    Layer::conv(c, 3, 1, 1, Sigmoid),
                ];
                (layers, 5, None)
            }
            "strided" | "conv-vae" => {
                let (h, w) = (input[1].div_ceil(4), input[2].div_ceil(4));
                let mut layers = vec![Layer::conv(32, 3, 2, 1, Relu), Layer::conv(64, 3, 2, 1, Relu)];
                let vae = name == "conv-vae";
                let code_dim = if vae { Some(code_dim.unwrap_or(20)) } else { code_dim };
                let code_layer = match code_dim {
                    Some(d) => {
                        layers.push(Layer::Linear { out: d, act: Identity });
                        layers.push(Layer::Linear { out: 64 * h * w, act: Relu });
                        layers.push(Layer::Unflatten { c: 64, h, w });
                        2
                    }
                    None => 1,
                };
                // output_padding 1 doubles the size exactly (7 -> 14 -> 28); 0 gives 2n - 1, for an
                // odd size (25 -> 13 -> 7 and back).
                let [out1, out2] = strided_output_padding(input)?;
                layers.push(Layer::conv_t(32, 2, out1, Relu));
                layers.push(Layer::conv_t(c, 2, out2, Sigmoid));
                let variational = vae.then_some(Variational { beta: 1.0 });
                (layers, code_layer, variational)
            }
            other => {
                return Err(Error::Config(format!(
                    "unknown conv preset '{other}': use keras, strided or conv-vae"
                )));
            }
        };
        let loss = if variational.is_some() { LossKind::Bce } else { loss };
        let config = ConvConfig {
            input,
            layers,
            code_layer,
            loss,
            variational,
            noise: None,
            sparse: None,
            dropout: None,
        };
        config.validate()?;
        Ok(config)
    }
}

/// The padding of the keras preset's third decoder conv that brings its output back to the input
/// size: the encoder pools three times (rounding up) to `s`, the decoder doubles twice to `4s`,
/// the conv gives `4s - 2 + 2·pad`, the last up-sampling doubles that. 28x28: pad 0 (16 -> 14 -> 28);
/// 32x32: pad 1. Other sizes have no such padding.
fn keras_padding([_, h, w]: [usize; 3]) -> Result<usize> {
    let pad_for = |n: usize| {
        let s = n.div_ceil(2).div_ceil(2).div_ceil(2);
        (n.is_multiple_of(2) && n / 2 + 2 >= 4 * s && (n / 2 + 2 - 4 * s).is_multiple_of(2))
            .then(|| (n / 2 + 2 - 4 * s) / 2)
            .filter(|&p| p <= 1)
    };
    match (pad_for(h), pad_for(w)) {
        (Some(a), Some(b)) if a == b => Ok(a),
        _ => Err(Error::Config(format!(
            "the keras preset (three 2x2 poolings, then up-sampling) cannot give back {h}x{w} images: it \
             fits sizes that are multiples of 8 or 4 less than one (24, 28, 32, 60, 64, ...), the same \
             kind for both sides; use --size, the strided preset or an --arch of your own"
        ))),
    }
}

/// The output paddings of the strided preset's two transposed convs: each stride-2 conv (k3, p1)
/// takes `n` to `ceil(n / 2)`; going back, output padding 1 gives `2m`, 0 gives `2m - 1`. Rows and
/// columns share one output padding, so both must need the same.
fn strided_output_padding([_, h, w]: [usize; 3]) -> Result<[usize; 2]> {
    let pads = |n: usize| [usize::from(n.div_ceil(2).is_multiple_of(2)), usize::from(n.is_multiple_of(2))];
    if pads(h) != pads(w) {
        return Err(Error::Config(format!(
            "the strided preset cannot give back {h}x{w} images: its transposed convolutions use one \
             output padding for rows and columns, and {h} and {w} need different ones; use --size \
             (e.g. a square) or an --arch of your own"
        )));
    }
    Ok(pads(h))
}
