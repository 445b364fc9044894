//! Building blocks shared by the network families: conv + BN + ReLU, initialisers, global
//! pooling, the trainable-parameter counter and the analytic shape/MAC tracer.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, MaxPool2d};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::error::ModelError;

/// Scales a channel count by a width multiplier: `max(1, round(channels * width))`.
pub fn scale_channels(channels: usize, width: f32) -> usize {
    ((channels as f64 * width as f64).round() as usize).max(1)
}

/// Kaiming-normal initialiser with fan-out mode and ReLU gain: `N(0, 2 / (out * k * k))`
/// (PyTorch `kaiming_normal_(mode="fan_out", nonlinearity="relu")`).
///
/// Burn's own [`Conv2dConfig`] hands this initialiser a fan-out of `out / groups * k * k`;
/// PyTorch's is `out * k * k` whatever the groups (see [`torch_fans`]). The networks of this
/// crate build their convolutions through a helper that resolves the fan with PyTorch's rule, so
/// their grouped convolutions (ResNeXt) start as torchvision's; with a plain [`Conv2dConfig`]
/// and `groups > 1` this initialiser is `sqrt(groups)` times wider than PyTorch's.
pub fn kaiming_normal_fan_out() -> Initializer {
    Initializer::KaimingNormal {
        gain: 2f64.sqrt(),
        fan_out_only: true,
    }
}

/// Kaiming-normal initialiser with fan-in mode and ReLU gain: `N(0, 2 / (in * k * k))`
/// (PyTorch `kaiming_normal_` with its defaults, used by torchvision's DenseNet).
pub fn kaiming_normal_fan_in() -> Initializer {
    Initializer::KaimingNormal {
        gain: 2f64.sqrt(),
        fan_out_only: false,
    }
}

/// Normal initialiser `N(0, std^2)`.
pub fn normal(std: f64) -> Initializer {
    Initializer::Normal { mean: 0.0, std }
}

/// PyTorch's `(fan_in, fan_out)` of a weight of `shape` (`torch.nn.init._calculate_fan_in_and_fan_out`):
/// `fan_in = shape[1] * receptive field`, `fan_out = shape[0] * receptive field`, the receptive
/// field being the product of `shape[2..]`. For a convolution weight `[out, in / groups, kh, kw]`
/// that is `fan_in = in / groups * kh * kw` and `fan_out = out * kh * kw`: the fan-out is *not*
/// divided by the groups (Burn's [`Conv2dConfig`] divides it).
///
/// # Panics
/// If `shape` has fewer than two dimensions (PyTorch raises there too).
///
/// # Example
/// ```
/// use lmsoftmax_models::torch_fans;
/// // ResNeXt-50 32x4d's first 3x3 grouped convolution: 128 -> 128 channels, 32 groups.
/// assert_eq!(torch_fans(&[128, 4, 3, 3]), (36, 1152));
/// ```
pub fn torch_fans(shape: &[usize]) -> (usize, usize) {
    assert!(
        shape.len() >= 2,
        "fan in and fan out need a tensor of at least 2 dimensions, got {shape:?}"
    );
    let receptive: usize = shape[2..].iter().product();
    (shape[1] * receptive, shape[0] * receptive)
}

/// `init` with its Kaiming fan resolved by PyTorch's rule ([`torch_fans`]) for a weight of
/// `shape`, as an explicit normal or uniform initialiser; other initialisers are returned as they
/// are.
fn with_torch_fans(init: Initializer, shape: &[usize]) -> Initializer {
    let (fan_in, fan_out) = torch_fans(shape);
    let fan = |fan_out_only: bool| if fan_out_only { fan_out } else { fan_in } as f64;
    match init {
        Initializer::KaimingNormal { gain, fan_out_only } => Initializer::Normal {
            mean: 0.0,
            std: gain / fan(fan_out_only).sqrt(),
        },
        Initializer::KaimingUniform { gain, fan_out_only } => {
            let bound = 3f64.sqrt() * gain / fan(fan_out_only).sqrt();
            Initializer::Uniform {
                min: -bound,
                max: bound,
            }
        }
        other => other,
    }
}

/// A square 2-D convolution with symmetric padding and the given weight initialiser, whose
/// Kaiming fan follows PyTorch ([`torch_fans`]: the fan-out of a grouped convolution is
/// `out * k * k`, not Burn's `out / groups * k * k`); when `bias` is set, the bias starts at zero
/// (as all the reference models do after their init loops).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d(
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    bias: bool,
    init: Initializer,
    device: &Device,
) -> Conv2d {
    let init = with_torch_fans(init, &[out_ch, in_ch / groups, kernel, kernel]);
    let mut conv = Conv2dConfig::new([in_ch, out_ch], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_groups(groups)
        .with_bias(bias)
        .with_initializer(init)
        .init(device);
    if bias {
        conv.bias = Some(Initializer::Zeros.init([out_ch], device));
    }
    conv
}

/// A linear layer with the given weight initialiser and a zero bias.
pub(crate) fn linear_zero_bias(
    d_in: usize,
    d_out: usize,
    init: Initializer,
    device: &Device,
) -> Linear {
    let mut lin = LinearConfig::new(d_in, d_out)
        .with_initializer(init)
        .init(device);
    lin.bias = Some(Initializer::Zeros.init([d_out], device));
    lin
}

/// A linear layer with PyTorch's default `nn.Linear` init: weight and bias
/// `U(-1/sqrt(d_in), 1/sqrt(d_in))` (Burn's default initialiser is the same).
pub(crate) fn linear_default(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).init(device)
}

/// BatchNorm (gamma 1, beta 0, running mean 0 / var 1) with momentum 0.1 and the given epsilon.
pub(crate) fn batch_norm(features: usize, epsilon: f64, device: &Device) -> BatchNorm {
    BatchNormConfig::new(features)
        .with_epsilon(epsilon)
        .with_momentum(0.1)
        .init(device)
}

/// BatchNorm forward with PyTorch's running-variance rule, through the fused
/// [`crate::batch_norm`] operations on flex.
///
/// Burn's [`BatchNorm`] updates `running_var` with the *biased* batch variance, PyTorch's
/// `BatchNorm{1,2}d` with the *unbiased* one (`n / (n - 1)` times larger, `n` = values per
/// channel). In training mode (autodiff input and the layer's training flag on) this normalises
/// with the batch statistics, as Burn does, and sets the running statistics to PyTorch's
/// `(1 - m) * old + m * batch_mean` and `(1 - m) * old + m * unbiased_var`, so running
/// statistics, and eval-mode outputs after training, match the reference code. Otherwise it
/// normalises with the running statistics, as `bn.forward(x)`.
///
/// # Panics
/// If `x` is not `[n, bn's features, ...]` (the check of [`BatchNorm::forward`]).
pub fn batch_norm_forward<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let [num_features] = bn.gamma.shape().dims();
    burn::tensor::assert_shape!(x, [_, num_features, ..]);
    let device = x.device();
    let training = device.is_autodiff() && bn.training.is_enabled();
    let dims = x.dims();
    let n: usize = dims
        .iter()
        .enumerate()
        .filter(|(axis, _)| *axis != 1)
        .map(|(_, d)| *d)
        .product();
    if !training {
        return crate::batch_norm::inference(
            x,
            bn.gamma.val(),
            bn.beta.val(),
            bn.running_mean.value().to_device(&device),
            bn.running_var.value().to_device(&device),
            bn.epsilon,
        );
    }
    if n < 2 {
        return bn.forward(x);
    }
    let (y, mean, var) = crate::batch_norm::train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    let m = bn.momentum;
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    let running_mean = running_mean.mul_scalar(1.0 - m) + mean.mul_scalar(m);
    let unbiased = n as f64 / (n - 1) as f64;
    let running_var = running_var.mul_scalar(1.0 - m) + var.mul_scalar(m * unbiased);
    bn.running_mean.update(running_mean.detach());
    bn.running_var.update(running_var.detach());
    y
}

/// Convolution, optional BatchNorm, ReLU.
#[derive(Module, Debug)]
pub struct ConvBnRelu {
    /// The convolution.
    pub conv: Conv2d,
    /// BatchNorm after the convolution (absent in the plain VGG variants).
    pub bn: Option<BatchNorm>,
}

impl ConvBnRelu {
    /// Applies conv, BN (if any) and ReLU. Input `[n, c_in, h, w]`, output `[n, c_out, h', w']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = crate::conv::forward(&self.conv, x);
        let x = match &self.bn {
            Some(bn) => batch_norm_forward(bn, x),
            None => x,
        };
        relu(x)
    }

    /// Traces the block's shape and multiply-adds.
    pub(crate) fn trace(&self, t: &mut Tracer) -> Result<(), ModelError> {
        t.conv(&self.conv)
    }
}

/// Global average pooling `[n, c, h, w] -> [n, c]`.
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [n, c, _, _] = x.dims();
    x.mean_dim(3).mean_dim(2).reshape([n, c])
}

/// Whether a float tensor named `field` in the module tree is one of BatchNorm's running
/// statistics (`running_mean`, `running_var`): a buffer each replica or rank updates for itself,
/// not a trained parameter.
///
/// ```
/// assert!(lmsoftmax_models::is_running_statistic("running_var"));
/// assert!(!lmsoftmax_models::is_running_statistic("gamma"));
/// ```
pub fn is_running_statistic(field: &str) -> bool {
    matches!(field, "running_mean" | "running_var")
}

/// Counts trainable parameters: every float tensor in the module tree except BatchNorm's
/// running statistics (fields named `running_mean` / `running_var`, which Burn's
/// [`Module::num_params`] includes but PyTorch counts as buffers). Parameters are not
/// initialised by the count (lazy shapes are used), so counting a 138M-parameter VGG is cheap.
pub fn count_trainable_params<M: Module>(module: &M) -> usize {
    struct Counter {
        path: Vec<String>,
        count: usize,
    }
    impl ModuleVisitor for Counter {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if !self.path.last().is_some_and(|f| is_running_statistic(f)) {
                self.count += param.lazy_shape().num_elements();
            }
        }
    }
    let mut counter = Counter {
        path: Vec::new(),
        count: 0,
    };
    module.visit(&mut counter);
    counter.count
}

fn explicit_padding(padding: &PaddingConfig2d, arch: &str) -> Result<[usize; 4], ModelError> {
    match padding {
        PaddingConfig2d::Valid => Ok([0; 4]),
        PaddingConfig2d::Explicit(top, left, bottom, right) => Ok([*top, *left, *bottom, *right]),
        PaddingConfig2d::Same => Err(ModelError::InvalidArgument(format!(
            "`{arch}`: the shape tracer does not support `Same` padding"
        ))),
    }
}

/// Analytic shape and multiply-add tracer. Each network mirrors its `forward` with calls on a
/// tracer, reading kernel sizes, strides, paddings, groups and channel counts from the built
/// layers themselves, so the reported MACs always match the real module.
///
/// Counted: convolutions `out_h * out_w * out_c * in_c * kh * kw / groups` and linear layers
/// `in * out`. Not counted: BN, ReLU, pooling, additions, concatenations, biases.
#[derive(Debug, Clone)]
pub(crate) struct Tracer {
    arch: String,
    input: [usize; 3],
    /// Current channel count.
    pub(crate) c: usize,
    /// Current height.
    pub(crate) h: usize,
    /// Current width.
    pub(crate) w: usize,
    /// Multiply-adds so far.
    pub(crate) macs: u64,
}

impl Tracer {
    /// A tracer at the input `[c, h, w]`.
    pub(crate) fn new(arch: &str, input: [usize; 3]) -> Self {
        Self {
            arch: arch.to_string(),
            input,
            c: input[0],
            h: input[1],
            w: input[2],
            macs: 0,
        }
    }

    fn too_small(&self, detail: String) -> ModelError {
        ModelError::InputTooSmall {
            arch: self.arch.clone(),
            input: self.input,
            detail,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn window_out(
        &self,
        what: &str,
        size: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
        dilation: usize,
        ceil: bool,
    ) -> Result<usize, ModelError> {
        let span = dilation * (kernel - 1) + 1;
        let padded = size + pad;
        if padded < span {
            return Err(self.too_small(format!(
                "{what} needs a map of at least {span} (with padding {pad}), got {size}"
            )));
        }
        let out = if ceil {
            let mut o = (padded - span).div_ceil(stride) + 1;
            // PyTorch rule: the last window must start inside the input or left padding.
            if (o - 1) * stride >= size + pad / 2 {
                o -= 1;
            }
            o
        } else {
            (padded - span) / stride + 1
        };
        Ok(out)
    }

    /// A convolution layer.
    pub(crate) fn conv(&mut self, conv: &Conv2d) -> Result<(), ModelError> {
        let [out_c, in_per_group, kh, kw] = conv.weight.lazy_shape().dims::<4>();
        let in_c = in_per_group * conv.groups;
        if in_c != self.c {
            return Err(ModelError::ChannelMismatch {
                arch: self.arch.clone(),
                expected: in_c,
                got: self.c,
            });
        }
        let [top, left, bottom, right] = explicit_padding(&conv.padding, &self.arch)?;
        let what = format!("conv {kh}x{kw} ({in_c}->{out_c})");
        let h = self.window_out(
            &what,
            self.h,
            kh,
            conv.stride[0],
            top + bottom,
            conv.dilation[0],
            false,
        )?;
        let w = self.window_out(
            &what,
            self.w,
            kw,
            conv.stride[1],
            left + right,
            conv.dilation[1],
            false,
        )?;
        self.macs += (h * w * out_c * in_per_group * kh * kw) as u64;
        self.c = out_c;
        self.h = h;
        self.w = w;
        Ok(())
    }

    fn pool(
        &mut self,
        kind: &str,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: &PaddingConfig2d,
        dilation: [usize; 2],
        ceil: bool,
    ) -> Result<(), ModelError> {
        let [top, left, bottom, right] = explicit_padding(padding, &self.arch)?;
        let what = format!("{kind} {}x{}", kernel[0], kernel[1]);
        let h = self.window_out(
            &what,
            self.h,
            kernel[0],
            stride[0],
            top + bottom,
            dilation[0],
            ceil,
        )?;
        let w = self.window_out(
            &what,
            self.w,
            kernel[1],
            stride[1],
            left + right,
            dilation[1],
            ceil,
        )?;
        self.h = h;
        self.w = w;
        Ok(())
    }

    /// A max-pooling layer.
    pub(crate) fn max_pool(&mut self, pool: &MaxPool2d) -> Result<(), ModelError> {
        self.pool(
            "max-pool",
            pool.kernel_size,
            pool.stride,
            &pool.padding,
            pool.dilation,
            pool.ceil_mode,
        )
    }

    /// An average-pooling layer.
    pub(crate) fn avg_pool(&mut self, pool: &AvgPool2d) -> Result<(), ModelError> {
        self.pool(
            "avg-pool",
            pool.kernel_size,
            pool.stride,
            &pool.padding,
            [1, 1],
            pool.ceil_mode,
        )
    }

    /// Adaptive average pooling to a fixed output size.
    pub(crate) fn adaptive(&mut self, out: [usize; 2]) {
        self.h = out[0];
        self.w = out[1];
    }

    /// Flattens `[c, h, w]` to a vector of `c * h * w` features.
    pub(crate) fn flatten(&mut self) {
        self.c *= self.h * self.w;
        self.h = 1;
        self.w = 1;
    }

    /// Sets the channel count (after a concatenation).
    pub(crate) fn set_channels(&mut self, c: usize) {
        self.c = c;
    }

    /// The network's classifier, if it has one (a network whose features go to a margin head
    /// ends at its features).
    pub(crate) fn classifier(&mut self, lin: Option<&Linear>) -> Result<(), ModelError> {
        lin.map_or(Ok(()), |l| self.linear(l))
    }

    /// A linear layer on the current (flattened) features.
    pub(crate) fn linear(&mut self, lin: &Linear) -> Result<(), ModelError> {
        let [d_in, d_out] = lin.weight.lazy_shape().dims::<2>();
        if d_in != self.c * self.h * self.w {
            return Err(ModelError::ChannelMismatch {
                arch: self.arch.clone(),
                expected: d_in,
                got: self.c * self.h * self.w,
            });
        }
        self.macs += (d_in * d_out) as u64;
        self.c = d_out;
        self.h = 1;
        self.w = 1;
        Ok(())
    }
}
