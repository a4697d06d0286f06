//! Train-time noise layers, drawn on the GPU from the Philox generator (a fresh stream every step):
//! inverted dropout (`y = x ⊙ mask`, mask values 0 or 1/(1-p)) and input corruption for denoising
//! autoencoders (Gaussian, masking or salt-and-pepper; the loss still compares with the clean input).

use super::{Ctx, Node, Op, len3};
use crate::error::{Error, Result};
use crate::gpu::{Launch, View};
use crate::kernels::random;

fn mask(ctx: &Ctx, node: &Node) -> View {
    ctx.acts.view(&format!("{} mask", node.y))
}

/// Dropout: a fresh mask `{y} mask` (0 or 1/(1-p)), then y = x ⊙ mask. Corruption: y = the
/// corrupted x.
pub fn forward(ctx: &Ctx, node: &Node, y: &View, x: &View) -> Vec<Launch> {
    let n = ctx.batch() * len3(node.input);
    match node.op {
        Op::Dropout(p) => {
            let mask = mask(ctx, node);
            vec![random::dropout_mask(&mask, n, p, ctx.seed, 0), random::multiply(y, x, &mask, n)]
        }
        Op::Corrupt(noise) => vec![noise.launch(y, x, n, ctx.seed)],
        _ => unreachable!("a dropout or corruption node"),
    }
}

/// Dropout: dX = dY ⊙ mask. Corruption reads the data, which needs no gradient.
pub fn backward(ctx: &Ctx, node: &Node, dx: Option<&View>, dy: &View) -> Vec<Launch> {
    match (node.op, dx) {
        (Op::Dropout(_), Some(dx)) => {
            vec![random::multiply(dx, dy, &mask(ctx, node), ctx.batch() * len3(node.input))]
        }
        _ => Vec::new(),
    }
}

/// Input corruption for denoising, drawn on the GPU fresh every step.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "level", rename_all = "snake_case")]
pub enum Noise {
    /// Additive N(0, σ²) noise, clipped to [0, 1].
    Gaussian(f32),
    /// A fraction p of the pixels set to 0.
    Masking(f32),
    /// A fraction p of the pixels set to 0 or 1, with equal odds.
    SaltPepper(f32),
}

impl Noise {
    /// Parses `gaussian:0.5`, `masking:0.3`, `salt_pepper:0.1` (also `salt-pepper`, `sp`).
    pub fn parse(s: &str) -> Result<Noise> {
        let bad = || Error::Config(format!("noise '{s}': use gaussian:SIGMA, masking:P or salt_pepper:P"));
        let (kind, level) = s.split_once(':').ok_or_else(bad)?;
        let level: f32 = level.parse().map_err(|_| bad())?;
        let noise = match kind.to_lowercase().as_str() {
            "gaussian" => Noise::Gaussian(level),
            "masking" | "mask" => Noise::Masking(level),
            "salt_pepper" | "salt-pepper" | "sp" => Noise::SaltPepper(level),
            _ => return Err(bad()),
        };
        noise.validate()?;
        Ok(noise)
    }

    /// Checks the level: σ finite and >= 0, a probability in [0, 1].
    pub fn validate(&self) -> Result<()> {
        match *self {
            Noise::Gaussian(s) if !(s.is_finite() && s >= 0.0) => {
                Err(Error::Config(format!("Gaussian noise σ must be >= 0, got {s}")))
            }
            Noise::Masking(p) | Noise::SaltPepper(p) if !(0.0..=1.0).contains(&p) => {
                Err(Error::Config(format!("noise probability must be in [0, 1], got {p}")))
            }
            _ => Ok(()),
        }
    }

    /// The corruption launch: `out = corrupt(inp)` over n values.
    pub fn launch(&self, out: &View, inp: &View, n: usize, seed: u64) -> Launch {
        match *self {
            Noise::Gaussian(sigma) => random::corrupt_gaussian(out, inp, n, sigma, seed, 0),
            Noise::Masking(p) => random::corrupt_masking(out, inp, n, p, seed, 0),
            Noise::SaltPepper(p) => random::corrupt_salt_pepper(out, inp, n, p, seed, 0),
        }
    }
}
