//! Integration tests of the loss: one test binary, one module per area.
//!
//! - `golden`: the official code's float64 golden vectors, both implementations, every dtype.
//! - `family_golden`: the margin-loss family's float64 golden vectors (FAMILY.md).
//! - `family`: properties of the logit-level family (neutral parameters, focal, agreement).
//! - `heads`: the margin heads at cos = ±1 and zero rows, and their special cases.
//! - `properties`: proptest invariances and finite-difference gradients.
//! - `equivalence`: lambda = 0 against Burn's `CrossEntropyLoss`, options that must not matter.
//! - `errors`: every error path with its message.
//! - `numerics`: extreme logits against a float64 reference.
//! - `adversaries`: huge, infinite and NaN logits, C = 1 and C = 100,000, all-ignored and empty
//!   batches, for every kind and implementation: an error or a finite value.

mod adversaries;
mod common;
mod equivalence;
mod errors;
mod family;
mod family_golden;
mod golden;
mod heads;
mod numerics;
mod properties;
