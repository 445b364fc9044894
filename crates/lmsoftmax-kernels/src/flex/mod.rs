//! Fast paths for the flex CPU backend. Each checks [`runs_on`] (and its dtype) and leaves
//! everything else to the reference path.

use burn::backend::DispatchDevice;
use burn::tensor::Device;

pub mod batch_norm;
pub mod bf16_gemm;
pub mod conv;
mod fused_loss;
pub mod max_pool;

/// Whether `device` is the flex backend (with or without autodiff), where these kernels run.
///
/// ```
/// use burn::tensor::Device;
/// assert!(lmsoftmax_kernels::flex::runs_on(&Device::flex()));
/// assert!(lmsoftmax_kernels::flex::runs_on(&Device::flex().autodiff()));
/// ```
pub fn runs_on(device: &Device) -> bool {
    matches!(
        device.as_dispatch().clone().inner(),
        DispatchDevice::Flex(_)
    )
}
