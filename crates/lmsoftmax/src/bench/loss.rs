//! `lmsoftmax bench loss`: forward+backward time of the loss on the CPU backend, for the fused
//! kernel, the composed tensor ops, our fused plain cross-entropy, Burn's `CrossEntropyLoss`, and
//! the rest of the logit-level family (label smoothing, focal, Poly-1, confidence penalty) at
//! their default parameters.
//! The shapes are those of the PyTorch reference `shared/bench/ref_loss.py`.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use lmsoftmax_loss::{
    LargeMarginInSoftmaxLossConfig, LossConfig, LossImplementation, LossKind,
    SoftmaxCrossEntropyLossConfig,
};
use serde::Serialize;

use super::timing::median_ms;

/// The `N x C` shapes of the PyTorch reference script.
pub const REFERENCE_SHAPES: [(usize, usize); 6] = [
    (128, 10),
    (128, 100),
    (256, 1000),
    (1024, 1000),
    (256, 10000),
    (64, 100000),
];

/// One of the timed paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LossPath {
    /// Large-margin loss, fused kernel.
    Fused,
    /// Large-margin loss, composed Burn ops.
    Composed,
    /// Our plain cross-entropy (fused, lambda = 0).
    Ce,
    /// Burn's `CrossEntropyLoss`.
    BurnCe,
    /// The rest of the logit-level family at their defaults (fused kernel).
    Family,
}

/// Median forward+backward times (ms) of one shape; NaN for a path that was not run.
#[derive(Debug, Clone, Serialize)]
pub struct LossTimes {
    /// Rows.
    pub n: usize,
    /// Classes.
    pub c: usize,
    /// Threads of the CPU backend (rayon's pool).
    pub threads: usize,
    /// Large-margin loss, fused kernel.
    pub fused_ms: f64,
    /// Large-margin loss, composed Burn ops.
    pub composed_ms: f64,
    /// Our plain softmax cross-entropy (the same fused kernel with lambda = 0).
    pub ce_ms: f64,
    /// Burn's own `CrossEntropyLoss`.
    pub burn_ce_ms: f64,
    /// Label smoothing, eps 0.1 (fused).
    pub label_smoothing_ms: f64,
    /// Focal loss, gamma 2 (fused).
    pub focal_ms: f64,
    /// Poly-1 loss, epsilon 1 (fused).
    pub poly_ms: f64,
    /// Confidence penalty, beta 0.1 (fused).
    pub confidence_penalty_ms: f64,
    /// The large-margin loss value (the same for both implementations).
    pub loss: f64,
}

/// Deterministic standard-normal-like logits (sum of uniforms) and uniform targets.
fn batch(n: usize, c: usize, device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let logits: Vec<f32> = (0..n * c)
        .map(|_| ((0..4).map(|_| next()).sum::<f64>() - 2.0) as f32 * 1.7)
        .collect();
    let targets: Vec<i64> = (0..n)
        .map(|_| (next() * c as f64) as i64 % c as i64)
        .collect();
    (
        Tensor::<2>::from_data(TensorData::new(logits, [n, c]), (device, DType::F32)),
        Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), device),
    )
}

/// Times one forward+backward of `loss` and returns the loss value of the last run.
fn time_loss(
    loss: impl Fn(Tensor<2>, Tensor<1, Int>) -> Tensor<1>,
    x: &Tensor<2>,
    y: &Tensor<1, Int>,
    warmup: usize,
    reps: usize,
) -> (f64, f64) {
    let mut value = 0.0;
    let (median, _) = median_ms(warmup, reps, || {
        let out = loss(x.clone(), y.clone());
        let grads = out.backward();
        let g = x.grad(&grads).expect("logits have a gradient");
        value = out.into_scalar::<f32>() as f64;
        g
    });
    (median, value)
}

/// Measures every path on one `n x c` shape.
///
/// ```
/// let t = lmsoftmax::bench::loss::measure(16, 10, 1, 3);
/// assert!(t.fused_ms > 0.0 && t.loss.is_finite());
/// ```
pub fn measure(n: usize, c: usize, warmup: usize, reps: usize) -> LossTimes {
    measure_paths(
        n,
        c,
        warmup,
        reps,
        &[
            LossPath::Ce,
            LossPath::Fused,
            LossPath::Composed,
            LossPath::BurnCe,
            LossPath::Family,
        ],
    )
}

/// Measures the given paths, in that order, on one `n x c` shape.
pub fn measure_paths(
    n: usize,
    c: usize,
    warmup: usize,
    reps: usize,
    paths: &[LossPath],
) -> LossTimes {
    let device = Device::flex().autodiff();
    let (x, y) = batch(n, c, &device);
    let x = x.require_grad();
    let make = |imp| {
        LargeMarginInSoftmaxLossConfig::new()
            .with_implementation(imp)
            .init(&device)
            .expect("default configuration is valid")
    };
    let mut t = LossTimes {
        n,
        c,
        threads: rayon::current_num_threads(),
        fused_ms: f64::NAN,
        composed_ms: f64::NAN,
        ce_ms: f64::NAN,
        burn_ce_ms: f64::NAN,
        label_smoothing_ms: f64::NAN,
        focal_ms: f64::NAN,
        poly_ms: f64::NAN,
        confidence_penalty_ms: f64::NAN,
        loss: f64::NAN,
    };
    for path in paths {
        match path {
            LossPath::Fused => {
                let loss = make(LossImplementation::Fused);
                (t.fused_ms, t.loss) = time_loss(|x, y| loss.forward(x, y), &x, &y, warmup, reps);
            }
            LossPath::Composed => {
                let loss = make(LossImplementation::Composed);
                (t.composed_ms, t.loss) =
                    time_loss(|x, y| loss.forward(x, y), &x, &y, warmup, reps);
            }
            LossPath::Ce => {
                let ce = SoftmaxCrossEntropyLossConfig::new()
                    .init(&device)
                    .expect("default configuration is valid");
                t.ce_ms = time_loss(|x, y| ce.forward(x, y), &x, &y, warmup, reps).0;
            }
            LossPath::BurnCe => {
                let burn_ce = CrossEntropyLossConfig::new().init(&device);
                t.burn_ce_ms = median_ms(warmup, reps, || {
                    let grads = burn_ce.forward(x.clone(), y.clone()).backward();
                    x.grad(&grads)
                })
                .0;
            }
            LossPath::Family => {
                for (kind, slot) in [
                    (LossKind::LabelSmoothing, &mut t.label_smoothing_ms),
                    (LossKind::Focal, &mut t.focal_ms),
                    (LossKind::Poly, &mut t.poly_ms),
                    (LossKind::ConfidencePenalty, &mut t.confidence_penalty_ms),
                ] {
                    let loss = LossConfig::of_kind(kind)
                        .init(&device)
                        .expect("default configuration is valid");
                    *slot = time_loss(|x, y| loss.forward(x, y), &x, &y, warmup, reps).0;
                }
            }
        }
    }
    t
}

/// The Markdown table row header for [`table_row`].
pub const TABLE_HEADER: &str = "|     N |       C | fused ms | composed ms | our CE ms | burn CE ms | fused/CE | l.smooth ms | focal ms | poly ms | conf.pen ms |\n|------:|--------:|---------:|------------:|----------:|-----------:|---------:|------------:|---------:|--------:|------------:|";

/// One Markdown table row.
pub fn table_row(t: &LossTimes) -> String {
    format!(
        "| {:>5} | {:>7} | {:>8.3} | {:>11.3} | {:>9.3} | {:>10.3} | {:>8.2} | {:>11.3} | {:>8.3} | {:>7.3} | {:>11.3} |",
        t.n,
        t.c,
        t.fused_ms,
        t.composed_ms,
        t.ce_ms,
        t.burn_ce_ms,
        t.fused_ms / t.ce_ms,
        t.label_smoothing_ms,
        t.focal_ms,
        t.poly_ms,
        t.confidence_penalty_ms
    )
}
