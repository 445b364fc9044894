//! A loss chosen by kind, with the options of that kind: what a training configuration's
//! `[loss]` table holds. It is read with serde (unknown keys are an error, missing ones take the
//! official defaults), validated here once, and builds the loss module.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::config::{
    LargeMarginInSoftmaxLossConfig, LossImplementation, SoftmaxCrossEntropyLossConfig,
};
use crate::error::ConfigError;
use crate::loss::LargeMarginInSoftmaxLoss;
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
}

impl LossKind {
    /// Every kind, in the order tables list them.
    pub const ALL: [LossKind; 2] = [LossKind::Softmax, LossKind::LargeMargin];

    /// The kind's name in configuration files (`kind = "large-margin"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Softmax => "softmax",
            Self::LargeMargin => "large-margin",
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
        }
    }

    /// The shared options.
    pub fn common(&self) -> &CommonOptions {
        match self {
            Self::Softmax { common } | Self::LargeMargin { common, .. } => common,
        }
    }

    /// The weight of the large-margin regulariser (0 for kinds without one).
    pub fn reg_lambda(&self) -> f64 {
        match self {
            Self::LargeMargin { reg_lambda, .. } => *reg_lambda,
            Self::Softmax { .. } => 0.0,
        }
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
        }
    }

    /// Sets the regulariser's weight.
    ///
    /// # Errors
    /// The kind has no regulariser, or the value is invalid.
    pub fn with_reg_lambda(self, lambda: f64) -> Result<Self, ConfigError> {
        match self {
            Self::LargeMargin {
                deg_logit, common, ..
            } => {
                let next = Self::LargeMargin {
                    reg_lambda: lambda,
                    deg_logit,
                    common,
                };
                next.validate()?;
                Ok(next)
            }
            other => Err(ConfigError::NotAnOption {
                option: "reg_lambda",
                kind: other.kind().name(),
            }),
        }
    }

    /// The large-margin module configuration this choice stands for (softmax is lambda 0).
    pub fn module_config(&self) -> LargeMarginInSoftmaxLossConfig {
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
        };
        base.with_reduction(LossReduction::Mean)
    }

    /// Checks every option (the module configuration's own checks).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.module_config().validate()
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
    pub fn init(&self, device: &Device) -> Result<LargeMarginInSoftmaxLoss, ConfigError> {
        self.module_config().init(device)
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
        assert_eq!(lm.module_config(), LargeMarginInSoftmaxLossConfig::new());
        let soft = parse("kind = \"softmax\"").unwrap();
        assert_eq!(soft.module_config().reg_lambda, 0.0);
    }

    #[test]
    fn every_option_reaches_the_module_config() {
        let c = parse(
            "kind = \"large-margin\"\nreg_lambda = 1.5\ndeg_logit = 0.25\nweight = [1.0, 2.0]\n\
             ignore_index = -100\nlabel_smoothing = 0.1\nimplementation = \"composed\"\n",
        )
        .unwrap();
        let m = c.module_config();
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
