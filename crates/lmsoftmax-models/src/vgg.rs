//! VGG networks: the reference code's `vgg{11,13,16,19}orig[_bn]` and `vgg{11,13,16,19}bow[_bn]`
//! (PROTOCOL sections 4.2-4.3) and torchvision's `vgg16` / `vgg16_bn` (and the other depths).
//!
//! * **Repo style** (`models/vgg.py`): conv3x3 with bias, BN eps 1e-4 in `_bn` variants, no
//!   dropout; init as the repo's `_initialize_weights`: every conv and linear weight
//!   `N(0, 0.01^2)` (no Kaiming), biases 0, BN (2-D and 1-D) weight 1, bias 0.
//!   * `orig` head: adaptive average pool to 7x7, `Linear(512*49, 4096) [BN1d] ReLU
//!     Linear(4096, 4096) [BN1d] ReLU Linear(4096, C)`.
//!   * `bow` head: the last max-pool of the features is replaced by a 1x1 conv `512 -> 4096`
//!     (bias) [+ BN] + ReLU; global average pooling; `Linear(4096, 4096) [BN1d] ReLU
//!     Linear(4096, C)`.
//! * **Torchvision style**: the `orig` head with dropout 0.5 after both hidden ReLUs, BN eps
//!   1e-5; init as torchvision's `VGG.__init__`: convs `kaiming_normal_(mode="fan_out",
//!   nonlinearity="relu")` (`N(0, 2 / (out * 9))`) with bias 0, BN weight 1, bias 0, linears
//!   `N(0, 0.01^2)` with bias 0.

use burn::config::Config;
use burn::module::Module;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Dropout, DropoutConfig, Initializer, Linear};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::common::{
    ConvBnRelu, Tracer, batch_norm, batch_norm_forward, conv2d, kaiming_normal_fan_out,
    linear_zero_bias, normal, scale_channels,
};
use crate::error::{ModelError, validate_args};
use lmsoftmax_kernels::autocast::linear;

/// Classifier head of a VGG network.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum VggHead {
    /// Standard VGG: adaptive average pool to 7x7, flatten, three linear layers.
    Orig,
    /// "Bag of words": last max-pool replaced by a 1x1 conv to 4096 channels, global average
    /// pooling, two linear layers.
    Bow,
}

/// Which reference implementation's conventions to follow.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum VggStyle {
    /// The paper's repository: BN eps 1e-4, no dropout, `N(0, 0.01^2)` init everywhere.
    Repo,
    /// torchvision: BN eps 1e-5, dropout 0.5 in the classifier, Kaiming convs. `Orig` head only.
    Torchvision,
}

/// Configuration of [`Vgg`].
#[derive(Config, Debug)]
pub struct VggConfig {
    /// Depth: 11, 13, 16 or 19 (configurations A, B, D, E).
    pub depth: usize,
    /// Classifier head.
    #[config(default = "VggHead::Orig")]
    pub head: VggHead,
    /// Whether BatchNorm follows every conv (and every hidden linear layer in repo style).
    #[config(default = false)]
    pub batch_norm: bool,
    /// Conventions (init, BN eps, dropout).
    #[config(default = "VggStyle::Repo")]
    pub style: VggStyle,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Number of classes.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Channel multiplier applied to every conv width and to the 4096-wide hidden layers.
    #[config(default = 1.0)]
    pub width: f32,
}

/// One entry of a VGG configuration: a conv3x3 with this many output channels, or a max-pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VggCfgItem {
    /// A 3x3 conv (+ BN) + ReLU with this many output channels (before the width multiplier).
    Conv(usize),
    /// A 2x2 max-pool with stride 2.
    Pool,
}

/// The standard VGG feature configurations A (11), B (13), D (16) and E (19).
pub fn vgg_cfg(depth: usize) -> Option<Vec<VggCfgItem>> {
    use VggCfgItem::{Conv as C, Pool as M};
    let stages: &[&[usize]] = match depth {
        11 => &[&[64], &[128], &[256, 256], &[512, 512], &[512, 512]],
        13 => &[
            &[64, 64],
            &[128, 128],
            &[256, 256],
            &[512, 512],
            &[512, 512],
        ],
        16 => &[
            &[64, 64],
            &[128, 128],
            &[256, 256, 256],
            &[512, 512, 512],
            &[512, 512, 512],
        ],
        19 => &[
            &[64, 64],
            &[128, 128],
            &[256, 256, 256, 256],
            &[512, 512, 512, 512],
            &[512, 512, 512, 512],
        ],
        _ => return None,
    };
    let mut cfg = Vec::new();
    for stage in stages {
        cfg.extend(stage.iter().map(|&c| C(c)));
        cfg.push(M);
    }
    Some(cfg)
}

impl VggConfig {
    /// Checks depth, head/style combination, channels, classes and width.
    pub fn validate(&self) -> Result<(), ModelError> {
        validate_args(self.in_channels, self.num_classes, self.width)?;
        if vgg_cfg(self.depth).is_none() {
            return Err(ModelError::InvalidArgument(format!(
                "VGG depth must be 11, 13, 16 or 19, got {}",
                self.depth
            )));
        }
        if self.style == VggStyle::Torchvision && self.head == VggHead::Bow {
            return Err(ModelError::InvalidArgument(
                "torchvision-style VGG has no `bow` head".into(),
            ));
        }
        Ok(())
    }

    /// Builds the network (parameters are initialised lazily).
    ///
    /// # Panics
    /// If [`VggConfig::validate`] fails.
    pub fn init(&self, device: &Device) -> Vgg {
        self.validate().expect("invalid VggConfig");
        let repo = self.style == VggStyle::Repo;
        let eps = if repo { 1e-4 } else { 1e-5 };
        let conv_init = if repo {
            normal(0.01)
        } else {
            kaiming_normal_fan_out()
        };
        let linear_init: Initializer = normal(0.01);
        let bn = |c: usize| self.batch_norm.then(|| batch_norm(c, eps, device));

        let mut cfg = vgg_cfg(self.depth).expect("validated");
        if self.head == VggHead::Bow {
            cfg.pop(); // the last max-pool is replaced by the 'W' layer
        }
        let mut features = Vec::with_capacity(cfg.len() + 1);
        let mut in_ch = self.in_channels;
        for item in cfg {
            match item {
                VggCfgItem::Conv(c) => {
                    let out = scale_channels(c, self.width);
                    features.push(VggLayer::Conv(ConvBnRelu {
                        conv: conv2d(in_ch, out, 3, 1, 1, 1, true, conv_init.clone(), device),
                        bn: bn(out),
                    }));
                    in_ch = out;
                }
                VggCfgItem::Pool => features.push(VggLayer::Pool(
                    MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
                )),
            }
        }
        let hidden_width = scale_channels(4096, self.width);
        let (pool_size, mut d_in, n_hidden) = match self.head {
            VggHead::Orig => ([7, 7], in_ch * 49, 2),
            VggHead::Bow => {
                features.push(VggLayer::Conv(ConvBnRelu {
                    conv: conv2d(in_ch, hidden_width, 1, 1, 0, 1, true, conv_init, device),
                    bn: bn(hidden_width),
                }));
                ([1, 1], hidden_width, 1)
            }
        };
        let mut hidden = Vec::with_capacity(n_hidden);
        for _ in 0..n_hidden {
            hidden.push(VggHidden {
                linear: linear_zero_bias(d_in, hidden_width, linear_init.clone(), device),
                bn: (self.batch_norm && repo).then(|| batch_norm(hidden_width, eps, device)),
                dropout: (!repo).then(|| DropoutConfig::new(0.5).init()),
            });
            d_in = hidden_width;
        }
        Vgg {
            features,
            avgpool: AdaptiveAvgPool2dConfig::new(pool_size).init(),
            hidden,
            last: Some(linear_zero_bias(
                d_in,
                self.num_classes,
                linear_init,
                device,
            )),
        }
    }
}

/// A layer of the VGG feature extractor.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum VggLayer {
    /// Conv (+ BN) + ReLU (3x3, or the 1x1 'W' layer of the bow head).
    Conv(ConvBnRelu),
    /// 2x2 max-pool.
    Pool(MaxPool2d),
}

/// A hidden classifier layer: linear, optional BN1d, ReLU, optional dropout.
#[derive(Module, Debug)]
pub struct VggHidden {
    /// The linear layer.
    pub linear: Linear,
    /// BatchNorm1d (repo `_bn` variants).
    pub bn: Option<BatchNorm>,
    /// Dropout 0.5 (torchvision style).
    pub dropout: Option<Dropout>,
}

/// A VGG network (see the module documentation).
#[derive(Module, Debug)]
pub struct Vgg {
    /// The convolutional feature extractor.
    pub features: Vec<VggLayer>,
    /// Adaptive average pooling: 7x7 (`orig`) or 1x1 (`bow`).
    pub avgpool: AdaptiveAvgPool2d,
    /// The hidden classifier layers.
    pub hidden: Vec<VggHidden>,
    /// The output layer; `None` when a margin head takes the features instead.
    pub last: Option<Linear>,
}

impl Vgg {
    /// Forward pass: `[n, c_in, h, w]` to `[n, num_classes]` logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let last = self.last.as_ref().expect(
            "the network has no classifier (its features go to a margin head: use `features`)",
        );
        linear(last, self.penultimate(x))
    }

    /// The output of the last hidden layer `[n, 4096 * width]` (after its ReLU and dropout),
    /// which the output layer (or a margin head) takes.
    pub fn penultimate(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = x;
        for layer in &self.features {
            x = match layer {
                VggLayer::Conv(block) => block.forward(x),
                VggLayer::Pool(pool) => crate::max_pool::forward(pool, x),
            };
        }
        let x = self.avgpool.forward(x);
        let [n, c, h, w] = x.dims();
        let mut x: Tensor<2> = x.reshape([n, c * h * w]);
        for layer in &self.hidden {
            x = linear(&layer.linear, x);
            if let Some(bn) = &layer.bn {
                x = batch_norm_forward(bn, x);
            }
            x = relu(x);
            if let Some(dropout) = &layer.dropout {
                x = dropout.forward(x);
            }
        }
        x
    }

    pub(crate) fn trace(&self, t: &mut Tracer) -> Result<(), ModelError> {
        for layer in &self.features {
            match layer {
                VggLayer::Conv(block) => block.trace(t)?,
                VggLayer::Pool(pool) => t.max_pool(pool)?,
            }
        }
        t.adaptive(self.avgpool.output_size);
        t.flatten();
        for layer in &self.hidden {
            t.linear(&layer.linear)?;
        }
        t.classifier(self.last.as_ref())
    }
}
