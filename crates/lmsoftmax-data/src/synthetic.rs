//! A seeded synthetic image-classification dataset: 32x32 RGB, 10 classes, for tests, benchmarks
//! and the no-download demo.
//!
//! Each class has its own stripe orientation and frequency (overlapping with its neighbours');
//! every image draws a random phase, contrast, colour shift, blob and pixel noise, so a small CNN
//! learns it within an epoch but cannot reach zero error.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::imageset::{ImageSet, Splits};

/// Sizes and seed of the synthetic dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticSpec {
    /// Training images (default 4,000).
    pub train: usize,
    /// Test images (default 1,000).
    pub test: usize,
    /// Seed (default 0).
    pub seed: u64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            train: 4000,
            test: 1000,
            seed: 0,
        }
    }
}

/// The class names of the synthetic dataset.
pub const SYNTHETIC_CLASSES: usize = 10;

/// Generates the dataset; the same spec gives the same bytes.
///
/// ```
/// use lmsoftmax_data::{SyntheticSpec, synthetic};
/// let a = synthetic(SyntheticSpec { train: 20, test: 10, seed: 3 });
/// let b = synthetic(SyntheticSpec { train: 20, test: 10, seed: 3 });
/// assert_eq!(a.train, b.train);
/// assert_eq!(a.train.shape(), [3, 32, 32]);
/// ```
pub fn synthetic(spec: SyntheticSpec) -> Splits {
    let names: Vec<String> = (0..SYNTHETIC_CLASSES)
        .map(|c| format!("pattern{c}"))
        .collect();
    let make = |n: usize, stream: u64| {
        let mut rng =
            Pcg64Mcg::seed_from_u64(spec.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream);
        let mut pixels = Vec::with_capacity(n * 3 * 32 * 32);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let label = (i % SYNTHETIC_CLASSES) as u32;
            draw(label as usize, &mut rng, &mut pixels);
            labels.push(label);
        }
        ImageSet::new([3, 32, 32], pixels, labels, names.clone()).expect("consistent synthetic set")
    };
    Splits {
        train: make(spec.train, 1),
        test: make(spec.test, 2),
    }
}

fn draw(class: usize, rng: &mut Pcg64Mcg, out: &mut Vec<u8>) {
    // Neighbouring classes' orientations and frequencies overlap, colour carries almost no
    // class information, and the pattern's contrast runs down to 0 under strong noise: some
    // images cannot be told apart, so the task has a Bayes error well above 0.
    let angle = class as f32 * std::f32::consts::PI / SYNTHETIC_CLASSES as f32
        + rng.random_range(-0.3..0.3);
    let freq = 0.25 + 0.06 * (class % 5) as f32 + rng.random_range(-0.03..0.03);
    let (dx, dy) = (angle.cos() * freq, angle.sin() * freq);
    let phase: f32 = rng.random_range(0.0..std::f32::consts::TAU);
    let contrast: f32 = rng.random_range(0.0..0.5);
    let turn = class as f32 / SYNTHETIC_CLASSES as f32 * std::f32::consts::TAU;
    let shift: [f32; 3] = std::array::from_fn(|_| rng.random_range(-0.2..0.2));
    let base = [
        0.5 + 0.03 * turn.sin() + shift[0],
        0.5 + 0.03 * (turn + 2.1).sin() + shift[1],
        0.5 + 0.03 * (turn + 4.2).sin() + shift[2],
    ];
    let (bx, by): (f32, f32) = (rng.random_range(4.0..28.0), rng.random_range(4.0..28.0));
    let blob: f32 = rng.random_range(-0.4..0.4);
    let noise: f32 = rng.random_range(0.3..0.6);
    let start = out.len();
    out.resize(start + 3 * 1024, 0);
    for y in 0..32 {
        for x in 0..32 {
            let s = ((x as f32 * dx + y as f32 * dy) * std::f32::consts::TAU / 4.0 + phase).sin();
            let r2 = (x as f32 - bx).powi(2) + (y as f32 - by).powi(2);
            let b = blob * (-r2 / 18.0).exp();
            for c in 0..3 {
                let v = base[c]
                    + contrast * 0.35 * s * if c == class % 3 { 1.0 } else { -0.5 }
                    + b
                    + noise * (rng.random::<f32>() - 0.5);
                out[start + c * 1024 + y * 32 + x] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
}
