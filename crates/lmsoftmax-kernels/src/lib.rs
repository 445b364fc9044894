//! # lmsoftmax-kernels
//!
//! The fast paths that `lmsoftmax-loss` and `lmsoftmax-models` choose at run time, each a Burn
//! backend extension whose autodiff version records one operation with a hand-written backward:
//!
//! * [`fused_loss`] — loss and gradient of every row of the large-margin in softmax loss in
//!   one kernel over the logits, from a per-row description ([`fused_loss::LossRows`]) that the
//!   loss crate fills in: on the flex CPU backend ([`flex`]) and, with the `wgpu`, `cuda` or
//!   `rocm` feature, as a CubeCL kernel on Burn's cubecl backend (`cube`);
//! * [`flex::conv`] — 2-D convolution as im2col and matrix products, in both directions;
//! * [`flex::batch_norm`] — BatchNorm in as few passes over the activation as the maths allows;
//! * [`autocast`] — bf16 mixed precision as `torch.autocast` runs it (bf16 operands of the
//!   convolutions and linear layers, f32 sums and master weights), per thread;
//! * [`cpu`] — the vector level and bf16 units of the CPU the kernels run on.
//!
//! Each is tested against the reference it replaces (Burn's own convolution and BatchNorm here,
//! the loss's composed ops in `lmsoftmax-loss`), and each leaves other backends and dtypes to
//! that reference. This crate depends on Burn only (and, for the CubeCL kernels, on the cubecl
//! crates Burn's GPU backends are made of): the loss and the models depend on it, never the
//! other way round.
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

pub mod autocast;
pub mod cpu;
#[cfg(feature = "cube")]
pub mod cube;
pub mod flex;
pub mod fused_loss;

#[cfg(test)]
mod testing;
