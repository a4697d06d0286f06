//! The geometry of 2-D convolutions and transposed convolutions (NCHW), with the checks every conv
//! launcher and layer runs: output sizes, element counts, FLOPs, and the adjoint relation that lets a
//! transposed convolution reuse the conv2d kernels.

use crate::error::{Error, Result};

/// A `Conv2d` (PyTorch layout): input `[n, c_in, h, w]`, weight `[c_out, c_in, kh, kw]`, bias `[c_out]`,
/// output `[n, c_out, out_h, out_w]`, with `out_h = (h + 2·padding - kh)/stride + 1`. No dilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dShape {
    /// Examples in the batch.
    pub n: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height, in pixels.
    pub h: usize,
    /// Input width, in pixels.
    pub w: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel height, in pixels.
    pub kh: usize,
    /// Kernel width, in pixels.
    pub kw: usize,
    /// Step between kernel positions, in pixels (both axes).
    pub stride: usize,
    /// Zero padding on each side of both axes, in pixels; smaller than the kernel.
    pub padding: usize,
}

impl Conv2dShape {
    /// Output height; meaningful once [`Conv2dShape::validate`] passed (0 when the output is empty).
    pub fn out_h(&self) -> usize {
        conv_out(self.h, self.kh, self.stride, self.padding)
    }

    /// Output width; meaningful once [`Conv2dShape::validate`] passed (0 when the output is empty).
    pub fn out_w(&self) -> usize {
        conv_out(self.w, self.kw, self.stride, self.padding)
    }

    /// Elements (f32) of the input `[n, c_in, h, w]`.
    pub fn input_len(&self) -> usize {
        self.n * self.c_in * self.h * self.w
    }

    /// Elements (f32) of the output `[n, c_out, out_h, out_w]`.
    pub fn output_len(&self) -> usize {
        self.n * self.c_out * self.out_h() * self.out_w()
    }

    /// Elements (f32) of the weight `[c_out, c_in, kh, kw]`.
    pub fn weight_len(&self) -> usize {
        self.c_out * self.c_in * self.kh * self.kw
    }

    /// Elements (f32) of the bias `[c_out]`.
    pub fn bias_len(&self) -> usize {
        self.c_out
    }

    /// Checks that the shape describes a non-empty convolution the kernels can run: every size >= 1,
    /// padding smaller than the kernel (in both directions), the padded input at least as large as the
    /// kernel, and every tensor indexable with 32-bit indices.
    pub fn validate(&self) -> Result<()> {
        let s = self;
        let what = format!(
            "conv2d [n {}, c_in {}, {}x{}] -> c_out {}, kernel {}x{}, stride {}, padding {}",
            s.n, s.c_in, s.h, s.w, s.c_out, s.kh, s.kw, s.stride, s.padding
        );
        check_common(&what, s.n, s.c_in, s.h, s.w, s.c_out, s.kh, s.kw, s.stride, s.padding)?;
        if s.h + 2 * s.padding < s.kh || s.w + 2 * s.padding < s.kw {
            return Err(Error::Shape(format!(
                "{what}: the kernel is larger than the padded input ({}x{}), so the output would be empty",
                s.h + 2 * s.padding,
                s.w + 2 * s.padding
            )));
        }
        check_u32(&what, &[s.input_len(), s.output_len(), s.weight_len()])
    }

    /// Floating-point operations of the forward pass (2 per multiply-add, counting the taps that fall on
    /// padding, as the usual `2·N·C_out·OH·OW·C_in·KH·KW`). Each of the two matrix-like gradients
    /// (input, weight) costs the same.
    pub fn flops(&self) -> f64 {
        2.0 * self.output_len() as f64 * (self.c_in * self.kh * self.kw) as f64
    }
}

/// A `ConvTranspose2d` (PyTorch layout): input `[n, c_in, h, w]`, weight `[c_in, c_out, kh, kw]`, bias
/// `[c_out]`, output `[n, c_out, out_h, out_w]` with
/// `out_h = (h - 1)·stride - 2·padding + kh + output_padding`. No dilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvTranspose2dShape {
    /// Examples in the batch.
    pub n: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height, in pixels.
    pub h: usize,
    /// Input width, in pixels.
    pub w: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel height, in pixels.
    pub kh: usize,
    /// Kernel width, in pixels.
    pub kw: usize,
    /// Up-sampling step: input pixel `i`'s kernel footprint starts at output row/column
    /// `i·stride - padding`.
    pub stride: usize,
    /// Pixels cropped from each side of both axes of the full output; smaller than the kernel.
    pub padding: usize,
    /// Extra rows/columns at the bottom/right of the output; must be smaller than the stride.
    pub output_padding: usize,
}

impl ConvTranspose2dShape {
    /// Output height; meaningful once [`ConvTranspose2dShape::validate`] passed (0 when empty).
    pub fn out_h(&self) -> usize {
        transpose_out(self.h, self.kh, self.stride, self.padding, self.output_padding)
    }

    /// Output width; meaningful once [`ConvTranspose2dShape::validate`] passed (0 when empty).
    pub fn out_w(&self) -> usize {
        transpose_out(self.w, self.kw, self.stride, self.padding, self.output_padding)
    }

    /// Elements (f32) of the input `[n, c_in, h, w]`.
    pub fn input_len(&self) -> usize {
        self.n * self.c_in * self.h * self.w
    }

    /// Elements (f32) of the output `[n, c_out, out_h, out_w]`.
    pub fn output_len(&self) -> usize {
        self.n * self.c_out * self.out_h() * self.out_w()
    }

    /// Elements (f32) of the weight `[c_in, c_out, kh, kw]`.
    pub fn weight_len(&self) -> usize {
        self.c_in * self.c_out * self.kh * self.kw
    }

    /// Elements (f32) of the bias `[c_out]`.
    pub fn bias_len(&self) -> usize {
        self.c_out
    }

    /// Like [`Conv2dShape::validate`], plus `output_padding < stride` (PyTorch's rule) and a non-empty
    /// output.
    pub fn validate(&self) -> Result<()> {
        let s = self;
        let what = format!(
            "conv_transpose2d [n {}, c_in {}, {}x{}] -> c_out {}, kernel {}x{}, stride {}, padding {}, output_padding {}",
            s.n, s.c_in, s.h, s.w, s.c_out, s.kh, s.kw, s.stride, s.padding, s.output_padding
        );
        check_common(&what, s.n, s.c_in, s.h, s.w, s.c_out, s.kh, s.kw, s.stride, s.padding)?;
        if s.output_padding >= s.stride {
            return Err(Error::Shape(format!("{what}: output_padding must be smaller than the stride")));
        }
        if s.out_h() == 0 || s.out_w() == 0 {
            return Err(Error::Shape(format!(
                "{what}: the output would be empty ((h-1)*stride - 2*padding + kernel + output_padding <= 0)"
            )));
        }
        check_u32(&what, &[s.input_len(), s.output_len(), s.weight_len()])
    }

    /// The conv2d whose backward-to-input is this transposed convolution: input `[n, c_out, out_h,
    /// out_w]`, output `[n, c_in, h, w]`, weight `[c_in, c_out, kh, kw]` read as `[C_OUT, C_IN, ..]`.
    /// Its `out_h()` is this shape's `h` because `output_padding < stride`.
    pub fn adjoint(&self) -> Conv2dShape {
        Conv2dShape {
            n: self.n,
            c_in: self.c_out,
            h: self.out_h(),
            w: self.out_w(),
            c_out: self.c_in,
            kh: self.kh,
            kw: self.kw,
            stride: self.stride,
            padding: self.padding,
        }
    }

    /// Floating-point operations of the forward pass: `2·N·C_in·H·W·C_out·KH·KW` (each input pixel meets
    /// every tap, counting the ones that land on cropped padding). The gradients cost the same.
    pub fn flops(&self) -> f64 {
        2.0 * self.input_len() as f64 * (self.c_out * self.kh * self.kw) as f64
    }
}

fn conv_out(size: usize, k: usize, stride: usize, padding: usize) -> usize {
    if stride == 0 || size + 2 * padding < k {
        return 0;
    }
    (size + 2 * padding - k) / stride + 1
}

fn transpose_out(size: usize, k: usize, stride: usize, padding: usize, output_padding: usize) -> usize {
    if size == 0 {
        return 0;
    }
    ((size - 1) * stride + k + output_padding).saturating_sub(2 * padding)
}

#[allow(clippy::too_many_arguments)]
fn check_common(
    what: &str,
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    padding: usize,
) -> Result<()> {
    let named = [
        ("n", n),
        ("c_in", c_in),
        ("h", h),
        ("w", w),
        ("c_out", c_out),
        ("kh", kh),
        ("kw", kw),
        ("stride", stride),
    ];
    if let Some((name, _)) = named.iter().find(|(_, v)| *v == 0) {
        return Err(Error::Shape(format!("{what}: {name} must be at least 1")));
    }
    if padding >= kh || padding >= kw {
        return Err(Error::Shape(format!(
            "{what}: padding must be smaller than the kernel (some outputs would see only padding)"
        )));
    }
    Ok(())
}

fn check_u32(what: &str, lens: &[usize]) -> Result<()> {
    if let Some(&len) = lens.iter().find(|&&l| l > u32::MAX as usize) {
        return Err(Error::Shape(format!(
            "{what}: a tensor of {len} elements is too large for 32-bit indexing"
        )));
    }
    Ok(())
}
