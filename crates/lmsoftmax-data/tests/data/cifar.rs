//! CIFAR on real files (../shared/data/cifar-10-subset) and on generated CIFAR-100 files.

use lmsoftmax_data::{Cifar, CifarLabels, DataError, load_cifar};

use crate::common::{PickleWriter, shared_data};

#[test]
fn real_cifar10_subset_reads_identically_from_both_layouts() {
    let root = shared_data().join("cifar-10-subset");
    let py = load_cifar(
        Cifar::Ten,
        &root.join("cifar-10-batches-py"),
        CifarLabels::Fine,
    )
    .unwrap();
    // the parent folder works too, and prefers the python layout
    let parent = load_cifar(Cifar::Ten, &root, CifarLabels::Fine).unwrap();
    let bin = load_cifar(
        Cifar::Ten,
        &root.join("cifar-10-batches-bin"),
        CifarLabels::Fine,
    )
    .unwrap();
    assert_eq!(py.train.len(), 5085);
    assert_eq!(py.test.len(), 1017);
    assert_eq!(py.train, bin.train);
    assert_eq!(py.test, bin.test);
    assert_eq!(parent.train, py.train);
    assert_eq!(
        py.train.class_names(),
        [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck"
        ]
    );
    // MANIFEST.md: the test set starts with labels 3 8 8 0 6 6 1 6 3 1
    assert_eq!(&py.test.labels()[..10], &[3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
}

#[test]
fn first_image_matches_the_raw_bytes() {
    // Derived independently of the parsers: the binary layout is 1 label byte + 3072 pixels.
    let root = shared_data().join("cifar-10-subset");
    let raw = std::fs::read(root.join("cifar-10-batches-bin/data_batch_1.bin")).unwrap();
    let py = load_cifar(
        Cifar::Ten,
        &root.join("cifar-10-batches-py"),
        CifarLabels::Fine,
    )
    .unwrap();
    assert_eq!(py.train.label(0), raw[0] as u32);
    assert_eq!(py.train.image(0), &raw[1..3073]);
    // and the pickle holds the same pixels as one BINSTRING right after its 'T' opcode
    let pickled = std::fs::read(root.join("cifar-10-batches-py/data_batch_1")).unwrap();
    let at = pickled
        .windows(4)
        .position(|w| w == (1017u32 * 3072).to_le_bytes())
        .unwrap();
    assert_eq!(&pickled[at + 4..at + 4 + 3072], &raw[1..3073]);
    // CIFAR-10's first training image is a frog (label 6)
    assert_eq!(py.train.label(0), 6);
}

#[test]
fn cifar100_meta_file_is_read() {
    let meta = std::fs::read(shared_data().join("cifar-100-python/meta")).unwrap();
    let v = lmsoftmax_data::pickle::parse(&meta).unwrap();
    let fine = match v.get("fine_label_names") {
        Some(lmsoftmax_data::pickle::Value::List(l)) => l.len(),
        other => panic!("{other:?}"),
    };
    assert_eq!(fine, 100);
}

fn write_cifar100(dir: &std::path::Path, n: usize) {
    let folder = dir.join("cifar-100-python");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(
        shared_data().join("cifar-100-python/meta"),
        folder.join("meta"),
    )
    .unwrap();
    for (name, n) in [("train", n), ("test", n / 2)] {
        let pixels: Vec<u8> = (0..n * 3072).map(|i| (i % 251) as u8).collect();
        let fine: Vec<u8> = (0..n).map(|i| (i * 7 % 100) as u8).collect();
        let coarse: Vec<u8> = (0..n).map(|i| (i * 3 % 20) as u8).collect();
        let bytes = PickleWriter::new()
            .strings("filenames", &vec!["x.png"; n])
            .strings("batch_label", &["training batch 1 of 1"])
            .ints("fine_labels", &fine)
            .ints("coarse_labels", &coarse)
            .array("data", n, 3072, &pixels)
            .finish();
        std::fs::write(folder.join(name), bytes).unwrap();
    }
}

#[test]
fn generated_cifar100_python_and_binary_with_fine_and_coarse_labels() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar100(tmp.path(), 12);
    let fine = load_cifar(Cifar::Hundred, tmp.path(), CifarLabels::Fine).unwrap();
    let coarse = load_cifar(Cifar::Hundred, tmp.path(), CifarLabels::Coarse).unwrap();
    assert_eq!(fine.train.len(), 12);
    assert_eq!(fine.test.len(), 6);
    assert_eq!(fine.train.label(3), 21);
    assert_eq!(coarse.train.label(3), 9);
    assert_eq!(fine.train.class_names()[0], "apple");
    assert_eq!(coarse.train.class_names().len(), 20);
    assert_eq!(fine.train.image(1)[0], (3072 % 251) as u8);

    // the binary layout: coarse byte, fine byte, pixels
    let bin = tmp.path().join("bin/cifar-100-binary");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, set) in [("train.bin", &fine.train), ("test.bin", &fine.test)] {
        let mut bytes = Vec::new();
        for i in 0..set.len() {
            bytes.push(coarse.train.labels().get(i).map_or(0, |&c| c as u8));
            bytes.push(set.label(i) as u8);
            bytes.extend_from_slice(set.image(i));
        }
        std::fs::write(bin.join(name), bytes).unwrap();
    }
    let names: Vec<String> = fine.train.class_names().to_vec();
    std::fs::write(bin.join("fine_label_names.txt"), names.join("\n")).unwrap();
    let from_bin = load_cifar(Cifar::Hundred, &tmp.path().join("bin"), CifarLabels::Fine).unwrap();
    assert_eq!(from_bin.train, fine.train);
}

#[test]
fn cifar_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let err = load_cifar(Cifar::Ten, tmp.path(), CifarLabels::Fine).unwrap_err();
    assert!(
        err.to_string()
            .contains("cifar-10-batches-py/ or cifar-10-batches-bin/"),
        "{err}"
    );

    // a truncated binary batch
    let bin = tmp.path().join("cifar-10-batches-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let src = shared_data().join("cifar-10-subset/cifar-10-batches-bin");
    for f in [
        "batches.meta.txt",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ] {
        std::fs::copy(src.join(f), bin.join(f)).unwrap();
    }
    let raw = std::fs::read(src.join("data_batch_1.bin")).unwrap();
    std::fs::write(bin.join("data_batch_1.bin"), &raw[..raw.len() - 100]).unwrap();
    let err = load_cifar(Cifar::Ten, tmp.path(), CifarLabels::Fine).unwrap_err();
    assert!(matches!(err, DataError::Format { .. }), "{err}");
    assert!(
        err.to_string().contains("data_batch_1.bin") && err.to_string().contains("truncated"),
        "{err}"
    );

    // a label out of range
    let mut bad = raw.clone();
    bad[3073] = 12;
    std::fs::write(bin.join("data_batch_1.bin"), &bad).unwrap();
    let err = load_cifar(Cifar::Ten, tmp.path(), CifarLabels::Fine).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: label 12 of image 1 is outside [0, 10)",
            bin.join("data_batch_1.bin").display()
        )
    );

    // a truncated pickle
    let py = tmp.path().join("p/cifar-10-batches-py");
    std::fs::create_dir_all(&py).unwrap();
    let psrc = shared_data().join("cifar-10-subset/cifar-10-batches-py");
    for f in [
        "batches.meta",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ] {
        std::fs::copy(psrc.join(f), py.join(f)).unwrap();
    }
    let raw = std::fs::read(psrc.join("data_batch_1")).unwrap();
    std::fs::write(py.join("data_batch_1"), &raw[..raw.len() / 2]).unwrap();
    let err = load_cifar(Cifar::Ten, &tmp.path().join("p"), CifarLabels::Fine).unwrap_err();
    assert!(
        err.to_string()
            .contains("data_batch_1: not a CIFAR pickle: at offset"),
        "{err}"
    );
    // a missing file
    std::fs::remove_file(py.join("test_batch")).unwrap();
    std::fs::write(py.join("data_batch_1"), &raw).unwrap();
    let err = load_cifar(Cifar::Ten, &tmp.path().join("p"), CifarLabels::Fine).unwrap_err();
    assert!(
        matches!(err, DataError::Missing { .. }) && err.to_string().contains("test_batch"),
        "{err}"
    );
}
