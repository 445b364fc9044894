//! `small_cnn`: a small, fast CNN for demos and tests (not from the paper).
//!
//! Three blocks `conv3x3 (no bias) + BN + ReLU + max-pool 2x2` with 32, 64 and 128 channels
//! (times the width multiplier), global average pooling and a linear classifier. Works on any
//! input of at least 8x8 (MNIST 1x28x28, CIFAR 3x32x32). 94,762 trainable parameters for
//! 3 input channels and 10 classes.

use burn::config::Config;
use burn::module::Module;
use burn::nn::Linear;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::{Device, Tensor};

use crate::common::{
    ConvBnRelu, Tracer, batch_norm, conv2d, global_avg_pool, kaiming_normal_fan_out,
    linear_default, scale_channels,
};
use crate::error::ModelError;
use lmsoftmax_kernels::autocast::linear;

/// Output channels of the three convolutions at width 1.
pub const SMALL_CNN_CHANNELS: [usize; 3] = [32, 64, 128];

/// Configuration of [`SmallCnn`].
#[derive(Config, Debug)]
pub struct SmallCnnConfig {
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Number of classes.
    #[config(default = 10)]
    pub num_classes: usize,
    /// Channel multiplier: every width becomes `max(1, round(c * width))`.
    #[config(default = 1.0)]
    pub width: f32,
    /// BatchNorm after every conv (`small_cnn`); without it (`small_cnn_nobn`) a shard of a batch
    /// gives exactly the rows the whole batch gives, which the data-parallel tests rely on.
    #[config(default = true)]
    pub batch_norm: bool,
}

impl SmallCnnConfig {
    /// Builds the network: convs Kaiming-normal (fan-out, ReLU), BN gamma 1 beta 0, linear
    /// with PyTorch's default init.
    ///
    /// # Panics
    /// On zero channels/classes or a non-positive width (use [`crate::build`] to validate).
    pub fn init(&self, device: &Device) -> SmallCnn {
        crate::error::validate_args(self.in_channels, self.num_classes, self.width)
            .expect("invalid SmallCnnConfig");
        let mut in_ch = self.in_channels;
        let mut blocks = Vec::with_capacity(3);
        for c in SMALL_CNN_CHANNELS {
            let out_ch = scale_channels(c, self.width);
            blocks.push(ConvBnRelu {
                conv: conv2d(
                    in_ch,
                    out_ch,
                    3,
                    1,
                    1,
                    1,
                    false,
                    kaiming_normal_fan_out(),
                    device,
                ),
                bn: self.batch_norm.then(|| batch_norm(out_ch, 1e-5, device)),
            });
            in_ch = out_ch;
        }
        SmallCnn {
            blocks,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            classifier: Some(linear_default(in_ch, self.num_classes, device)),
        }
    }
}

/// The small demo CNN (see the module documentation).
#[derive(Module, Debug)]
pub struct SmallCnn {
    /// The three conv + BN + ReLU blocks, each followed by `pool`.
    pub blocks: Vec<ConvBnRelu>,
    /// The 2x2 max-pool after every block.
    pub pool: MaxPool2d,
    /// The linear classifier; `None` when a margin head takes the features instead.
    pub classifier: Option<Linear>,
}

impl SmallCnn {
    /// Forward pass: `[n, c_in, h, w]` to `[n, num_classes]` logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let classifier = self.classifier.as_ref().expect(
            "the network has no classifier (its features go to a margin head: use `features`)",
        );
        linear(classifier, self.features(x))
    }

    /// The pooled features `[n, 64 * width]` the classifier (or a margin head) takes.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = x;
        for block in &self.blocks {
            x = crate::max_pool::forward(&self.pool, block.forward(x));
        }
        global_avg_pool(x)
    }

    pub(crate) fn trace(&self, t: &mut Tracer) -> Result<(), ModelError> {
        for block in &self.blocks {
            block.trace(t)?;
            t.max_pool(&self.pool)?;
        }
        t.adaptive([1, 1]);
        t.flatten();
        t.classifier(self.classifier.as_ref())
    }
}
