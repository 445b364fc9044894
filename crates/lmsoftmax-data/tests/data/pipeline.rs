//! Transforms against hand-computed expectations, and the loader's determinism.

use std::sync::Arc;

use lmsoftmax_data::loader::{epoch_order, sample_rng};
use lmsoftmax_data::source::{Augment, Images, Source};
use lmsoftmax_data::transforms::{
    LIGHTING_EIGVAL, LIGHTING_EIGVEC, Normalize, color_jitter, lighting_offset,
    random_resized_crop_box,
};
use lmsoftmax_data::{
    Cifar, CifarLabels, DatasetName, LoaderConfig, OpenOptions, SyntheticSpec, epoch_batches,
    load_cifar, open_dataset,
};

use crate::common::shared_data;

/// The training split of the real CIFAR-10 subset.
fn real_train_set() -> lmsoftmax_data::ImageSet {
    load_cifar(
        Cifar::Ten,
        &shared_data().join("cifar-10-subset"),
        CifarLabels::Fine,
    )
    .unwrap()
    .train
}

#[test]
fn cifar_train_transform_on_a_real_image() {
    let set = real_train_set();
    let img = set.image(0);
    let norm = Normalize::cifar10();
    let mut out = vec![0.0f32; 3072];
    // offsets (dx, dy) = (0, 8): the image moves right by 4 and up by 4; flip mirrors it
    lmsoftmax_data::transforms::cifar_crop(
        img,
        [3, 32, 32],
        &[125, 122, 113],
        4,
        0,
        8,
        true,
        &norm,
        &mut out,
    );
    for (c, fill) in [125u8, 122, 113].into_iter().enumerate() {
        // bottom rows are fill
        let v = out[c * 1024 + 31 * 32 + 10];
        assert!((v - (fill as f32 / 255.0 - norm.mean[c]) / norm.std[c]).abs() < 1e-6);
        // output (y, x) = source (y + 4, 31 - x - 4) after the flip
        let (y, x) = (5, 7);
        let src = img[c * 1024 + (y + 4) * 32 + (31 - x - 4)];
        assert!(
            (out[c * 1024 + y * 32 + x] - (src as f32 / 255.0 - norm.mean[c]) / norm.std[c]).abs()
                < 1e-6
        );
    }
    // the normalised fill is about -0.006/-0.019/-0.017 (PROTOCOL.md §2)
    let fill0 = (125.0 / 255.0 - 0.4914) / 0.2023;
    assert!((fill0 - -0.0059f32).abs() < 1e-3);
}

#[test]
fn random_resized_crop_boxes_stay_inside_with_the_right_statistics() {
    let mut rng = sample_rng(1, 0, 0);
    let (w, h) = (500u32, 375u32);
    let mut fractions = Vec::new();
    for _ in 0..4000 {
        let (left, top, bw, bh) = random_resized_crop_box(&mut rng, w, h);
        assert!(left + bw <= w && top + bh <= h && bw > 0 && bh > 0);
        let ratio = bw as f64 / bh as f64;
        assert!((0.74..=1.35).contains(&ratio), "ratio {ratio}");
        fractions.push((bw * bh) as f64 / (w * h) as f64);
    }
    let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
    // torchvision's algorithm on a 500x375 image (large boxes of extreme ratio do not fit and are
    // redrawn) has a mean area fraction of 0.4328 (Monte-Carlo of 200,000 draws in Python)
    assert!((0.42..0.445).contains(&mean), "mean area fraction {mean}");
    assert!(fractions.iter().all(|&f| f >= 0.075));
    // a very thin image falls back to a centre crop with the extreme ratio
    let (l, t, bw, bh) = random_resized_crop_box(&mut rng, 1000, 10);
    assert_eq!((bw, bh), (13, 10));
    assert_eq!((l, t), ((1000 - 13) / 2, 0));
}

#[test]
fn color_jitter_and_lighting_follow_their_definitions() {
    let mut img = image::RgbImage::from_fn(4, 4, |x, y| {
        image::Rgb([(x * 50) as u8, (y * 60) as u8, 90])
    });
    let before = img.clone();
    color_jitter(&mut img, 0.0, &mut sample_rng(0, 0, 0)); // factors exactly 1: identity
    assert_eq!(img, before);
    let mut rng = sample_rng(3, 1, 4);
    let off = lighting_offset(&mut rng, 0.1);
    // the offset lies in the span of the eigenvectors scaled by the eigenvalues: recover alpha
    // from two channels and check the third
    let mut rng = sample_rng(3, 1, 4);
    let normal = rand_distr::Normal::new(0.0f32, 0.1).unwrap();
    use rand_distr::Distribution;
    let alpha: Vec<f32> = (0..3).map(|_| normal.sample(&mut rng)).collect();
    for c in 0..3 {
        let want: f32 = (0..3)
            .map(|k| LIGHTING_EIGVEC[c][k] * alpha[k] * LIGHTING_EIGVAL[k])
            .sum();
        assert!((off[c] - want).abs() < 1e-7);
    }
}

/// The step-by-step composition `imagenet_train` must equal: crop + resize, flip, ColorJitter,
/// lighting, planar normalisation, each its own public step, drawing from the RNG in order.
fn imagenet_train_reference(
    img: &image::RgbImage,
    size: u32,
    norm: &Normalize,
    rng: &mut rand_pcg::Pcg64Mcg,
    out: &mut [f32],
) {
    use lmsoftmax_data::transforms::{crop_resize, rgb_to_planar};
    use rand::Rng;
    let crop = random_resized_crop_box(rng, img.width(), img.height());
    let mut resized = crop_resize(img, crop, size, size);
    if rng.random_bool(0.5) {
        image::imageops::flip_horizontal_in_place(&mut resized);
    }
    color_jitter(&mut resized, 0.4, rng);
    let offset = lighting_offset(rng, 0.1);
    rgb_to_planar(&resized, offset, norm, out);
}

#[test]
fn fused_imagenet_train_equals_the_step_by_step_composition_bit_for_bit() {
    use lmsoftmax_data::transforms::imagenet_train;
    let norm = Normalize::imagenet();
    // a textured image with saturated corners (clipping in every blend) and a thin one
    for (w, h) in [(96u32, 72u32), (300, 40)] {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                ((x * 37 + y * 11) % 256) as u8,
                ((x * x + 3 * y) % 256) as u8,
                if x < 5 { 255 } else { ((y * 29) % 256) as u8 },
            ])
        });
        for index in 0..64 {
            let mut fused = vec![0f32; 3 * 48 * 48];
            let mut reference = vec![1f32; 3 * 48 * 48];
            imagenet_train(&img, 48, &norm, &mut sample_rng(7, 2, index), &mut fused);
            imagenet_train_reference(
                &img,
                48,
                &norm,
                &mut sample_rng(7, 2, index),
                &mut reference,
            );
            let same = fused
                .iter()
                .zip(&reference)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{w}x{h} sample {index}");
        }
    }
}

#[test]
fn imagenet_test_centre_crop_rounds_ties_to_even_as_torchvision() {
    use lmsoftmax_data::transforms::imagenet_test;
    // 256 x 293: the shorter side is already 256, so the resize keeps the image; CenterCrop(224)
    // then starts at torchvision's int(round(69 / 2)) = 34 (Python rounds ties to even), left 16
    let img = image::RgbImage::from_fn(256, 293, |x, y| image::Rgb([(y % 256) as u8, x as u8, 0]));
    let bytes = Normalize {
        mean: vec![0.0; 3],
        std: vec![1.0 / 255.0; 3],
    }; // output = byte value
    let mut out = vec![0f32; 3 * 224 * 224];
    imagenet_test(&img, 256, 224, &bytes, &mut out);
    let plane = 224 * 224;
    assert!((out[0] - 34.0).abs() < 1e-3, "top row {}", out[0]);
    assert!(
        (out[plane] - 16.0).abs() < 1e-3,
        "left column {}",
        out[plane]
    );
    // the same on the other axis: 293 x 256 starts at column 34
    let img = image::RgbImage::from_fn(293, 256, |x, y| image::Rgb([y as u8, (x % 256) as u8, 0]));
    imagenet_test(&img, 256, 224, &bytes, &mut out);
    assert!((out[0] - 16.0).abs() < 1e-3 && (out[plane] - 34.0).abs() < 1e-3);
}

fn synthetic_source(n: usize) -> Arc<Source> {
    let data = open_dataset(
        DatasetName::Synthetic,
        None,
        &OpenOptions {
            synthetic: SyntheticSpec {
                train: n,
                test: 8,
                seed: 5,
            },
            ..Default::default()
        },
    )
    .unwrap();
    data.train
}

#[test]
fn batches_are_identical_with_0_1_and_2_workers_and_change_with_epoch() {
    let source = synthetic_source(70);
    let run = |workers: usize, epoch: u64| {
        let cfg = LoaderConfig {
            batch_size: 16,
            shuffle: true,
            seed: 11,
            workers,
            prefetch: 2,
        };
        epoch_batches(source.clone(), cfg, epoch)
            .map(|b| b.unwrap())
            .collect::<Vec<_>>()
    };
    let inline = run(0, 3);
    assert_eq!(inline.len(), 5);
    assert_eq!(inline.last().unwrap().labels.len(), 6); // partial last batch kept
    assert_eq!(run(1, 3), inline);
    assert_eq!(run(2, 3), inline);
    assert_ne!(run(2, 4), inline);
    // every sample once per epoch
    let mut seen: Vec<i64> = inline.iter().flat_map(|b| b.labels.clone()).collect();
    seen.sort();
    assert_eq!(seen.len(), 70);
    let order = epoch_order(70, 11, 3, true);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, (0..70).collect::<Vec<_>>());
}

#[test]
fn a_real_cifar_epoch_batches_to_tensors() {
    let data = open_dataset(
        DatasetName::Cifar10,
        Some(&shared_data().join("cifar-10-subset")),
        &OpenOptions::default(),
    )
    .unwrap();
    let cfg = LoaderConfig {
        batch_size: 128,
        shuffle: false,
        seed: 0,
        workers: 2,
        prefetch: 2,
    };
    let batches: Vec<_> = epoch_batches(data.test.clone(), cfg, 0)
        .map(|b| b.unwrap())
        .collect();
    assert_eq!(batches.len(), 8);
    assert_eq!(batches[7].labels.len(), 1017 - 7 * 128);
    let (x, y) = batches[0].to_tensors(&burn::tensor::Device::flex());
    assert_eq!(x.dims(), [128, 3, 32, 32]);
    assert_eq!(y.dims(), [128]);
    // test transform = normalise only: first value equals the normalised first raw pixel
    let raw =
        std::fs::read(shared_data().join("cifar-10-subset/cifar-10-batches-bin/test_batch.bin"))
            .unwrap();
    let want = (raw[1] as f32 / 255.0 - 0.4914) / 0.2023;
    assert!((batches[0].images[0] - want).abs() < 1e-6);
    assert!(matches!(
        data.train.augment,
        Augment::PadCropFlip { pad: 4, .. }
    ));
    assert!(matches!(&data.train.images, Images::Memory(s) if s.len() == 5085));
}

#[test]
fn channel_stats_of_the_real_subset() {
    let set = real_train_set();
    let (mean, std) = set.channel_stats();
    // close to the full training set's (0.4914, 0.4822, 0.4465) and true std (0.247, 0.243, 0.261)
    for (m, want) in mean.iter().zip([0.4914, 0.4822, 0.4465]) {
        assert!((m - want).abs() < 0.02, "{mean:?}");
    }
    for (s, want) in std.iter().zip([0.247, 0.243, 0.261]) {
        assert!((s - want).abs() < 0.02, "{std:?}");
    }
}

#[test]
fn crop_resize_takes_the_box_and_keeps_flat_regions_exact() {
    use lmsoftmax_data::transforms::crop_resize;
    // left half black, right half white
    let img = image::RgbImage::from_fn(40, 20, |x, _| {
        if x < 20 {
            image::Rgb([0, 0, 0])
        } else {
            image::Rgb([255, 255, 255])
        }
    });
    let right = crop_resize(&img, (20, 0, 20, 20), 7, 9);
    assert!(right.pixels().all(|p| p.0 == [255, 255, 255]));
    let left = crop_resize(&img, (0, 5, 20, 10), 31, 17);
    assert!(left.pixels().all(|p| p.0 == [0, 0, 0]));
    // the identity size returns the image unchanged
    let grad = image::RgbImage::from_fn(16, 12, |x, y| {
        image::Rgb([(x * 15) as u8, (y * 20) as u8, 7])
    });
    assert_eq!(crop_resize(&grad, (0, 0, 16, 12), 16, 12), grad);
    // halving a 1-pixel checkerboard averages it to mid-grey
    let checker = image::RgbImage::from_fn(32, 32, |x, y| {
        if (x + y) % 2 == 0 {
            image::Rgb([0; 3])
        } else {
            image::Rgb([254; 3])
        }
    });
    let half = crop_resize(&checker, (0, 0, 32, 32), 16, 16);
    assert!(
        half.pixels()
            .skip(17)
            .take(10)
            .all(|p| (p.0[0] as i32 - 127).abs() <= 2),
        "{:?}",
        half.get_pixel(5, 5)
    );
}

/// Batch buffers are reused (`batch_buffers`) without being cleared, so every transform must
/// overwrite its whole output: a slot first filled with NaN must come out all finite.
#[test]
fn every_transform_overwrites_its_whole_output() {
    use lmsoftmax_data::{FolderOptions, ImageFolder};
    let tmp = tempfile::tempdir().unwrap();
    for (class, (w, h)) in [("a", (300u32, 200u32)), ("b", (150, 260))] {
        let dir = tmp.path().join(class);
        std::fs::create_dir_all(&dir).unwrap();
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        });
        img.save(dir.join("0.png")).unwrap();
    }
    let folder = Arc::new(ImageFolder::scan(tmp.path(), &FolderOptions::default()).unwrap());
    let memory = synthetic_source(4).images.clone();
    let cases = [
        (memory.clone(), Augment::None),
        (
            memory,
            Augment::PadCropFlip {
                pad: 4,
                fill: vec![125, 122, 113],
            },
        ),
        (
            Images::Folder(folder.clone()),
            Augment::ImageNetTrain { size: 64 },
        ),
        (
            Images::Folder(folder.clone()),
            Augment::ImageNetTest {
                resize: 72,
                crop: 64,
            },
        ),
        (Images::Folder(folder), Augment::None),
    ];
    for (images, augment) in cases {
        let source = Source {
            images,
            augment: augment.clone(),
            normalize: Normalize::imagenet(),
        };
        let [c, h, w] = source.output_shape();
        for index in 0..2 {
            let mut out = vec![f32::NAN; c * h * w];
            source
                .fill(index, &mut sample_rng(1, 0, index as u64), &mut out)
                .unwrap();
            let stale = out.iter().filter(|v| !v.is_finite()).count();
            assert_eq!(
                stale, 0,
                "{augment:?}, image {index}: {stale} values not written"
            );
        }
    }
}

/// Tensors made from batches hand their buffers back for reuse; batches written into reused
/// buffers must equal freshly allocated ones, epoch after epoch.
#[test]
fn batches_in_reused_buffers_equal_fresh_ones() {
    // 100 images of 3x32x32 = 307,200 values per batch: large enough to be cached for reuse.
    let source = synthetic_source(250);
    let cfg = |workers| LoaderConfig {
        batch_size: 100,
        shuffle: true,
        seed: 3,
        workers,
        prefetch: 2,
    };
    let device = burn::tensor::Device::flex();
    for epoch in [0u64, 1, 0, 2] {
        let fresh: Vec<Vec<f32>> = epoch_batches(source.clone(), cfg(0), epoch)
            .map(|b| b.unwrap().images)
            .collect();
        let via_tensors: Vec<Vec<f32>> = epoch_batches(source.clone(), cfg(2), epoch)
            .map(|b| {
                let (x, _) = b.unwrap().into_tensors(&device);
                x.into_data().try_to_vec::<f32>().unwrap()
            })
            .collect();
        assert_eq!(via_tensors.len(), 3);
        assert!(via_tensors == fresh, "epoch {epoch}: batches differ");
    }
    assert!(lmsoftmax_data::batch_buffers::cached() > 0);
}
