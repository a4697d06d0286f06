//! Correct first, then fast: a kernel candidate is timed, chosen or cached only after it computed
//! what the CPU reference computes. A matmul candidate runs every transpose form on awkward shapes
//! (M = 1, N = 1, K = 1, odd sizes, one tile exactly) with each epilogue (none; bias + ReLU;
//! accumulate into existing values), into a buffer with a guard band after the result that must
//! stay untouched; a convolution algorithm runs its layer's forward and both backward products at
//! batch 2. A candidate that is wrong on this adapter is excluded with the first wrong value as the
//! reason, however fast it is. A variant that rounds its operands to f16 (a cooperative-matrix
//! precision path) is held to the product of the rounded operands, accumulated in f32.

use crate::error::Result;
use crate::gpu::{Gpu, Launch, StorageBuffer};
use crate::kernels::Activation;
use crate::kernels::conv::Conv2dShape;
use crate::kernels::matmul::{Half, Matmul, MatmulVariant, Transpose};
use crate::runner::{Plan, View};

/// One way to run a matmul: a name (the cache and the logs use it) and how it launches a product.
pub struct MatmulCandidate {
    /// The variant's lower-case name (e.g. `sgemm64x64`), or a custom kernel's.
    pub name: String,
    /// The engine's variant this candidate is, if it is one.
    pub variant: Option<MatmulVariant>,
    build: Box<dyn Fn(&Matmul) -> Launch>,
}

impl MatmulCandidate {
    /// One of the engine's variants.
    pub fn variant(v: MatmulVariant) -> MatmulCandidate {
        MatmulCandidate {
            name: format!("{v:?}").to_lowercase(),
            variant: Some(v),
            build: Box::new(move |p| Matmul { variant: v, ..p.clone() }.launch()),
        }
    }

    /// Any other kernel that claims to compute `p` (a new variant under test, or a test's planted
    /// wrong one).
    pub fn custom(name: impl Into<String>, build: impl Fn(&Matmul) -> Launch + 'static) -> MatmulCandidate {
        MatmulCandidate { name: name.into(), variant: None, build: Box::new(build) }
    }

    /// The launch of product `p` by this candidate (`p.variant` is ignored).
    pub fn launch(&self, p: &Matmul) -> Launch {
        (self.build)(p)
    }
}

/// (M, N, K) every matmul candidate must get right.
const SHAPES: [[usize; 3]; 6] =
    [[1, 1, 1], [1, 37, 5], [17, 1, 33], [33, 65, 1], [67, 45, 129], [64, 64, 64]];
/// Words after the result that a correct kernel never writes.
const GUARD: usize = 64;
const GUARD_VALUE: f32 = 12345.0;

/// `Ok(())` when `candidate` matches the CPU reference everywhere, else the first difference.
pub fn verify_matmul(gpu: &Gpu, candidate: &MatmulCandidate) -> Result<Result<(), String>> {
    for [m, n, k] in SHAPES {
        for trans in Transpose::ALL {
            for (bias, act, accumulate) in [
                (false, Activation::Identity, false),
                (true, Activation::Relu, false),
                (false, Activation::Identity, true),
            ] {
                let what = format!(
                    "{m}x{n}x{k} {trans:?}{}{}",
                    if bias { " with bias + relu" } else { "" },
                    if accumulate { " accumulating" } else { "" }
                );
                if let Err(why) = check_product(gpu, candidate, [m, n, k], trans, bias, act, accumulate)? {
                    return Ok(Err(format!("{what}: {why}")));
                }
            }
        }
    }
    Ok(Ok(()))
}

/// Values in [-1, 1) from a fixed sequence (no RNG needed: any non-trivial pattern catches a
/// wrong index).
fn values(len: usize, salt: usize) -> Vec<f32> {
    (0..len).map(|i| (((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.5) - 1.0).collect()
}

#[allow(clippy::too_many_arguments)]
fn check_product(
    gpu: &Gpu,
    candidate: &MatmulCandidate,
    [m, n, k]: [usize; 3],
    trans: Transpose,
    with_bias: bool,
    act: Activation,
    accumulate: bool,
) -> Result<Result<(), String>> {
    let (a, b, bias) = (values(m * k, 1), values(k * n, 2), values(n, 3));
    let mut c = values(m * n, 4);
    c.extend(std::iter::repeat_n(GUARD_VALUE, GUARD));
    let gpu_c = StorageBuffer::from_slice(gpu, "verify c", &c)?;
    let gpu_a = StorageBuffer::from_slice(gpu, "verify a", &a)?;
    let gpu_b = StorageBuffer::from_slice(gpu, "verify b", &b)?;
    let gpu_bias = StorageBuffer::from_slice(gpu, "verify bias", &bias)?;
    let product = Matmul {
        c: View { buffer: gpu_c.buffer.clone(), offset: 0, len: m * n },
        a: View::whole(&gpu_a),
        b: View::whole(&gpu_b),
        bias: with_bias.then(|| View::whole(&gpu_bias)),
        m,
        n,
        k,
        trans,
        act,
        accumulate,
        variant: MatmulVariant::Reg,
        splits: 1,
        half: Half::NONE,
    };
    Plan::new(gpu, "verify matmul", &[candidate.launch(&product)])?.run(gpu)?;
    let got = gpu_c.read_all_f32(gpu)?;
    let mut want = c[..m * n].to_vec();
    // A variant that rounds its operands to f16 computes the product of the rounded values.
    let rounds = candidate.variant.is_some_and(MatmulVariant::rounds_operands);
    let operand = |v: &[f32]| -> Vec<f32> {
        match rounds {
            true => v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect(),
            false => v.to_vec(),
        }
    };
    crate::cpu::matmul::matmul(
        &mut want,
        &operand(&a),
        &operand(&b),
        with_bias.then_some(&bias[..]),
        m,
        n,
        k,
        trans,
        act,
        accumulate,
    );
    if let Some(i) = (m * n..m * n + GUARD).find(|&i| got[i] != GUARD_VALUE) {
        return Ok(Err(format!("wrote past the result (word {i} of a {}-word product)", m * n)));
    }
    // Sums of k products of values below 1: an error above 1e-3 + 1e-4·|want| is a wrong result,
    // not rounding.
    Ok(first_difference(&got[..m * n], &want, 1e-3, 1e-4))
}

pub(super) fn first_difference(got: &[f32], want: &[f32], atol: f32, rtol: f32) -> Result<(), String> {
    // Written as a negation so that a NaN counts as a difference.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let differs = |g: f32, w: f32| !((g - w).abs() <= atol + rtol * w.abs());
    match got.iter().zip(want).position(|(&g, &w)| differs(g, w)) {
        None => Ok(()),
        Some(i) => Err(format!("value {i} is {}, the CPU reference {}", got[i], want[i])),
    }
}

/// The buffers of a conv2d layer's forward and backward at one shape, filled with fixed values.
pub(super) struct ConvBuffers {
    pub x: View,
    pub w: View,
    pub b: View,
    pub y: View,
    pub dy: View,
    pub dx: View,
    pub dw: View,
    pub db: View,
}

impl ConvBuffers {
    pub fn new(gpu: &Gpu, s: &Conv2dShape) -> Result<ConvBuffers> {
        let buf = |label: &str, len: usize, salt: usize| -> Result<View> {
            Ok(View::whole(&StorageBuffer::from_slice(gpu, label, &values(len, salt))?))
        };
        Ok(ConvBuffers {
            x: buf("conv x", s.input_len(), 1)?,
            w: buf("conv w", s.weight_len(), 2)?,
            b: buf("conv b", s.bias_len(), 3)?,
            y: buf("conv y", s.output_len(), 4)?,
            dy: buf("conv dy", s.output_len(), 5)?,
            dx: buf("conv dx", s.input_len(), 6)?,
            dw: buf("conv dw", s.weight_len(), 7)?,
            db: buf("conv db", s.bias_len(), 8)?,
        })
    }
}

/// `Ok(())` when `launches` (a conv2d layer's forward with bias + ReLU, its input and weight
/// gradients, on `bufs` of shape `s`) match the CPU reference.
pub(super) fn verify_conv(
    gpu: &Gpu,
    launches: &[Launch],
    bufs: &ConvBuffers,
    s: &Conv2dShape,
) -> Result<Result<(), String>> {
    Plan::new(gpu, "verify conv", launches)?.run(gpu)?;
    let (x, w, b, dy) = (
        values(s.input_len(), 1),
        values(s.weight_len(), 2),
        values(s.bias_len(), 3),
        values(s.output_len(), 5),
    );
    let read = |v: &View| -> Result<Vec<f32>> {
        StorageBuffer { buffer: v.buffer.clone(), len: v.len }.read_all_f32(gpu)
    };
    let mut want_y = vec![0.0f32; s.output_len()];
    crate::cpu::conv::conv2d_forward(&mut want_y, &x, &w, Some(&b), s, Activation::Relu);
    let mut want_dx = vec![0.0f32; s.input_len()];
    crate::cpu::conv::conv2d_backward_input(&mut want_dx, &dy, &w, s);
    let mut want_dw = vec![0.0f32; s.weight_len()];
    crate::cpu::conv::conv2d_backward_weight(&mut want_dw, &dy, &x, s);
    for (name, view, want) in [
        ("forward", &bufs.y, want_y),
        ("input gradient", &bufs.dx, want_dx),
        ("weight gradient", &bufs.dw, want_dw),
    ] {
        // Sums over up to C·KH·KW (forward, input gradient) or N·OH·OW (weights) products.
        if let Err(why) = first_difference(&read(view)?, &want, 1e-2, 1e-3) {
            return Ok(Err(format!("{name}: {why}")));
        }
    }
    Ok(Ok(()))
}
