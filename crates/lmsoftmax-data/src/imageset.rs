//! In-memory image sets: planar (CHW) `u8` images with labels and class names.

use crate::error::DataError;

/// Images of one split, all of one shape, stored planar (`C x H x W` per image, row-major).
///
/// ```
/// use lmsoftmax_data::ImageSet;
/// let set = ImageSet::new([1, 2, 2], vec![0, 1, 2, 3, 4, 5, 6, 7], vec![0, 1], vec!["a".into(), "b".into()]).unwrap();
/// assert_eq!(set.len(), 2);
/// assert_eq!(set.image(1), &[4, 5, 6, 7]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    shape: [usize; 3],
    pixels: Vec<u8>,
    labels: Vec<u32>,
    class_names: Vec<String>,
}

impl ImageSet {
    /// Builds a set, checking that the pixel count matches and every label names a class.
    ///
    /// # Errors
    /// [`DataError::Invalid`] naming the mismatch.
    pub fn new(
        shape: [usize; 3],
        pixels: Vec<u8>,
        labels: Vec<u32>,
        class_names: Vec<String>,
    ) -> Result<Self, DataError> {
        let per = shape.iter().product::<usize>();
        if per == 0 || pixels.len() != per * labels.len() {
            return Err(DataError::Invalid(format!(
                "{} pixel bytes do not hold {} images of shape {shape:?}",
                pixels.len(),
                labels.len()
            )));
        }
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= class_names.len()) {
            return Err(DataError::Invalid(format!(
                "label {bad} but only {} classes",
                class_names.len()
            )));
        }
        Ok(Self {
            shape,
            pixels,
            labels,
            class_names,
        })
    }

    /// `[channels, height, width]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// The planar pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let per = self.shape.iter().product::<usize>();
        &self.pixels[i * per..(i + 1) * per]
    }
    /// The label of image `i`.
    pub fn label(&self, i: usize) -> u32 {
        self.labels[i]
    }
    /// All labels.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }
    /// Class names, indexed by label.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Per-channel mean and standard deviation of all pixels, on the `[0, 1]` scale (population
    /// std, as users compute it for normalisation).
    ///
    /// ```
    /// use lmsoftmax_data::ImageSet;
    /// let set = ImageSet::new([1, 1, 2], vec![0, 255], vec![0], vec!["x".into()]).unwrap();
    /// let (mean, std) = set.channel_stats();
    /// assert!((mean[0] - 0.5).abs() < 1e-12 && (std[0] - 0.5).abs() < 1e-12);
    /// ```
    pub fn channel_stats(&self) -> (Vec<f64>, Vec<f64>) {
        let [c, h, w] = self.shape;
        let plane = h * w;
        let mut sum = vec![0u64; c];
        let mut sq = vec![0u64; c];
        for img in self.pixels.chunks_exact(c * plane) {
            for ch in 0..c {
                for &p in &img[ch * plane..(ch + 1) * plane] {
                    sum[ch] += p as u64;
                    sq[ch] += (p as u64) * (p as u64);
                }
            }
        }
        let n = (self.len() * plane) as f64;
        let mean: Vec<f64> = sum.iter().map(|&s| s as f64 / n / 255.0).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(&q, &m)| ((q as f64 / n / (255.0 * 255.0)) - m * m).max(0.0).sqrt())
            .collect();
        (mean, std)
    }

    /// Concatenates sets of the same shape and classes (the CIFAR training batches).
    pub(crate) fn concat(parts: Vec<ImageSet>) -> Result<ImageSet, DataError> {
        let mut it = parts.into_iter();
        let mut first = it
            .next()
            .ok_or_else(|| DataError::Invalid("no image files".into()))?;
        for p in it {
            if p.shape != first.shape {
                return Err(DataError::Invalid(format!(
                    "images of shape {:?} and {:?} in one split",
                    first.shape, p.shape
                )));
            }
            first.pixels.extend_from_slice(&p.pixels);
            first.labels.extend_from_slice(&p.labels);
        }
        Ok(first)
    }
}

/// A dataset's two splits.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training images.
    pub train: ImageSet,
    /// Test images (the official protocol evaluates on them every epoch).
    pub test: ImageSet,
}
