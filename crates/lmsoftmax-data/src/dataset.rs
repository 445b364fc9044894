//! Datasets by name: loading a folder the user names into train and test [`Source`]s with the
//! official transforms.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use crate::cifar::{Cifar, CifarLabels, load_cifar};
use crate::error::{DataError, is_dir};
use crate::imagefolder::{FolderOptions, ImageFolder, imagenet_layout};
use crate::imageset::Splits;
use crate::mnist::{FASHION_MNIST_CLASSES, load_mnist};
use crate::source::{Augment, Images, Source};
use crate::synthetic::{SyntheticSpec, synthetic};
use crate::transforms::Normalize;

/// The datasets this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetName {
    /// CIFAR-10 (python or binary layout).
    Cifar10,
    /// CIFAR-100, fine labels.
    Cifar100,
    /// MNIST-format IDX files (MNIST, KMNIST); digits as class names.
    Mnist,
    /// Fashion-MNIST IDX files, with its class names.
    FashionMnist,
    /// One sub-folder per class, for train and test alike (`train/` + `val/` or `test/`).
    ImageFolder,
    /// The ImageNet layout `train/` + `val/` (or `val_dir/`) with the ImageNet transforms.
    ImageNet,
    /// The seeded synthetic dataset (no files).
    Synthetic,
}

impl DatasetName {
    /// Every name accepted on the command line.
    pub const NAMES: [&'static str; 9] = [
        "cifar10",
        "cifar100",
        "mnist",
        "kmnist",
        "fashion-mnist",
        "mnist-format",
        "imagefolder",
        "imagenet",
        "synthetic",
    ];
}

impl FromStr for DatasetName {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "cifar10" | "cifar-10" => Self::Cifar10,
            "cifar100" | "cifar-100" => Self::Cifar100,
            "mnist" | "kmnist" | "mnist-format" => Self::Mnist,
            "fashion-mnist" | "fashionmnist" => Self::FashionMnist,
            "imagefolder" => Self::ImageFolder,
            "imagenet" => Self::ImageNet,
            "synthetic" => Self::Synthetic,
            other => {
                return Err(DataError::Invalid(format!(
                    "unknown dataset '{other}': expected one of {}",
                    Self::NAMES.join(", ")
                )));
            }
        })
    }
}

/// How to open a dataset.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Folder options for ImageFolder/ImageNet.
    pub folder: FolderOptions,
    /// Sizes and seed of the synthetic dataset.
    pub synthetic: SyntheticSpec,
    /// Disable training augmentation (normalise only).
    pub no_augment: bool,
}

/// A dataset's two splits as sources, with its class names.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Which dataset.
    pub name: DatasetName,
    /// Training split with the training transform.
    pub train: Arc<Source>,
    /// Test split with the test transform.
    pub test: Arc<Source>,
    /// Class names.
    pub class_names: Vec<String>,
}

fn memory(splits: Splits, train_aug: Augment, norm: Normalize, name: DatasetName) -> Dataset {
    let class_names = splits.train.class_names().to_vec();
    Dataset {
        name,
        train: Arc::new(Source {
            images: Images::Memory(Arc::new(splits.train)),
            augment: train_aug,
            normalize: norm.clone(),
        }),
        test: Arc::new(Source {
            images: Images::Memory(Arc::new(splits.test)),
            augment: Augment::None,
            normalize: norm,
        }),
        class_names,
    }
}

/// Opens `name` from `dir` (ignored for the synthetic dataset).
///
/// ```
/// use lmsoftmax_data::{DatasetName, OpenOptions, open_dataset};
/// let data = open_dataset(DatasetName::Synthetic, None, &OpenOptions::default())?;
/// assert_eq!(data.class_names.len(), 10);
/// assert_eq!(data.train.len(), 4000);
/// # Ok::<(), lmsoftmax_data::DataError>(())
/// ```
///
/// # Errors
/// A [`DataError`] naming what is missing or malformed.
pub fn open_dataset(
    name: DatasetName,
    dir: Option<&Path>,
    options: &OpenOptions,
) -> Result<Dataset, DataError> {
    let need_dir =
        || dir.ok_or_else(|| DataError::Invalid(format!("dataset {name:?} needs --data DIR")));
    let aug = |a: Augment| if options.no_augment { Augment::None } else { a };
    Ok(match name {
        DatasetName::Cifar10 => memory(
            load_cifar(Cifar::Ten, need_dir()?, CifarLabels::Fine)?,
            aug(Augment::PadCropFlip {
                pad: 4,
                fill: vec![125, 122, 113],
            }),
            Normalize::cifar10(),
            name,
        ),
        DatasetName::Cifar100 => memory(
            load_cifar(Cifar::Hundred, need_dir()?, CifarLabels::Fine)?,
            aug(Augment::PadCropFlip {
                pad: 4,
                fill: vec![129, 124, 112],
            }),
            Normalize::cifar100(),
            name,
        ),
        DatasetName::Mnist | DatasetName::FashionMnist => {
            let names = (name == DatasetName::FashionMnist).then(|| {
                FASHION_MNIST_CLASSES
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            });
            let splits = load_mnist(need_dir()?, names)?;
            let (mean, std) = splits.train.channel_stats();
            memory(
                splits,
                Augment::None,
                Normalize::from_stats(&mean, &std),
                name,
            )
        }
        DatasetName::Synthetic => {
            let splits = synthetic(options.synthetic);
            let (mean, std) = splits.train.channel_stats();
            let fill = mean.iter().map(|m| (m * 255.0) as u8).collect();
            memory(
                splits,
                aug(Augment::PadCropFlip { pad: 4, fill }),
                Normalize::from_stats(&mean, &std),
                name,
            )
        }
        DatasetName::ImageNet | DatasetName::ImageFolder => {
            let root = need_dir()?;
            let (train, test) = if name == DatasetName::ImageNet
                || is_dir(&root.join("val"))?
                || is_dir(&root.join("val_dir"))?
            {
                imagenet_layout(root, &options.folder)?
            } else if is_dir(&root.join("test"))? {
                let train = ImageFolder::scan(&root.join("train"), &options.folder)?;
                (
                    train,
                    ImageFolder::scan(&root.join("test"), &options.folder)?,
                )
            } else {
                return Err(DataError::Missing {
                    path: root.join("train"),
                    what: "train/ and val/ (or val_dir/ or test/) folders of class sub-folders"
                        .into(),
                });
            };
            let class_names = train.class_names().to_vec();
            Dataset {
                name,
                train: Arc::new(Source {
                    images: Images::Folder(Arc::new(train)),
                    augment: aug(Augment::ImageNetTrain { size: 224 }),
                    normalize: Normalize::imagenet(),
                }),
                test: Arc::new(Source {
                    images: Images::Folder(Arc::new(test)),
                    augment: Augment::ImageNetTest {
                        resize: 256,
                        crop: 224,
                    },
                    normalize: Normalize::imagenet(),
                }),
                class_names,
            }
        }
    })
}
