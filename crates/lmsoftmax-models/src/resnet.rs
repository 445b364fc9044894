//! torchvision ResNet / ResNeXt with Bottleneck blocks (v1.5: the stride sits on the 3x3
//! conv): `resnet50` (25,557,032 parameters) and `resnext50_32x4d` (25,028,904).
//!
//! Stem `conv7x7/2 (no bias) + BN + ReLU + max-pool 3x3/2 (pad 1)`; four stages of
//! bottlenecks (`1x1 -> 3x3 (groups) -> 1x1 (x4)`, BN eps 1e-5 after each, projection shortcut
//! `1x1 conv + BN` when the shape changes); global average pooling; `Linear(2048, C)`.
//! Init as torchvision's `ResNet.__init__` (`zero_init_residual=False`): every conv
//! `kaiming_normal_(mode="fan_out", nonlinearity="relu")`, i.e. `N(0, 2 / (out * kh * kw))` with
//! PyTorch's fan-out, which is **not** divided by the groups (a ResNeXt 32-group 3x3 conv
//! `[out, out / 32, 3, 3]` has std `sqrt(2 / (9 out))`; Burn's own grouped init would be
//! `sqrt(32)` times wider, see [`crate::torch_fans`]); BN weight 1, bias 0; the `fc` layer keeps
//! `nn.Linear`'s init, weight and bias `U(-1/sqrt(in), 1/sqrt(in))`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::common::{
    Tracer, batch_norm, batch_norm_forward, conv2d, global_avg_pool, kaiming_normal_fan_out,
    linear_default, scale_channels,
};
use crate::error::{ModelError, validate_args};
use lmsoftmax_kernels::autocast::linear;

/// Bottleneck expansion factor.
pub const EXPANSION: usize = 4;

/// Configuration of [`ResNet`].
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Bottleneck blocks per stage (`[3, 4, 6, 3]` for the 50-layer nets).
    #[config(default = "[3, 4, 6, 3]")]
    pub blocks: [usize; 4],
    /// Groups of the 3x3 convs (32 for ResNeXt-50 32x4d).
    #[config(default = 1)]
    pub groups: usize,
    /// Channels per group at the first stage (`base_width`: 64 for ResNet, 4 for 32x4d).
    #[config(default = 64)]
    pub width_per_group: usize,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Number of classes.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Channel multiplier applied to the stem and every stage's `planes`.
    #[config(default = 1.0)]
    pub width: f32,
}

impl ResNetConfig {
    /// Checks the arguments.
    pub fn validate(&self) -> Result<(), ModelError> {
        validate_args(self.in_channels, self.num_classes, self.width)?;
        if self.groups == 0 || self.width_per_group == 0 || self.blocks.contains(&0) {
            return Err(ModelError::InvalidArgument(
                "ResNet groups, width_per_group and block counts must be >= 1".into(),
            ));
        }
        Ok(())
    }

    /// Builds the network (parameters are initialised lazily).
    ///
    /// # Panics
    /// If [`ResNetConfig::validate`] fails.
    pub fn init(&self, device: &Device) -> ResNet {
        self.validate().expect("invalid ResNetConfig");
        let init = kaiming_normal_fan_out;
        let stem = scale_channels(64, self.width);
        let mut in_planes = stem;
        let mut stages: [Vec<Bottleneck>; 4] = Default::default();
        for (i, stage) in stages.iter_mut().enumerate() {
            let planes = scale_channels(64 << i, self.width);
            let stride = if i == 0 { 1 } else { 2 };
            // torchvision: width = int(planes * base_width / 64) * groups
            let width = (planes * self.width_per_group / 64).max(1) * self.groups;
            let out = planes * EXPANSION;
            for b in 0..self.blocks[i] {
                let s = if b == 0 { stride } else { 1 };
                let downsample = (s != 1 || in_planes != out).then(|| Downsample {
                    conv: conv2d(in_planes, out, 1, s, 0, 1, false, init(), device),
                    bn: batch_norm(out, 1e-5, device),
                });
                stage.push(Bottleneck {
                    conv1: conv2d(in_planes, width, 1, 1, 0, 1, false, init(), device),
                    bn1: batch_norm(width, 1e-5, device),
                    conv2: conv2d(width, width, 3, s, 1, self.groups, false, init(), device),
                    bn2: batch_norm(width, 1e-5, device),
                    conv3: conv2d(width, out, 1, 1, 0, 1, false, init(), device),
                    bn3: batch_norm(out, 1e-5, device),
                    downsample,
                });
                in_planes = out;
            }
        }
        let [layer1, layer2, layer3, layer4] = stages;
        ResNet {
            conv1: conv2d(self.in_channels, stem, 7, 2, 3, 1, false, init(), device),
            bn1: batch_norm(stem, 1e-5, device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
            fc: Some(linear_default(in_planes, self.num_classes, device)),
        }
    }
}

/// Projection shortcut: `1x1 conv (stride) + BN`.
#[derive(Module, Debug)]
pub struct Downsample {
    /// The 1x1 convolution.
    pub conv: Conv2d,
    /// Its BatchNorm.
    pub bn: BatchNorm,
}

/// A bottleneck residual block.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1x1 reduction.
    pub conv1: Conv2d,
    /// BN after `conv1`.
    pub bn1: BatchNorm,
    /// 3x3 (grouped, strided) conv.
    pub conv2: Conv2d,
    /// BN after `conv2`.
    pub bn2: BatchNorm,
    /// 1x1 expansion.
    pub conv3: Conv2d,
    /// BN after `conv3`.
    pub bn3: BatchNorm,
    /// Projection shortcut, when the shape changes.
    pub downsample: Option<Downsample>,
}

impl Bottleneck {
    /// Forward pass of the block.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => batch_norm_forward(&d.bn, crate::conv::forward(&d.conv, x.clone())),
            None => x.clone(),
        };
        let out = relu(batch_norm_forward(
            &self.bn1,
            crate::conv::forward(&self.conv1, x),
        ));
        let out = relu(batch_norm_forward(
            &self.bn2,
            crate::conv::forward(&self.conv2, out),
        ));
        let out = batch_norm_forward(&self.bn3, crate::conv::forward(&self.conv3, out));
        relu(out + identity)
    }

    fn trace(&self, t: &mut Tracer) -> Result<(), ModelError> {
        if let Some(d) = &self.downsample {
            let mut branch = t.clone();
            branch.conv(&d.conv)?;
            t.macs = branch.macs;
        }
        t.conv(&self.conv1)?;
        t.conv(&self.conv2)?;
        t.conv(&self.conv3)
    }
}

/// A torchvision-style bottleneck ResNet / ResNeXt.
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem 7x7 stride-2 conv.
    pub conv1: Conv2d,
    /// Stem BN.
    pub bn1: BatchNorm,
    /// Stem 3x3 stride-2 max-pool.
    pub maxpool: MaxPool2d,
    /// Stage 1 (stride 1).
    pub layer1: Vec<Bottleneck>,
    /// Stage 2 (stride 2).
    pub layer2: Vec<Bottleneck>,
    /// Stage 3 (stride 2).
    pub layer3: Vec<Bottleneck>,
    /// Stage 4 (stride 2).
    pub layer4: Vec<Bottleneck>,
    /// Classifier; `None` when a margin head takes the features instead.
    pub fc: Option<Linear>,
}

impl ResNet {
    fn stages(&self) -> [&Vec<Bottleneck>; 4] {
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
    }

    /// Forward pass: `[n, c_in, h, w]` to `[n, num_classes]` logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let fc = self.fc.as_ref().expect(
            "the network has no classifier (its features go to a margin head: use `features`)",
        );
        linear(fc, self.features(x))
    }

    /// The pooled features `[n, 2048 * width]` the classifier (or a margin head) takes.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = self.maxpool.forward(relu(batch_norm_forward(
            &self.bn1,
            crate::conv::forward(&self.conv1, x),
        )));
        for stage in self.stages() {
            for block in stage {
                x = block.forward(x);
            }
        }
        global_avg_pool(x)
    }

    pub(crate) fn trace(&self, t: &mut Tracer) -> Result<(), ModelError> {
        t.conv(&self.conv1)?;
        t.max_pool(&self.maxpool)?;
        for stage in self.stages() {
            for block in stage {
                block.trace(t)?;
            }
        }
        t.adaptive([1, 1]);
        t.flatten();
        t.classifier(self.fc.as_ref())
    }
}
