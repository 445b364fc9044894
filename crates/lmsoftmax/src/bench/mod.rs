//! Benchmarks runnable from the command line (`lmsoftmax bench ...`).

pub mod loss;
pub mod timing;
