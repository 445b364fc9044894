//! What every logit-level loss does with a batch, written once: flatten the logits to rows,
//! read and check the targets, plan the rows, compute them with the fused kernel or the composed
//! ops, trace a non-finite loss back to its row, reduce. A loss only says which [`PlanOptions`]
//! (its term and options) it stands for.

use burn::tensor::{DType, Device, Int, Tensor};

use crate::composed::{composed_rows, compute_dtype};
use crate::config::LossImplementation;
use crate::error::{ConfigError, LossError};
use crate::fused;
use crate::plan::{PlanOptions, RowPlan};
use crate::reduction::LossReduction;
use crate::rows::{flatten_rows, read_targets};

/// The per-row losses `l_n` of `logits` against `targets` for the planned options, `[rows]`
/// (each row carries its share of a mean).
///
/// # Errors
/// Bad shapes, dtype or targets; the fused kernel forced where it does not run; with
/// `check_finite`, a non-finite logit (its row).
pub(crate) fn planned_rows<const D: usize, const T: usize>(
    options: &PlanOptions<'_>,
    implementation: LossImplementation,
    check_finite: bool,
    logits: Tensor<D>,
    targets: Tensor<T, Int>,
) -> Result<Tensor<1>, LossError> {
    let flat = flatten_rows(logits, &targets)?;
    let x = compute_dtype(flat);
    let use_fused = fused_on(implementation, &x.device(), x.dtype())?;
    let classes = x.dims()[1];
    let host_targets = read_targets(targets);
    let plan = RowPlan::new(options, &host_targets, classes)?;
    let rows = if use_fused {
        fused::fused_rows(x.clone(), plan)
    } else {
        composed_rows(x.clone(), &plan)
    };
    if check_finite {
        finite_or_row(&rows, x)?;
    }
    Ok(rows)
}

/// The rows reduced: summed for mean (the rows carry their share) and sum, as they are for none.
pub(crate) fn reduce(rows: Tensor<1>, reduction: LossReduction) -> Tensor<1> {
    match reduction {
        LossReduction::Mean | LossReduction::Sum => rows.sum(),
        LossReduction::None => rows,
    }
}

/// Whether `implementation` computes with the fused kernel on `device` for logits computed in
/// `dtype`.
///
/// # Errors
/// [`ConfigError::FusedUnavailable`] when the fused kernel is forced on a device or dtype it
/// does not run on.
pub(crate) fn fused_on(
    implementation: LossImplementation,
    device: &Device,
    dtype: DType,
) -> Result<bool, ConfigError> {
    let runs = fused::runs_on(device, dtype);
    match implementation {
        LossImplementation::Composed => Ok(false),
        LossImplementation::Auto => Ok(runs),
        LossImplementation::Fused if runs => Ok(true),
        LossImplementation::Fused => Err(ConfigError::FusedUnavailable {
            device: format!("{device:?} in {dtype:?}"),
        }),
    }
}

/// Reads the per-row losses; a non-finite one is traced back to the row of logits that caused it
/// (the margin heads use it on their margin logits too).
pub(crate) fn finite_or_row(rows: &Tensor<1>, logits: Tensor<2>) -> Result<(), LossError> {
    let values = rows
        .clone()
        .detach()
        .into_data()
        .try_into_vec_as::<f64>()
        .expect("float losses convert to f64");
    let Some(row) = values.iter().position(|v| !v.is_finite()) else {
        return Ok(());
    };
    let classes = logits.dims()[1];
    let row_values = logits
        .detach()
        .slice([row..row + 1, 0..classes])
        .into_data()
        .try_into_vec_as::<f64>()
        .expect("float logits convert to f64");
    let value = row_values
        .into_iter()
        .find(|v| !v.is_finite())
        .unwrap_or(values[row]);
    Err(LossError::NonFiniteLogits { row, value })
}
