//! Logits and targets as rows: the shape and dtype checks shared by the loss and the
//! diagnostics, the class axis moved last, and the targets read on the host.

use burn::tensor::{DType, Int, Tensor};

use crate::error::LossError;

/// Moves the class axis last and flattens to `[rows, C]`, checking the shapes and the dtype.
pub(crate) fn flatten_rows<const D: usize, const T: usize>(
    logits: Tensor<D>,
    targets: &Tensor<T, Int>,
) -> Result<Tensor<2>, LossError> {
    let dims = logits.dims();
    let target_dims = targets.dims();
    if !matches!(
        logits.dtype(),
        DType::F16 | DType::BF16 | DType::F32 | DType::F64
    ) {
        return Err(LossError::UnsupportedDType(format!("{:?}", logits.dtype())));
    }
    let expected: Vec<usize> = if D >= 2 {
        dims.iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, d)| *d)
            .collect()
    } else {
        Vec::new()
    };
    if D < 2 || T + 1 != D || target_dims.as_slice() != expected.as_slice() {
        return Err(LossError::ShapeMismatch {
            logits: dims.to_vec(),
            targets: target_dims.to_vec(),
            expected,
        });
    }
    let classes = dims[1];
    if classes < 2 {
        return Err(LossError::TooFewClasses(classes));
    }
    let rows: usize = expected.iter().product();
    Ok(if D == 2 {
        logits.reshape([rows, classes])
    } else {
        // [N, C, d1..dk] -> [N, d1..dk, C] -> [rows, C]
        let mut axes = [0usize; D];
        axes[0] = 0;
        for (i, axis) in axes.iter_mut().enumerate().skip(1).take(D - 2) {
            *axis = i + 1;
        }
        axes[D - 1] = 1;
        logits.permute(axes).reshape([rows, classes])
    })
}

/// The first target outside `[0, classes)`, as the error naming its row.
pub(crate) fn check_targets(targets: &[i64], classes: usize) -> Result<(), LossError> {
    match targets
        .iter()
        .enumerate()
        .find(|(_, t)| **t < 0 || **t as u64 >= classes as u64)
    {
        Some((row, &target)) => Err(LossError::TargetOutOfRange {
            row,
            target,
            num_classes: classes,
        }),
        None => Ok(()),
    }
}

/// The targets as host integers, row-major.
pub(crate) fn read_targets<const T: usize>(targets: Tensor<T, Int>) -> Vec<i64> {
    targets
        .into_data()
        .try_into_vec_as::<i64>()
        .expect("integer targets convert to i64")
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Int, Tensor};

    use super::*;

    /// `[N=1, C=2, d=3]`: row k holds the two class logits of position k.
    #[test]
    fn spatial_logits_become_one_row_per_position() {
        let device = Device::flex();
        let logits = Tensor::<3>::from_floats([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]], &device);
        let targets = Tensor::<2, Int>::from_ints([[0, 1, 0]], &device);
        let rows = flatten_rows(logits, &targets).unwrap();
        assert_eq!(rows.dims(), [3, 2]);
        let values = rows.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(values, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(read_targets(targets), [0, 1, 0]);
    }
}
