//! torchvision DenseNet-BC: `densenet169` (growth 32, blocks (6, 12, 32, 32), bn_size 4,
//! 64 initial features; 14,149,480 parameters at 1000 classes).
//!
//! Stem `conv7x7/2 (no bias) + BN + ReLU + max-pool 3x3/2 (pad 1)`; dense blocks whose layers
//! are `BN ReLU conv1x1 (bn_size * growth) BN ReLU conv3x3 (growth)` concatenated onto their
//! input; transitions `BN ReLU conv1x1 (halve channels) avg-pool 2x2`; final BN + ReLU, global
//! average pooling, `Linear(C_feat, C)`. Init as torchvision's `DenseNet.__init__`: every conv
//! `kaiming_normal_(w)` with PyTorch's defaults, i.e. mode **fan_in** and gain `sqrt(2)`:
//! `N(0, 2 / (in * kh * kw))`; BN weight 1, bias 0; the classifier's bias 0 and its weight
//! `nn.Linear`'s init `U(-1/sqrt(in), 1/sqrt(in))`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Initializer, Linear, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::common::{
    Tracer, batch_norm, batch_norm_forward, conv2d, global_avg_pool, kaiming_normal_fan_in,
    linear_default, scale_channels,
};
use crate::error::{ModelError, validate_args};
use lmsoftmax_kernels::autocast::linear;

/// Configuration of [`DenseNet`].
#[derive(Config, Debug)]
pub struct DenseNetConfig {
    /// Channels added by each dense layer (before the width multiplier).
    #[config(default = 32)]
    pub growth_rate: usize,
    /// Dense layers per block.
    #[config(default = "[6, 12, 32, 32]")]
    pub blocks: [usize; 4],
    /// Stem output channels (before the width multiplier).
    #[config(default = 64)]
    pub init_features: usize,
    /// Bottleneck factor: the 1x1 conv outputs `bn_size * growth_rate` channels.
    #[config(default = 4)]
    pub bn_size: usize,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Number of classes.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Channel multiplier applied to `growth_rate` and `init_features`.
    #[config(default = 1.0)]
    pub width: f32,
}

impl DenseNetConfig {
    /// Checks the arguments.
    pub fn validate(&self) -> Result<(), ModelError> {
        validate_args(self.in_channels, self.num_classes, self.width)?;
        if self.growth_rate == 0 || self.init_features == 0 || self.bn_size == 0 {
            return Err(ModelError::InvalidArgument(
                "DenseNet growth_rate, init_features and bn_size must be >= 1".into(),
            ));
        }
        Ok(())
    }

    /// Builds the network (parameters are initialised lazily).
    ///
    /// # Panics
    /// If [`DenseNetConfig::validate`] fails.
    pub fn init(&self, device: &Device) -> DenseNet {
        self.validate().expect("invalid DenseNetConfig");
        let init = kaiming_normal_fan_in;
        let growth = scale_channels(self.growth_rate, self.width);
        let stem = scale_channels(self.init_features, self.width);
        let mut features = stem;
        let mut blocks = Vec::with_capacity(4);
        let mut transitions = Vec::with_capacity(3);
        for (i, &n_layers) in self.blocks.iter().enumerate() {
            let mut layers = Vec::with_capacity(n_layers);
            for _ in 0..n_layers {
                let mid = self.bn_size * growth;
                layers.push(DenseLayer {
                    norm1: batch_norm(features, 1e-5, device),
                    conv1: conv2d(features, mid, 1, 1, 0, 1, false, init(), device),
                    norm2: batch_norm(mid, 1e-5, device),
                    conv2: conv2d(mid, growth, 3, 1, 1, 1, false, init(), device),
                });
                features += growth;
            }
            blocks.push(DenseBlock { layers });
            if i + 1 < self.blocks.len() {
                let out = (features / 2).max(1);
                transitions.push(Transition {
                    norm: batch_norm(features, 1e-5, device),
                    conv: conv2d(features, out, 1, 1, 0, 1, false, init(), device),
                    pool: AvgPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
                });
                features = out;
            }
        }
        let mut classifier = linear_default(features, self.num_classes, device);
        classifier.bias = Some(Initializer::Zeros.init([self.num_classes], device));
        DenseNet {
            conv0: conv2d(self.in_channels, stem, 7, 2, 3, 1, false, init(), device),
            norm0: batch_norm(stem, 1e-5, device),
            pool0: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            blocks,
            transitions,
            norm5: batch_norm(features, 1e-5, device),
            classifier: Some(classifier),
        }
    }
}

/// One dense layer (BN-ReLU-conv1x1-BN-ReLU-conv3x3).
#[derive(Module, Debug)]
pub struct DenseLayer {
    /// BN on the concatenated input.
    pub norm1: BatchNorm,
    /// 1x1 bottleneck conv.
    pub conv1: Conv2d,
    /// BN after the bottleneck.
    pub norm2: BatchNorm,
    /// 3x3 conv producing `growth_rate` channels.
    pub conv2: Conv2d,
}

impl DenseLayer {
    /// The new features (`growth_rate` channels) computed from the concatenated input.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = crate::conv::forward(&self.conv1, relu(batch_norm_forward(&self.norm1, x)));
        crate::conv::forward(&self.conv2, relu(batch_norm_forward(&self.norm2, x)))
    }
}

/// A dense block.
#[derive(Module, Debug)]
pub struct DenseBlock {
    /// Its layers.
    pub layers: Vec<DenseLayer>,
}

impl DenseBlock {
    /// Forward: concatenates every layer's output onto the running feature map.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = x;
        for layer in &self.layers {
            let new = layer.forward(x.clone());
            x = Tensor::cat(vec![x, new], 1);
        }
        x
    }

    fn trace(&self, t: &mut Tracer) -> Result<(), ModelError> {
        for layer in &self.layers {
            let mut branch = t.clone();
            branch.conv(&layer.conv1)?;
            branch.conv(&layer.conv2)?;
            let c = t.c + branch.c;
            t.macs = branch.macs;
            t.set_channels(c);
        }
        Ok(())
    }
}

/// A transition between dense blocks.
#[derive(Module, Debug)]
pub struct Transition {
    /// BN.
    pub norm: BatchNorm,
    /// 1x1 conv halving the channels.
    pub conv: Conv2d,
    /// 2x2 average pool.
    pub pool: AvgPool2d,
}

/// A torchvision-style DenseNet.
#[derive(Module, Debug)]
pub struct DenseNet {
    /// Stem 7x7 stride-2 conv.
    pub conv0: Conv2d,
    /// Stem BN.
    pub norm0: BatchNorm,
    /// Stem max-pool.
    pub pool0: MaxPool2d,
    /// The dense blocks.
    pub blocks: Vec<DenseBlock>,
    /// The transitions (one fewer than blocks).
    pub transitions: Vec<Transition>,
    /// Final BN.
    pub norm5: BatchNorm,
    /// Classifier; `None` when a margin head takes the features instead.
    pub classifier: Option<Linear>,
}

impl DenseNet {
    /// Forward pass: `[n, c_in, h, w]` to `[n, num_classes]` logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let classifier = self.classifier.as_ref().expect(
            "the network has no classifier (its features go to a margin head: use `features`)",
        );
        linear(classifier, self.features(x))
    }

    /// The pooled features `[n, 1664 * width]` the classifier (or a margin head) takes.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = self.pool0.forward(relu(batch_norm_forward(
            &self.norm0,
            crate::conv::forward(&self.conv0, x),
        )));
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if let Some(tr) = self.transitions.get(i) {
                x = tr.pool.forward(crate::conv::forward(
                    &tr.conv,
                    relu(batch_norm_forward(&tr.norm, x)),
                ));
            }
        }
        let x = relu(batch_norm_forward(&self.norm5, x));
        global_avg_pool(x)
    }

    pub(crate) fn trace(&self, t: &mut Tracer) -> Result<(), ModelError> {
        t.conv(&self.conv0)?;
        t.max_pool(&self.pool0)?;
        for (i, block) in self.blocks.iter().enumerate() {
            block.trace(t)?;
            if let Some(tr) = self.transitions.get(i) {
                t.conv(&tr.conv)?;
                t.avg_pool(&tr.pool)?;
            }
        }
        t.adaptive([1, 1]);
        t.flatten();
        t.classifier(self.classifier.as_ref())
    }
}
