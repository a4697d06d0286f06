//! A VAE's reparameterisation: z = μ + exp(½ log σ²) · ε with ε ~ N(0, I) drawn on the GPU, from the
//! code layer's `[μ, log σ²]`. Its backward gives d[μ, log σ²] from dz and adds β · KL's gradient
//! (per image, averaged over the batch), so the loss kernel only reports the KL total.

use super::{Ctx, Node, Op, len3};
use crate::gpu::{Launch, View};
use crate::kernels::random::random_normal;
use crate::kernels::vae::{self, reparam_backward, reparam_forward};
use crate::runner::ArenaLayout;

/// ε, and the KL reduction's scratch and total.
pub fn add_tensors(layout: &mut ArenaLayout, batch: usize, node: &Node) {
    let n = batch * len3(node.output);
    layout.add("eps", n);
    layout.add("kl partials", vae::kl_partial_rows(n));
    layout.add("kl total", 1);
}

/// z = μ + σ·ε, or z = μ when not `sample` (evaluation of the deterministic code).
pub fn forward(ctx: &Ctx, node: &Node, z: &View, h: &View, sample: bool) -> Vec<Launch> {
    let (b, d) = (ctx.batch(), len3(node.output));
    if !sample {
        return vec![vae::reparam_mean(z, h, b, d)];
    }
    let eps = ctx.acts.view("eps");
    vec![random_normal(&eps, b * d, ctx.seed, 0), reparam_forward(z, h, &eps, b, d)]
}

/// d[μ, log σ²] from dz and the step's ε, plus β times the gradient of the KL (per image, averaged
/// over the batch); nothing when `dh` is `None`.
pub fn backward(ctx: &Ctx, node: &Node, dh: Option<&View>, dz: &View, h: &View) -> Vec<Launch> {
    let Op::Reparameterize { beta } = node.op else { unreachable!("a Reparameterize node") };
    let Some(dh) = dh else { return Vec::new() };
    let (b, d) = (ctx.batch(), len3(node.output));
    vec![reparam_backward(dh, dz, h, &ctx.acts.view("eps"), b, d, beta, 1.0 / b as f32)]
}
