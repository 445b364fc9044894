//! Training configurations: the official ones ship as TOML in `configs/`, users may pass their own.

use anyhow::{Context, Result, bail};
use lmsoftmax_loss::LossConfig;
use serde::{Deserialize, Serialize};

/// The per-epoch learning-rate schedule (set once at the start of each epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LrSchedule {
    /// `epochs` log-spaced values from `start` to `end`.
    LogSpaced {
        /// First epoch's rate.
        start: f64,
        /// Last epoch's rate.
        end: f64,
    },
    /// `start * gamma^(epoch / every)`.
    Step {
        /// First rate.
        start: f64,
        /// Factor.
        gamma: f64,
        /// Epochs between steps.
        every: usize,
    },
}

impl LrSchedule {
    /// Checks the rates and steps: every rate finite and > 0, `gamma` finite and > 0, `every`
    /// at least 1.
    ///
    /// # Errors
    /// The first value out of range, named.
    pub fn validate(&self) -> Result<()> {
        let rate = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "{name} must be a finite learning rate > 0, got {v}"
                ))
            }
        };
        match self {
            Self::LogSpaced { start, end } => {
                rate("start", *start)?;
                rate("end", *end)
            }
            Self::Step {
                start,
                gamma,
                every,
            } => {
                rate("start", *start)?;
                if !(gamma.is_finite() && *gamma > 0.0) {
                    bail!("gamma must be a finite factor > 0, got {gamma}");
                }
                if *every == 0 {
                    bail!("every must be >= 1 (epochs between steps), got 0");
                }
                Ok(())
            }
        }
    }
}

/// The most epochs a configuration may have.
pub const MAX_EPOCHS: usize = 1_000_000;

/// A training configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Name (the official config names).
    pub name: String,
    /// Epochs.
    pub epochs: usize,
    /// Global batch size.
    pub batch_size: usize,
    /// SGD momentum (no dampening, no Nesterov, as PyTorch's SGD).
    pub momentum: f64,
    /// Coupled L2 weight decay.
    pub weight_decay: f64,
    /// The loss and its options (the loss crate's own configuration: a `[loss]` table).
    pub loss: LossConfig,
    /// Learning rates.
    pub lr: LrSchedule,
}

/// The shipped configurations, by name.
pub const BUILTIN: [(&str, &str); 15] = [
    ("layer13", include_str!("../../configs/layer13.toml")),
    (
        "layer13_largemargin",
        include_str!("../../configs/layer13_largemargin.toml"),
    ),
    (
        "layer13_softmax",
        include_str!("../../configs/layer13_softmax.toml"),
    ),
    (
        "layer13_label_smoothing",
        include_str!("../../configs/layer13_label_smoothing.toml"),
    ),
    (
        "layer13_focal",
        include_str!("../../configs/layer13_focal.toml"),
    ),
    (
        "layer13_poly",
        include_str!("../../configs/layer13_poly.toml"),
    ),
    (
        "layer13_confidence_penalty",
        include_str!("../../configs/layer13_confidence_penalty.toml"),
    ),
    (
        "layer13_cosface",
        include_str!("../../configs/layer13_cosface.toml"),
    ),
    (
        "layer13_arcface",
        include_str!("../../configs/layer13_arcface.toml"),
    ),
    (
        "layer13_combined",
        include_str!("../../configs/layer13_combined.toml"),
    ),
    (
        "layer13_subcenter_arcface",
        include_str!("../../configs/layer13_subcenter_arcface.toml"),
    ),
    (
        "layer13_sphereface",
        include_str!("../../configs/layer13_sphereface.toml"),
    ),
    (
        "layer13_lsoftmax",
        include_str!("../../configs/layer13_lsoftmax.toml"),
    ),
    ("imagenet", include_str!("../../configs/imagenet.toml")),
    (
        "imagenet_largemargin",
        include_str!("../../configs/imagenet_largemargin.toml"),
    ),
];

impl TrainConfig {
    /// Parses and checks a TOML configuration.
    ///
    /// # Errors
    /// A parse error naming the key, or a value out of range.
    pub fn from_toml(text: &str) -> Result<Self> {
        let c: TrainConfig = toml::from_str(text).context("invalid training configuration")?;
        c.validate()?;
        Ok(c)
    }

    /// Checks every value's range; the loss's options are checked by the loss crate.
    ///
    /// # Errors
    /// The first value out of range, named.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 || self.batch_size == 0 {
            bail!("epochs and batch_size must be >= 1");
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            bail!(
                "weight_decay must be a finite number >= 0, got {}",
                self.weight_decay
            );
        }
        if !(0.0..1.0).contains(&self.momentum) {
            bail!("momentum must lie in [0, 1), got {}", self.momentum);
        }
        if self.epochs > MAX_EPOCHS {
            bail!("epochs must be at most {MAX_EPOCHS}, got {}", self.epochs);
        }
        self.lr.validate().context("in the [lr] table")?;
        // the schedules are monotone: their extremes are the first and the last epoch's rates,
        // which must survive the rounding to f32 (a step schedule can decay to 0 there)
        for epoch in [0, self.epochs - 1] {
            let lr = self.lr(epoch);
            if !(lr.is_finite() && lr > 0.0) {
                bail!(
                    "in the [lr] table: the learning rate of epoch {} is {lr} in f32 (the \
                     schedule decays to 0 or grows past f32's range over {} epochs)",
                    epoch + 1,
                    self.epochs
                );
            }
        }
        self.loss.validate().context("in the [loss] table")?;
        Ok(())
    }

    /// A shipped configuration by name.
    ///
    /// # Errors
    /// An unknown name, listing the known ones.
    pub fn builtin(name: &str) -> Result<Self> {
        let (_, text) = BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .with_context(|| format!("unknown config '{name}': known configs are {}", names()))?;
        Self::from_toml(text)
    }

    /// The learning rate of `epoch` (0-based), rounded to f32 as the official code's table.
    pub fn lr(&self, epoch: usize) -> f64 {
        let v = match &self.lr {
            LrSchedule::LogSpaced { start, end } => {
                if self.epochs == 1 {
                    *start
                } else {
                    let t = epoch as f64 / (self.epochs - 1) as f64;
                    10f64.powf(start.log10() + t * (end.log10() - start.log10()))
                }
            }
            LrSchedule::Step {
                start,
                gamma,
                every,
            } => start * gamma.powi((epoch / (*every).max(1)) as i32),
        };
        v as f32 as f64
    }

    /// The same configuration over `epochs` epochs: a log-spaced schedule keeps its start and
    /// end, a step schedule keeps its steps at the same fractions of training.
    pub fn with_epochs(mut self, epochs: usize) -> Self {
        if let LrSchedule::Step { every, .. } = &mut self.lr {
            *every = ((*every * epochs) as f64 / self.epochs as f64)
                .round()
                .max(1.0) as usize;
        }
        self.epochs = epochs;
        self
    }
}

/// The shipped configuration names, comma-separated.
pub fn names() -> String {
    BUILTIN
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_cifar_schedule_matches_the_protocol_table() {
        let c = TrainConfig::builtin("layer13_largemargin").unwrap();
        assert_eq!(c.loss, LossConfig::default());
        assert_eq!(c.loss.reg_lambda(), 0.3);
        // PROTOCOL.md §2: float32 values
        for (e, want) in [
            (0, 0.1f32),
            (1, 0.086851135),
            (10, 0.024420531),
            (25, 0.0029470518),
            (49, 1e-4), // the table's 9.9999997e-05 is float32(1e-4)
        ] {
            assert_eq!(c.lr(e) as f32, want, "epoch {e}");
        }
        let short = c.with_epochs(5);
        assert_eq!(short.lr(0) as f32, 0.1);
        assert_eq!(short.lr(4) as f32, 1e-4);
    }

    #[test]
    fn imagenet_steps_every_30_epochs() {
        let c = TrainConfig::builtin("imagenet").unwrap();
        assert_eq!((c.epochs, c.batch_size), (120, 256));
        assert_eq!(c.lr(29) as f32, 0.1);
        assert_eq!(c.lr(30) as f32, 0.01);
        assert_eq!(c.lr(119) as f32, 1e-4);
        assert_eq!(c.clone().with_epochs(12).lr(3) as f32, 0.01);
    }

    #[test]
    fn every_loss_kind_has_a_shipped_layer13_config_at_its_defaults() {
        for kind in lmsoftmax_loss::LossKind::ALL {
            let config = BUILTIN
                .iter()
                .map(|(n, _)| TrainConfig::builtin(n).unwrap())
                .find(|c| c.name.starts_with("layer13") && c.loss.kind() == kind)
                .unwrap_or_else(|| panic!("no shipped layer13 config trains {kind}"));
            assert_eq!(config.loss, LossConfig::of_kind(kind), "{}", config.name);
        }
    }

    #[test]
    fn every_builtin_parses_and_unknown_names_are_listed() {
        for (name, _) in BUILTIN {
            assert_eq!(TrainConfig::builtin(name).unwrap().name, name);
        }
        let err = TrainConfig::builtin("layer14").unwrap_err().to_string();
        assert!(err.contains("layer13_largemargin"), "{err}");
        let err = TrainConfig::from_toml("name = \"x\"\nepochs = 1\n").unwrap_err();
        assert!(format!("{err:#}").contains("missing field"), "{err:#}");
    }

    fn with(line_from: &str, line_to: &str) -> String {
        let text = BUILTIN[1].1;
        assert!(text.contains(line_from), "{line_from}");
        text.replace(line_from, line_to)
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_at_every_level() {
        for (from, to, named) in [
            ("epochs = 50", "epochs = 50\nepoch = 3", "epoch"),
            ("start = 0.1", "start = 0.1\nstrat = 0.2", "strat"),
            (
                "reg_lambda = 0.3",
                "reg_lambda = 0.3\nreg_lamda = 1",
                "reg_lamda",
            ),
            ("reg_lambda = 0.3", "reg_lambda = -0.3", "reg_lambda"),
            ("momentum = 0.9", "momentum = 1.5", "momentum"),
            (
                "weight_decay = 1e-4",
                "weight_decay = -1e-4",
                "weight_decay",
            ),
            (
                "kind = \"large-margin\"",
                "kind = \"largemargin\"",
                "largemargin",
            ),
            (
                "start = 0.1",
                "start = -0.1",
                "start must be a finite learning rate > 0",
            ),
            (
                "end = 1e-4",
                "end = 0.0",
                "end must be a finite learning rate > 0",
            ),
            ("start = 0.1", "start = nan", "start must be"),
        ] {
            let err = format!("{:#}", TrainConfig::from_toml(&with(from, to)).unwrap_err());
            assert!(err.contains(named), "{to}: {err}");
        }
    }

    #[test]
    fn step_schedules_are_range_checked() {
        let text = BUILTIN.iter().find(|(n, _)| *n == "imagenet").unwrap().1;
        for (from, to, named) in [
            ("gamma = 0.1", "gamma = 0.0", "gamma must be"),
            ("every = 30", "every = 0", "every must be >= 1"),
            ("start = 0.1", "start = -1.0", "start must be"),
            // found by fuzzing: 0.1 x 0.1^119 is 0 in f32, so the run would stop learning
            ("every = 30", "every = 1", "epoch 120 is 0 in f32"),
            ("gamma = 0.1", "gamma = 1e20", "epoch 120 is inf in f32"),
            ("epochs = 120", "epochs = 1000001", "epochs must be at most"),
        ] {
            assert!(text.contains(from), "{from}");
            let err = format!(
                "{:#}",
                TrainConfig::from_toml(&text.replace(from, to)).unwrap_err()
            );
            assert!(err.contains(named), "{to}: {err}");
        }
    }

    #[test]
    fn the_loss_table_reaches_every_option_of_the_loss() {
        let text = with(
            "reg_lambda = 0.3",
            "reg_lambda = 0.5\ndeg_logit = 1.0\nlabel_smoothing = 0.1\nignore_index = -100",
        );
        let c = TrainConfig::from_toml(&text).unwrap();
        let m = c.loss.large_margin_config().unwrap();
        assert_eq!(
            (m.reg_lambda, m.deg_logit, m.label_smoothing, m.ignore_index),
            (0.5, Some(1.0), 0.1, Some(-100))
        );
        // what a run writes as its config.toml reads back as the same configuration
        let written = toml::to_string(&c).unwrap();
        assert_eq!(TrainConfig::from_toml(&written).unwrap(), c, "{written}");
    }
}
