//! `run.json`: what defines a run, enough for `lmsoftmax report` to group runs into
//! experiments and seeds.

use lmsoftmax_kernels::autocast::Precision;
use lmsoftmax_loss::{LossConfig, LossKind};
use serde::{Deserialize, Serialize};

/// What `run.json` records about a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunMeta {
    /// Dataset name.
    pub dataset: String,
    /// Network.
    pub arch: String,
    /// Width multiplier.
    pub width: f32,
    /// Seed.
    pub seed: u64,
    /// Configuration name.
    pub config: String,
    /// The loss and its options.
    pub loss: LossConfig,
    /// Epochs configured.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Precision of the convolutions and linear layers (of the run's last start: a resumed
    /// run may change it); fp32 in files of earlier versions.
    pub precision: Precision,
}

impl RunMeta {
    /// The configuration as `report` names it: the configuration's name, with ` (bf16)` after
    /// it for a bf16 run, so that bf16 and fp32 runs of one configuration are separate rows.
    ///
    /// ```
    /// # use lmsoftmax::run_folder::meta::RunMeta;
    /// # use lmsoftmax_kernels::autocast::Precision;
    /// # use lmsoftmax_loss::LossConfig;
    /// let mut m = RunMeta { dataset: "cifar10".into(), arch: "layer13".into(), width: 1.0, seed: 0,
    ///     config: "layer13".into(), loss: LossConfig::default(), epochs: 1, batch_size: 128,
    ///     precision: Precision::Fp32 };
    /// assert_eq!(m.config_label(), "layer13");
    /// m.precision = Precision::Bf16;
    /// assert_eq!(m.config_label(), "layer13 (bf16)");
    /// ```
    pub fn config_label(&self) -> String {
        match self.precision {
            Precision::Fp32 => self.config.clone(),
            p => format!("{} ({p})", self.config),
        }
    }
}

/// `run.json` as earlier versions wrote it too: `"loss": "large-margin", "reg_lambda": 0.3`
/// instead of the `loss` table, so that `report` still reads old runs.
#[derive(Deserialize)]
struct RunMetaFile {
    dataset: String,
    arch: String,
    width: f32,
    seed: u64,
    config: String,
    loss: LossField,
    #[serde(default)]
    reg_lambda: Option<f64>,
    epochs: usize,
    batch_size: usize,
    #[serde(default)]
    precision: Precision,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum LossField {
    Kind(LossKind),
    Table(LossConfig),
}

impl<'de> Deserialize<'de> for RunMeta {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = RunMetaFile::deserialize(d)?;
        let loss = match f.loss {
            LossField::Table(c) => c,
            LossField::Kind(kind) => {
                let c = LossConfig::of_kind(kind);
                match f.reg_lambda {
                    Some(l) if kind == LossKind::LargeMargin => {
                        c.with_reg_lambda(l).map_err(serde::de::Error::custom)?
                    }
                    _ => c,
                }
            }
        };
        Ok(Self {
            dataset: f.dataset,
            arch: f.arch,
            width: f.width,
            seed: f.seed,
            config: f.config,
            loss,
            epochs: f.epochs,
            batch_size: f.batch_size,
            precision: f.precision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_json_round_trips_and_old_files_still_read() {
        let meta = RunMeta {
            dataset: "cifar10".into(),
            arch: "layer13".into(),
            width: 0.25,
            seed: 3,
            config: "layer13_largemargin".into(),
            loss: LossConfig::default().with_reg_lambda(0.5).unwrap(),
            epochs: 12,
            batch_size: 128,
            precision: Precision::Fp32,
        };
        let text = serde_json::to_string_pretty(&meta).unwrap();
        assert_eq!(serde_json::from_str::<RunMeta>(&text).unwrap(), meta);
        let old = r#"{"dataset":"cifar10","arch":"layer13","width":0.25,"seed":3,
            "config":"layer13_largemargin","loss":"large-margin","reg_lambda":0.5,"epochs":12,
            "batch_size":128}"#;
        assert_eq!(serde_json::from_str::<RunMeta>(old).unwrap(), meta);
        let old_softmax = old
            .replace("\"large-margin\"", "\"softmax\"")
            .replace("0.5", "0.0");
        let m: RunMeta = serde_json::from_str(&old_softmax).unwrap();
        assert_eq!(m.loss.kind(), LossKind::Softmax);
        let bf16 = RunMeta {
            precision: Precision::Bf16,
            ..meta
        };
        let text = serde_json::to_string(&bf16).unwrap();
        assert!(text.contains(r#""precision":"bf16""#), "{text}");
        assert_eq!(serde_json::from_str::<RunMeta>(&text).unwrap(), bf16);
    }
}
