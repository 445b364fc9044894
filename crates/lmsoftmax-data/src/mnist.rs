//! MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST), raw or gzip-compressed.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{DataError, is_dir, read_file};
use crate::imageset::{ImageSet, Splits};

/// Largest image count accepted from a header (MNIST has 60,000).
const MAX_IMAGES: usize = 10_000_000;

/// Fashion-MNIST's class names.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Loads `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
/// `t10k-labels-idx1-ubyte` (each optionally with `.gz`) from `dir` (or `dir/raw`, torchvision's
/// layout), naming the classes `class_names` (the digits "0".."9" when `None`).
///
/// # Errors
/// A [`DataError`] naming the file: missing, wrong magic number, truncated, counts that disagree,
/// labels out of range.
pub fn load_mnist(dir: &Path, class_names: Option<Vec<String>>) -> Result<Splits, DataError> {
    let names = class_names.unwrap_or_else(|| (0..10).map(|d| d.to_string()).collect());
    let base = if is_dir(&dir.join("raw"))? && !has(dir, "train-images-idx3-ubyte") {
        dir.join("raw")
    } else {
        dir.to_path_buf()
    };
    let split = |prefix: &str| -> Result<ImageSet, DataError> {
        let (ipath, images) = read_idx(&base, &format!("{prefix}-images-idx3-ubyte"))?;
        let (lpath, labels) = read_idx(&base, &format!("{prefix}-labels-idx1-ubyte"))?;
        let (idims, ipixels) = parse_idx(&ipath, &images, 3)?;
        let (ldims, lbytes) = parse_idx(&lpath, &labels, 1)?;
        if idims[0] != ldims[0] {
            return Err(DataError::format(
                &lpath,
                format!(
                    "{} labels for {} images in {}",
                    ldims[0],
                    idims[0],
                    ipath.display()
                ),
            ));
        }
        let labels = lbytes
            .iter()
            .enumerate()
            .map(|(index, &l)| {
                if (l as usize) < names.len() {
                    Ok(l as u32)
                } else {
                    Err(DataError::LabelOutOfRange {
                        path: lpath.clone(),
                        index,
                        label: l as i64,
                        classes: names.len(),
                    })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        ImageSet::new(
            [1, idims[1], idims[2]],
            ipixels.to_vec(),
            labels,
            names.clone(),
        )
    };
    Ok(Splits {
        train: split("train")?,
        test: split("t10k")?,
    })
}

fn has(dir: &Path, name: &str) -> bool {
    dir.join(name).is_file() || dir.join(format!("{name}.gz")).is_file()
}

/// Reads `name` or `name.gz`, decompressing the latter.
fn read_idx(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>), DataError> {
    let raw = dir.join(name);
    if raw.is_file() {
        return Ok((raw.clone(), read_file(&raw)?));
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        let bytes = read_file(&gz)?;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::format(&gz, format!("not a valid gzip file: {e}")))?;
        return Ok((gz, out));
    }
    Err(DataError::Missing {
        path: raw,
        what: format!("{name} or {name}.gz (an IDX file)"),
    })
}

/// Parses an IDX file of unsigned bytes with `rank` dimensions.
pub(crate) fn parse_idx<'a>(
    path: &Path,
    bytes: &'a [u8],
    rank: usize,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let want_magic = 0x0800 | rank as u32;
    if bytes.len() < 4 {
        return Err(DataError::format(path, "truncated: no IDX header"));
    }
    let magic = u32::from_be_bytes(bytes[..4].try_into().unwrap());
    if magic != want_magic {
        return Err(DataError::format(
            path,
            format!(
                "magic number 0x{magic:08x}, expected 0x{want_magic:08x} (IDX, unsigned bytes, {rank} dimensions)"
            ),
        ));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(DataError::format(path, "truncated IDX header"));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    if dims[0] > MAX_IMAGES || dims.iter().skip(1).any(|&d| d == 0 || d > 4096) {
        return Err(DataError::format(
            path,
            format!("implausible dimensions {dims:?}"),
        ));
    }
    let need: usize = dims.iter().product();
    let body = &bytes[header..];
    if body.len() != need {
        return Err(DataError::format(
            path,
            format!(
                "{} data bytes, the header's dimensions {dims:?} need {need} ({})",
                body.len(),
                if body.len() < need {
                    "truncated"
                } else {
                    "oversized"
                }
            ),
        ));
    }
    Ok((dims, body))
}
