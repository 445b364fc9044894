//! The network: a one-hidden-layer MLP that owns its loss and implements burn-train's
//! [`TrainStep`] and [`InferenceStep`].

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig, Relu};
use burn::tensor::{Device, Tensor};
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};
use lmsoftmax_loss::{ConfigError, LargeMarginInSoftmaxLoss, LargeMarginInSoftmaxLossConfig};

use crate::data::BlobBatch;

/// Configuration to create an [Mlp](Mlp) using the [init function](MlpConfig::init).
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Input features.
    pub inputs: usize,
    /// Classes, the width of the output.
    pub classes: usize,
    /// Hidden units (default 32).
    #[config(default = 32)]
    pub hidden: usize,
    /// The loss (default: the paper's `reg_lambda = 0.3`).
    #[config(default = "LargeMarginInSoftmaxLossConfig::new()")]
    pub loss: LargeMarginInSoftmaxLossConfig,
}

impl MlpConfig {
    /// Builds the network with Burn's default initialisation, and validates the loss.
    ///
    /// # Errors
    /// The loss configuration's [`ConfigError`].
    pub fn init(&self, device: &Device) -> Result<Mlp, ConfigError> {
        self.init_with(device, None)
    }

    /// As [`init`](Self::init), every weight and bias set by `initializer` when given.
    fn init_with(
        &self,
        device: &Device,
        initializer: Option<Initializer>,
    ) -> Result<Mlp, ConfigError> {
        let linear = |d_in, d_out| {
            let config = LinearConfig::new(d_in, d_out);
            match &initializer {
                Some(init) => config.with_initializer(init.clone()).init(device),
                None => config.init(device),
            }
        };
        Ok(Mlp {
            hidden: linear(self.inputs, self.hidden),
            activation: Relu::new(),
            output: linear(self.hidden, self.classes),
            loss: self.loss.init(device)?,
        })
    }
}

/// `Linear -> ReLU -> Linear`, with the loss the learner trains it on.
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Linear,
    activation: Relu,
    output: Linear,
    /// A module with no parameters: held here so that it is built (and validated) once.
    loss: LargeMarginInSoftmaxLoss,
}

impl Mlp {
    /// The class logits.
    ///
    /// # Shapes
    /// - features: `[batch, inputs]`
    /// - output: `[batch, classes]`
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let x = self.activation.forward(self.hidden.forward(features));
        self.output.forward(x)
    }

    /// The loss the learner trains it on.
    pub fn loss(&self) -> &LargeMarginInSoftmaxLoss {
        &self.loss
    }

    /// Logits, loss and targets of one batch, in the form burn-train's loss and accuracy
    /// metrics read; the training and the validation step both call it.
    pub fn classify(&self, batch: BlobBatch) -> ClassificationOutput {
        let logits = self.forward(batch.features);
        // The one line that uses lmsoftmax-loss:
        let loss = self.loss.forward(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }
}

impl TrainStep for Mlp {
    type Input = BlobBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: BlobBatch) -> TrainOutput<ClassificationOutput> {
        let item = self.classify(batch);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl InferenceStep for Mlp {
    type Input = BlobBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: BlobBatch) -> ClassificationOutput {
        self.classify(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{BlobBatcher, CLASSES, FEATURES, blobs};
    use burn::data::dataloader::batcher::Batcher;

    #[test]
    fn logits_have_one_column_per_class() {
        let device = Device::flex();
        let model = MlpConfig::new(FEATURES, CLASSES).init(&device).unwrap();
        let batch = BlobBatcher.batch(blobs(6, 0), &device);
        assert_eq!(model.forward(batch.features).dims(), [6, CLASSES]);
    }

    #[test]
    fn zero_network_loss_is_log_of_the_class_count() {
        // All logits 0: the cross-entropy is ln C, and the non-target softmax is exactly
        // uniform, so the regulariser adds nothing whatever lambda is.
        let device = Device::flex().autodiff();
        let model = MlpConfig::new(FEATURES, CLASSES)
            .init_with(&device, Some(Initializer::Zeros))
            .unwrap();
        let item = model.classify(BlobBatcher.batch(blobs(10, 0), &device));
        let loss: f32 = item.loss.into_scalar();
        let expected = (CLASSES as f32).ln();
        assert!(
            (loss - expected).abs() < 1e-6,
            "{loss} vs ln 5 = {expected}"
        );
    }

    #[test]
    fn train_step_gives_gradients_for_every_parameter() {
        let device = Device::flex().autodiff();
        let model = MlpConfig::new(FEATURES, CLASSES).init(&device).unwrap();
        let out = TrainStep::step(&model, BlobBatcher.batch(blobs(10, 0), &device));
        // Two weights and two biases.
        assert_eq!(out.grads.len(), 4);
    }

    #[test]
    fn a_bad_loss_config_is_an_error_not_a_panic() {
        let err = MlpConfig::new(FEATURES, CLASSES)
            .with_loss(LargeMarginInSoftmaxLossConfig::new().with_reg_lambda(-1.0))
            .init(&Device::flex())
            .unwrap_err();
        assert!(err.to_string().contains("reg_lambda"), "{err}");
    }
}
