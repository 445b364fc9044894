//! The PyTorch `state_dict` layout of every network that has a PyTorch reference: which key
//! each Burn tensor has there, in which shape, plus the `num_batches_tracked` buffers Burn does
//! not keep.
//!
//! | arch | reference | Burn module -> PyTorch module |
//! |---|---|---|
//! | `layer13` | the official `models/layer13.py` (`bench/ref_layer13.py`) | `blocks.{b}.conv` -> `features.{i}`, `blocks.{b}.bn` -> `features.{i+1}` with `i` in [`LAYER13_TORCH_CONV_INDICES`]; `classifier` |
//! | `resnet50`, `resnext50_32x4d` | torchvision | the same names except `*.downsample.conv` -> `*.downsample.0`, `*.downsample.bn` -> `*.downsample.1` |
//! | `densenet169` | torchvision | `conv0`, `norm0`, `norm5` -> `features.*`; `blocks.{i}.layers.{j}.*` -> `features.denseblock{i+1}.denselayer{j+1}.*`; `transitions.{i}.*` -> `features.transition{i+1}.*`; `classifier` |
//! | `vgg{11,13,16,19}[_bn]` | torchvision | `features.{k}.conv` / `.bn` -> `features.{i}` / `{i+1}` (`nn.Sequential` index: conv, [BN], ReLU, and one slot per max-pool); `hidden.{h}.linear` -> `classifier.{3h}`; `last` -> `classifier.6` (ReLU and Dropout take the other slots) |
//! | `vgg{11,13,16,19}{orig,bow}[_bn]` | the official `models/vgg.py` | features as torchvision (the bow head's 1x1 'W' conv is the last conv); `hidden.{h}.linear` / `.bn` -> `classifier.{s h}` / `{s h + 1}`, `last` -> `classifier.{s n_hidden}` with `s` = 3 with BatchNorm1d, 2 without |
//!
//! In every layout BatchNorm's `gamma` / `beta` are PyTorch's `weight` / `bias`, a linear
//! weight is `[out, in]` (Burn stores `[in, out]`), and each BatchNorm also has an int64 scalar
//! `num_batches_tracked`. `small_cnn` has no PyTorch reference.

use std::collections::BTreeMap;

use crate::error::ModelError;
use crate::registry::{Arch, Network, parse, unknown};
use crate::torch::LAYER13_TORCH_CONV_INDICES;
use crate::vgg::{Vgg, VggHead, VggLayer, VggStyle};
use crate::walk::{TensorEntry, walk};

/// Element type of a `state_dict` tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TorchDtype {
    /// `torch.float32`: parameters and running statistics.
    F32,
    /// `torch.int64`: BatchNorm's `num_batches_tracked`.
    I64,
}

impl TorchDtype {
    /// The safetensors / PyTorch short name (`F32`, `I64`).
    pub fn name(self) -> &'static str {
        match self {
            TorchDtype::F32 => "F32",
            TorchDtype::I64 => "I64",
        }
    }
}

/// One entry of a PyTorch `state_dict`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TorchTensor {
    /// The key (`features.1.running_var`).
    pub key: String,
    /// The shape in PyTorch's layout (`[]` for `num_batches_tracked`).
    pub shape: Vec<usize>,
    /// The element type.
    pub dtype: TorchDtype,
}

/// Maps a network's Burn module paths to the PyTorch module names of its reference.
pub(crate) struct Namer {
    kind: Kind,
}

enum Kind {
    Layer13,
    ResNet,
    DenseNet,
    Vgg {
        /// `nn.Sequential` index of each `features` entry that is a conv block.
        feature_index: Vec<Option<usize>>,
        /// Classifier slots per hidden layer.
        stride: usize,
        n_hidden: usize,
    },
}

fn mismatch(arch: &str, net: &Network, detail: &str) -> ModelError {
    ModelError::InvalidArgument(format!(
        "the network is not a `{arch}` ({} network{detail})",
        net.family()
    ))
}

fn vgg_kind(
    vgg: &Vgg,
    arch: &str,
    net: &Network,
    want: (usize, VggHead, bool, VggStyle),
) -> Result<Kind, ModelError> {
    let (depth, head, batch_norm, style) = want;
    let convs: Vec<_> = vgg
        .features
        .iter()
        .filter_map(|l| match l {
            VggLayer::Conv(block) => Some(block),
            VggLayer::Pool(_) => None,
        })
        .collect();
    let has_head = |h: VggHead| (vgg.avgpool.output_size == [1, 1]) == (h == VggHead::Bow);
    let expected_convs = depth - 3 + usize::from(head == VggHead::Bow);
    let torchvision = vgg.hidden.iter().all(|h| h.dropout.is_some());
    let bn = convs.first().is_some_and(|c| c.bn.is_some());
    if convs.len() != expected_convs
        || !has_head(head)
        || bn != batch_norm
        || torchvision != (style == VggStyle::Torchvision)
    {
        return Err(mismatch(
            arch,
            net,
            &format!(
                " with {} convolutions, {} head, {} BatchNorm, {} style",
                convs.len(),
                if vgg.avgpool.output_size == [1, 1] {
                    "bow"
                } else {
                    "orig"
                },
                if bn { "with" } else { "without" },
                if torchvision { "torchvision" } else { "repo" },
            ),
        ));
    }
    let mut index = 0;
    let mut feature_index = Vec::with_capacity(vgg.features.len());
    for layer in &vgg.features {
        match layer {
            VggLayer::Conv(block) => {
                feature_index.push(Some(index));
                index += 2 + usize::from(block.bn.is_some());
            }
            VggLayer::Pool(_) => {
                feature_index.push(None);
                index += 1;
            }
        }
    }
    let stride = match style {
        VggStyle::Torchvision => 3, // Linear, ReLU, Dropout
        VggStyle::Repo => 2 + usize::from(batch_norm),
    };
    Ok(Kind::Vgg {
        feature_index,
        stride,
        n_hidden: vgg.hidden.len(),
    })
}

impl Namer {
    /// The layout of `arch`, checked against `net`.
    pub(crate) fn new(net: &Network, arch: &str) -> Result<Self, ModelError> {
        let parsed = parse(arch).ok_or_else(|| unknown(arch))?;
        let kind = match (parsed, net) {
            (Arch::Layer13, Network::Layer13(_)) => Kind::Layer13,
            (Arch::ResNet { groups, .. }, Network::ResNet(r)) => {
                let got = r.layer1.first().map_or(0, |b| b.conv2.groups);
                if got != groups {
                    return Err(mismatch(
                        arch,
                        net,
                        &format!(" with {got}-group 3x3 convolutions"),
                    ));
                }
                Kind::ResNet
            }
            (Arch::DenseNet169, Network::DenseNet(_)) => Kind::DenseNet,
            (
                Arch::Vgg {
                    depth,
                    head,
                    batch_norm,
                    style,
                },
                Network::Vgg(v),
            ) => vgg_kind(v, arch, net, (depth, head, batch_norm, style))?,
            (Arch::SmallCnn { .. }, _) => {
                return Err(ModelError::InvalidArgument(format!(
                    "`{arch}` has no PyTorch reference, so no PyTorch state_dict layout"
                )));
            }
            _ => return Err(mismatch(arch, net, "")),
        };
        Ok(Self { kind })
    }

    /// The PyTorch module name of the Burn module at `path`, or `None` for a path the
    /// reference does not have.
    pub(crate) fn module(&self, path: &str) -> Option<String> {
        let parts: Vec<&str> = path.split('.').collect();
        let index = |i: usize| parts.get(i).and_then(|p| p.parse::<usize>().ok());
        match &self.kind {
            Kind::Layer13 => match parts.as_slice() {
                ["classifier"] => Some("classifier".into()),
                ["blocks", _, "conv"] => Some(format!(
                    "features.{}",
                    LAYER13_TORCH_CONV_INDICES.get(index(1)?)?
                )),
                ["blocks", _, "bn"] => Some(format!(
                    "features.{}",
                    LAYER13_TORCH_CONV_INDICES.get(index(1)?)? + 1
                )),
                _ => None,
            },
            Kind::ResNet => Some(
                format!("{path}.")
                    .replace(".downsample.conv.", ".downsample.0.")
                    .replace(".downsample.bn.", ".downsample.1.")
                    .trim_end_matches('.')
                    .to_string(),
            ),
            Kind::DenseNet => match parts.as_slice() {
                [m @ ("conv0" | "norm0" | "norm5")] => Some(format!("features.{m}")),
                ["classifier"] => Some("classifier".into()),
                ["blocks", _, "layers", _, m] => Some(format!(
                    "features.denseblock{}.denselayer{}.{m}",
                    index(1)? + 1,
                    index(3)? + 1
                )),
                ["transitions", _, m] => Some(format!("features.transition{}.{m}", index(1)? + 1)),
                _ => None,
            },
            Kind::Vgg {
                feature_index,
                stride,
                n_hidden,
            } => match parts.as_slice() {
                ["features", _, "conv"] => {
                    Some(format!("features.{}", (*feature_index.get(index(1)?)?)?))
                }
                ["features", _, "bn"] => Some(format!(
                    "features.{}",
                    (*feature_index.get(index(1)?)?)? + 1
                )),
                ["hidden", _, "linear"] => Some(format!("classifier.{}", stride * index(1)?)),
                ["hidden", _, "bn"] => Some(format!("classifier.{}", stride * index(1)? + 1)),
                ["last"] => Some(format!("classifier.{}", stride * n_hidden)),
                _ => None,
            },
        }
    }
}

/// PyTorch's name of a Burn tensor field: BatchNorm's `gamma` / `beta` are `weight` / `bias`.
pub(crate) fn torch_param(module_type: &str, param: &str) -> String {
    match (module_type, param) {
        ("BatchNorm", "gamma") => "weight".into(),
        ("BatchNorm", "beta") => "bias".into(),
        _ => param.into(),
    }
}

/// A Burn tensor with its PyTorch key and shape.
pub(crate) struct NamedTensor {
    pub(crate) key: String,
    pub(crate) shape: Vec<usize>,
    pub(crate) entry: TensorEntry,
}

impl NamedTensor {
    /// Whether the tensor is a linear weight, stored `[in, out]` by Burn and `[out, in]` by PyTorch.
    pub(crate) fn is_linear_weight(&self) -> bool {
        self.entry.module_type == "Linear" && self.entry.param == "weight"
    }
}

/// The layout of `net` as `arch`: every float tensor with its PyTorch key and shape, and the
/// PyTorch names of its BatchNorm modules (each with a `num_batches_tracked` buffer).
pub(crate) fn named_tensors(
    net: &Network,
    arch: &str,
    with_values: bool,
) -> Result<(Vec<NamedTensor>, Vec<String>), ModelError> {
    let namer = Namer::new(net, arch)?;
    let mut tensors = Vec::new();
    let mut batch_norms = BTreeMap::new();
    for entry in walk(net, with_values) {
        let module = namer.module(&entry.module_path).ok_or_else(|| {
            ModelError::InvalidArgument(format!(
                "`{arch}`: the network's `{}` has no PyTorch name",
                entry.path()
            ))
        })?;
        if entry.module_type == "BatchNorm" {
            batch_norms.insert(module.clone(), ());
        }
        let key = format!("{module}.{}", torch_param(&entry.module_type, &entry.param));
        let mut shape = entry.shape.clone();
        let named = NamedTensor {
            key,
            shape: Vec::new(),
            entry,
        };
        if named.is_linear_weight() {
            shape.reverse();
        }
        tensors.push(NamedTensor { shape, ..named });
    }
    Ok((tensors, batch_norms.into_keys().collect()))
}

/// The PyTorch `state_dict` of `net` built as `arch`: every key with its shape and dtype,
/// sorted by key, `num_batches_tracked` included. Nothing is initialised, so this is cheap even
/// for a full-size VGG.
///
/// `arch` must be the name `net` was built with (see [`crate::ARCHITECTURES`]): it selects the
/// reference (the official code for `layer13` and the repo VGGs, torchvision otherwise; see the
/// module table) and is checked against the network's structure.
///
/// # Errors
/// [`ModelError::UnknownArch`] for an unknown name; [`ModelError::InvalidArgument`] when `net`
/// is not an `arch` network or `arch` has no PyTorch reference (`small_cnn`).
///
/// # Example
/// ```
/// use burn::tensor::Device;
/// use lmsoftmax_models::{TorchDtype, build, torch_state_keys};
///
/// let net = build("layer13", 3, 10, 1.0, &Device::flex())?;
/// let keys = torch_state_keys(&net, "layer13")?;
/// assert_eq!(keys.len(), 9 + 9 * 5 + 2);
/// let conv = keys.iter().find(|k| k.key == "features.3.weight").unwrap();
/// assert_eq!(conv.shape, [128, 128, 3, 3]);
/// let fc = keys.iter().find(|k| k.key == "classifier.weight").unwrap();
/// assert_eq!(fc.shape, [10, 128]);
/// let count = keys.iter().find(|k| k.key == "features.1.num_batches_tracked").unwrap();
/// assert_eq!((count.shape.len(), count.dtype), (0, TorchDtype::I64));
/// # Ok::<(), lmsoftmax_models::ModelError>(())
/// ```
pub fn torch_state_keys(net: &Network, arch: &str) -> Result<Vec<TorchTensor>, ModelError> {
    let (tensors, batch_norms) = named_tensors(net, arch, false)?;
    let mut keys: Vec<TorchTensor> = tensors
        .into_iter()
        .map(|t| TorchTensor {
            key: t.key,
            shape: t.shape,
            dtype: TorchDtype::F32,
        })
        .chain(batch_norms.into_iter().map(|bn| TorchTensor {
            key: format!("{bn}.num_batches_tracked"),
            shape: Vec::new(),
            dtype: TorchDtype::I64,
        }))
        .collect();
    keys.sort();
    Ok(keys)
}
