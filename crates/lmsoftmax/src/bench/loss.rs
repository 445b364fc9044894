//! `lmsoftmax bench loss`: forward+backward time of the loss on the CPU backend, for the fused
//! kernel, the composed tensor ops, our fused plain cross-entropy, Burn's `CrossEntropyLoss`, and
//! the rest of the logit-level family (label smoothing, focal, Poly-1, confidence penalty) at
//! their default parameters, and the margin heads (CosFace, ArcFace, the combined margin, sub-centre
//! ArcFace, SphereFace, L-Softmax) on `N x D` embeddings with `C` classes (their class-weight
//! gradient included). The shapes are those of the PyTorch reference `shared/bench/ref_loss.py`.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use lmsoftmax_loss::{
    LargeMarginInSoftmaxLossConfig, LossConfig, LossImplementation, LossKind, MarginHead,
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
    /// The margin heads at their defaults, on `N x D` embeddings (composed ops).
    Heads,
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
    /// Embedding size `D` of the margin heads.
    pub embed_dim: usize,
    /// CosFace, s 30, m 0.35, gradients of the embeddings and the class weights.
    pub cosface_ms: f64,
    /// ArcFace, s 30, m 0.5.
    pub arcface_ms: f64,
    /// The combined margin, s 30, m1 1, m2 0.5, m3 0.
    pub combined_ms: f64,
    /// Sub-centre ArcFace, s 30, m 0.5, K 3.
    pub subcenter_arcface_ms: f64,
    /// SphereFace, m 4 (lambda at its first value).
    pub sphereface_ms: f64,
    /// L-Softmax, m 4 (lambda at its first value).
    pub lsoftmax_ms: f64,
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
        // a GPU has only queued the gradient
        g.device().sync().expect("the device finishes the gradient");
        g
    });
    (median, value)
}

/// The embedding size the margin heads are timed at by default: layer13's pooled feature.
pub const DEFAULT_EMBED_DIM: usize = 128;

/// Measures every path on one `n x c` shape (the heads on `n x 128` embeddings).
///
/// ```
/// let t = lmsoftmax::bench::loss::measure(16, 10, 1, 3);
/// assert!(t.fused_ms > 0.0 && t.loss.is_finite() && t.arcface_ms > 0.0);
/// ```
pub fn measure(n: usize, c: usize, warmup: usize, reps: usize) -> LossTimes {
    measure_paths(
        &Device::flex(),
        n,
        c,
        DEFAULT_EMBED_DIM,
        warmup,
        reps,
        &[
            LossPath::Ce,
            LossPath::Fused,
            LossPath::Composed,
            LossPath::BurnCe,
            LossPath::Family,
            LossPath::Heads,
        ],
    )
}

/// Times one forward+backward of a margin head (the gradients of the embeddings and of the class
/// weights).
fn time_head(
    head: &MarginHead,
    x: &Tensor<2>,
    y: &Tensor<1, Int>,
    warmup: usize,
    reps: usize,
) -> f64 {
    median_ms(warmup, reps, || {
        let grads = head.forward(x.clone(), y.clone()).backward();
        let gx = x.grad(&grads).expect("embeddings have a gradient");
        let gw = head
            .weight
            .grad(&grads)
            .expect("class weights have a gradient");
        gw.device()
            .sync()
            .expect("the device finishes the gradients");
        (gx, gw)
    })
    .0
}

/// Measures the given paths, in that order, on one `n x c` shape (the heads on `n x embed_dim`
/// embeddings), on the autodiff version of `plain` (flex, or a GPU device: each timed run waits
/// for the device).
pub fn measure_paths(
    plain: &Device,
    n: usize,
    c: usize,
    embed_dim: usize,
    warmup: usize,
    reps: usize,
    paths: &[LossPath],
) -> LossTimes {
    let device = plain.clone().autodiff();
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
        embed_dim,
        cosface_ms: f64::NAN,
        arcface_ms: f64::NAN,
        combined_ms: f64::NAN,
        subcenter_arcface_ms: f64::NAN,
        sphereface_ms: f64::NAN,
        lsoftmax_ms: f64::NAN,
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
                    let g = x.grad(&grads);
                    device.sync().expect("the device finishes the gradient");
                    g
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
            LossPath::Heads => {
                let (embeddings, _) = batch(n, embed_dim, &device);
                let embeddings = embeddings.require_grad();
                for (kind, slot) in [
                    (LossKind::CosFace, &mut t.cosface_ms),
                    (LossKind::ArcFace, &mut t.arcface_ms),
                    (LossKind::Combined, &mut t.combined_ms),
                    (LossKind::SubcenterArcFace, &mut t.subcenter_arcface_ms),
                    (LossKind::SphereFace, &mut t.sphereface_ms),
                    (LossKind::LSoftmax, &mut t.lsoftmax_ms),
                ] {
                    device.seed(1);
                    let head = LossConfig::of_kind(kind)
                        .init_head(embed_dim, c, &device)
                        .expect("default configuration is valid");
                    *slot = time_head(&head, &embeddings, &y, warmup, reps);
                }
            }
        }
    }
    t
}

/// The Markdown table row header for [`table_row`].
pub const TABLE_HEADER: &str = "|     N |       C | fused ms | composed ms | our CE ms | burn CE ms | fused/CE | l.smooth ms | focal ms | poly ms | conf.pen ms |\n|------:|--------:|---------:|------------:|----------:|-----------:|---------:|------------:|---------:|--------:|------------:|";

/// The Markdown table header of the margin heads, for [`heads_row`].
pub const HEADS_HEADER: &str = "|     N |       C |    D | our CE ms | cosface ms | arcface ms | combined ms | subcenter ms | sphereface ms | lsoftmax ms |\n|------:|--------:|-----:|----------:|-----------:|-----------:|------------:|-------------:|--------------:|------------:|";

/// One Markdown row of the margin heads' times (CE on the `N x C` logits beside them).
pub fn heads_row(t: &LossTimes) -> String {
    format!(
        "| {:>5} | {:>7} | {:>4} | {:>9.3} | {:>10.3} | {:>10.3} | {:>11.3} | {:>12.3} | {:>13.3} | {:>11.3} |",
        t.n,
        t.c,
        t.embed_dim,
        t.ce_ms,
        t.cosface_ms,
        t.arcface_ms,
        t.combined_ms,
        t.subcenter_arcface_ms,
        t.sphereface_ms,
        t.lsoftmax_ms
    )
}

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
