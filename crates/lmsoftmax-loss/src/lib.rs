//! # lmsoftmax-loss
//!
//! The large-margin in softmax cross-entropy loss of T. Kobayashi, "Large-Margin In Softmax
//! Cross-Entropy Loss" (BMVC 2019), for [Burn](https://burn.dev) 0.22, with every option of the
//! official PyTorch code (`reg_lambda`, `deg_logit`, class weights, `ignore_index`, reductions)
//! plus label smoothing, spatial input and a fused CPU kernel (from `lmsoftmax-kernels`); and the
//! logit-level losses users compare it with (label smoothing, focal, Poly-1, confidence penalty:
//! [`LabelSmoothingLossConfig`], [`FocalLossConfig`], [`PolyLossConfig`],
//! [`ConfidencePenaltyLossConfig`]), each a [`LogitLoss`] with the same options and both
//! implementations, or any kind by name through [`LossConfig`].
//!
//! Two implementations sit behind one API and agree with the official code's float64 golden
//! vectors: composed Burn tensor ops (any backend, autodiff derives the backward) and a fused
//! kernel for the flex CPU backend with a hand-written backward, chosen automatically.
//!
//! # Example
//! ```
//! use burn::tensor::{Device, Int, Tensor};
//! use lmsoftmax_loss::LargeMarginInSoftmaxLossConfig;
//!
//! let device = Device::flex().autodiff();
//! let loss = LargeMarginInSoftmaxLossConfig::new().with_reg_lambda(0.3).init(&device)?;
//! let logits = Tensor::<2>::from_floats([[3.0, 1.0, 0.0, -1.0]], &device).require_grad();
//! let targets = Tensor::<1, Int>::from_ints([0], &device);
//! let value = loss.forward(logits.clone(), targets);
//! let grads = value.backward();
//! let g: Vec<f32> = logits.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
//! assert!(g[0] < 0.0); // the target logit is pushed up
//! # Ok::<(), lmsoftmax_loss::ConfigError>(())
//! ```
//!
//! # Example: the rest of the family (the README's example)
//! ```
//! use burn::tensor::{Device, Int, Tensor};
//! use lmsoftmax_loss::{FocalLossConfig, LossConfig, LossKind};
//!
//! let device = Device::flex().autodiff();
//! let focal = FocalLossConfig::new().with_gamma(2.0).init(&device)?;
//! let logits = Tensor::<2>::from_floats([[2.0, 0.5, -1.0]], &device).require_grad();
//! let value = focal.forward(logits.clone(), Tensor::<1, Int>::from_ints([0], &device));
//! let grads = value.backward();
//! assert!(logits.grad(&grads).is_some());
//! // any kind by name, as a training config's [loss] table or `--loss` picks it
//! let poly = LossConfig::of_kind(LossKind::Poly).with_parameter("epsilon", 2.0)?.init(&device)?;
//! assert_eq!(poly.kind_name(), "poly");
//! # Ok::<(), lmsoftmax_loss::ConfigError>(())
//! ```
//!
//! # Example: per-row diagnostics for logging
//! ```
//! use burn::tensor::{Device, Int, Tensor};
//! use lmsoftmax_loss::row_diagnostics;
//!
//! let device = Device::flex();
//! let logits = Tensor::<2>::from_floats([[3.0, 1.0, 1.0]], &device);
//! let d = row_diagnostics(logits, Tensor::<1, Int>::from_ints([0], &device))?;
//! let margin: f32 = d.margin.into_scalar();
//! assert_eq!(margin, 2.0);
//! let reg: f32 = d.reg.into_scalar();
//! assert!(reg.abs() < 1e-7); // equal non-target logits: no regulariser
//! # Ok::<(), lmsoftmax_loss::LossError>(())
//! ```
#![warn(missing_docs)]

// The modules in layers, from the bottom up: a module imports only modules of the layers
// before its own (no module of its layer imports another).
// 1. The errors and the reduction type that every layer shares.
mod error;
mod reduction;

// 2. Logits and targets as rows, and the per-row plan of coefficients.
mod plan;
mod rows;

// 3. The two implementations of the planned rows: composed ops, and the binding to the fused
//    flex kernel of lmsoftmax-kernels.
mod composed;
mod fused;

// 4. The configurations of the large-margin and softmax losses, and the diagnostics (which
//    need no configuration).
mod config;
mod diagnostics;

// 5. The configurations of the rest of the family (sharing the checks of `config`), and the
//    computation that every logit-level loss shares (flatten, plan, fused or composed, check).
mod engine;
mod family_config;

// 6. The one module type of every logit-level kind, built from a validated configuration; and
//    the margin heads, which own their class weights.
mod heads;
mod logit_loss;

// 7. The large-margin loss's own module (its configuration and display over a `LogitLoss`).
mod loss;

// 8. The free functions over the modules.
mod functional;

// 9. A loss chosen by kind, as a training configuration's `[loss]` table holds it.
mod choice;

pub use choice::{CommonOptions, LossConfig, LossKind};
pub use config::{
    LargeMarginInSoftmaxLossConfig, LossImplementation, SoftmaxCrossEntropyLossConfig,
};
pub use diagnostics::{RowDiagnostics, row_diagnostics};
pub use error::{ConfigError, LossError};
pub use family_config::{
    ConfidencePenaltyLossConfig, FocalLossConfig, LabelSmoothingLossConfig, PolyLossConfig,
};
pub use functional::{large_margin_in_softmax_loss, softmax_cross_entropy};
pub use heads::{HeadKind, LambdaSchedule, MarginHead};
pub use logit_loss::LogitLoss;
pub use loss::LargeMarginInSoftmaxLoss;
pub use reduction::LossReduction;
