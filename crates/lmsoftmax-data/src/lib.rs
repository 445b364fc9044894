//! # lmsoftmax-data
//!
//! The data side of the large-margin softmax experiments, usable without the training tool:
//! CIFAR-10/100 (python-pickle and binary layouts), MNIST-format IDX files, ImageFolder and the
//! ImageNet layout, and a seeded synthetic dataset; the official augmentation (pad-4 crop + flip
//! for CIFAR, RandomResizedCrop + flip + ColorJitter + PCA lighting for ImageNet); and a loader
//! that makes shuffled batches on worker threads ahead of training, reproducible from
//! `(seed, epoch, index)` whatever the number of workers.
//!
//! # Example
//! ```
//! use lmsoftmax_data::{DatasetName, LoaderConfig, OpenOptions, SyntheticSpec, epoch_batches, open_dataset};
//! let options = OpenOptions { synthetic: SyntheticSpec { train: 64, test: 16, seed: 0 }, ..Default::default() };
//! let data = open_dataset(DatasetName::Synthetic, None, &options)?;
//! let cfg = LoaderConfig { batch_size: 32, shuffle: true, seed: 1, workers: 2, prefetch: 4 };
//! for batch in epoch_batches(data.train.clone(), cfg, 0) {
//!     let batch = batch?;
//!     assert_eq!(batch.shape[1..], [3, 32, 32]);
//! }
//! # Ok::<(), lmsoftmax_data::DataError>(())
//! ```
#![warn(missing_docs)]

pub mod batch_buffers;
pub mod cifar;
pub mod dataset;
pub mod download;
mod error;
pub mod imagefolder;
pub mod imageset;
pub mod loader;
pub mod mnist;
pub mod pickle;
pub mod source;
pub mod synthetic;
pub mod transforms;

pub use cifar::{Cifar, CifarLabels, load_cifar};
pub use dataset::{Dataset, DatasetName, OpenOptions, open_dataset};
pub use error::DataError;
pub use imagefolder::{FolderOptions, ImageFolder};
pub use imageset::{ImageSet, Splits};
pub use loader::{
    HostBatch, LoaderConfig, batches_in_order, batches_per_epoch, epoch_batches, epoch_order,
};
pub use mnist::load_mnist;
pub use synthetic::{SyntheticSpec, synthetic};
