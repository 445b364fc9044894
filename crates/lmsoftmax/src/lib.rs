//! # lmsoftmax
//!
//! The library behind the `lmsoftmax` command: benchmarks of the large-margin softmax loss today,
//! the training tool of the paper's experiments as it grows.
#![warn(missing_docs)]

pub mod bench;
