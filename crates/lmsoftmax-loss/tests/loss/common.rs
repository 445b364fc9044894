//! Helpers shared by the test modules: building tensors from f64 data, running the loss with
//! autodiff, comparing with a tolerance.

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use lmsoftmax_loss::{
    LargeMarginInSoftmaxLoss, LargeMarginInSoftmaxLossConfig, LogitLoss, LossError,
    LossImplementation,
};

/// Both implementations.
pub const IMPLEMENTATIONS: [LossImplementation; 2] =
    [LossImplementation::Composed, LossImplementation::Fused];

/// The autodiff flex device the tests run on.
pub fn device() -> Device {
    Device::flex().autodiff()
}

/// Loss values (flat) and d(sum(loss * upstream))/d logits (flat), both as f64.
pub struct Outcome {
    pub loss: Vec<f64>,
    pub grad: Vec<f64>,
}

/// Both module types of the crate, for the helpers.
pub trait TryForward {
    fn try_forward_rank<const D: usize, const T: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<T, Int>,
    ) -> Result<Tensor<1>, LossError>;
}

impl TryForward for LargeMarginInSoftmaxLoss {
    fn try_forward_rank<const D: usize, const T: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<T, Int>,
    ) -> Result<Tensor<1>, LossError> {
        self.try_forward(logits, targets)
    }
}

impl TryForward for LogitLoss {
    fn try_forward_rank<const D: usize, const T: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<T, Int>,
    ) -> Result<Tensor<1>, LossError> {
        self.try_forward(logits, targets)
    }
}

/// The wgpu device with autodiff, or `None` (said on stderr) where none works.
#[cfg(feature = "wgpu")]
pub fn wgpu_device() -> Option<Device> {
    lmsoftmax_kernels::cube::wgpu_test_device()
}

/// Runs the loss of `config` on logits of any rank 2..=4 given flat in f64, cast to `dtype`.
pub fn run(
    config: &LargeMarginInSoftmaxLossConfig,
    shape: &[usize],
    logits: &[f64],
    targets: &[i64],
    upstream: Option<&[f64]>,
    dtype: DType,
) -> Result<Outcome, LossError> {
    run_on(&device(), config, shape, logits, targets, upstream, dtype)
}

/// [`run`] on `device`.
pub fn run_on(
    device: &Device,
    config: &LargeMarginInSoftmaxLossConfig,
    shape: &[usize],
    logits: &[f64],
    targets: &[i64],
    upstream: Option<&[f64]>,
    dtype: DType,
) -> Result<Outcome, LossError> {
    let loss = config.init(device).expect("valid test configuration");
    run_loss_on(device, &loss, shape, logits, targets, upstream, dtype)
}

/// Runs `loss` on logits of any rank 2..=4 given flat in f64, cast to `dtype`.
pub fn run_loss(
    loss: &impl TryForward,
    shape: &[usize],
    logits: &[f64],
    targets: &[i64],
    upstream: Option<&[f64]>,
    dtype: DType,
) -> Result<Outcome, LossError> {
    run_loss_on(&device(), loss, shape, logits, targets, upstream, dtype)
}

/// [`run_loss`] on `device`.
pub fn run_loss_on(
    device: &Device,
    loss: &impl TryForward,
    shape: &[usize],
    logits: &[f64],
    targets: &[i64],
    upstream: Option<&[f64]>,
    dtype: DType,
) -> Result<Outcome, LossError> {
    let args = (shape, logits, targets, upstream, dtype);
    match shape.len() {
        2 => run_rank::<2, 1>(device, loss, args),
        3 => run_rank::<3, 2>(device, loss, args),
        4 => run_rank::<4, 3>(device, loss, args),
        r => panic!("no test helper for rank {r}"),
    }
}

/// What [`run_rank`] runs on: shape, logits, targets, upstream gradient, dtype.
type RunArgs<'a> = (&'a [usize], &'a [f64], &'a [i64], Option<&'a [f64]>, DType);

fn run_rank<const D: usize, const T: usize>(
    device: &Device,
    loss_fn: &impl TryForward,
    (shape, logits, targets, upstream, dtype): RunArgs<'_>,
) -> Result<Outcome, LossError> {
    let device = device.clone();
    let x = Tensor::<D>::from_data(
        TensorData::new(logits.to_vec(), shape.to_vec()),
        (&device, dtype),
    )
    .require_grad();
    let target_shape: Vec<usize> = shape
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, d)| *d)
        .collect();
    let y = Tensor::<T, Int>::from_data(TensorData::new(targets.to_vec(), target_shape), &device);
    let loss = loss_fn.try_forward_rank(x.clone(), y)?;
    let scalar = match upstream {
        Some(up) => {
            let n = up.len();
            let up =
                Tensor::<1>::from_data(TensorData::new(up.to_vec(), [n]), (&device, loss.dtype()));
            (loss.clone() * up).sum()
        }
        None => loss.clone().sum(),
    };
    let grads = scalar.backward();
    let grad = x.grad(&grads).expect("logits have a gradient");
    assert_eq!(
        grad.dtype(),
        dtype,
        "the gradient comes back in the logits' dtype"
    );
    Ok(Outcome {
        loss: to_f64(loss),
        grad: to_f64(grad),
    })
}

/// Any float tensor's values as f64.
pub fn to_f64<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.detach()
        .cast(DType::F64)
        .into_data()
        .try_to_vec::<f64>()
        .expect("f64 data")
}

/// Asserts `|got - want| <= abs + rel |want|` element-wise, naming the first offender.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64, abs: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= abs + rel * w.abs(),
            "{what}[{i}]: got {g:e}, want {w:e} (rel {rel:e}, abs {abs:e})"
        );
    }
}

/// Deterministic pseudo-random f64 values in [-scale, scale] (a small LCG: no test dependency).
pub fn pseudo_random(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Every `*.json` file of `dir` parsed as `T`, with its path, sorted by path. Panics naming the
/// folder (and `env`, the variable that names it) when it is unreadable or holds no such file,
/// and naming the file when one does not parse.
pub fn read_golden<T: serde::de::DeserializeOwned>(
    dir: &std::path::Path,
    env: &str,
) -> Vec<(std::path::PathBuf, T)> {
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read the golden folder {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no golden vectors (*.json) in {}: set {env} to a folder of them",
        dir.display()
    );
    paths
        .into_iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let case =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, case)
        })
        .collect()
}
