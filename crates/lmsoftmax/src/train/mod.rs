//! `lmsoftmax train` and `lmsoftmax demo`: the training tool.

pub mod checkpoint;
pub mod config;
pub mod demo;
pub mod parallel;
pub mod run;

pub use config::{LossKind, TrainConfig};
pub use run::{
    COLUMNS, EpochRow, EvalStats, RunMeta, RunSummary, TrainOptions, evaluate, evaluate_checkpoint,
    evaluate_margins, evaluate_run, train,
};
