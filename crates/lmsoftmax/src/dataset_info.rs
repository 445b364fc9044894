//! `lmsoftmax dataset info`: what a dataset folder holds.

use lmsoftmax_data::source::{Images, Source};
use lmsoftmax_data::{DataError, Dataset};
use rayon::prelude::*;
use serde::Serialize;

/// Summary of a dataset, as printed by `lmsoftmax dataset info`.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetInfo {
    /// Dataset name as given.
    pub dataset: String,
    /// Training images.
    pub train: usize,
    /// Test images.
    pub test: usize,
    /// Number of classes.
    pub classes: usize,
    /// Class names, by label.
    pub class_names: Vec<String>,
    /// `[c, h, w]` of the stored images (in-memory sets) or of the network input (folders).
    pub shape: Vec<usize>,
    /// Per-channel mean of the training images on the [0, 1] scale.
    pub mean: Vec<f64>,
    /// Per-channel standard deviation of the training images on the [0, 1] scale.
    pub std: Vec<f64>,
    /// Images skipped as unreadable (ImageFolder with --skip-bad-images).
    pub skipped: usize,
}

fn folder_stats(source: &Source) -> Result<(Vec<f64>, Vec<f64>), DataError> {
    let Images::Folder(folder) = &source.images else {
        unreachable!("called for folders only")
    };
    let sums = (0..folder.len())
        .into_par_iter()
        .map(|i| {
            let (img, _) = folder.load(i)?;
            let mut s = [0f64; 7];
            for p in img.pixels() {
                for c in 0..3 {
                    let v = p[c] as f64 / 255.0;
                    s[c] += v;
                    s[3 + c] += v * v;
                }
            }
            s[6] = (img.width() * img.height()) as f64;
            Ok(s)
        })
        .try_reduce(
            || [0f64; 7],
            |a, b| Ok(std::array::from_fn(|k| a[k] + b[k])),
        )?;
    let n = sums[6].max(1.0);
    let mean: Vec<f64> = (0..3).map(|c| sums[c] / n).collect();
    let std = (0..3)
        .map(|c| (sums[3 + c] / n - mean[c] * mean[c]).max(0.0).sqrt())
        .collect();
    Ok((mean, std))
}

/// Gathers the summary (decoding every training image of a folder dataset for its statistics).
///
/// # Errors
/// A [`DataError`] from decoding.
pub fn dataset_info(name: &str, data: &Dataset) -> Result<DatasetInfo, DataError> {
    let (mean, std, shape, skipped) = match &data.train.images {
        Images::Memory(set) => {
            let (m, s) = set.channel_stats();
            (m, s, set.shape().to_vec(), 0)
        }
        Images::Folder(folder) => {
            let (m, s) = folder_stats(&data.train)?;
            let skipped = folder.skipped().len()
                + match &data.test.images {
                    Images::Folder(f) => f.skipped().len(),
                    Images::Memory(_) => 0,
                };
            (m, s, data.train.output_shape().to_vec(), skipped)
        }
    };
    Ok(DatasetInfo {
        dataset: name.to_string(),
        train: data.train.len(),
        test: data.test.len(),
        classes: data.class_names.len(),
        class_names: data.class_names.clone(),
        shape,
        mean,
        std,
        skipped,
    })
}
