//! IDX (MNIST-format) files and image folders made here, and their error paths.

use std::io::Write;

use image::{Rgb, RgbImage};
use lmsoftmax_data::imagefolder::imagenet_layout;
use lmsoftmax_data::{
    DataError, DatasetName, FolderOptions, ImageFolder, OpenOptions, load_mnist, open_dataset,
};

use crate::common::idx;

fn write_mnist(dir: &std::path::Path, gz: bool, n: u32) {
    for (prefix, n) in [("train", n), ("t10k", n / 2)] {
        let pixels: Vec<u8> = (0..n * 28 * 28).map(|i| (i % 256) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        for (name, bytes) in [
            (
                format!("{prefix}-images-idx3-ubyte"),
                idx(&[n, 28, 28], &pixels),
            ),
            (format!("{prefix}-labels-idx1-ubyte"), idx(&[n], &labels)),
        ] {
            if gz {
                let f = std::fs::File::create(dir.join(format!("{name}.gz"))).unwrap();
                let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
                enc.write_all(&bytes).unwrap();
                enc.finish().unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }
}

#[test]
fn idx_raw_and_gzip_read_the_same() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_mnist(a.path(), false, 20);
    write_mnist(b.path(), true, 20);
    let raw = load_mnist(a.path(), None).unwrap();
    let gz = load_mnist(b.path(), None).unwrap();
    assert_eq!(raw.train, gz.train);
    assert_eq!(raw.train.shape(), [1, 28, 28]);
    assert_eq!(raw.train.len(), 20);
    assert_eq!(raw.test.len(), 10);
    assert_eq!(raw.train.label(13), 3);
    assert_eq!(raw.train.image(1)[0], (784 % 256) as u8);
    let fashion = open_dataset(
        DatasetName::FashionMnist,
        Some(a.path()),
        &OpenOptions::default(),
    )
    .unwrap();
    assert_eq!(fashion.class_names[9], "Ankle boot");
}

#[test]
fn idx_errors_name_the_file_and_the_expectation() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), false, 10);
    let images = dir.path().join("train-images-idx3-ubyte");
    let good = std::fs::read(&images).unwrap();

    let mut wrong_magic = good.clone();
    wrong_magic[3] = 2;
    std::fs::write(&images, &wrong_magic).unwrap();
    let err = load_mnist(dir.path(), None).unwrap_err().to_string();
    assert!(
        err.contains("magic number 0x00000802, expected 0x00000803"),
        "{err}"
    );

    std::fs::write(&images, &good[..good.len() - 5]).unwrap();
    let err = load_mnist(dir.path(), None).unwrap_err().to_string();
    assert!(
        err.contains("truncated") && err.contains("train-images-idx3-ubyte"),
        "{err}"
    );

    let mut big = good.clone();
    big.extend_from_slice(&[0; 7]);
    std::fs::write(&images, &big).unwrap();
    let err = load_mnist(dir.path(), None).unwrap_err().to_string();
    assert!(err.contains("oversized"), "{err}");

    std::fs::write(&images, &good).unwrap();
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte"),
        idx(&[9], &[0; 9]),
    )
    .unwrap();
    let err = load_mnist(dir.path(), None).unwrap_err().to_string();
    assert!(err.contains("9 labels for 10 images"), "{err}");

    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte"),
        idx(&[10], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 10]),
    )
    .unwrap();
    let err = load_mnist(dir.path(), None).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                index: 9,
                label: 10,
                ..
            }
        ),
        "{err}"
    );

    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte"),
        idx(&[10], &[0; 10]),
    )
    .unwrap();
    let err = load_mnist(dir.path(), None).unwrap_err().to_string();
    assert!(
        err.contains("t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz"),
        "{err}"
    );

    std::fs::write(dir.path().join("t10k-labels-idx1-ubyte.gz"), b"not gzip").unwrap();
    let err = load_mnist(dir.path(), None).unwrap_err().to_string();
    assert!(err.contains("not a valid gzip file"), "{err}");
}

/// A small image folder: `classes` folders of `per_class` 40x30 images, PNG and JPEG alternating.
pub fn write_folder(root: &std::path::Path, classes: &[&str], per_class: usize) {
    for (c, name) in classes.iter().enumerate() {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let img = RgbImage::from_fn(40, 30, |x, y| {
                Rgb([(x * 6) as u8, (y * 8) as u8, (c * 60 + i) as u8])
            });
            let ext = if i % 2 == 0 { "png" } else { "jpg" };
            img.save(dir.join(format!("img{i}.{ext}"))).unwrap();
        }
    }
}

#[test]
fn image_folder_scans_sorted_classes_and_decodes() {
    let tmp = tempfile::tempdir().unwrap();
    write_folder(&tmp.path().join("train"), &["dog", "cat"], 3);
    write_folder(&tmp.path().join("val_dir"), &["dog", "cat"], 2);
    std::fs::write(tmp.path().join("train/cat/notes.txt"), "not an image").unwrap();
    let (train, val) = imagenet_layout(tmp.path(), &FolderOptions::default()).unwrap();
    assert_eq!(train.class_names(), ["cat", "dog"]);
    assert_eq!(train.len(), 6);
    assert_eq!(val.len(), 4);
    let (img, label) = train.load(4).unwrap();
    assert_eq!((img.width(), img.height(), label), (40, 30, 1));
    // PNG is lossless: the pixel is exactly what was written
    let (png, _) = train.load(0).unwrap();
    assert_eq!(png.get_pixel(3, 2).0, [18, 16, 60]);
}

#[test]
fn image_folder_errors_and_skips() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let err = ImageFolder::scan(&root.join("nope"), &FolderOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err}");

    write_folder(root, &["a", "b"], 2);
    std::fs::create_dir_all(root.join("c")).unwrap();
    let err = ImageFolder::scan(root, &FolderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("empty class folder") && err.contains("/c"),
        "{err}"
    );
    std::fs::remove_dir(root.join("c")).unwrap();

    std::fs::write(root.join("a/broken.jpg"), b"\xff\xd8\xff garbage").unwrap();
    let folder = ImageFolder::scan(root, &FolderOptions::default()).unwrap();
    let bad = (0..folder.len())
        .find(|&i| folder.entry(i).0.ends_with("broken.jpg"))
        .unwrap();
    let err = folder.load(bad).unwrap_err().to_string();
    assert!(
        err.contains("broken.jpg: cannot decode the image") && err.contains("--skip-bad-images"),
        "{err}"
    );

    let skipping = ImageFolder::scan(
        root,
        &FolderOptions {
            skip_bad_images: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(skipping.len(), 4);
    assert_eq!(skipping.skipped().len(), 1);

    let list = root.join("blacklist.txt");
    std::fs::write(&list, "some/dir/img0.png\nbroken.jpg\n").unwrap();
    let options = FolderOptions::default().with_blacklist_file(&list).unwrap();
    let filtered = ImageFolder::scan(root, &options).unwrap();
    assert_eq!(filtered.len(), 2); // img0.png of a and b, and broken.jpg, left out

    let err = open_dataset(DatasetName::ImageNet, Some(root), &OpenOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("train"), "{err}");
}

#[test]
fn unknown_dataset_lists_the_known_ones() {
    let err = "cifar11".parse::<DatasetName>().unwrap_err().to_string();
    assert!(
        err.contains("unknown dataset 'cifar11'") && err.contains("cifar10, cifar100"),
        "{err}"
    );
    let err = open_dataset(DatasetName::Cifar10, None, &OpenOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs --data DIR"), "{err}");
}
