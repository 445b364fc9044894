//! A loss chosen by kind, with the options of that kind: what a training configuration's
//! `[loss]` table holds. It is read with serde (unknown keys are an error, missing ones take the
//! official defaults), validated here once, and builds the loss module.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::config::{
    LargeMarginInSoftmaxLossConfig, LossImplementation, SoftmaxCrossEntropyLossConfig,
};
use crate::error::ConfigError;
use crate::family_config::{
    ConfidencePenaltyLossConfig, FocalLossConfig, LabelSmoothingLossConfig, PolyLossConfig,
};
use crate::heads::{HeadKind, LambdaSchedule, MarginHead};
use crate::logit_loss::LogitLoss;
use crate::reduction::LossReduction;

mod kind;
mod table;

pub use kind::LossKind;

fn default_lambda() -> f64 {
    0.3
}

fn default_smoothing() -> f64 {
    0.1
}

fn default_gamma() -> f64 {
    2.0
}

fn default_epsilon() -> f64 {
    1.0
}

fn default_beta() -> f64 {
    0.1
}

/// The options every logit-level kind shares. Reductions are not among them: training always
/// takes the mean over the batch, as the official code.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonOptions {
    /// Class weights of the cross-entropy term, one per class (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Vec<f64>>,
    /// Target value whose rows contribute nothing (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_index: Option<i64>,
    /// Label smoothing of the cross-entropy term, PyTorch semantics (default 0).
    #[serde(default)]
    pub label_smoothing: f64,
    /// Implementation: `auto` (default), `composed` or `fused`.
    #[serde(default, with = "table::implementation_name")]
    pub implementation: LossImplementation,
}

/// A loss and its options, as a configuration file's `[loss]` table:
///
/// ```toml
/// [loss]
/// kind = "large-margin"   # or "softmax"
/// reg_lambda = 0.3        # large-margin only (default 0.3)
/// deg_logit = 0.5         # large-margin only (default none)
/// label_smoothing = 0.1   # any kind (default 0); also weight = [...], ignore_index = -100,
///                         # implementation = "auto" | "composed" | "fused"
/// ```
///
/// or a margin head with its parameters ([`LossKind::parameters`] lists them with their
/// defaults), e.g. `kind = "arcface"`, `scale = 30.0`, `margin = 0.5`.
///
/// ```
/// use lmsoftmax_loss::{LossConfig, LossKind};
/// let loss: LossConfig = toml::from_str("kind = \"large-margin\"\nreg_lambda = 0.5\n").unwrap();
/// assert_eq!((loss.kind(), loss.reg_lambda()), (LossKind::LargeMargin, 0.5));
/// let err = toml::from_str::<LossConfig>("kind = \"softmax\"\nreg_lambda = 0.5\n").unwrap_err();
/// assert!(err.to_string().contains("reg_lambda"), "{err}");
/// # let _ = loss.init(&burn::tensor::Device::flex()).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum LossConfig {
    /// Softmax cross-entropy.
    Softmax {
        /// Shared options.
        common: CommonOptions,
    },
    /// Large-margin in softmax cross-entropy.
    LargeMargin {
        /// Weight of the regulariser (default 0.3, as the paper).
        reg_lambda: f64,
        /// `delta` subtracted from the target logit before the cross-entropy (default none).
        deg_logit: Option<f64>,
        /// Shared options.
        common: CommonOptions,
    },
    /// Label smoothing; its `smoothing` replaces the shared `label_smoothing`, which must be 0.
    LabelSmoothing {
        /// `eps` (default 0.1).
        smoothing: f64,
        /// Shared options.
        common: CommonOptions,
    },
    /// Focal loss.
    Focal {
        /// The focusing exponent (default 2).
        gamma: f64,
        /// Shared options (`label_smoothing` must be 0).
        common: CommonOptions,
    },
    /// Poly-1 loss.
    Poly {
        /// The weight of `1 - p_t` (default 1).
        epsilon: f64,
        /// Shared options (`label_smoothing` must be 0).
        common: CommonOptions,
    },
    /// Confidence penalty.
    ConfidencePenalty {
        /// The weight of the entropy (default 0.1).
        beta: f64,
        /// Shared options (`label_smoothing` must be 0).
        common: CommonOptions,
    },
    /// A margin head (`cosface`, `arcface`, `combined`, `subcenter-arcface`, `sphereface`,
    /// `lsoftmax`): the network's last linear layer is replaced by the head on its features.
    Head {
        /// Which head.
        kind: LossKind,
        /// Its parameters, in the order of [`LossKind::parameters`].
        values: Vec<f64>,
        /// Shared options: a head takes none of them (no class weights, `ignore_index` or
        /// label smoothing; `implementation` `auto` or `composed`).
        common: CommonOptions,
    },
}

impl Default for LossConfig {
    /// The paper's loss with its defaults.
    fn default() -> Self {
        Self::of_kind(LossKind::LargeMargin)
    }
}

impl LossConfig {
    /// `kind` with its default options.
    pub fn of_kind(kind: LossKind) -> Self {
        Self::Softmax {
            common: CommonOptions::default(),
        }
        .with_kind(kind)
    }

    /// The kind.
    pub fn kind(&self) -> LossKind {
        match self {
            Self::Softmax { .. } => LossKind::Softmax,
            Self::LargeMargin { .. } => LossKind::LargeMargin,
            Self::LabelSmoothing { .. } => LossKind::LabelSmoothing,
            Self::Focal { .. } => LossKind::Focal,
            Self::Poly { .. } => LossKind::Poly,
            Self::ConfidencePenalty { .. } => LossKind::ConfidencePenalty,
            Self::Head { kind, .. } => *kind,
        }
    }

    /// The shared options.
    pub fn common(&self) -> &CommonOptions {
        match self {
            Self::Softmax { common }
            | Self::LargeMargin { common, .. }
            | Self::LabelSmoothing { common, .. }
            | Self::Focal { common, .. }
            | Self::Poly { common, .. }
            | Self::ConfidencePenalty { common, .. }
            | Self::Head { common, .. } => common,
        }
    }

    /// The weight of the large-margin regulariser (0 for kinds without one).
    pub fn reg_lambda(&self) -> f64 {
        match self {
            Self::LargeMargin { reg_lambda, .. } => *reg_lambda,
            _ => 0.0,
        }
    }

    /// The kind's own parameters and their values, as [`LossKind::parameters`] names them.
    ///
    /// ```
    /// use lmsoftmax_loss::{LossConfig, LossKind};
    /// let focal = LossConfig::of_kind(LossKind::Focal).with_parameter("gamma", 0.5)?;
    /// assert_eq!(focal.parameters(), [("gamma", 0.5)]);
    /// # Ok::<(), lmsoftmax_loss::ConfigError>(())
    /// ```
    pub fn parameters(&self) -> Vec<(&'static str, f64)> {
        let value = match self {
            Self::Softmax { .. } => return Vec::new(),
            Self::Head { kind, values, .. } => {
                return kind
                    .parameters()
                    .iter()
                    .zip(values)
                    .map(|(&(name, _), &v)| (name, v))
                    .collect();
            }
            Self::LargeMargin { reg_lambda, .. } => *reg_lambda,
            Self::LabelSmoothing { smoothing, .. } => *smoothing,
            Self::Focal { gamma, .. } => *gamma,
            Self::Poly { epsilon, .. } => *epsilon,
            Self::ConfidencePenalty { beta, .. } => *beta,
        };
        vec![(self.kind().parameters()[0].0, value)]
    }

    /// Sets one of the kind's own parameters by name (`gamma`, `epsilon`, `beta`, `smoothing`,
    /// `reg_lambda`), checked.
    ///
    /// # Errors
    /// [`ConfigError::UnknownParameter`] for a name the kind does not have; an invalid value.
    pub fn with_parameter(self, name: &str, value: f64) -> Result<Self, ConfigError> {
        let kind = self.kind();
        if !kind.parameters().iter().any(|(n, _)| *n == name) {
            let known: Vec<&str> = kind.parameters().iter().map(|(n, _)| *n).collect();
            return Err(ConfigError::UnknownParameter {
                name: name.to_string(),
                kind: kind.name(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        }
        let next = match self {
            Self::LargeMargin {
                deg_logit, common, ..
            } => Self::LargeMargin {
                reg_lambda: value,
                deg_logit,
                common,
            },
            Self::LabelSmoothing { common, .. } => Self::LabelSmoothing {
                smoothing: value,
                common,
            },
            Self::Focal { common, .. } => Self::Focal {
                gamma: value,
                common,
            },
            Self::Poly { common, .. } => Self::Poly {
                epsilon: value,
                common,
            },
            Self::ConfidencePenalty { common, .. } => Self::ConfidencePenalty {
                beta: value,
                common,
            },
            Self::Head {
                kind,
                mut values,
                common,
            } => {
                let at = kind
                    .parameters()
                    .iter()
                    .position(|(n, _)| *n == name)
                    .expect("checked above");
                values[at] = value;
                Self::Head {
                    kind,
                    values,
                    common,
                }
            }
            Self::Softmax { .. } => unreachable!("softmax has no parameters"),
        };
        next.validate()?;
        Ok(next)
    }

    /// The same shared options under another kind, whose own parameters take their defaults (the
    /// same value when the kind does not change).
    ///
    /// ```
    /// use lmsoftmax_loss::{LossConfig, LossKind};
    /// let lm = LossConfig::of_kind(LossKind::Softmax).with_kind(LossKind::LargeMargin);
    /// assert_eq!(lm.reg_lambda(), 0.3);
    /// ```
    pub fn with_kind(self, kind: LossKind) -> Self {
        if self.kind() == kind {
            return self;
        }
        let common = self.common().clone();
        match kind {
            LossKind::Softmax => Self::Softmax { common },
            LossKind::LargeMargin => Self::LargeMargin {
                reg_lambda: default_lambda(),
                deg_logit: None,
                common,
            },
            LossKind::LabelSmoothing => Self::LabelSmoothing {
                smoothing: default_smoothing(),
                common,
            },
            LossKind::Focal => Self::Focal {
                gamma: default_gamma(),
                common,
            },
            LossKind::Poly => Self::Poly {
                epsilon: default_epsilon(),
                common,
            },
            LossKind::ConfidencePenalty => Self::ConfidencePenalty {
                beta: default_beta(),
                common,
            },
            head => Self::Head {
                kind: head,
                values: head.parameters().iter().map(|(_, v)| *v).collect(),
                common,
            },
        }
    }

    /// Sets the regulariser's weight.
    ///
    /// # Errors
    /// The kind has no regulariser, or the value is invalid.
    pub fn with_reg_lambda(self, lambda: f64) -> Result<Self, ConfigError> {
        self.with_parameter("reg_lambda", lambda)
    }

    /// The large-margin module configuration this choice stands for (softmax is lambda 0);
    /// `None` for the other kinds.
    pub fn large_margin_config(&self) -> Option<LargeMarginInSoftmaxLossConfig> {
        let common = self.common();
        let base = match self {
            Self::Softmax { .. } => SoftmaxCrossEntropyLossConfig::new()
                .with_weight(common.weight.clone())
                .with_ignore_index(common.ignore_index)
                .with_label_smoothing(common.label_smoothing)
                .with_implementation(common.implementation)
                .to_large_margin(),
            Self::LargeMargin {
                reg_lambda,
                deg_logit,
                ..
            } => LargeMarginInSoftmaxLossConfig::new()
                .with_reg_lambda(*reg_lambda)
                .with_deg_logit(*deg_logit)
                .with_weight(common.weight.clone())
                .with_ignore_index(common.ignore_index)
                .with_label_smoothing(common.label_smoothing)
                .with_implementation(common.implementation),
            _ => return None,
        };
        Some(base.with_reduction(LossReduction::Mean))
    }

    /// Checks every option (the module configuration's own checks).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.kind().is_head() {
            return self.validate_head();
        }
        self.init_unchecked().map(|_| ())
    }

    /// A head's checks: no shared option but `implementation = "auto"` or `"composed"`, its
    /// parameters in range, integers where the kind takes integers.
    fn validate_head(&self) -> Result<(), ConfigError> {
        let kind = self.kind().name();
        let c = self.common();
        let refused = if c.weight.is_some() {
            Some("weight")
        } else if c.ignore_index.is_some() {
            Some("ignore_index")
        } else if c.label_smoothing != 0.0 {
            Some("label_smoothing")
        } else if c.implementation == LossImplementation::Fused {
            Some("implementation = \"fused\" (a head runs on composed ops)")
        } else {
            None
        };
        if let Some(option) = refused {
            return Err(ConfigError::NotAnOption { option, kind });
        }
        for (name, value) in self.parameters() {
            if !value.is_finite() {
                return Err(ConfigError::NonFinite { field: name, value });
            }
            // the multiple-angle expansion of cos(m theta) loses f32 precision past m = 8 (the
            // papers use 4); sub-centre ArcFace's centres are only rows of W
            let (top, range) = if name == "margin" {
                (8.0, "an integer in [1, 8]")
            } else {
                (64.0, "an integer in [1, 64]")
            };
            if self.kind().integer_parameter(name)
                && (value.fract() != 0.0 || !(1.0..=top).contains(&value))
            {
                return Err(ConfigError::OutOfRange {
                    field: name,
                    value,
                    range,
                });
            }
        }
        if let Some(s) = self.lambda_schedule() {
            s.validate()?;
        }
        self.head_kind().expect("a head").validate()
    }

    /// The head and its parameters, for a margin-head kind (`lambda` at the schedule's first
    /// value for SphereFace and L-Softmax); `None` for the logit-level kinds. The values are
    /// taken as they are: [`validate`](Self::validate) checks them.
    ///
    /// ```
    /// use lmsoftmax_loss::{HeadKind, LossConfig, LossKind};
    /// let arc = LossConfig::of_kind(LossKind::ArcFace);
    /// assert_eq!(arc.head_kind(), Some(HeadKind::ArcFace { scale: 30.0, margin: 0.5 }));
    /// assert_eq!(LossConfig::default().head_kind(), None);
    /// ```
    pub fn head_kind(&self) -> Option<HeadKind> {
        let Self::Head { kind, values, .. } = self else {
            return None;
        };
        let v = |i: usize| values.get(i).copied().unwrap_or(f64::NAN);
        let int = |x: f64| {
            if x.is_finite() && x >= 0.0 {
                x as u32
            } else {
                0
            }
        };
        let lambda = self.lambda_schedule().map_or(0.0, |s| s.lambda(0));
        Some(match kind {
            LossKind::CosFace => HeadKind::CosFace {
                scale: v(0),
                margin: v(1),
            },
            LossKind::ArcFace => HeadKind::ArcFace {
                scale: v(0),
                margin: v(1),
            },
            LossKind::Combined => HeadKind::Combined {
                scale: v(0),
                m1: v(1),
                m2: v(2),
                m3: v(3),
            },
            LossKind::SubcenterArcFace => HeadKind::SubcenterArcFace {
                scale: v(0),
                margin: v(1),
                centers: int(v(2)) as usize,
            },
            LossKind::SphereFace => HeadKind::SphereFace {
                margin: int(v(0)),
                lambda,
            },
            LossKind::LSoftmax => HeadKind::LSoftmax {
                margin: int(v(0)),
                lambda,
            },
            _ => return None,
        })
    }

    /// SphereFace's and L-Softmax's annealing of `lambda`; `None` for the other kinds.
    pub fn lambda_schedule(&self) -> Option<LambdaSchedule> {
        match self {
            Self::Head {
                kind: LossKind::SphereFace | LossKind::LSoftmax,
                values,
                ..
            } if values.len() == 5 => Some(LambdaSchedule {
                base: values[1],
                gamma: values[2],
                power: values[3],
                lambda_min: values[4],
            }),
            _ => None,
        }
    }

    /// Builds the margin head for `embed_dim`-dimensional features and `classes` classes, its
    /// class weights initialised as the papers' code (see [`MarginHead::new`]), with its
    /// `lambda` schedule.
    ///
    /// ```
    /// use burn::tensor::{Device, Tensor};
    /// use lmsoftmax_loss::{LossConfig, LossKind};
    /// let device = Device::flex();
    /// let cos = LossConfig::of_kind(LossKind::CosFace).with_parameter("margin", 0.2)?;
    /// let head = cos.init_head(128, 10, &device)?;
    /// assert_eq!(head.logits(Tensor::<2>::ones([4, 128], &device)).dims(), [4, 10]);
    /// assert!(LossConfig::default().init_head(128, 10, &device).is_err());
    /// # Ok::<(), lmsoftmax_loss::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// A logit-level kind ([`ConfigError::NotAHead`]), invalid parameters.
    pub fn init_head(
        &self,
        embed_dim: usize,
        classes: usize,
        device: &Device,
    ) -> Result<MarginHead, ConfigError> {
        let Some(kind) = self.head_kind() else {
            return Err(ConfigError::NotAHead {
                kind: self.kind().name(),
            });
        };
        self.validate()?;
        let head = MarginHead::new(kind, embed_dim, classes, device)?;
        Ok(match self.lambda_schedule() {
            Some(s) => head.with_schedule(s),
            None => head,
        })
    }

    /// Checks the options against a dataset's class count: class weights must be one per class.
    ///
    /// # Errors
    /// A [`ConfigError::WeightCount`].
    pub fn validate_for_classes(&self, classes: usize) -> Result<(), ConfigError> {
        self.validate()?;
        match &self.common().weight {
            Some(w) if w.len() != classes => Err(ConfigError::WeightCount {
                weights: w.len(),
                classes,
            }),
            _ => Ok(()),
        }
    }

    /// Builds the loss module (mean reduction).
    ///
    /// # Errors
    /// As [`LossConfig::validate`].
    /// A margin head's kind is refused ([`ConfigError::MarginHead`]): build it with
    /// [`init_head`](Self::init_head).
    pub fn init(&self, _device: &Device) -> Result<LogitLoss, ConfigError> {
        self.init_unchecked()
    }

    /// Validates and builds the module (the device is not needed to build it).
    fn init_unchecked(&self) -> Result<LogitLoss, ConfigError> {
        if self.kind().is_head() {
            return Err(ConfigError::MarginHead {
                kind: self.kind().name(),
            });
        }
        if let Some(lm) = self.large_margin_config() {
            lm.validate()?;
            return Ok(LogitLoss::from_large_margin(self.kind().name(), &lm));
        }
        let c = self.common().clone();
        if c.label_smoothing != 0.0 {
            return Err(ConfigError::NotAnOption {
                option: "label_smoothing",
                kind: self.kind().name(),
            });
        }
        let device = Device::flex();
        match self {
            Self::LabelSmoothing { smoothing, .. } => LabelSmoothingLossConfig::new()
                .with_smoothing(*smoothing)
                .with_weight(c.weight)
                .with_ignore_index(c.ignore_index)
                .with_implementation(c.implementation)
                .init(&device),
            Self::Focal { gamma, .. } => FocalLossConfig::new()
                .with_gamma(*gamma)
                .with_weight(c.weight)
                .with_ignore_index(c.ignore_index)
                .with_implementation(c.implementation)
                .init(&device),
            Self::Poly { epsilon, .. } => PolyLossConfig::new()
                .with_epsilon(*epsilon)
                .with_weight(c.weight)
                .with_ignore_index(c.ignore_index)
                .with_implementation(c.implementation)
                .init(&device),
            Self::ConfidencePenalty { beta, .. } => ConfidencePenaltyLossConfig::new()
                .with_beta(*beta)
                .with_weight(c.weight)
                .with_ignore_index(c.ignore_index)
                .with_implementation(c.implementation)
                .init(&device),
            Self::Softmax { .. } | Self::LargeMargin { .. } | Self::Head { .. } => {
                unreachable!("handled above")
            }
        }
    }

    /// A short description for tables and logs: `softmax`, `large-margin λ=0.3`, plus any
    /// option that differs from its default.
    ///
    /// ```
    /// use lmsoftmax_loss::{LossConfig, LossKind};
    /// assert_eq!(LossConfig::default().label(), "large-margin λ=0.3");
    /// assert_eq!(LossConfig::of_kind(LossKind::Softmax).label(), "softmax");
    /// ```
    pub fn label(&self) -> String {
        let mut s = match self {
            Self::Softmax { .. } => "softmax".to_string(),
            Self::LargeMargin {
                reg_lambda,
                deg_logit,
                ..
            } => {
                let mut s = format!("large-margin λ={reg_lambda}");
                if let Some(d) = deg_logit {
                    s.push_str(&format!(" δ={d}"));
                }
                s
            }
            Self::LabelSmoothing { smoothing, .. } => format!("label-smoothing ε={smoothing}"),
            Self::Focal { gamma, .. } => format!("focal γ={gamma}"),
            Self::Poly { epsilon, .. } => format!("poly ε={epsilon}"),
            Self::ConfidencePenalty { beta, .. } => format!("confidence-penalty β={beta}"),
            Self::Head { kind, .. } => {
                let mut s = kind.name().to_string();
                for ((name, value), (_, default)) in
                    self.parameters().into_iter().zip(kind.parameters())
                {
                    // the schedule's values only when they are not the defaults
                    if !name.starts_with("lambda_") || value != *default {
                        s.push_str(&format!(" {}={value}", short_name(name)));
                    }
                }
                s
            }
        };
        let c = self.common();
        if c.label_smoothing != 0.0 {
            s.push_str(&format!(" ls={}", c.label_smoothing));
        }
        if c.weight.is_some() {
            s.push_str(" weighted");
        }
        if let Some(i) = c.ignore_index {
            s.push_str(&format!(" ignore={i}"));
        }
        s
    }
}

/// The short names of parameters in labels (`s=30 m=0.5 K=3`).
fn short_name(name: &str) -> &str {
    match name {
        "scale" => "s",
        "margin" => "m",
        "centers" => "K",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LossConfig, String> {
        toml::from_str::<LossConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn missing_options_take_the_official_defaults() {
        let lm = parse("kind = \"large-margin\"").unwrap();
        assert_eq!(lm, LossConfig::default());
        assert_eq!(
            lm.large_margin_config().unwrap(),
            LargeMarginInSoftmaxLossConfig::new()
        );
        let soft = parse("kind = \"softmax\"").unwrap();
        assert_eq!(soft.large_margin_config().unwrap().reg_lambda, 0.0);
    }

    #[test]
    fn every_option_reaches_the_module_config() {
        let c = parse(
            "kind = \"large-margin\"\nreg_lambda = 1.5\ndeg_logit = 0.25\nweight = [1.0, 2.0]\n\
             ignore_index = -100\nlabel_smoothing = 0.1\nimplementation = \"composed\"\n",
        )
        .unwrap();
        let m = c.large_margin_config().unwrap();
        assert_eq!(m.reg_lambda, 1.5);
        assert_eq!(m.deg_logit, Some(0.25));
        assert_eq!(m.weight, Some(vec![1.0, 2.0]));
        assert_eq!(m.ignore_index, Some(-100));
        assert_eq!(m.label_smoothing, 0.1);
        assert_eq!(m.implementation, LossImplementation::Composed);
        // and back: what is written reads as the same choice
        let text = toml::to_string(&c).unwrap();
        assert_eq!(parse(&text).unwrap(), c, "{text}");
    }

    #[test]
    fn unknown_keys_kinds_and_values_are_errors_naming_them() {
        let err = parse("kind = \"large-margin\"\nreg_lamda = 0.3").unwrap_err();
        assert!(err.contains("reg_lamda"), "{err}");
        let err = parse("kind = \"softmax\"\ndeg_logit = 1.0").unwrap_err();
        assert!(err.contains("deg_logit"), "{err}");
        let err = parse("kind = \"arcfaces\"").unwrap_err();
        assert!(
            err.contains("confidence-penalty") && err.contains("lsoftmax"),
            "the kinds are listed: {err}"
        );
        assert!(err.contains("arcfaces"), "{err}");
        let err = parse("kind = \"softmax\"\nimplementation = \"gpu\"").unwrap_err();
        assert!(err.contains("auto, composed or fused"), "{err}");
        let bad = parse("kind = \"large-margin\"\nreg_lambda = -1.0").unwrap();
        assert!(matches!(
            bad.validate(),
            Err(ConfigError::NegativeLambda(_))
        ));
        let bad = parse("kind = \"softmax\"\nlabel_smoothing = 2.0").unwrap();
        assert!(matches!(
            bad.validate(),
            Err(ConfigError::LabelSmoothingRange(_))
        ));
    }

    #[test]
    fn changing_the_kind_keeps_the_shared_options() {
        let c = parse("kind = \"softmax\"\nlabel_smoothing = 0.2\nignore_index = 3").unwrap();
        let lm = c.clone().with_kind(LossKind::LargeMargin);
        assert_eq!(lm.common(), c.common());
        assert_eq!(lm.reg_lambda(), 0.3);
        assert_eq!(lm.clone().with_kind(LossKind::Softmax), c);
        let err = c.with_reg_lambda(0.5).unwrap_err();
        assert!(err.to_string().contains("reg_lambda"), "{err}");
        assert_eq!(
            lm.with_reg_lambda(0.5).unwrap().label(),
            "large-margin λ=0.5 ls=0.2 ignore=3"
        );
    }

    #[test]
    fn margin_heads_read_their_parameters_strictly_and_round_trip() {
        let arc = parse("kind = \"arcface\"").unwrap();
        assert_eq!(arc, LossConfig::of_kind(LossKind::ArcFace));
        assert_eq!(arc.parameters(), [("scale", 30.0), ("margin", 0.5)]);
        assert_eq!(arc.label(), "arcface s=30 m=0.5");
        let sub = parse("kind = \"subcenter_arcface\"\ncenters = 2\nscale = 64").unwrap();
        assert_eq!(
            sub.head_kind(),
            Some(HeadKind::SubcenterArcFace {
                scale: 64.0,
                margin: 0.5,
                centers: 2
            })
        );
        let sphere = parse("kind = \"sphereface\"\nlambda_min = 0").unwrap();
        assert_eq!(sphere.label(), "sphereface m=4 lambda_min=0");
        let s = sphere.lambda_schedule().unwrap();
        assert_eq!((s.base, s.lambda_min), (1000.0, 0.0));
        assert_eq!(
            sphere.head_kind(),
            Some(HeadKind::SphereFace {
                margin: 4,
                lambda: 1000.0
            })
        );
        for c in [&arc, &sub, &sphere] {
            let text = toml::to_string(c).unwrap();
            assert_eq!(&parse(&text).unwrap(), c, "{text}");
            assert!(text.starts_with("kind = "), "{text}");
        }
        let text = toml::to_string(&sub).unwrap();
        assert!(
            text.contains("centers = 2\n"),
            "an integer stays one: {text}"
        );
        // unknown keys name the kind's parameters; the shared options are refused by a head
        let err = parse("kind = \"cosface\"\ngamma = 2").unwrap_err();
        assert!(
            err.contains("`gamma`") && err.contains("scale, margin"),
            "{err}"
        );
        let err = parse("kind = \"cosface\"\nmargin = \"big\"").unwrap_err();
        assert!(err.contains("must be a number"), "{err}");
        let weighted = parse("kind = \"cosface\"\nweight = [1.0, 2.0]").unwrap();
        assert_eq!(
            weighted.validate().unwrap_err().to_string(),
            "weight is not an option of the cosface loss"
        );
        let fused = parse("kind = \"arcface\"\nimplementation = \"fused\"").unwrap();
        assert!(fused.validate().is_err());
        for (text, field) in [
            ("kind = \"subcenter-arcface\"\ncenters = 2.5", "centers"),
            ("kind = \"sphereface\"\nmargin = 0", "margin"),
            ("kind = \"sphereface\"\nmargin = 9", "margin"),
            ("kind = \"lsoftmax\"\nlambda_gamma = -1", "lambda_gamma"),
            ("kind = \"cosface\"\nscale = 0", "scale"),
        ] {
            let err = parse(text).unwrap().validate().unwrap_err().to_string();
            assert!(err.starts_with(field), "{text}: {err}");
        }
    }

    #[test]
    fn a_head_is_built_as_a_head_and_a_logit_loss_as_a_logit_loss() {
        let device = Device::flex();
        let cos = LossConfig::of_kind(LossKind::CosFace);
        assert!(matches!(
            cos.init(&device),
            Err(ConfigError::MarginHead { kind: "cosface" })
        ));
        let head = cos.init_head(16, 10, &device).unwrap();
        assert_eq!(head.classes(), 10);
        assert!(matches!(
            LossConfig::of_kind(LossKind::Focal).init_head(16, 10, &device),
            Err(ConfigError::NotAHead { kind: "focal" })
        ));
        // L-Softmax anneals from the schedule's first value
        let l = LossConfig::of_kind(LossKind::LSoftmax)
            .init_head(16, 10, &device)
            .unwrap();
        assert_eq!(l.lambda(), Some(1000.0));
        assert_eq!(l.at_iteration(1_000_000).lambda(), Some(5.0));
        // every kind has a name that parses back, and heads are exactly the six
        for kind in LossKind::ALL {
            assert_eq!(kind.name().parse::<LossKind>(), Ok(kind));
            assert_eq!(kind.is_head(), LossKind::HEADS.contains(&kind));
            assert_eq!(LossConfig::of_kind(kind).kind(), kind);
            LossConfig::of_kind(kind).validate().unwrap();
        }
    }

    #[test]
    fn class_weights_must_match_the_classes() {
        let c = parse("kind = \"softmax\"\nweight = [1.0, 1.0]").unwrap();
        assert!(c.validate_for_classes(2).is_ok());
        assert_eq!(
            c.validate_for_classes(10).unwrap_err().to_string(),
            "the loss has 2 class weights but the dataset has 10 classes"
        );
    }
}
