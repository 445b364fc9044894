//! Criterion benchmark of the loss, forward+backward on the flex CPU backend: the fused kernel,
//! the composed ops, our plain cross-entropy and Burn's `CrossEntropyLoss`, on shapes of
//! `shared/bench/ref_loss.py`. Threads follow `RAYON_NUM_THREADS`.
//!
//! `cargo bench -p lmsoftmax-loss` (the CLI `lmsoftmax bench loss` measures the same paths).

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, criterion_main};
use lmsoftmax_loss::{
    LargeMarginInSoftmaxLossConfig, LossImplementation, SoftmaxCrossEntropyLossConfig,
};

fn batch(n: usize, c: usize, device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let logits: Vec<f32> = (0..n * c).map(|_| (next() * 6.0 - 3.0) as f32).collect();
    let targets: Vec<i64> = (0..n).map(|_| (next() * c as f64) as i64).collect();
    (
        Tensor::<2>::from_data(TensorData::new(logits, [n, c]), (device, DType::F32)),
        Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), device),
    )
}

fn loss_forward_backward(cr: &mut Criterion) {
    let device = Device::flex().autodiff();
    let mut group = cr.benchmark_group("loss_fwd_bwd");
    group.sample_size(30);
    for (n, c) in [(128, 10), (256, 1000), (1024, 1000), (256, 10000)] {
        let (x, y) = batch(n, c, &device);
        let x = x.require_grad();
        let shape = format!("{n}x{c}");
        let lm = |imp| {
            LargeMarginInSoftmaxLossConfig::new()
                .with_implementation(imp)
                .init(&device)
                .unwrap()
        };
        for (name, loss) in [
            ("fused", lm(LossImplementation::Fused)),
            ("composed", lm(LossImplementation::Composed)),
            (
                "ce",
                SoftmaxCrossEntropyLossConfig::new().init(&device).unwrap(),
            ),
        ] {
            group.bench_with_input(BenchmarkId::new(name, &shape), &(), |b, _| {
                b.iter(|| {
                    let grads = loss.forward(x.clone(), y.clone()).backward();
                    x.grad(&grads)
                })
            });
        }
        let burn_ce = CrossEntropyLossConfig::new().init(&device);
        group.bench_with_input(BenchmarkId::new("burn_ce", &shape), &(), |b, _| {
            b.iter(|| {
                let grads = burn_ce.forward(x.clone(), y.clone()).backward();
                x.grad(&grads)
            })
        });
    }
    group.finish();
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::loss_forward_backward);
}
use group::benches;
criterion_main!(benches);
