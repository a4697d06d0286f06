//! Criterion benches: each kernel on the GPU against its CPU baseline, and whole training steps.
//! GPU timings record `iters` dispatches into one pass and one submit, then wait, so they measure
//! throughput including the adapter's per-dispatch cost (as in training), not submit latency.
//! `cargo bench --bench kernels`; `aegpu bench` prints the same comparison as a table.

use aegpu::expert::cpu;
use aegpu::expert::runner::{Plan, View};
use aegpu::gpu::{Gpu, GpuOptions, StorageBuffer};
use aegpu::kernels::activation::activation_forward;
use aegpu::kernels::conv::{self, Conv2dShape};
use aegpu::kernels::conv_gemm::{self, GemmScratch, ScratchLens};
use aegpu::kernels::loss::{self, LossKind};
use aegpu::kernels::matmul::{Half, Matmul, MatmulVariant, Transpose};
use aegpu::kernels::optimizer::{Optimizer, optimizer_step};
use aegpu::kernels::reduce::colsum;
use aegpu::kernels::{Activation, Launch};
use aegpu::models::dense::DenseConfig;
use aegpu::models::{Autoencoder, Init};
use aegpu::train::{GpuDataset, TrainConfig, Trainer};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::time::{Duration, Instant};

fn view(gpu: &Gpu, data: &[f32]) -> View {
    View::whole(&StorageBuffer::from_slice(gpu, "bench", data).expect("buffer"))
}

fn values(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 100.0).collect()
}

/// Time of `iters` dispatches of `plan` in one pass and one submit.
fn gpu_iters(gpu: &Gpu, plan: &Plan, iters: u64) -> Duration {
    let start = Instant::now();
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        for _ in 0..iters {
            plan.record(&mut pass);
        }
    }
    gpu.queue.submit([enc.finish()]);
    gpu.wait().expect("gpu wait");
    start.elapsed()
}

fn bench_gpu(c: &mut Criterion, gpu: &Gpu, group: &str, name: &str, launch: Launch, throughput: Throughput) {
    bench_gpu_list(c, gpu, group, name, &[launch], throughput);
}

fn bench_gpu_list(
    c: &mut Criterion,
    gpu: &Gpu,
    group: &str,
    name: &str,
    launches: &[Launch],
    throughput: Throughput,
) {
    let plan = Plan::new(gpu, name, launches).expect("plan");
    plan.run(gpu).expect("warm-up");
    let mut g = c.benchmark_group(group);
    g.throughput(throughput);
    g.bench_function(format!("gpu/{name}"), |b| b.iter_custom(|iters| gpu_iters(gpu, &plan, iters)));
    g.finish();
}

fn matmul(c: &mut Criterion, gpu: &Gpu) {
    let (m, n, k) = (256, 784, 512);
    let a = values(m * k);
    let b = values(k * n);
    let mut out = vec![0.0f32; m * n];
    let (ga, gb, gc) = (view(gpu, &a), view(gpu, &b), view(gpu, &out));
    let flops = Throughput::Elements(Matmul::flops(m, n, k) as u64);
    for trans in Transpose::ALL {
        let group = format!("matmul {trans:?} {m}x{n}x{k} (elements = flops)");
        for variant in MatmulVariant::available(gpu) {
            let launch = Matmul {
                c: gc.clone(),
                a: ga.clone(),
                b: gb.clone(),
                bias: None,
                m,
                n,
                k,
                trans,
                act: Activation::Identity,
                accumulate: false,
                variant,
                splits: 1,
                half: Half::NONE,
            }
            .launch();
            bench_gpu(c, gpu, &group, &format!("{variant:?}"), launch, flops.clone());
        }
        let mut g = c.benchmark_group(&group);
        g.throughput(flops.clone());
        g.bench_function("cpu/matrixmultiply", |bch| {
            bch.iter(|| cpu::baseline::sgemm(&mut out, &a, &b, m, n, k, trans))
        });
        g.finish();
    }
}

fn elementwise(c: &mut Criterion, gpu: &Gpu) {
    let (batch, dim) = (256, 784);
    let n = batch * dim;
    let x = values(n);
    let mut out = vec![0.0f32; n];
    let (gx, gout) = (view(gpu, &x), view(gpu, &out));
    let bytes = Throughput::Bytes(8 * n as u64);

    bench_gpu(
        c,
        gpu,
        "activation sigmoid 256x784",
        "act_forward",
        activation_forward(&gout, &gx, n, Activation::Sigmoid),
        bytes.clone(),
    );
    let mut g = c.benchmark_group("activation sigmoid 256x784");
    g.throughput(bytes.clone());
    g.bench_function("cpu/loop", |b| {
        b.iter(|| cpu::activation::activation_forward(&mut out, &x, Activation::Sigmoid))
    });
    g.finish();

    let mut sums = vec![0.0f32; dim];
    let gs = view(gpu, &sums);
    bench_gpu(
        c,
        gpu,
        "colsum 256x784",
        "colsum",
        colsum(&gs, &gx, batch, dim, false),
        Throughput::Bytes(4 * n as u64),
    );
    let mut g = c.benchmark_group("colsum 256x784");
    g.throughput(Throughput::Bytes(4 * n as u64));
    g.bench_function("cpu/loop", |b| b.iter(|| cpu::reduce::colsum(&mut sums, &x, batch, dim, false)));
    g.finish();

    let target: Vec<f32> = x.iter().map(|v| v + 0.5).collect();
    let gt = view(gpu, &target);
    let partials = view(gpu, &vec![0.0; 2 * loss::partial_rows(n)]);
    let totals = view(gpu, &[0.0, 0.0]);
    let [pass, _] = loss::loss_forward_backward(
        &totals,
        &partials,
        Some(&gout),
        &gx,
        &gt,
        n,
        LossKind::Bce,
        Activation::Sigmoid,
        1.0,
    );
    bench_gpu(c, gpu, "loss bce 256x784", "loss_forward_backward", pass, Throughput::Bytes(12 * n as u64));
    let mut g = c.benchmark_group("loss bce 256x784");
    g.throughput(Throughput::Bytes(12 * n as u64));
    g.bench_function("cpu/loop", |b| {
        b.iter(|| {
            cpu::loss::loss_forward_backward(
                Some(&mut out),
                &x,
                &target,
                LossKind::Bce,
                Activation::Sigmoid,
                1.0,
            )
        })
    });
    g.finish();

    let p = 1_000_000;
    let opt = Optimizer::parse("adam", 1e-3, 0.0).expect("adam");
    let (mut w, grad, mut m, mut v) = (values(p), values(p), vec![0.0; p], vec![0.0; p]);
    let (gw, gg, gm, gv) = (view(gpu, &w), view(gpu, &grad), view(gpu, &m), view(gpu, &v));
    bench_gpu(
        c,
        gpu,
        "adam 1M params",
        "adam",
        optimizer_step(&opt, &gw, &gg, &gm, &gv, p, 1),
        Throughput::Bytes(28 * p as u64),
    );
    let mut g = c.benchmark_group("adam 1M params");
    g.throughput(Throughput::Bytes(28 * p as u64));
    g.bench_function("cpu/loop", |b| {
        b.iter(|| cpu::optimizer::optimizer_step(&opt, &mut w, &grad, &mut m, &mut v, 1))
    });
    g.finish();
}

/// A conv layer of each preset (batch 128): the direct kernels and the GEMM formulation against the
/// single-threaded reference loops (elements = flops; the GEMM backward counts input + weight).
fn convolution(c: &mut Criterion, gpu: &Gpu) {
    let variant = gpu.matmul_policy().expect("tuning");
    let shape = |c_in, hw, c_out, stride| Conv2dShape {
        n: 128,
        c_in,
        h: hw,
        w: hw,
        c_out,
        kh: 3,
        kw: 3,
        stride,
        padding: 1,
    };
    for (name, s) in [("keras 16->8", shape(16, 14, 8, 1)), ("strided 32->64 s2", shape(32, 14, 64, 2))] {
        let (x, w, dy) = (values(s.input_len()), values(s.weight_len()), values(s.output_len()));
        let (gx, gw, gdy) = (view(gpu, &x), view(gpu, &w), view(gpu, &dy));
        let (gy, gdx, gdw) = (view(gpu, &dy), view(gpu, &x), view(gpu, &w));
        let l = ScratchLens::of(&s);
        let scratch = GemmScratch {
            col: view(gpu, &vec![0.0; l.col]),
            cn: view(gpu, &vec![0.0; l.cn]),
            parts: view(gpu, &vec![0.0; l.parts]),
        };
        let flops = s.flops() as u64;
        let group = format!("conv2d {name} 128x{}x{}x{} forward (elements = flops)", s.c_in, s.h, s.w);
        let fwd = conv::conv2d_forward(&gy, &gx, &gw, None, &s, Activation::Identity);
        bench_gpu(c, gpu, &group, "direct", fwd, Throughput::Elements(flops));
        let fwd = conv_gemm::conv2d_forward(&gy, &gx, &gw, None, &s, Activation::Identity, &scratch, variant);
        bench_gpu_list(c, gpu, &group, "gemm", &fwd, Throughput::Elements(flops));
        let mut y = vec![0.0f32; s.output_len()];
        let mut g = c.benchmark_group(&group);
        g.throughput(Throughput::Elements(flops));
        g.bench_function("cpu/loop", |b| {
            b.iter(|| cpu::conv::conv2d_forward(&mut y, &x, &w, None, &s, Activation::Identity))
        });
        g.finish();

        let group = format!("conv2d {name} 128x{}x{}x{} backward (elements = flops)", s.c_in, s.h, s.w);
        let mut bwd = vec![conv::conv2d_backward_input(&gdx, &gdy, &gw, &s)];
        bwd.extend(conv::conv2d_backward_weight(&gdw, &gdy, &gx, &s));
        bench_gpu_list(c, gpu, &group, "direct", &bwd, Throughput::Elements(2 * flops));
        let bwd = conv_gemm::conv2d_backward(&gdw, Some(&gdx), &gdy, &gx, &gw, &s, &scratch, variant);
        bench_gpu_list(c, gpu, &group, "gemm", &bwd, Throughput::Elements(2 * flops));
        let (mut dx, mut dw) = (x.clone(), w.clone());
        let mut g = c.benchmark_group(&group);
        g.throughput(Throughput::Elements(2 * flops));
        g.bench_function("cpu/loop", |b| {
            b.iter(|| {
                cpu::conv::conv2d_backward_input(&mut dx, &dy, &w, &s);
                cpu::conv::conv2d_backward_weight(&mut dw, &dy, &x, &s);
            })
        });
        g.finish();
    }
}

fn training_step(c: &mut Criterion, gpu: &Gpu) {
    let train = aegpu::data::synthetic::synthetic(2048, 28, 28, 10, 1);
    let data = GpuDataset::upload(gpu, &train).expect("upload");
    for preset in ["shallow", "deep"] {
        let config = DenseConfig::preset(preset, 784, LossKind::Bce).expect("preset");
        let model = Autoencoder::new(gpu, config, 0, Init::Glorot).expect("model");
        let tc = TrainConfig {
            epochs: 1,
            batch: 256,
            optimizer: Optimizer::parse("adam", 1e-3, 0.0).expect("adam"),
            seed: 0,
        };
        let mut trainer = Trainer::new(gpu, &model, &data, tc).expect("trainer");
        let steps = trainer.steps_per_epoch() as u64;
        let mut g = c.benchmark_group("training epoch of 2048 samples, batch 256");
        g.throughput(Throughput::Elements(steps * 256));
        g.sample_size(10);
        let mut epoch = 0;
        g.bench_function(format!("gpu/dense {preset}"), |b| {
            b.iter(|| {
                epoch += 1;
                trainer.epoch(epoch, |_, _| {}).expect("epoch")
            })
        });
        g.finish();
    }
}

/// The host's cost of a training step: recording one submit's steps into an encoder (finished,
/// never submitted), per step, for a dense and a conv preset. On a GPU this is the CPU side of the
/// launch floor (`aegpu profile` prints the whole launch model).
fn step_recording(c: &mut Criterion, gpu: &Gpu) {
    let train = aegpu::data::synthetic::synthetic(2048, 28, 28, 10, 1);
    let data = GpuDataset::upload(gpu, &train).expect("upload");
    for (preset, batch) in [("deep", 256), ("strided", 128)] {
        let config = aegpu::ModelConfig::preset(preset, [1, 28, 28], LossKind::Bce).expect("preset");
        let model = Autoencoder::new(gpu, config, 0, Init::Glorot).expect("model");
        let optimizer = Optimizer::parse("adam", 1e-3, 0.0).expect("adam");
        let tc = TrainConfig { epochs: 1, batch, optimizer, seed: 0 };
        let mut trainer = Trainer::new(gpu, &model, &data, tc).expect("trainer");
        let k = trainer.host_cost(1).expect("record").steps_per_record as u64;
        let mut g = c.benchmark_group("recording a training step (host only, no submit)");
        g.throughput(Throughput::Elements(k));
        g.bench_function(
            format!("{preset}, batch {batch}, {} dispatches", trainer.dispatches_per_step()),
            |b| b.iter(|| trainer.host_cost(1).expect("record")),
        );
        g.finish();
    }
}

fn all(c: &mut Criterion) {
    let gpu = match Gpu::new(&GpuOptions::default()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            return;
        }
    };
    eprintln!("adapter: {}", gpu.describe());
    matmul(c, &gpu);
    elementwise(c, &gpu);
    convolution(c, &gpu);
    training_step(c, &gpu);
    step_recording(c, &gpu);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = all
}
criterion_main!(benches);
