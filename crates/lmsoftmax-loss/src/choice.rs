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
use crate::logit_loss::LogitLoss;
use crate::reduction::LossReduction;

/// The kinds of loss, by the names used in configuration files and on the command line.
///
/// ```
/// use lmsoftmax_loss::LossKind;
/// assert_eq!(LossKind::LargeMargin.name(), "large-margin");
/// assert_eq!("softmax".parse::<LossKind>(), Ok(LossKind::Softmax));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Softmax cross-entropy.
    Softmax,
    /// Large-margin in softmax cross-entropy (Kobayashi, BMVC 2019).
    LargeMargin,
    /// Label smoothing (Szegedy et al., 2016).
    LabelSmoothing,
    /// Focal loss (Lin et al., ICCV 2017).
    Focal,
    /// Poly-1 loss (Leng et al., ICLR 2022).
    Poly,
    /// Confidence penalty (Pereyra et al., 2017).
    ConfidencePenalty,
}

impl LossKind {
    /// Every kind, in the order tables list them.
    pub const ALL: [LossKind; 6] = [
        LossKind::Softmax,
        LossKind::LargeMargin,
        LossKind::LabelSmoothing,
        LossKind::Focal,
        LossKind::Poly,
        LossKind::ConfidencePenalty,
    ];

    /// The kind's name in configuration files (`kind = "large-margin"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Softmax => "softmax",
            Self::LargeMargin => "large-margin",
            Self::LabelSmoothing => "label-smoothing",
            Self::Focal => "focal",
            Self::Poly => "poly",
            Self::ConfidencePenalty => "confidence-penalty",
        }
    }

    /// The kind's own parameters with their defaults, as `name=value` (FAMILY.md).
    ///
    /// ```
    /// use lmsoftmax_loss::LossKind;
    /// assert_eq!(LossKind::Focal.parameters(), [("gamma", 2.0)]);
    /// assert!(LossKind::Softmax.parameters().is_empty());
    /// ```
    pub fn parameters(self) -> &'static [(&'static str, f64)] {
        match self {
            Self::Softmax => &[],
            Self::LargeMargin => &[("reg_lambda", 0.3)],
            Self::LabelSmoothing => &[("smoothing", 0.1)],
            Self::Focal => &[("gamma", 2.0)],
            Self::Poly => &[("epsilon", 1.0)],
            Self::ConfidencePenalty => &[("beta", 0.1)],
        }
    }
}

impl std::fmt::Display for LossKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for LossKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown loss '{s}': the kinds are {}",
                    Self::ALL.map(LossKind::name).join(", ")
                )
            })
    }
}

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
    #[serde(default, with = "implementation_name")]
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
/// ```
/// use lmsoftmax_loss::{LossConfig, LossKind};
/// let loss: LossConfig = toml::from_str("kind = \"large-margin\"\nreg_lambda = 0.5\n").unwrap();
/// assert_eq!((loss.kind(), loss.reg_lambda()), (LossKind::LargeMargin, 0.5));
/// let err = toml::from_str::<LossConfig>("kind = \"softmax\"\nreg_lambda = 0.5\n").unwrap_err();
/// assert!(err.to_string().contains("reg_lambda"), "{err}");
/// # let _ = loss.init(&burn::tensor::Device::flex()).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LossConfig {
    /// Softmax cross-entropy.
    Softmax {
        /// Shared options.
        #[serde(flatten)]
        common: CommonOptions,
    },
    /// Large-margin in softmax cross-entropy.
    LargeMargin {
        /// Weight of the regulariser (default 0.3, as the paper).
        #[serde(default = "default_lambda")]
        reg_lambda: f64,
        /// `delta` subtracted from the target logit before the cross-entropy (default none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deg_logit: Option<f64>,
        /// Shared options.
        #[serde(flatten)]
        common: CommonOptions,
    },
    /// Label smoothing; its `smoothing` replaces the shared `label_smoothing`, which must be 0.
    LabelSmoothing {
        /// `eps` (default 0.1).
        #[serde(default = "default_smoothing")]
        smoothing: f64,
        /// Shared options.
        #[serde(flatten)]
        common: CommonOptions,
    },
    /// Focal loss.
    Focal {
        /// The focusing exponent (default 2).
        #[serde(default = "default_gamma")]
        gamma: f64,
        /// Shared options (`label_smoothing` must be 0).
        #[serde(flatten)]
        common: CommonOptions,
    },
    /// Poly-1 loss.
    Poly {
        /// The weight of `1 - p_t` (default 1).
        #[serde(default = "default_epsilon")]
        epsilon: f64,
        /// Shared options (`label_smoothing` must be 0).
        #[serde(flatten)]
        common: CommonOptions,
    },
    /// Confidence penalty.
    ConfidencePenalty {
        /// The weight of the entropy (default 0.1).
        #[serde(default = "default_beta")]
        beta: f64,
        /// Shared options (`label_smoothing` must be 0).
        #[serde(flatten)]
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
            | Self::ConfidencePenalty { common, .. } => common,
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
        self.init_unchecked().map(|_| ())
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
    pub fn init(&self, _device: &Device) -> Result<LogitLoss, ConfigError> {
        self.init_unchecked()
    }

    /// Validates and builds the module (the device is not needed to build it).
    fn init_unchecked(&self) -> Result<LogitLoss, ConfigError> {
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
            Self::Softmax { .. } | Self::LargeMargin { .. } => unreachable!("handled above"),
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

/// The shared options' keys, which every kind accepts.
const COMMON_KEYS: [&str; 4] = [
    "weight",
    "ignore_index",
    "label_smoothing",
    "implementation",
];

/// The large-margin loss's own keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LargeMarginParams {
    #[serde(default = "default_lambda")]
    reg_lambda: f64,
    #[serde(default)]
    deg_logit: Option<f64>,
}

/// Softmax has no keys of its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// Label smoothing's own key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SmoothingParams {
    #[serde(default = "default_smoothing")]
    smoothing: f64,
}

/// The focal loss's own key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FocalParams {
    #[serde(default = "default_gamma")]
    gamma: f64,
}

/// The Poly-1 loss's own key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolyParams {
    #[serde(default = "default_epsilon")]
    epsilon: f64,
}

/// The confidence penalty's own key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfidencePenaltyParams {
    #[serde(default = "default_beta")]
    beta: f64,
}

// serde's `flatten` cannot be combined with `deny_unknown_fields`, so the table is split by hand:
// `kind`, the shared keys, and the kind's own keys, each part read strictly.
impl<'de> Deserialize<'de> for LossConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let kind = table
            .remove("kind")
            .ok_or_else(|| D::Error::missing_field("kind"))?;
        let kind: LossKind = kind
            .as_str()
            .ok_or_else(|| D::Error::custom("`kind` must be a string"))?
            .parse()
            .map_err(D::Error::custom)?;
        let (common, own): (serde_json::Map<_, _>, serde_json::Map<_, _>) = table
            .into_iter()
            .partition(|(k, _)| COMMON_KEYS.contains(&k.as_str()));
        let common: CommonOptions = serde_json::from_value(common.into())
            .map_err(|e| D::Error::custom(format!("in the {kind} loss: {e}")))?;
        let strict = |e: serde_json::Error| {
            D::Error::custom(format!(
                "in the {kind} loss: {e} (the shared keys are {})",
                COMMON_KEYS.join(", ")
            ))
        };
        Ok(match kind {
            LossKind::Softmax => {
                let NoParams {} = serde_json::from_value(own.into()).map_err(strict)?;
                Self::Softmax { common }
            }
            LossKind::LargeMargin => {
                let p: LargeMarginParams = serde_json::from_value(own.into()).map_err(strict)?;
                Self::LargeMargin {
                    reg_lambda: p.reg_lambda,
                    deg_logit: p.deg_logit,
                    common,
                }
            }
            LossKind::LabelSmoothing => {
                let p: SmoothingParams = serde_json::from_value(own.into()).map_err(strict)?;
                Self::LabelSmoothing {
                    smoothing: p.smoothing,
                    common,
                }
            }
            LossKind::Focal => {
                let p: FocalParams = serde_json::from_value(own.into()).map_err(strict)?;
                Self::Focal {
                    gamma: p.gamma,
                    common,
                }
            }
            LossKind::Poly => {
                let p: PolyParams = serde_json::from_value(own.into()).map_err(strict)?;
                Self::Poly {
                    epsilon: p.epsilon,
                    common,
                }
            }
            LossKind::ConfidencePenalty => {
                let p: ConfidencePenaltyParams =
                    serde_json::from_value(own.into()).map_err(strict)?;
                Self::ConfidencePenalty {
                    beta: p.beta,
                    common,
                }
            }
        })
    }
}

/// `implementation = "auto" | "composed" | "fused"` in configuration files.
mod implementation_name {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::config::LossImplementation;

    pub fn serialize<S: Serializer>(v: &LossImplementation, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match v {
            LossImplementation::Auto => "auto",
            LossImplementation::Composed => "composed",
            LossImplementation::Fused => "fused",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LossImplementation, D::Error> {
        match String::deserialize(d)?.as_str() {
            "auto" => Ok(LossImplementation::Auto),
            "composed" => Ok(LossImplementation::Composed),
            "fused" => Ok(LossImplementation::Fused),
            other => Err(D::Error::custom(format!(
                "unknown implementation '{other}': auto, composed or fused"
            ))),
        }
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
        let err = parse("kind = \"arcface\"").unwrap_err();
        assert!(
            err.contains("confidence-penalty"),
            "the kinds are listed: {err}"
        );
        assert!(err.contains("arcface"), "{err}");
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
    fn class_weights_must_match_the_classes() {
        let c = parse("kind = \"softmax\"\nweight = [1.0, 1.0]").unwrap();
        assert!(c.validate_for_classes(2).is_ok());
        assert_eq!(
            c.validate_for_classes(10).unwrap_err().to_string(),
            "the loss has 2 class weights but the dataset has 10 classes"
        );
    }
}
