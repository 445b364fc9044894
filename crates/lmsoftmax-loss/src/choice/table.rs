//! The `[loss]` table as a configuration file holds it: read strictly (the shared keys, then the
//! kind's own, each part refusing unknown keys) and written back (`kind` first, integers where
//! the kind takes integers).

use serde::{Deserialize, Serialize};

use super::{
    CommonOptions, LossConfig, LossKind, default_beta, default_epsilon, default_gamma,
    default_lambda, default_smoothing,
};

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
            head => {
                let known = head.parameters();
                let mut values: Vec<f64> = known.iter().map(|(_, v)| *v).collect();
                for (key, value) in own {
                    let Some(at) = known.iter().position(|(n, _)| *n == key) else {
                        let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
                        return Err(D::Error::custom(format!(
                            "in the {kind} loss: unknown key `{key}`; its parameters are {} (the \
                             shared keys are {})",
                            names.join(", "),
                            COMMON_KEYS.join(", ")
                        )));
                    };
                    values[at] = value.as_f64().ok_or_else(|| {
                        D::Error::custom(format!(
                            "in the {kind} loss: `{key}` must be a number, got {value}"
                        ))
                    })?;
                }
                Self::Head {
                    kind: head,
                    values,
                    common,
                }
            }
        })
    }
}

/// The table a configuration file holds: `kind`, the kind's own parameters (integers where the
/// kind takes integers), `deg_logit` if set, then the shared options that are set.
impl Serialize for LossConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let kind = self.kind();
        let mut entries: Vec<(String, serde_json::Value)> =
            vec![("kind".into(), kind.name().into())];
        for (name, value) in self.parameters() {
            let v = if kind.integer_parameter(name) && value.fract() == 0.0 && value.abs() < 1e15 {
                serde_json::Value::from(value as i64)
            } else {
                serde_json::Value::from(value)
            };
            entries.push((name.into(), v));
        }
        if let Self::LargeMargin {
            deg_logit: Some(d), ..
        } = self
        {
            entries.push(("deg_logit".into(), (*d).into()));
        }
        match serde_json::to_value(self.common()).map_err(S::Error::custom)? {
            serde_json::Value::Object(common) => entries.extend(common),
            other => return Err(S::Error::custom(format!("shared options as {other}"))),
        }
        let mut map = s.serialize_map(Some(entries.len()))?;
        for (k, v) in &entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// `implementation = "auto" | "composed" | "fused"` in configuration files.
pub(super) mod implementation_name {
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
