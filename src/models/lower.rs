//! Lowering: a dense or conv configuration (and so every preset and user architecture) to one layer
//! list, with the code's position, the loss and the output activation.
//!
//! Both families lower the same way: [corruption], the layers in order with the output layer's
//! activation moved into the loss, and at the code layer its penalty (sparse or contractive), then a
//! VAE's reparameterisation; dropout follows every hidden layer with parameters except a VAE's
//! [μ, log σ²] layer and the output layer.

use super::conv::{ConvConfig, Layer};
use super::dense::DenseConfig;
use super::{ModelConfig, Variational};
use crate::error::{Error, Result};
use crate::kernels::Activation;
use crate::kernels::loss::LossKind;
use crate::nn::{Network, Noise, Op, Penalty};
use crate::tune::ConvAlgorithm;

/// A configuration lowered to a network.
pub struct Lowered {
    pub net: Network,
    pub code_node: usize,
    pub decoder_start: usize,
    pub loss: LossKind,
    pub output: Activation,
    pub variational: Option<Variational>,
    /// The node each configuration layer became.
    pub layer_nodes: Vec<usize>,
}

/// One layer of either family before lowering: its op, parameter name, and whether dropout may follow.
struct Step {
    op: Op,
    params: Option<String>,
}

pub fn lower(config: &ModelConfig) -> Result<Lowered> {
    match config {
        ModelConfig::Dense(c) => lower_dense(c),
        ModelConfig::Conv(c) => lower_conv(c),
    }
}

fn lower_dense(c: &DenseConfig) -> Result<Lowered> {
    c.validate()?;
    let r = &c.regularize;
    let penalty = match (r.sparse, r.contractive) {
        (Some(s), _) => Some(Penalty::Sparse { norm: s.norm, lambda: s.lambda }),
        (None, Some(lambda)) => Some(Penalty::Contractive { lambda }),
        (None, None) => None,
    };
    let steps = (0..c.layers())
        .map(|i| Step {
            op: Op::Linear { out: c.layer_out(i), act: c.activations[i] },
            params: Some(c.layer_name(i)),
        })
        .collect();
    assemble([c.input_dim(), 1, 1], steps, c.code_layer, c.loss, c.variational, r.noise, penalty, r.dropout)
}

fn lower_conv(c: &ConvConfig) -> Result<Lowered> {
    c.validate()?;
    let names = c.layer_names();
    let vae = c.variational.is_some();
    let steps = c
        .layers
        .iter()
        .zip(names)
        .enumerate()
        .map(|(i, (layer, params))| {
            let op = match *layer {
                Layer::Conv { out, kernel, stride, padding, act } => {
                    Op::Conv2d { out, kernel, stride, padding, act, algorithm: ConvAlgorithm::Direct }
                }
                Layer::ConvTranspose { out, kernel, stride, padding, output_padding, act } => {
                    Op::ConvTranspose2d {
                        out,
                        kernel,
                        stride,
                        padding,
                        output_padding,
                        act,
                        algorithm: ConvAlgorithm::Direct,
                    }
                }
                Layer::MaxPool => Op::MaxPool2d,
                Layer::Upsample => Op::Upsample,
                // A VAE's code layer outputs μ and log σ² side by side.
                Layer::Linear { out, act } => {
                    Op::Linear { out: if vae && i == c.code_layer { 2 * out } else { out }, act }
                }
                Layer::Unflatten { c, h, w } => Op::Reshape { to: [c, h, w] },
                Layer::Activation { act } => Op::Activation(act),
            };
            Step { op, params }
        })
        .collect();
    let penalty = c.sparse.map(|s| Penalty::Sparse { norm: s.norm, lambda: s.lambda });
    assemble(c.input, steps, c.code_layer, c.loss, c.variational, c.noise, penalty, c.dropout)
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    input: [usize; 3],
    steps: Vec<Step>,
    code_layer: usize,
    loss: LossKind,
    variational: Option<Variational>,
    noise: Option<Noise>,
    penalty: Option<Penalty>,
    dropout: Option<f32>,
) -> Result<Lowered> {
    // The output layer: the last with parameters (only reshapes may follow it).
    let last = steps.iter().rposition(|s| s.op.has_params()).unwrap_or(steps.len() - 1);
    let mut output = Activation::Identity;
    let mut ops: Vec<(Op, Option<String>)> = Vec::new();
    if let Some(noise) = noise {
        ops.push((Op::Corrupt(noise), None));
    }
    let (mut code_node, mut decoder_start) = (0, 0);
    let mut layer_nodes = Vec::new();
    for (i, Step { mut op, params }) in steps.into_iter().enumerate() {
        if i == last {
            // The output activation is fused into the loss kernel, which wants logits.
            output = op.act().unwrap_or(Activation::Identity);
            set_act(&mut op, Activation::Identity);
        }
        let has_params = op.has_params();
        layer_nodes.push(ops.len());
        ops.push((op, params));
        if i == code_layer {
            code_node = ops.len() - 1;
            if let Some(p) = penalty {
                ops.push((Op::Penalty(p), None));
            }
            if let Some(v) = variational {
                ops.push((Op::Reparameterize { beta: v.beta }, None));
            }
            decoder_start = ops.len();
        }
        let vae_code = variational.is_some() && i == code_layer;
        if let (Some(p), true) = (dropout, has_params && i != last && !vae_code) {
            ops.push((Op::Dropout(p), None));
        }
    }
    let net = Network::new(input, ops)?;
    if net.output() != input {
        let [a, b, c] = net.output();
        return Err(Error::Config(format!(
            "the decoder produces {a}x{b}x{c} but the input is {}x{}x{}: an autoencoder's output must have the \
             input's shape",
            input[0], input[1], input[2]
        )));
    }
    if let Some(p) = penalty {
        let code = &net.nodes[code_node];
        let first = code.x == "x" || code.x == "x noisy";
        p.check_placement(code, first).map_err(Error::Config)?;
    }
    Ok(Lowered { net, code_node, decoder_start, loss, output, variational, layer_nodes })
}

fn set_act(op: &mut Op, a: Activation) {
    if let Op::Linear { act, .. } | Op::Conv2d { act, .. } | Op::ConvTranspose2d { act, .. } = op {
        *act = a;
    }
}
