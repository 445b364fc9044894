//! Kernels in CubeCL for Burn's cubecl backend (the wgpu, cuda and rocm runtimes; built with
//! one of those features): one source, compiled just in time for the device it runs on.
//!
//! * [`fused_loss`] — the fused loss rows behind [`crate::fused_loss::fused_rows`] on cubecl
//!   devices, in f32.

pub mod fused_loss;

#[cfg(feature = "wgpu")]
mod probe;
#[cfg(feature = "wgpu")]
pub use probe::{try_wgpu_device, wgpu_test_device};
