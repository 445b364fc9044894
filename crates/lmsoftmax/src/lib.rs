//! # lmsoftmax
//!
//! The library behind the `lmsoftmax` command: benchmarks of the large-margin softmax loss and of
//! the input pipeline, dataset summaries, and (as it grows) the training tool of the paper's
//! experiments.
#![warn(missing_docs)]

pub mod bench;
pub mod dataset_info;
pub mod device;
pub mod report;
pub mod train;
