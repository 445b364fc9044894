//! The architecture registry: names, [`build`], [`Network`], [`list`] and [`ModelInfo`].

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

use crate::common::{Tracer, count_trainable_params};
use crate::densenet::{DenseNet, DenseNetConfig};
use crate::error::{ModelError, validate_args};
use crate::layer13::{Layer13, Layer13Config};
use crate::resnet::{ResNet, ResNetConfig};
use crate::small_cnn::{SmallCnn, SmallCnnConfig};
use crate::vgg::{Vgg, VggConfig, VggHead, VggStyle};

/// Every architecture name [`build`] accepts, in [`list`] order.
pub const ARCHITECTURES: &[&str] = &[
    "layer13",
    "small_cnn",
    "small_cnn_nobn",
    "vgg11orig",
    "vgg11orig_bn",
    "vgg13orig",
    "vgg13orig_bn",
    "vgg16orig",
    "vgg16orig_bn",
    "vgg19orig",
    "vgg19orig_bn",
    "vgg11bow",
    "vgg11bow_bn",
    "vgg13bow",
    "vgg13bow_bn",
    "vgg16bow",
    "vgg16bow_bn",
    "vgg19bow",
    "vgg19bow_bn",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "resnet50",
    "resnext50_32x4d",
    "densenet169",
];

/// CIFAR input `[c, h, w]`.
pub const CIFAR_INPUT: [usize; 3] = [3, 32, 32];
/// ImageNet input `[c, h, w]`.
pub const IMAGENET_INPUT: [usize; 3] = [3, 224, 224];

/// A parsed architecture name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arch {
    Layer13,
    SmallCnn {
        batch_norm: bool,
    },
    Vgg {
        depth: usize,
        head: VggHead,
        batch_norm: bool,
        style: VggStyle,
    },
    ResNet {
        groups: usize,
        width_per_group: usize,
    },
    DenseNet169,
}

/// Parses an architecture name of [`ARCHITECTURES`].
pub(crate) fn parse(name: &str) -> Option<Arch> {
    match name {
        "layer13" => return Some(Arch::Layer13),
        "small_cnn" => return Some(Arch::SmallCnn { batch_norm: true }),
        "small_cnn_nobn" => return Some(Arch::SmallCnn { batch_norm: false }),
        "resnet50" => {
            return Some(Arch::ResNet {
                groups: 1,
                width_per_group: 64,
            });
        }
        "resnext50_32x4d" => {
            return Some(Arch::ResNet {
                groups: 32,
                width_per_group: 4,
            });
        }
        "densenet169" => return Some(Arch::DenseNet169),
        _ => {}
    }
    let rest = name.strip_prefix("vgg")?;
    let depth: usize = rest.get(..2)?.parse().ok()?;
    if ![11, 13, 16, 19].contains(&depth) {
        return None;
    }
    let (head, style, bn) = match &rest[2..] {
        "orig" => (VggHead::Orig, VggStyle::Repo, false),
        "orig_bn" => (VggHead::Orig, VggStyle::Repo, true),
        "bow" => (VggHead::Bow, VggStyle::Repo, false),
        "bow_bn" => (VggHead::Bow, VggStyle::Repo, true),
        "" => (VggHead::Orig, VggStyle::Torchvision, false),
        "_bn" => (VggHead::Orig, VggStyle::Torchvision, true),
        _ => return None,
    };
    Some(Arch::Vgg {
        depth,
        head,
        batch_norm: bn,
        style,
    })
}

/// The error for an unknown architecture name.
pub(crate) fn unknown(name: &str) -> ModelError {
    ModelError::UnknownArch {
        name: name.to_string(),
        known: ARCHITECTURES.join(", "),
    }
}

/// Any of the networks, as one Burn module.
// Built once per run; boxing the variants would only add indirection to every forward.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Network {
    /// `layer13`.
    Layer13(Layer13),
    /// `small_cnn`.
    SmallCnn(SmallCnn),
    /// The VGG family.
    Vgg(Vgg),
    /// `resnet50`, `resnext50_32x4d`.
    ResNet(ResNet),
    /// `densenet169`.
    DenseNet(DenseNet),
}

impl Network {
    /// Forward pass: `[n, c, h, w]` images to `[n, num_classes]` logits.
    ///
    /// BatchNorm uses batch statistics (and updates its running statistics) when the input is
    /// on an autodiff device and the module is in training mode; otherwise (plain device, or
    /// after [`Module::valid`]) it uses the running statistics.
    ///
    /// # Panics
    /// If the input is too small or has the wrong channel count ([`Network::try_forward`]
    /// checks first).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Network::Layer13(m) => m.forward(x),
            Network::SmallCnn(m) => m.forward(x),
            Network::Vgg(m) => m.forward(x),
            Network::ResNet(m) => m.forward(x),
            Network::DenseNet(m) => m.forward(x),
        }
    }

    /// Like [`Network::forward`], but checks the input shape first, and that the network has
    /// its classifier.
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<2>, ModelError> {
        let [_, c, h, w] = x.dims();
        self.macs([c, h, w])?;
        if !self.has_classifier() {
            return Err(ModelError::InvalidArgument(format!(
                "this {} has no classifier: its features go to a margin head (Network::features)",
                self.family()
            )));
        }
        Ok(self.forward(x))
    }

    /// The penultimate features `[n, feature_dim]`: what the last linear layer takes, and what
    /// a margin head takes in its place (the pooled convolutional features of `layer13`,
    /// `small_cnn`, ResNet and DenseNet; the last hidden layer's output, after ReLU and dropout,
    /// for VGG).
    ///
    /// ```
    /// use burn::tensor::{Device, Tensor};
    /// let device = Device::flex();
    /// let net = lmsoftmax_models::build("layer13", 3, 10, 0.25, &device)?;
    /// let x = Tensor::<4>::ones([2, 3, 32, 32], &device);
    /// assert_eq!(net.features(x).dims(), [2, net.feature_dim()]);
    /// assert_eq!(net.feature_dim(), 32); // 128 at width 1
    /// # Ok::<(), lmsoftmax_models::ModelError>(())
    /// ```
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Network::Layer13(m) => m.features(x),
            Network::SmallCnn(m) => m.features(x),
            Network::Vgg(m) => m.penultimate(x),
            Network::ResNet(m) => m.features(x),
            Network::DenseNet(m) => m.features(x),
        }
    }

    /// The size of [`Network::features`].
    pub fn feature_dim(&self) -> usize {
        let conv_out = |c: &burn::nn::conv::Conv2d| c.weight.lazy_shape().dims::<4>()[0];
        match self {
            Network::Layer13(m) => m.blocks.last().map_or(0, |b| conv_out(&b.conv)),
            Network::SmallCnn(m) => m.blocks.last().map_or(0, |b| conv_out(&b.conv)),
            Network::Vgg(m) => m
                .hidden
                .last()
                .map_or(0, |h| h.linear.weight.lazy_shape().dims::<2>()[1]),
            Network::ResNet(m) => m.layer4.last().map_or(0, |b| conv_out(&b.conv3)),
            Network::DenseNet(m) => m.norm5.gamma.lazy_shape().dims::<1>()[0],
        }
    }

    /// Whether the network ends in its linear classifier (false after
    /// [`Network::without_classifier`]).
    pub fn has_classifier(&self) -> bool {
        match self {
            Network::Layer13(m) => m.classifier.is_some(),
            Network::SmallCnn(m) => m.classifier.is_some(),
            Network::Vgg(m) => m.last.is_some(),
            Network::ResNet(m) => m.fc.is_some(),
            Network::DenseNet(m) => m.classifier.is_some(),
        }
    }

    /// The last linear layer's slot, whatever the network calls it.
    fn last_layer_mut(&mut self) -> &mut Option<Linear> {
        match self {
            Network::Layer13(m) => &mut m.classifier,
            Network::SmallCnn(m) => &mut m.classifier,
            Network::Vgg(m) => &mut m.last,
            Network::ResNet(m) => &mut m.fc,
            Network::DenseNet(m) => &mut m.classifier,
        }
    }

    /// The network without its last linear layer, for a margin head on
    /// [`Network::features`]: its parameters are gone (not counted, trained or saved), and
    /// [`Network::forward`] is then refused.
    ///
    /// ```
    /// use burn::tensor::Device;
    /// let net = lmsoftmax_models::build("resnet50", 3, 1000, 1.0, &Device::flex())?;
    /// let with = net.num_trainable_params();
    /// let body = net.without_classifier();
    /// assert_eq!(with - body.num_trainable_params(), 2048 * 1000 + 1000);
    /// assert_eq!(body.feature_dim(), 2048);
    /// # Ok::<(), lmsoftmax_models::ModelError>(())
    /// ```
    pub fn without_classifier(mut self) -> Self {
        *self.last_layer_mut() = None;
        self
    }

    /// Family name used in error messages.
    pub fn family(&self) -> &'static str {
        match self {
            Network::Layer13(_) => "layer13",
            Network::SmallCnn(_) => "small_cnn",
            Network::Vgg(_) => "vgg",
            Network::ResNet(_) => "resnet",
            Network::DenseNet(_) => "densenet",
        }
    }

    /// Forward multiply-adds per image of shape `[c, h, w]` (convolutions and linear layers;
    /// see the crate documentation), or an error when the input does not fit the network.
    pub fn macs(&self, input: [usize; 3]) -> Result<u64, ModelError> {
        let mut t = Tracer::new(self.family(), input);
        match self {
            Network::Layer13(m) => m.trace(&mut t)?,
            Network::SmallCnn(m) => m.trace(&mut t)?,
            Network::Vgg(m) => m.trace(&mut t)?,
            Network::ResNet(m) => m.trace(&mut t)?,
            Network::DenseNet(m) => m.trace(&mut t)?,
        }
        Ok(t.macs)
    }

    /// Trainable parameters (excludes BatchNorm running statistics; see
    /// [`count_trainable_params`]). Does not initialise lazy parameters.
    pub fn num_trainable_params(&self) -> usize {
        count_trainable_params(self)
    }
}

/// Builds a network by name with its reference initialisation.
///
/// `width` multiplies every hidden channel count (`max(1, round(c * width))`; 1.0 gives the
/// reference network). Parameters are initialised lazily, on first use. Names are listed in
/// [`ARCHITECTURES`].
///
/// # Errors
/// [`ModelError::UnknownArch`] for an unknown name, [`ModelError::InvalidArgument`] for zero
/// channels/classes or a non-positive width.
pub fn build(
    arch: &str,
    in_channels: usize,
    num_classes: usize,
    width: f32,
    device: &Device,
) -> Result<Network, ModelError> {
    let parsed = parse(arch).ok_or_else(|| unknown(arch))?;
    validate_args(in_channels, num_classes, width)?;
    let net = match parsed {
        Arch::Layer13 => Network::Layer13(
            Layer13Config::new()
                .with_in_channels(in_channels)
                .with_num_classes(num_classes)
                .with_width(width)
                .init(device),
        ),
        Arch::SmallCnn { batch_norm } => Network::SmallCnn(
            SmallCnnConfig::new()
                .with_in_channels(in_channels)
                .with_num_classes(num_classes)
                .with_width(width)
                .with_batch_norm(batch_norm)
                .init(device),
        ),
        Arch::Vgg {
            depth,
            head,
            batch_norm,
            style,
        } => {
            let cfg = VggConfig::new(depth)
                .with_head(head)
                .with_batch_norm(batch_norm)
                .with_style(style)
                .with_in_channels(in_channels)
                .with_num_classes(num_classes)
                .with_width(width);
            cfg.validate()?;
            Network::Vgg(cfg.init(device))
        }
        Arch::ResNet {
            groups,
            width_per_group,
        } => {
            let cfg = ResNetConfig::new()
                .with_groups(groups)
                .with_width_per_group(width_per_group)
                .with_in_channels(in_channels)
                .with_num_classes(num_classes)
                .with_width(width);
            cfg.validate()?;
            Network::ResNet(cfg.init(device))
        }
        Arch::DenseNet169 => {
            let cfg = DenseNetConfig::new()
                .with_in_channels(in_channels)
                .with_num_classes(num_classes)
                .with_width(width);
            cfg.validate()?;
            Network::DenseNet(cfg.init(device))
        }
    };
    Ok(net)
}

/// Description of a network at a given class count and input size.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Architecture name (as accepted by [`build`]).
    pub name: &'static str,
    /// Number of classes.
    pub num_classes: usize,
    /// Trainable parameters (BatchNorm running statistics excluded).
    pub parameters: usize,
    /// Input `[c, h, w]`.
    pub input: [usize; 3],
    /// Size of the penultimate features, which a margin head takes in place of the last linear
    /// layer ([`Network::features`]).
    pub features: usize,
    /// Forward multiply-adds per image.
    pub macs: u64,
    /// `macs / 1e9`.
    pub gmacs: f64,
}

/// Describes `arch` at `num_classes` classes, input `[c, h, w]` and width multiplier `width`.
/// Builds the network lazily (no weights are allocated) to count parameters and trace MACs.
pub fn model_info(
    arch: &str,
    num_classes: usize,
    input: [usize; 3],
    width: f32,
) -> Result<ModelInfo, ModelError> {
    let name = ARCHITECTURES
        .iter()
        .copied()
        .find(|&n| n == arch)
        .ok_or_else(|| unknown(arch))?;
    let net = build(name, input[0], num_classes, width, &Device::flex())?;
    let macs = net.macs(input)?;
    Ok(ModelInfo {
        name,
        num_classes,
        parameters: net.num_trainable_params(),
        input,
        features: net.feature_dim(),
        macs,
        gmacs: macs as f64 / 1e9,
    })
}

/// Every network at its usual class count and input: `layer13` at 10 and 100 classes and
/// `small_cnn` / `small_cnn_nobn` at 10 (CIFAR 3x32x32), the ImageNet networks at 1000 classes (3x224x224).
pub fn list() -> Vec<ModelInfo> {
    let mut out = Vec::new();
    for &name in ARCHITECTURES {
        let usual: &[(usize, [usize; 3])] = match name {
            "layer13" => &[(10, CIFAR_INPUT), (100, CIFAR_INPUT)],
            "small_cnn" | "small_cnn_nobn" => &[(10, CIFAR_INPUT)],
            _ => &[(1000, IMAGENET_INPUT)],
        };
        for &(classes, input) in usual {
            out.push(
                model_info(name, classes, input, 1.0)
                    .expect("every registered network accepts its usual input"),
            );
        }
    }
    out
}
