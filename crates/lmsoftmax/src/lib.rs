//! # lmsoftmax
//!
//! The library behind the `lmsoftmax` command, the training tool of the paper's experiments.
//!
//! Data flows one way: [`cli`] (the flags) -> [`plan`] (one resolved, validated run) -> [`train`]
//! (data -> network -> loss) -> [`run_folder`] (every file a run writes) -> [`report`] (the
//! paper's table and figures, read back through [`run_folder`]). [`commands`] holds the
//! subcommands' handlers, [`bench`] the benchmarks, [`plot`] the figures' drawing primitives.
#![warn(missing_docs)]

pub mod atomic;
pub mod bench;
pub mod cli;
pub mod commands;
pub mod dataset_info;
pub mod device;
pub mod distributed;
pub mod entry;
pub mod error;
pub mod plan;
pub mod plot;
pub mod report;
pub mod run_folder;
pub mod train;
