//! `layer13`: the 13-layer CIFAR network of the reference code (`models/layer13.py`),
//! PROTOCOL section 4.1.
//!
//! Nine 3x3 convolutions without bias, each followed by BatchNorm (eps 1e-5, momentum 0.1) and
//! ReLU; 2x2 max-pooling after convolutions 3 and 6; convolution 7 has padding 0; global average
//! pooling; a linear classifier `128 -> C`. 4,432,522 trainable parameters at C = 10.
//!
//! Init as the official `_initialize_weights` (and `bench/ref_layer13.py`): convs
//! `kaiming_normal_(mode="fan_out", nonlinearity="relu")`, i.e. `N(0, 2 / (out * 9))`; BN weight
//! 1, bias 0; the classifier `normal_(0, 0.01)` with bias 0 (not `nn.Linear`'s default).

use burn::config::Config;
use burn::module::Module;
use burn::nn::Linear;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::{Device, Tensor};

use crate::common::{
    ConvBnRelu, Tracer, batch_norm, conv2d, global_avg_pool, kaiming_normal_fan_out,
    linear_zero_bias, normal, scale_channels,
};
use crate::error::ModelError;
use lmsoftmax_kernels::autocast::linear;

/// Output channels of the nine convolutions at width 1.
pub const LAYER13_CHANNELS: [usize; 9] = [128, 128, 128, 256, 256, 256, 512, 256, 128];

/// Padding of the nine convolutions (convolution 7 is unpadded).
pub const LAYER13_PADDING: [usize; 9] = [1, 1, 1, 1, 1, 1, 0, 1, 1];

/// Configuration of [`Layer13`].
#[derive(Config, Debug)]
pub struct Layer13Config {
    /// Input channels (3 for CIFAR, 1 for MNIST).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Number of classes.
    #[config(default = 10)]
    pub num_classes: usize,
    /// Channel multiplier for fast runs: every conv width becomes `max(1, round(c * width))`.
    #[config(default = 1.0)]
    pub width: f32,
}

impl Layer13Config {
    /// Output channels of the nine convolutions after the width multiplier.
    pub fn channels(&self) -> [usize; 9] {
        LAYER13_CHANNELS.map(|c| scale_channels(c, self.width))
    }

    /// Builds the network with the reference initialisation: convs Kaiming-normal (fan-out,
    /// ReLU) `N(0, 2 / (out * 9))`, BN gamma 1 beta 0, linear `N(0, 0.01^2)` with zero bias.
    ///
    /// Parameters are initialised lazily (on first use). Call [`crate::build`] for argument
    /// validation; this panics on zero channels/classes or a non-positive width.
    pub fn init(&self, device: &Device) -> Layer13 {
        crate::error::validate_args(self.in_channels, self.num_classes, self.width)
            .expect("invalid Layer13Config");
        let channels = self.channels();
        let mut in_ch = self.in_channels;
        let mut blocks = Vec::with_capacity(9);
        for (out_ch, pad) in channels.into_iter().zip(LAYER13_PADDING) {
            blocks.push(ConvBnRelu {
                conv: conv2d(
                    in_ch,
                    out_ch,
                    3,
                    1,
                    pad,
                    1,
                    false,
                    kaiming_normal_fan_out(),
                    device,
                ),
                bn: Some(batch_norm(out_ch, 1e-5, device)),
            });
            in_ch = out_ch;
        }
        Layer13 {
            blocks,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            classifier: Some(linear_zero_bias(
                in_ch,
                self.num_classes,
                normal(0.01),
                device,
            )),
        }
    }
}

/// The `layer13` network (see the module documentation).
#[derive(Module, Debug)]
pub struct Layer13 {
    /// The nine conv + BN + ReLU blocks (PyTorch `features.{0,3,6,10,13,16,20,23,26}` convs and
    /// `features.{1,4,7,11,14,17,21,24,27}` BNs).
    pub blocks: Vec<ConvBnRelu>,
    /// The 2x2 max-pool used after blocks 3 and 6.
    pub pool: MaxPool2d,
    /// The final linear layer (PyTorch `classifier`); `None` when a margin head takes the
    /// features instead ([`crate::Network::without_classifier`]).
    pub classifier: Option<Linear>,
}

impl Layer13 {
    /// Forward pass: `[n, c_in, h, w]` images to `[n, num_classes]` logits.
    ///
    /// # Panics
    /// If the input is too small (height/width below 12) or has the wrong channel count; use
    /// [`crate::Network::macs`] or [`crate::Network::try_forward`] to check first.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let classifier = self.classifier.as_ref().expect(
            "the network has no classifier (its features go to a margin head: use `features`)",
        );
        linear(classifier, self.features(x))
    }

    /// The pooled features `[n, 128 * width]` the classifier (or a margin head) takes.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = x;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if i == 2 || i == 5 {
                x = crate::max_pool::forward(&self.pool, x);
            }
        }
        global_avg_pool(x)
    }

    /// Traces shapes and multiply-adds of the forward pass.
    pub(crate) fn trace(&self, t: &mut Tracer) -> Result<(), ModelError> {
        for (i, block) in self.blocks.iter().enumerate() {
            block.trace(t)?;
            if i == 2 || i == 5 {
                t.max_pool(&self.pool)?;
            }
        }
        t.adaptive([1, 1]);
        t.flatten();
        t.classifier(self.classifier.as_ref())
    }
}
