//! Every parser of the crate fuzzed with `lmsoftmax-fuzz`: mutations of real files and random
//! bytes must give an error or a dataset that holds together, never a panic. Each target replays
//! its regression corpus in `tests/fuzz-corpus/<target>/` first; `scripts/fuzz.sh` runs the
//! targets for a time budget, the suite for a few hundred cases each.

use std::path::{Path, PathBuf};

use lmsoftmax_data::{Cifar, CifarLabels, FolderOptions, ImageFolder, Splits, pickle};
use lmsoftmax_fuzz::{Budget, fuzz};

use crate::common::{PickleWriter, idx, shared_data};

/// Cases per target in the test suite (a few seconds each).
const SUITE_CASES: u64 = 256;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target)
}

fn real_bin_batch() -> Vec<u8> {
    std::fs::read(shared_data().join("cifar-10-subset/cifar-10-batches-bin/data_batch_1.bin"))
        .unwrap()
}

/// What a loaded dataset must satisfy: labels name a class, images have the split's size.
fn holds_together(splits: &Splits) -> Result<(), String> {
    for set in [&splits.train, &splits.test] {
        let [c, h, w] = set.shape();
        for i in 0..set.len() {
            if set.image(i).len() != c * h * w {
                return Err(format!("image {i} has {} bytes", set.image(i).len()));
            }
            if set.label(i) as usize >= set.class_names().len() {
                return Err(format!("label {} of image {i}", set.label(i)));
            }
        }
    }
    Ok(())
}

#[test]
fn fuzz_pickle() {
    let meta = shared_data().join("cifar-10-subset/cifar-10-batches-py/batches.meta");
    let meta100 = shared_data().join("cifar-100-python/meta");
    let batch = PickleWriter::new()
        .strings("batch_label", &["training batch 1 of 5"])
        .ints("labels", &[3, 8])
        .array("data", 2, 3072, &real_bin_batch()[1..1 + 2 * 3072])
        .finish();
    let seeds = vec![
        std::fs::read(meta).unwrap(),
        std::fs::read(meta100).unwrap(),
        batch,
    ];
    fuzz(
        "pickle",
        &corpus("pickle"),
        seeds,
        Budget::from_env(SUITE_CASES),
        |b| {
            let _ = pickle::parse(b);
            Ok(())
        },
    );
}

/// A CIFAR-10 python folder whose six batch files are `batch` (the real `batches.meta`).
#[test]
fn fuzz_cifar_python() {
    let pixels = real_bin_batch();
    let batch = |n: usize| {
        let data: Vec<u8> = (0..n)
            .flat_map(|i| pixels[i * 3073 + 1..(i + 1) * 3073].to_vec())
            .collect();
        let labels: Vec<u8> = (0..n).map(|i| pixels[i * 3073]).collect();
        PickleWriter::new()
            .strings("batch_label", &["training batch 1 of 5"])
            .ints("labels", &labels)
            .array("data", n, 3072, &data)
            .strings("filenames", &vec!["a.png"; n])
            .finish()
    };
    let meta =
        std::fs::read(shared_data().join("cifar-10-subset/cifar-10-batches-py/batches.meta"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cifar-10-batches-py");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("batches.meta"), meta).unwrap();
    fuzz(
        "cifar-python",
        &corpus("cifar-python"),
        vec![batch(1), batch(3)],
        Budget::from_env(SUITE_CASES),
        |b| {
            for name in [
                "data_batch_1",
                "data_batch_2",
                "data_batch_3",
                "data_batch_4",
                "data_batch_5",
                "test_batch",
            ] {
                std::fs::write(root.join(name), b).unwrap();
            }
            match lmsoftmax_data::load_cifar(Cifar::Ten, dir.path(), CifarLabels::Fine) {
                Ok(splits) => holds_together(&splits),
                Err(_) => Ok(()),
            }
        },
    );
}

#[test]
fn fuzz_cifar_binary() {
    let real = real_bin_batch();
    let meta =
        std::fs::read(shared_data().join("cifar-10-subset/cifar-10-batches-bin/batches.meta.txt"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("batches.meta.txt"), &meta).unwrap();
    fuzz(
        "cifar-binary",
        &corpus("cifar-binary"),
        vec![real[..3073].to_vec(), real[..3 * 3073].to_vec()],
        Budget::from_env(SUITE_CASES),
        |b| {
            for i in 1..=5 {
                std::fs::write(root.join(format!("data_batch_{i}.bin")), b).unwrap();
            }
            std::fs::write(root.join("test_batch.bin"), b).unwrap();
            match lmsoftmax_data::load_cifar(Cifar::Ten, dir.path(), CifarLabels::Fine) {
                Ok(splits) => holds_together(&splits),
                Err(_) => Ok(()),
            }
        },
    );
}

/// An MNIST-format folder where the bytes are the training images (with good labels), then the
/// training labels (with good images).
#[test]
fn fuzz_idx() {
    let images = idx(&[2, 28, 28], &[7; 2 * 28 * 28]);
    let labels = idx(&[2], &[1, 9]);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, b: &[u8]| std::fs::write(dir.path().join(name), b).unwrap();
    write("t10k-images-idx3-ubyte", &images);
    write("t10k-labels-idx1-ubyte", &labels);
    fuzz(
        "idx",
        &corpus("idx"),
        vec![images.clone(), labels.clone()],
        Budget::from_env(SUITE_CASES),
        |b| {
            for (image_file, label_file) in [(b, &labels[..]), (&images[..], b)] {
                write("train-images-idx3-ubyte", image_file);
                write("train-labels-idx1-ubyte", label_file);
                if let Ok(splits) = lmsoftmax_data::load_mnist(dir.path(), None) {
                    holds_together(&splits)?;
                }
            }
            Ok(())
        },
    );
}

/// An ImageFolder with the bytes as one image (as `.png` and as `.jpg`) beside a good one: a
/// load gives the image or an error naming the file, and with `--skip-bad-images` the good one.
#[test]
fn fuzz_images() {
    let real = real_bin_batch();
    let photo = image::RgbImage::from_fn(32, 32, |x, y| {
        let at = 1 + (y * 32 + x) as usize;
        image::Rgb([real[at], real[at + 1024], real[at + 2048]])
    });
    let encode = |format| {
        let mut out = std::io::Cursor::new(Vec::new());
        photo.write_to(&mut out, format).unwrap();
        out.into_inner()
    };
    let (png, jpeg) = (
        encode(image::ImageFormat::Png),
        encode(image::ImageFormat::Jpeg),
    );
    let dir = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
    }
    std::fs::write(dir.path().join("b/good.png"), &png).unwrap();
    let strict = FolderOptions::default();
    let skipping = FolderOptions {
        skip_bad_images: true,
        ..FolderOptions::default()
    };
    // the seeds themselves decode, so the target reaches the decoders
    for (name, bytes) in [("x.png", &png), ("x.jpg", &jpeg)] {
        std::fs::write(dir.path().join("a").join(name), bytes).unwrap();
        let folder = ImageFolder::scan(dir.path(), &strict).unwrap();
        assert_eq!(folder.load(0).unwrap().0.dimensions(), (32, 32));
        std::fs::remove_file(dir.path().join("a").join(name)).unwrap();
    }
    fuzz(
        "images",
        &corpus("images"),
        vec![png, jpeg],
        Budget::from_env(SUITE_CASES),
        |b| {
            for name in ["x.png", "x.jpg"] {
                let file = dir.path().join("a").join(name);
                std::fs::write(&file, b).unwrap();
                let checked = check_image(dir.path(), name, &strict, &skipping);
                std::fs::remove_file(&file).unwrap();
                checked?;
            }
            Ok(())
        },
    );
}

/// One image of class `a` (the bytes under test, named `name`) beside a good one of class `b`.
fn check_image(
    root: &Path,
    name: &str,
    strict: &FolderOptions,
    skipping: &FolderOptions,
) -> Result<(), String> {
    // a scan may refuse the folder (an empty file, say): a clear error is all we ask there
    let Ok(folder) = ImageFolder::scan(root, strict) else {
        return Ok(());
    };
    match folder.load(0) {
        Ok((img, 0)) => {
            let (w, h) = img.dimensions();
            if w == 0 || h == 0 || img.as_raw().len() != (w * h * 3) as usize {
                return Err(format!("decoded a {w}x{h} image"));
            }
        }
        Ok((_, label)) => return Err(format!("label {label} for class a")),
        Err(e) if !e.to_string().contains(name) => {
            return Err(format!("the error does not name the file: {e}"));
        }
        Err(_) => {}
    }
    // with skipping, a scan that drops the image leaves class `a` empty: an error again
    let Ok(folder) = ImageFolder::scan(root, skipping) else {
        return Ok(());
    };
    if let Err(e) = folder.load(0) {
        return Err(format!("--skip-bad-images did not skip: {e}"));
    }
    Ok(())
}

#[test]
fn truncations_of_real_files_are_errors() {
    let real =
        std::fs::read(shared_data().join("cifar-10-subset/cifar-10-batches-py/batches.meta"))
            .unwrap();
    for cut in 0..real.len() {
        assert!(
            pickle::parse(&real[..cut]).is_err(),
            "a truncation at {cut} parsed"
        );
    }
    assert!(pickle::parse(&real).is_ok());
}
