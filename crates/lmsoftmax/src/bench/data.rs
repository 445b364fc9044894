//! `lmsoftmax bench data`: images per second of the training input pipeline (read, augment,
//! batch, hand to Burn as tensors) over whole epochs.

use std::time::Instant;

use burn::tensor::Device;
use lmsoftmax_data::{DataError, Dataset, LoaderConfig, epoch_batches};
use serde::Serialize;

/// Throughput of the training pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct DataThroughput {
    /// Images delivered per second, over all epochs.
    pub images_per_s: f64,
    /// Images delivered.
    pub images: usize,
    /// Epochs run.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Worker threads.
    pub workers: usize,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Runs `epochs` epochs of the training split through the loader into tensors on `device`.
///
/// # Errors
/// The first [`DataError`] of a batch.
pub fn measure(
    data: &Dataset,
    batch_size: usize,
    workers: usize,
    epochs: usize,
    device: &Device,
) -> Result<DataThroughput, DataError> {
    let cfg = LoaderConfig {
        batch_size,
        shuffle: true,
        seed: 0,
        workers,
        prefetch: 2 * workers.max(1),
    };
    let start = Instant::now();
    let mut images = 0;
    for epoch in 0..epochs {
        for batch in epoch_batches(data.train.clone(), cfg, epoch as u64) {
            let batch = batch?;
            let (x, _) = batch.into_tensors(device);
            images += x.dims()[0];
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(DataThroughput {
        images_per_s: images as f64 / seconds,
        images,
        epochs,
        batch_size,
        workers,
        seconds,
    })
}
