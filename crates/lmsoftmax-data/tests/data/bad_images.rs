//! `--skip-bad-images` against every way an image file can fail: crafted files in a temp
//! ImageFolder, loaded with and without the flag.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{ImageFormat, Rgb, RgbImage};
use lmsoftmax_data::{DataError, FolderOptions, ImageFolder};

use crate::formats::write_folder;

/// A noisy 64x48 image, so that its JPEG has a long entropy-coded body.
fn noisy() -> RgbImage {
    RgbImage::from_fn(64, 48, |x, y| {
        let v = (x * 7919 + y * 104_729) % 251;
        Rgb([v as u8, (v * 3 % 256) as u8, (v * 7 % 256) as u8])
    })
}

fn encoded(format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    noisy().write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A valid PNG whose IHDR claims `w x h` (CRC recomputed, so only the size is wrong).
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = encoded(ImageFormat::Png);
    // signature (8), IHDR length (4), "IHDR" (4), width, height, ...; CRC after 13 data bytes
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&png[12..29]);
    png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    png
}

/// A valid PNG header followed by image data whose bytes are corrupted: fails mid-decode.
fn png_with_corrupt_data() -> Vec<u8> {
    let mut png = encoded(ImageFormat::Png);
    let idat = png.windows(4).position(|w| w == b"IDAT").unwrap() + 4;
    for b in &mut png[idat + 2..idat + 40] {
        *b ^= 0x5a;
    }
    png
}

/// The bad files, by name, written into class `a` of a folder with two good images a class.
fn bad_folder(root: &Path) -> Vec<PathBuf> {
    write_folder(root, &["a", "b"], 2);
    let jpeg = encoded(ImageFormat::Jpeg);
    let files: [(&str, Vec<u8>); 5] = [
        ("huge.png", png_claiming(100_000, 100_000)),
        ("truncated.jpg", jpeg[..jpeg.len() / 3].to_vec()),
        ("empty.png", Vec::new()),
        (
            "text.jpg",
            b"this is not a JPEG, only its name says so\n".to_vec(),
        ),
        ("corrupt.png", png_with_corrupt_data()),
    ];
    files
        .into_iter()
        .map(|(name, bytes)| {
            let path = root.join("a").join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect()
}

fn index_of(folder: &ImageFolder, path: &Path) -> usize {
    (0..folder.len())
        .find(|&i| folder.entry(i).0 == path)
        .unwrap_or_else(|| panic!("{} not in the folder", path.display()))
}

#[test]
fn without_the_flag_each_bad_image_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = bad_folder(tmp.path());
    let folder = ImageFolder::scan(tmp.path(), &FolderOptions::default()).unwrap();
    assert_eq!(folder.len(), 4 + bad.len());
    for path in &bad {
        let err = folder.load(index_of(&folder, path)).unwrap_err();
        assert!(matches!(err, DataError::BadImage { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&path.display().to_string()) && msg.contains("--skip-bad-images"),
            "{msg}"
        );
    }
    // the oversized one is refused by its header, with its claimed size and the limit
    let msg = folder
        .load(index_of(&folder, &bad[0]))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("100000x100000") && msg.contains("limit of 16384x16384"),
        "{msg}"
    );
    let msg = folder
        .load(index_of(&folder, &bad[2]))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("empty file (0 bytes)"), "{msg}");
    let msg = folder
        .load(index_of(&folder, &bad[1]))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("truncated JPEG"), "{msg}");
    // the good ones still decode
    for i in (0..folder.len()).filter(|&i| !bad.iter().any(|b| b == folder.entry(i).0)) {
        let (img, _) = folder.load(i).unwrap();
        assert_eq!(img.dimensions(), (40, 30));
    }
    assert!(folder.skipped().is_empty());
}

#[test]
fn with_the_flag_every_bad_image_is_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bad = bad_folder(tmp.path());
    let options = FolderOptions {
        skip_bad_images: true,
        ..Default::default()
    };
    let folder = ImageFolder::scan(tmp.path(), &options).unwrap();
    // the scan reads headers: the unreadable, empty, mislabelled and oversized files go
    let at_scan = folder.skipped();
    for name in ["huge.png", "empty.png", "text.jpg"] {
        assert!(at_scan.iter().any(|p| p.ends_with(name)), "{at_scan:?}");
    }
    // loading every sample never fails; what fails mid-decode is replaced by a good image
    for i in 0..folder.len() {
        let (img, label) = folder.load(i).unwrap_or_else(|e| panic!("sample {i}: {e}"));
        assert_eq!(img.dimensions(), (40, 30));
        assert!(label < 2);
    }
    let mut skipped = folder.skipped();
    skipped.sort();
    bad.sort();
    assert_eq!(skipped, bad);
    // loading again counts nothing twice, and the clones share the count
    let clone = folder.clone();
    for i in 0..clone.len() {
        clone.load(i).unwrap();
    }
    assert_eq!(folder.skipped().len(), 5);
}

#[test]
fn limits_are_options_and_a_folder_of_only_bad_images_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    write_folder(tmp.path(), &["a"], 2);
    // 40x30 images: over a side limit of 32, and over 3000 bytes of RGB
    for options in [
        FolderOptions {
            max_image_side: 32,
            ..Default::default()
        },
        FolderOptions {
            max_decode_bytes: 3000,
            ..Default::default()
        },
    ] {
        let folder = ImageFolder::scan(tmp.path(), &options).unwrap();
        let msg = folder.load(0).unwrap_err().to_string();
        assert!(msg.contains("img0.png") && msg.contains("limit"), "{msg}");
        // with the flag the scan finds nothing left in the class folder
        let skip = FolderOptions {
            skip_bad_images: true,
            ..options
        };
        let msg = ImageFolder::scan(tmp.path(), &skip)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("empty class folder"), "{msg}");
    }
    // every image failing only at decode time: an error, not an endless search
    let only = tmp.path().join("only");
    std::fs::create_dir_all(only.join("x")).unwrap();
    std::fs::write(only.join("x/corrupt.png"), png_with_corrupt_data()).unwrap();
    let skip = FolderOptions {
        skip_bad_images: true,
        ..Default::default()
    };
    let folder = ImageFolder::scan(&only, &skip).unwrap();
    let msg = folder.load(0).unwrap_err().to_string();
    assert!(
        msg.contains("no image of the folder can be decoded"),
        "{msg}"
    );
    assert_eq!(folder.skipped().len(), 1);
}
