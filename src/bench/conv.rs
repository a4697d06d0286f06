//! The conv rows of `aegpu bench`: the conv presets' layer shapes with every convolution algorithm.

use super::{BenchArgs, KernelRow, buf, time_cpu, time_gpu_list, values};
use crate::cpu;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::{Activation, Launch};
use crate::tune::{ConvAlgorithm, measure_conv};

/// Layers of the two conv presets at batch 128, with the three algorithms (direct kernels; im2col + the
/// chosen matmul; implicit GEMM), against the plain-loop CPU reference (single-threaded: a correctness oracle, not a tuned
/// baseline; the ratio flatters the GPU). The GEMM backward row is input and weight gradients together
/// (they share the im2col and the permuted gradient), counted as 2x the forward FLOPs. The `layer` rows
/// are the tuner's measurement of each algorithm ([`measure_conv`]: forward with bias + ReLU, the
/// three gradients, one submit, best of three), the figure the per-layer choice is made on.
pub(super) fn conv_rows(gpu: &Gpu, args: &BenchArgs) -> Result<Vec<KernelRow>> {
    use crate::kernels::conv::{self, Conv2dShape};
    use crate::kernels::conv_gemm::{self, GemmScratch, ScratchLens};
    use crate::kernels::conv_implicit_gemm as implicit;
    let mut rows = Vec::new();
    let shape = |c_in, hw, c_out, stride, padding| Conv2dShape {
        n: 128,
        c_in,
        h: hw,
        w: hw,
        c_out,
        kh: 3,
        kw: 3,
        stride,
        padding,
    };
    let shapes = [
        ("keras conv 1->16", shape(1, 28, 16, 1, 1)),
        ("keras conv 16->8", shape(16, 14, 8, 1, 1)),
        ("keras conv 8->16 p0", shape(8, 16, 16, 1, 0)),
        ("keras conv 16->1", shape(16, 28, 1, 1, 1)),
        ("strided conv 1->32 s2", shape(1, 28, 32, 2, 1)),
        ("strided conv 32->64 s2", shape(32, 14, 64, 2, 1)),
    ];
    let variant = gpu.matmul_policy()?;
    for (name, s) in shapes {
        s.validate()?;
        let (x, w, dy) = (values(s.input_len(), 7), values(s.weight_len(), 8), values(s.output_len(), 9));
        let (gx, gw, gdy) = (buf(gpu, "x", &x)?, buf(gpu, "w", &w)?, buf(gpu, "dy", &dy)?);
        let (gy, gdx, gdw) = (buf(gpu, "y", &dy)?, buf(gpu, "dx", &x)?, buf(gpu, "dw", &w)?);
        let l = ScratchLens::of(&s);
        let scratch = GemmScratch {
            col: buf(gpu, "col", &vec![0.0; l.col])?,
            cn: buf(gpu, "cn", &vec![0.0; l.cn])?,
            parts: buf(gpu, "parts", &vec![0.0; l.parts])?,
        };
        let shape = format!("{}x{}x{}x{}", s.n, s.c_in, s.h, s.w);
        let flops = s.flops();
        let (mut y, mut dx, mut dw) = (dy.clone(), x.clone(), w.clone());
        let cpu_forward = time_cpu(args.seconds, &mut || {
            cpu::conv::conv2d_forward(&mut y, &x, &w, None, &s, Activation::Identity)
        });
        let cpu_input =
            time_cpu(args.seconds, &mut || cpu::conv::conv2d_backward_input(&mut dx, &dy, &w, &s));
        let cpu_weight =
            time_cpu(args.seconds, &mut || cpu::conv::conv2d_backward_weight(&mut dw, &dy, &x, &s));
        let parts = buf(gpu, "implicit parts", &vec![0.0; implicit::parts_len(&s).max(1)])?;
        let cases: [(&str, Vec<Launch>, f64, f64); 8] = [
            (
                "direct forward",
                vec![conv::conv2d_forward(&gy, &gx, &gw, None, &s, Activation::Identity)],
                flops,
                cpu_forward,
            ),
            (
                "direct backward input",
                vec![conv::conv2d_backward_input(&gdx, &gdy, &gw, &s)],
                flops,
                cpu_input,
            ),
            ("direct backward weight", conv::conv2d_backward_weight(&gdw, &gdy, &gx, &s), flops, cpu_weight),
            (
                "gemm forward",
                conv_gemm::conv2d_forward(&gy, &gx, &gw, None, &s, Activation::Identity, &scratch, variant),
                flops,
                cpu_forward,
            ),
            (
                "gemm backward (input+weight)",
                conv_gemm::conv2d_backward(&gdw, Some(&gdx), &gdy, &gx, &gw, &s, &scratch, variant),
                2.0 * flops,
                cpu_input + cpu_weight,
            ),
            (
                "implicit_gemm forward",
                vec![implicit::conv2d_forward(&gy, &gx, &gw, None, &s, Activation::Identity)],
                flops,
                cpu_forward,
            ),
            (
                "implicit_gemm backward input",
                vec![implicit::conv2d_backward_input(&gdx, &gdy, &gw, &s)],
                flops,
                cpu_input,
            ),
            (
                "implicit_gemm backward weight",
                implicit::conv2d_backward_weight(&gdw, &gdy, &gx, &parts, &s),
                flops,
                cpu_weight,
            ),
        ];
        for (pass, launches, flops, c) in cases {
            let g = time_gpu_list(gpu, &launches, args.seconds)?;
            rows.push(KernelRow {
                kernel: format!("{name} {pass}"),
                shape: shape.clone(),
                unit: "GFLOP/s",
                gpu: flops / g / 1e9,
                cpu: flops / c / 1e9,
                gpu_ms: g * 1e3,
                cpu_ms: c * 1e3,
            });
        }
        let cpu_layer = cpu_forward + cpu_input + cpu_weight;
        for algo in ConvAlgorithm::ALL {
            let g = measure_conv(gpu, algo, variant, &s)? / 1e3;
            rows.push(KernelRow {
                kernel: format!("{name} {} layer (fwd+bwd)", algo.name()),
                shape: shape.clone(),
                unit: "GFLOP/s",
                gpu: 3.0 * flops / g / 1e9,
                cpu: 3.0 * flops / cpu_layer / 1e9,
                gpu_ms: g * 1e3,
                cpu_ms: cpu_layer * 1e3,
            });
        }
    }
    Ok(rows)
}
