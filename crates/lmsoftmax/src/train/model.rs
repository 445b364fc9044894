//! What a run trains: a network and, for a margin-head loss (`cosface`, `arcface`, ...), the head
//! that replaces the network's last linear layer on its penultimate features; and the objective
//! a step minimises over it.
//!
//! A run of a logit-level loss saves the network's record exactly as before heads existed, so its
//! checkpoints and those of earlier versions read the same way; a head run saves the network
//! and the head together.

use std::path::Path;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Int, Tensor};
use lmsoftmax_loss::{LogitLoss, LossConfig, LossError, MarginHead};
use lmsoftmax_models::Network;

/// A network, and the margin head on its features when the loss is one.
#[derive(Module, Debug)]
pub struct Classifier {
    /// The network (without its last linear layer when there is a head).
    pub network: Network,
    /// The margin head, for a margin-head loss.
    pub head: Option<MarginHead>,
}

impl Classifier {
    /// `arch` for `channels`-channel images and `classes` classes at `width`, with the head of
    /// `loss` if it is a margin head (then the network's last linear layer is left out and the
    /// head's class weights are drawn after the network's initialisation is set up).
    ///
    /// # Errors
    /// An unknown network, one that does not fit the data, invalid head parameters.
    pub fn build(
        arch: &str,
        channels: usize,
        classes: usize,
        width: f32,
        loss: &LossConfig,
        device: &Device,
    ) -> Result<Self> {
        let network = lmsoftmax_models::build(arch, channels, classes, width, device)?;
        if !loss.kind().is_head() {
            return Ok(Self {
                network,
                head: None,
            });
        }
        let network = network.without_classifier();
        let head = loss
            .init_head(network.feature_dim(), classes, device)
            .with_context(|| format!("the {} head on {arch}", loss.kind()))?;
        Ok(Self {
            network,
            head: Some(head),
        })
    }

    /// The inference logits `[n, classes]`: the network's own, or the head's logits without
    /// margin on the network's features (what top-1 and the margins are measured on).
    pub fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        match &self.head {
            Some(head) => head.logits(self.network.features(x)),
            None => self.network.forward(x),
        }
    }

    /// The model as training iteration `iter` (0-based) uses it: the head's annealed `lambda`
    /// (SphereFace, L-Softmax) moved to that iteration; anything else unchanged.
    pub fn at_iteration(mut self, iter: u64) -> Self {
        self.head = self.head.map(|h| h.at_iteration(iter));
        self
    }

    /// The model as it stands after `steps` training steps: `lambda` as the last of them used
    /// it (the first step's when none was taken). What a restored checkpoint evaluates with,
    /// as the run evaluated after its last step.
    pub fn after_steps(self, steps: u64) -> Self {
        self.at_iteration(steps.saturating_sub(1))
    }

    /// The head's current `lambda`, if it anneals one.
    pub fn lambda(&self) -> Option<f64> {
        self.head.as_ref().and_then(MarginHead::lambda)
    }

    /// The record a checkpoint stores: the network's alone without a head (the layout of
    /// every earlier checkpoint), network and head together with one.
    ///
    /// # Errors
    /// Serialisation errors.
    pub fn to_record_bytes(&self) -> Result<Vec<u8>> {
        let record = match &self.head {
            None => self.network.clone().into_record(),
            Some(_) => self.clone().into_record(),
        };
        Ok(record
            .into_bytes()
            .context("serialising the model")?
            .to_vec())
    }

    /// Loads a record written by [`Classifier::to_record_bytes`] for the same model.
    ///
    /// # Errors
    /// A record that does not fit (another network, width, class count or kind of loss).
    pub fn load_record_bytes(self, bytes: Vec<u8>, path: &Path) -> Result<Self> {
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
            .context("checkpoint model record")?;
        let loaded = match self.head {
            None => {
                let network = self.network;
                without_panic(move || network.try_load_record(record)).map(|r| {
                    r.map(|network| Self {
                        network,
                        head: None,
                    })
                })
            }
            Some(_) => without_panic(move || self.try_load_record(record)),
        };
        loaded
            .map_err(anyhow::Error::msg)
            .and_then(|r| r.map_err(anyhow::Error::from))
            .with_context(|| format!("loading the model from {}", path.display()))
    }
}

/// Runs `f`, turning a panic into its message: Burn's record loading panics on some malformed
/// records instead of returning an error.
pub fn without_panic<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a malformed record".into())
    })
}

/// What a step minimises: a logit-level loss over the network's logits, or the margin head the
/// model carries (its cross-entropy over the margin logits).
#[derive(Debug, Clone)]
pub enum Objective {
    /// A logit-level loss.
    Logits(LogitLoss),
    /// The model's margin head.
    Head,
}

impl Objective {
    /// The objective of `loss`; `check_finite` keeps the logit-level loss's own check for
    /// non-finite logits (a training step, which reads its loss back anyway, leaves it out).
    ///
    /// # Errors
    /// Invalid loss options.
    pub fn new(loss: &LossConfig, device: &Device, check_finite: bool) -> Result<Self> {
        if loss.kind().is_head() {
            loss.validate()?;
            return Ok(Self::Head);
        }
        Ok(Self::Logits(
            loss.init(device)?.with_check_finite(check_finite),
        ))
    }

    /// The loss of `model` on images `x` with targets `y` (mean over rows), and the inference
    /// logits (see [`Classifier::logits`]).
    ///
    /// # Errors
    /// The loss's error (bad targets, non-finite values).
    ///
    /// # Panics
    /// A head objective on a model without a head, or the other way round (a programming
    /// error: [`Classifier::build`] and [`Objective::new`] of the same loss always agree).
    pub fn loss_and_logits(
        &self,
        model: &Classifier,
        x: Tensor<4>,
        y: Tensor<1, Int>,
    ) -> Result<(Tensor<1>, Tensor<2>), LossError> {
        match (self, &model.head) {
            (Self::Logits(loss), None) => {
                let logits = model.network.forward(x);
                Ok((loss.try_forward(logits.clone(), y)?, logits))
            }
            (Self::Head, Some(head)) => {
                let features = model.network.features(x);
                let value = head.try_forward(features.clone(), y)?;
                Ok((value, head.logits(features.detach())))
            }
            (Self::Logits(_), Some(_)) => {
                panic!("a logit-level loss on a model with a margin head")
            }
            (Self::Head, None) => panic!("a margin-head objective on a model without a head"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lmsoftmax_loss::LossKind;

    #[test]
    fn a_head_model_replaces_the_last_layer_and_its_record_round_trips() {
        let device = Device::flex();
        let softmax = LossConfig::of_kind(LossKind::Softmax);
        let plain = Classifier::build("small_cnn", 3, 10, 0.25, &softmax, &device).unwrap();
        let arc = LossConfig::of_kind(LossKind::ArcFace);
        let head = Classifier::build("small_cnn", 3, 10, 0.25, &arc, &device).unwrap();
        let d = head.network.feature_dim();
        assert_eq!(d, 32);
        // the linear layer (d x 10 + 10) is replaced by W [10, d]
        assert_eq!(plain.num_params() - head.num_params(), d * 10 + 10 - 10 * d);
        let x = Tensor::<4>::ones([2, 3, 32, 32], &device);
        assert_eq!(head.logits(x.clone()).dims(), [2, 10]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let bytes = head.to_record_bytes().unwrap();
        let fresh = Classifier::build("small_cnn", 3, 10, 0.25, &arc, &device).unwrap();
        let back = fresh.load_record_bytes(bytes.clone(), &path).unwrap();
        assert_eq!(
            back.logits(x.clone()).into_data(),
            head.logits(x.clone()).into_data()
        );
        // a head record does not load into a plain model, nor the other way round
        let err = plain.clone().load_record_bytes(bytes, &path).unwrap_err();
        assert!(format!("{err:#}").contains("loading the model"), "{err:#}");
        let plain_bytes = plain.to_record_bytes().unwrap();
        let fresh = Classifier::build("small_cnn", 3, 10, 0.25, &arc, &device).unwrap();
        assert!(fresh.load_record_bytes(plain_bytes.clone(), &path).is_err());
        // a plain model's record is the network's own (the layout of earlier checkpoints)
        assert_eq!(
            plain_bytes,
            plain
                .network
                .clone()
                .into_record()
                .into_bytes()
                .unwrap()
                .to_vec()
        );
    }

    #[test]
    fn sphereface_anneals_lambda_by_iteration() {
        let device = Device::flex();
        let sphere = LossConfig::of_kind(LossKind::SphereFace);
        let m = Classifier::build("small_cnn", 3, 10, 0.25, &sphere, &device).unwrap();
        assert_eq!(m.lambda(), Some(1000.0));
        let m = m.at_iteration(100);
        assert!((m.lambda().unwrap() - 1000.0 / 13.0).abs() < 1e-9);
        assert_eq!(m.at_iteration(10_000_000).lambda(), Some(5.0));
    }
}
