//! # lmsoftmax-models
//!
//! The networks of T. Kobayashi's large-margin in softmax experiments as Burn 0.22 modules:
//!
//! * [`layer13`] — the 13-layer CIFAR network (4,432,522 parameters at 10
//!   classes), with the PyTorch `state_dict` key layout documented for checkpoint interop;
//! * [`small_cnn`] — a small fast CNN for demos and tests;
//! * [`vgg`] — the repo's `vgg{11,13,16,19}{orig,bow}[_bn]` ("VGG-16 mod" is
//!   `vgg16bow_bn`) and torchvision's `vgg{11,13,16,19}[_bn]`;
//! * [`resnet`] — torchvision `resnet50` and `resnext50_32x4d` (torchvision `state_dict`s load
//!   with [`load_resnet_pytorch`]);
//! * [`densenet`] — torchvision `densenet169`.
//!
//! The networks are architectures only: their convolutions, BatchNorms and 2x2 max pooling run
//! through the flex fast paths of `lmsoftmax-kernels` ([`conv`], [`batch_norm`], [`max_pool`]),
//! and through Burn's own layers on other backends (and for the 3x3 pools of ResNet and
//! DenseNet).
//!
//! [`build`] makes any of them by name; [`list`] reports trainable parameters and forward
//! multiply-adds at their usual class count and input size.
//!
//! **Initialisation** follows each network's reference exactly (the official code for `layer13`
//! and the repo VGGs, torchvision for the others; the rules are in each module's documentation),
//! with PyTorch's fans ([`torch_fans`]: a grouped conv's fan-out is not divided by the groups).
//!
//! **PyTorch weights in and out**: [`export_safetensors`] writes a network as its reference's
//! `state_dict` (keys, shapes and dtypes of [`torch_state_keys`], `num_batches_tracked`
//! included) in safetensors format, which `model.load_state_dict(..., strict=True)` accepts;
//! [`load_torch_state`] reads such a file or a `torch.save`d `state_dict` back, strictly.
//!
//! **Parameter counts** are trainable parameters only, as PyTorch's
//! `sum(p.numel() for p in model.parameters())`: Burn's [`Module::num_params`] also counts
//! BatchNorm running means/variances, so [`count_trainable_params`] walks the module tree and
//! skips the tensors stored in `running_mean` / `running_var` fields.
//!
//! **MACs** are computed analytically by tracing shapes through the built layers:
//! convolutions `out_h * out_w * out_c * in_c * k_h * k_w / groups`, linear layers
//! `in * out`; BatchNorm, activations, pooling, residual additions and biases are not counted.
//!
//! # Example
//! ```
//! use burn::tensor::{Device, Tensor};
//! use lmsoftmax_models::build;
//!
//! let device = Device::flex();
//! let net = build("layer13", 3, 10, 0.125, &device)?;
//! let logits = net.forward(Tensor::<4>::zeros([2, 3, 32, 32], &device));
//! assert_eq!(logits.dims(), [2, 10]);
//! assert_eq!(build("layer13", 3, 10, 1.0, &device)?.num_trainable_params(), 4_432_522);
//! # Ok::<(), lmsoftmax_models::ModelError>(())
//! ```
#![warn(missing_docs)]

#[cfg(doc)]
use burn::module::Module;

mod common;
pub mod densenet;
mod error;
mod export;
pub mod layer13;
mod registry;
pub mod resnet;
pub mod small_cnn;
mod torch;
mod torch_keys;
pub mod vgg;
mod walk;

#[cfg(test)]
mod init_tests;
pub mod testing;
#[cfg(test)]
mod tests;

/// The convolution, BatchNorm and max-pooling fast paths of `lmsoftmax-kernels` that the
/// networks call (the first two under the paths they had in this crate).
pub use lmsoftmax_kernels::flex::{batch_norm, conv, max_pool};

pub use common::{
    ConvBnRelu, batch_norm_forward, count_trainable_params, global_avg_pool, is_running_statistic,
    kaiming_normal_fan_in, kaiming_normal_fan_out, normal, scale_channels, torch_fans,
};
pub use error::ModelError;
pub use export::{
    ExportOptions, ExportSummary, export_safetensors, export_safetensors_with, load_torch_state,
};
pub use registry::{
    ARCHITECTURES, CIFAR_INPUT, IMAGENET_INPUT, ModelInfo, Network, build, list, model_info,
};
pub use torch::{
    LAYER13_TORCH_CONV_INDICES, layer13_torch_key_map, load_layer13_pytorch, load_resnet_pytorch,
    resnet_torch_key, resnet_torch_key_map,
};
pub use torch_keys::{TorchDtype, TorchTensor, torch_state_keys};

/// The networks' entry points into the kernels keep Burn's own checks.
#[cfg(test)]
mod kernel_entry_points {
    use burn::tensor::{Device, Tensor};

    /// `batch_norm_forward` keeps the channel check of Burn's `BatchNorm::forward`, which the
    /// fused path alone would not make.
    #[test]
    #[should_panic(expected = "num_features")]
    fn a_layer_on_the_wrong_channel_count_panics_with_burns_check() {
        let device = Device::flex().autodiff();
        let bn = burn::nn::BatchNormConfig::new(3).init(&device);
        let _ = crate::batch_norm_forward(&bn, Tensor::<4>::zeros([2, 4, 5, 5], &device));
    }
}
