//! # lmsoftmax-kernels
//!
//! Kernels for the flex backend: the fast paths that `lmsoftmax-loss` and `lmsoftmax-models`
//! choose at run time when the tensors live on Burn's flex CPU backend, each a Burn backend
//! extension whose autodiff version records one operation with a hand-written backward.
//!
//! * [`flex::fused_loss`] — loss and gradient of every row of the large-margin in softmax loss
//!   in one pass over the logits, from a per-row description ([`flex::fused_loss::LossRows`])
//!   that the loss crate fills in;
//! * [`flex::conv`] — 2-D convolution as im2col and matrix products, in both directions;
//! * [`flex::batch_norm`] — BatchNorm in as few passes over the activation as the maths allows.
//!
//! Each is tested against the reference it replaces (Burn's own convolution and BatchNorm here,
//! the loss's composed ops in `lmsoftmax-loss`), and each leaves other backends and dtypes to
//! that reference. This crate depends on Burn only: the loss and the models depend on it, never
//! the other way round.
//!
//! # Example
//! ```
//! use burn::nn::conv::Conv2dConfig;
//! use burn::tensor::{Device, Distribution, Tensor};
//! use lmsoftmax_kernels::flex;
//!
//! let device = Device::flex().autodiff();
//! assert!(flex::runs_on(&device));
//! let conv = Conv2dConfig::new([3, 4], [3, 3]).init(&device);
//! let x = Tensor::<4>::random([2, 3, 8, 8], Distribution::Default, &device);
//! let y = flex::conv::forward(&conv, x.clone());
//! y.to_data().assert_approx_eq::<f32>(&conv.forward(x).to_data(), Default::default());
//! ```
#![warn(missing_docs)]

pub mod flex;

#[cfg(test)]
mod testing;
