//! `lmsoftmax train` and `lmsoftmax demo`: the training tool.
//!
//! Top-down: [`run`] (the epoch loop and what each epoch records) uses [`epoch`] (one training
//! pass), [`evaluate`] (the test pass) and [`state`] (network, optimizer and run state, fresh or
//! from a [`checkpoint`]); a step is [`step`] on one device or [`parallel`] over several, on the
//! [`model`] (a network, and a margin head when the loss is one).

pub mod checkpoint;
pub mod collective;
pub mod config;
pub mod demo;
pub mod epoch;
pub mod evaluate;
pub mod identity;
pub mod interrupt;
pub mod model;
pub mod options;
pub mod parallel;
pub mod phases;
pub mod run;
pub mod state;
pub mod step;

pub use config::TrainConfig;
pub use evaluate::{EvalStats, evaluate_checkpoint, evaluate_margins, evaluate_run};
pub use options::TrainOptions;
pub use run::{RunSummary, train};
