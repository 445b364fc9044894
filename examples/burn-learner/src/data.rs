//! The synthetic data: Gaussian blobs in the plane, one per class, and their batcher.
//!
//! The class centres sit evenly on a circle and the blobs overlap a little, so the task is
//! learnable in an epoch but not to 100%: [`nearest_centre_accuracy`] gives what the ideal
//! classifier of equal round blobs reaches, the reference the trained network is compared to.

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Int, Tensor, TensorData};

/// Number of classes (blobs).
pub const CLASSES: usize = 5;
/// Feature dimension of a sample.
pub const FEATURES: usize = 2;
/// Distance of every class centre from the origin.
const RADIUS: f32 = 2.0;
/// Standard deviation of each blob, per coordinate.
const SPREAD: f32 = 0.6;

/// One labelled point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The point.
    pub features: [f32; FEATURES],
    /// Its class, `0..CLASSES`.
    pub label: usize,
}

/// The centre of class `class`: evenly spaced on a circle of radius [`RADIUS`].
fn centre(class: usize) -> [f32; FEATURES] {
    let angle = class as f32 * std::f32::consts::TAU / CLASSES as f32;
    [RADIUS * angle.cos(), RADIUS * angle.sin()]
}

/// `n` samples, classes in turn (so every class has `n / CLASSES` of them, give or take one),
/// drawn from the generator seeded with `seed`: the same arguments give the same samples.
///
/// ```text
/// x = centre(label) + SPREAD * N(0, I)
/// ```
pub fn blobs(n: usize, seed: u64) -> Vec<Sample> {
    let mut rng = SplitMix64(seed);
    (0..n)
        .map(|i| {
            let label = i % CLASSES;
            let [cx, cy] = centre(label);
            let (gx, gy) = rng.normal_pair();
            Sample {
                features: [cx + SPREAD * gx, cy + SPREAD * gy],
                label,
            }
        })
        .collect()
}

/// Accuracy (0 to 1) of assigning each sample to its nearest class centre, which for equal,
/// round blobs with equal priors is the Bayes classifier.
pub fn nearest_centre_accuracy(samples: &[Sample]) -> f64 {
    let nearest = |p: [f32; FEATURES]| {
        (0..CLASSES)
            .map(|c| {
                let [cx, cy] = centre(c);
                ((p[0] - cx).powi(2) + (p[1] - cy).powi(2), c)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, c)| c)
            .expect("at least one class")
    };
    let correct = samples
        .iter()
        .filter(|s| nearest(s.features) == s.label)
        .count();
    correct as f64 / samples.len() as f64
}

/// The generator: SplitMix64 (Steele, Lea and Flood 2014), written out so that the data do
/// not change with a `rand` release.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `(0, 1]`: the top 53 bits, shifted off zero so that `ln` is finite.
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Two independent standard normals (Box-Muller).
    fn normal_pair(&mut self) -> (f32, f32) {
        let r = (-2.0 * self.uniform().ln()).sqrt();
        let theta = std::f64::consts::TAU * self.uniform();
        ((r * theta.cos()) as f32, (r * theta.sin()) as f32)
    }
}

/// A batch: features `[batch, FEATURES]` and class indices `[batch]`.
#[derive(Debug, Clone)]
pub struct BlobBatch {
    /// The points.
    pub features: Tensor<2>,
    /// Their classes.
    pub targets: Tensor<1, Int>,
}

/// Stacks [`Sample`]s into a [`BlobBatch`] on the data loader's device.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlobBatcher;

impl Batcher<Sample, BlobBatch> for BlobBatcher {
    fn batch(&self, items: Vec<Sample>, device: &Device) -> BlobBatch {
        let n = items.len();
        let features: Vec<f32> = items.iter().flat_map(|s| s.features).collect();
        let labels: Vec<i64> = items.iter().map(|s| s.label as i64).collect();
        BlobBatch {
            features: Tensor::from_data(TensorData::new(features, [n, FEATURES]), device),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_deterministic_balanced_and_seed_dependent() {
        let a = blobs(1000, 7);
        assert_eq!(a, blobs(1000, 7));
        assert_ne!(a, blobs(1000, 8));
        for c in 0..CLASSES {
            assert_eq!(a.iter().filter(|s| s.label == c).count(), 1000 / CLASSES);
        }
    }

    #[test]
    fn blob_moments_match_centre_and_spread() {
        // 20,000 points per class: the sample mean is within 4 standard errors
        // (4 * 0.6 / sqrt(20000) = 0.017) of the centre, the variance within 5% of 0.36.
        let samples = blobs(20_000 * CLASSES, 1);
        for c in 0..CLASSES {
            let points: Vec<_> = samples.iter().filter(|s| s.label == c).collect();
            let n = points.len() as f32;
            for axis in 0..FEATURES {
                let mean = points.iter().map(|s| s.features[axis]).sum::<f32>() / n;
                let var = points
                    .iter()
                    .map(|s| (s.features[axis] - mean).powi(2))
                    .sum::<f32>()
                    / n;
                assert!(
                    (mean - centre(c)[axis]).abs() < 0.017,
                    "class {c}: mean {mean}"
                );
                assert!(
                    (var / (SPREAD * SPREAD) - 1.0).abs() < 0.05,
                    "class {c}: var {var}"
                );
            }
        }
    }

    #[test]
    fn nearest_centre_accuracy_is_the_gaussian_reference() {
        // Neighbouring centres are 2 R sin(pi / 5) = 2.351 apart; a point is misassigned to a
        // given neighbour when its offset along their axis passes half that, with probability
        // P(Z > 1.1756 / 0.6) = P(Z > 1.959) = 0.0250. Two neighbours (the regions barely
        // overlap) give an error of about 0.050, so accuracy about 0.950.
        let acc = nearest_centre_accuracy(&blobs(50_000, 2));
        assert!((acc - 0.950).abs() < 0.005, "accuracy {acc}");
    }

    #[test]
    fn batcher_keeps_order_and_shapes() {
        let device = Device::flex();
        let items = blobs(7, 3);
        let batch = BlobBatcher.batch(items.clone(), &device);
        assert_eq!(batch.features.dims(), [7, FEATURES]);
        let labels: Vec<i64> = batch
            .targets
            .into_data()
            .convert::<i64>()
            .try_to_vec()
            .unwrap();
        let expected: Vec<i64> = items.iter().map(|s| s.label as i64).collect();
        assert_eq!(labels, expected);
        let first: Vec<f32> = batch.features.into_data().try_to_vec().unwrap();
        assert_eq!(first[..2], items[0].features);
    }
}
