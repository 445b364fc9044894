//! Benchmarks runnable from the command line (`lmsoftmax bench ...`).

pub mod data;
pub mod loss;
pub mod timing;
pub mod train_step;
