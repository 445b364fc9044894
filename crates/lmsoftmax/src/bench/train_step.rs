//! `lmsoftmax bench train-step`: one training step of a network (forward, loss, backward, SGD
//! update with the official momentum 0.9 and weight decay 1e-4) and forward-only evaluation
//! throughput, on the CPU backend or any device of the binary (`--device wgpu`; each timed step
//! waits for the device to finish).

use anyhow::Result;
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use lmsoftmax_kernels::autocast::{self, Precision};
use lmsoftmax_loss::{LossConfig, LossKind};
use serde::Serialize;

use super::timing::median_ms;

/// Timings of one network.
#[derive(Debug, Clone, Serialize)]
pub struct StepTimes {
    /// Architecture.
    pub arch: String,
    /// Batch size.
    pub batch_size: usize,
    /// Input `[c, h, w]`.
    pub input: [usize; 3],
    /// Classes.
    pub classes: usize,
    /// Loss of the step.
    pub loss: LossKind,
    /// Threads of the CPU backend.
    pub threads: usize,
    /// The device the step ran on (`Debug` of Burn's device).
    pub device: String,
    /// Median training step, ms.
    pub step_ms: f64,
    /// Forward-only evaluation throughput (eval-mode BatchNorm, no autodiff).
    pub eval_images_per_s: f64,
    /// The process's peak resident memory after the timed training steps (before the
    /// evaluation), MiB: the step's peak plus the binary's baseline; `None` off Linux.
    pub peak_rss_mib: Option<f64>,
    /// The CPU's vector level that the CPU kernels dispatched to (e.g. `x86-64-v3 (avx2,
    /// fma)`): on a GPU device, the host's.
    pub isa: String,
    /// The CPU's bf16 units (`amx-bf16`, `avx512-bf16`, or `none`).
    pub bf16_units: String,
    /// The precision of the step's convolutions and linear layers (the
    /// [`lmsoftmax_kernels::autocast`] scope `measure` ran in): `fp32` or `bf16`.
    pub precision: Precision,
    /// What ran the bf16 products ([`lmsoftmax_kernels::autocast::bf16_kernel`]); `None` in
    /// fp32.
    pub bf16_kernel: Option<String>,
}

/// Measures `arch` at `batch_size` with the given width multiplier and class count on `plain`
/// (a device without autodiff; the step runs on its autodiff version), at the precision of this
/// thread's [`lmsoftmax_kernels::autocast`] scope.
///
/// # Errors
/// An unknown architecture or an input it cannot take; a device that fails.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    plain: &Device,
    arch: &str,
    batch_size: usize,
    loss: LossKind,
    width: f32,
    classes: Option<usize>,
    warmup: usize,
    reps: usize,
) -> Result<StepTimes> {
    let usual = lmsoftmax_models::list()
        .into_iter()
        .find(|m| m.name == arch)
        .ok_or_else(|| {
            crate::error::input(format!(
                "unknown architecture '{arch}': see `lmsoftmax models`"
            ))
        })?;
    let classes = classes.unwrap_or(usual.num_classes);
    let input = usual.input;
    let device = plain.clone().autodiff();
    let mut model = lmsoftmax_models::build(arch, input[0], classes, width, &device)?;
    let loss_fn = LossConfig::of_kind(loss).init(&device)?;
    let mut optim = SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
        ))
        .with_weight_decay(Some(WeightDecayConfig::new(1e-4)))
        .init();
    let n = batch_size * input.iter().product::<usize>();
    let values: Vec<f32> = (0..n)
        .map(|i| ((i * 2_654_435_761) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let targets: Vec<i64> = (0..batch_size).map(|i| (i % classes) as i64).collect();
    let shape = [batch_size, input[0], input[1], input[2]];
    let x = Tensor::<4>::from_data(
        TensorData::new(values.clone(), shape),
        (&device, DType::F32),
    );
    let y = Tensor::<1, Int>::from_data(TensorData::new(targets, [batch_size]), &device);

    let (step_ms, _) = median_ms(warmup, reps, || {
        let logits = model.forward(x.clone());
        let value = loss_fn.forward(logits, y.clone());
        let grads = GradientsParams::from_grads(value.backward(), &model);
        model = optim.step(0.1, model.clone(), grads);
        // GPU backends queue the work: the step is done when the device is
        device.sync().expect("the device finishes the step");
    });

    let peak_rss_mib = super::timing::peak_rss_mib();
    let eval = model.valid();
    let x_eval = Tensor::<4>::from_data(TensorData::new(values, shape), (plain, DType::F32));
    let (eval_ms, _) = median_ms(warmup.min(1), reps, || {
        eval.forward(x_eval.clone()).into_data()
    });
    let cpu = lmsoftmax_kernels::cpu::CpuFeatures::detect();
    Ok(StepTimes {
        arch: arch.to_string(),
        batch_size,
        input,
        classes,
        loss,
        threads: rayon::current_num_threads(),
        device: format!("{plain:?}"),
        step_ms,
        eval_images_per_s: batch_size as f64 / (eval_ms / 1e3),
        peak_rss_mib,
        isa: cpu.vector_level().to_owned(),
        bf16_units: cpu.bf16_units(),
        precision: autocast::current(),
        bf16_kernel: (autocast::current() == Precision::Bf16).then(|| autocast::bf16_kernel(&cpu)),
    })
}
