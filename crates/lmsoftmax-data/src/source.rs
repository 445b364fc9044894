//! A split with its transform: what the loader draws samples from.

use std::sync::Arc;

use rand_pcg::Pcg64Mcg;

use crate::error::DataError;
use crate::imagefolder::ImageFolder;
use crate::imageset::ImageSet;
use crate::transforms::{self, Normalize};

/// How each image is turned into the network's input.
#[derive(Debug, Clone, PartialEq)]
pub enum Augment {
    /// Normalise only (test transform of CIFAR, MNIST, synthetic).
    None,
    /// CIFAR training: pad `pad` with `fill`, random crop, flip, normalise.
    PadCropFlip {
        /// Padding on each side.
        pad: usize,
        /// Fill colour, one byte per channel.
        fill: Vec<u8>,
    },
    /// ImageNet training: RandomResizedCrop(size), flip, ColorJitter 0.4, lighting 0.1.
    ImageNetTrain {
        /// Output side.
        size: u32,
    },
    /// ImageNet test: resize the shorter side to `resize`, centre crop `crop`.
    ImageNetTest {
        /// Shorter side after resizing.
        resize: u32,
        /// Output side.
        crop: u32,
    },
}

/// Where a split's images live.
#[derive(Debug, Clone)]
pub enum Images {
    /// Decoded in memory (CIFAR, MNIST, synthetic).
    Memory(Arc<ImageSet>),
    /// Decoded from files on access (ImageFolder).
    Folder(Arc<ImageFolder>),
}

/// A split, its transform and normalisation.
#[derive(Debug, Clone)]
pub struct Source {
    /// The images.
    pub images: Images,
    /// The augmentation.
    pub augment: Augment,
    /// The normalisation.
    pub normalize: Normalize,
}

impl Source {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match &self.images {
            Images::Memory(s) => s.len(),
            Images::Folder(f) => f.len(),
        }
    }
    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Class names.
    pub fn class_names(&self) -> &[String] {
        match &self.images {
            Images::Memory(s) => s.class_names(),
            Images::Folder(f) => f.class_names(),
        }
    }
    /// `[c, h, w]` of a transformed sample.
    pub fn output_shape(&self) -> [usize; 3] {
        match (&self.images, &self.augment) {
            (_, Augment::ImageNetTrain { size }) => [3, *size as usize, *size as usize],
            (_, Augment::ImageNetTest { crop, .. }) => [3, *crop as usize, *crop as usize],
            (Images::Memory(s), _) => s.shape(),
            (Images::Folder(_), _) => [3, 224, 224],
        }
    }

    /// Writes sample `index`, transformed with `rng`, into `out`; returns its label.
    ///
    /// # Errors
    /// [`DataError`] if an image file cannot be decoded, or the transform does not fit the source.
    pub fn fill(
        &self,
        index: usize,
        rng: &mut Pcg64Mcg,
        out: &mut [f32],
    ) -> Result<u32, DataError> {
        match &self.images {
            Images::Memory(set) => {
                let img = set.image(index);
                match &self.augment {
                    Augment::None => {
                        transforms::normalize_planar(img, set.shape(), &self.normalize, out)
                    }
                    Augment::PadCropFlip { pad, fill } => {
                        let (dx, dy, flip) = transforms::draw_cifar_choice(rng, *pad);
                        transforms::cifar_crop(
                            img,
                            set.shape(),
                            fill,
                            *pad,
                            dx,
                            dy,
                            flip,
                            &self.normalize,
                            out,
                        );
                    }
                    other => {
                        return Err(DataError::Invalid(format!(
                            "{other:?} needs an image folder, not in-memory images"
                        )));
                    }
                }
                Ok(set.label(index))
            }
            Images::Folder(folder) => {
                let (img, label) = folder.load(index)?;
                match &self.augment {
                    Augment::ImageNetTrain { size } => {
                        transforms::imagenet_train(&img, *size, &self.normalize, rng, out)
                    }
                    Augment::ImageNetTest { resize, crop } => {
                        transforms::imagenet_test(&img, *resize, *crop, &self.normalize, out)
                    }
                    Augment::None => {
                        if (img.width(), img.height()) != (224, 224) {
                            transforms::imagenet_test(&img, 224, 224, &self.normalize, out);
                        } else {
                            transforms::rgb_to_planar(&img, [0.0; 3], &self.normalize, out);
                        }
                    }
                    other => {
                        return Err(DataError::Invalid(format!(
                            "{other:?} needs in-memory images"
                        )));
                    }
                }
                Ok(label)
            }
        }
    }
}
