//! CIFAR-10 and CIFAR-100, in the python-pickle layout that torchvision downloads
//! (`cifar-10-batches-py/`, `cifar-100-python/`) and in the binary layout
//! (`cifar-10-batches-bin/`, `cifar-100-binary/`). Any number of images per file.

use std::path::{Path, PathBuf};

use crate::error::{DataError, is_dir, read_file};
use crate::imageset::{ImageSet, Splits};
use crate::pickle::{self, Value};

const SHAPE: [usize; 3] = [3, 32, 32];
const IMAGE_BYTES: usize = 3 * 32 * 32;
/// An original CIFAR batch file holds 10,000 images (50,000 for CIFAR-100's train file).
const MAX_IMAGES_PER_FILE: usize = 50_000;

/// Which CIFAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar {
    /// 10 classes.
    Ten,
    /// 100 fine classes (or 20 coarse ones with [`CifarLabels::Coarse`]).
    Hundred,
}

/// Which CIFAR-100 labels to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CifarLabels {
    /// The 100 fine classes (what the paper trains on).
    #[default]
    Fine,
    /// The 20 superclasses.
    Coarse,
}

/// Loads a CIFAR dataset from `dir`: the layout folder itself or a folder holding it; the
/// python layout is preferred when both are present.
///
/// ```no_run
/// use lmsoftmax_data::{Cifar, CifarLabels, load_cifar};
/// let splits = load_cifar(Cifar::Ten, "data".as_ref(), CifarLabels::Fine)?;
/// println!("{} training images", splits.train.len());
/// # Ok::<(), lmsoftmax_data::DataError>(())
/// ```
///
/// # Errors
/// A [`DataError`] naming the missing or malformed file.
pub fn load_cifar(which: Cifar, dir: &Path, labels: CifarLabels) -> Result<Splits, DataError> {
    let (py, bin) = match which {
        Cifar::Ten => ("cifar-10-batches-py", "cifar-10-batches-bin"),
        Cifar::Hundred => ("cifar-100-python", "cifar-100-binary"),
    };
    let pick = |name: &str| -> Result<Option<PathBuf>, DataError> {
        Ok(
            if dir.file_name().is_some_and(|f| f == name) && is_dir(dir)? {
                Some(dir.to_path_buf())
            } else if is_dir(&dir.join(name))? {
                Some(dir.join(name))
            } else {
                None
            },
        )
    };
    if let Some(folder) = pick(py)? {
        return match which {
            Cifar::Ten => load_cifar10_py(&folder),
            Cifar::Hundred => load_cifar100_py(&folder, labels),
        };
    }
    if let Some(folder) = pick(bin)? {
        return match which {
            Cifar::Ten => load_cifar10_bin(&folder),
            Cifar::Hundred => load_cifar100_bin(&folder, labels),
        };
    }
    Err(DataError::Missing {
        path: dir.to_path_buf(),
        what: format!("a folder {py}/ or {bin}/ (the CIFAR layout), or pass --download"),
    })
}

fn parse_pickle(path: &Path) -> Result<Value, DataError> {
    let bytes = read_file(path)?;
    pickle::parse(&bytes).map_err(|e| DataError::format(path, format!("not a CIFAR pickle: {e}")))
}

fn text_list(path: &Path, v: Option<&Value>, key: &str) -> Result<Vec<String>, DataError> {
    match v {
        Some(Value::List(items)) => items
            .iter()
            .map(|i| {
                i.as_text()
                    .ok_or_else(|| DataError::format(path, format!("'{key}' holds a non-string")))
            })
            .collect(),
        _ => Err(DataError::format(
            path,
            format!("no list '{key}' in the meta file"),
        )),
    }
}

/// Pixels and labels of one python batch dict.
fn py_batch(
    path: &Path,
    label_key: &str,
    classes: usize,
    names: &[String],
) -> Result<ImageSet, DataError> {
    let v = parse_pickle(path)?;
    let labels = match v.get(label_key) {
        Some(Value::List(items)) => items
            .iter()
            .enumerate()
            .map(|(index, l)| match l {
                Value::Int(x) if (0..classes as i64).contains(x) => Ok(*x as u32),
                Value::Int(x) => Err(DataError::LabelOutOfRange {
                    path: path.to_path_buf(),
                    index,
                    label: *x,
                    classes,
                }),
                _ => Err(DataError::format(
                    path,
                    format!("'{label_key}' holds a non-integer"),
                )),
            })
            .collect::<Result<Vec<u32>, _>>()?,
        _ => {
            return Err(DataError::format(
                path,
                format!("no list '{label_key}' (expected a CIFAR batch dict)"),
            ));
        }
    };
    let (shape, dtype, data) = match v.get("data") {
        Some(Value::Array { shape, dtype, data }) => (shape, dtype, data),
        _ => {
            return Err(DataError::format(
                path,
                "no numpy array 'data' (expected a CIFAR batch dict)",
            ));
        }
    };
    if !matches!(dtype.as_str(), "u1" | "|u1") {
        return Err(DataError::format(
            path,
            format!("'data' has dtype {dtype}, expected uint8"),
        ));
    }
    if shape.len() != 2 || shape[1] != IMAGE_BYTES || shape[0] != labels.len() {
        return Err(DataError::format(
            path,
            format!(
                "'data' has shape {shape:?}, expected [{}, {IMAGE_BYTES}] (one row per label)",
                labels.len()
            ),
        ));
    }
    if labels.len() > MAX_IMAGES_PER_FILE {
        return Err(DataError::format(
            path,
            format!("{} images: oversized for a CIFAR file", labels.len()),
        ));
    }
    if data.len() != shape[0] * shape[1] {
        return Err(DataError::format(
            path,
            format!(
                "'data' holds {} bytes, its shape needs {}",
                data.len(),
                shape[0] * shape[1]
            ),
        ));
    }
    ImageSet::new(SHAPE, data.clone(), labels, names.to_vec())
}

fn load_cifar10_py(dir: &Path) -> Result<Splits, DataError> {
    let meta = dir.join("batches.meta");
    let names = text_list(
        &meta,
        parse_pickle(&meta)?.get("label_names"),
        "label_names",
    )?;
    if names.len() != 10 {
        return Err(DataError::format(
            &meta,
            format!("{} class names, expected 10", names.len()),
        ));
    }
    let train = (1..=5)
        .map(|i| py_batch(&dir.join(format!("data_batch_{i}")), "labels", 10, &names))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Splits {
        train: ImageSet::concat(train)?,
        test: py_batch(&dir.join("test_batch"), "labels", 10, &names)?,
    })
}

fn load_cifar100_py(dir: &Path, labels: CifarLabels) -> Result<Splits, DataError> {
    let meta = dir.join("meta");
    let (key, names_key, classes) = match labels {
        CifarLabels::Fine => ("fine_labels", "fine_label_names", 100),
        CifarLabels::Coarse => ("coarse_labels", "coarse_label_names", 20),
    };
    let names = text_list(&meta, parse_pickle(&meta)?.get(names_key), names_key)?;
    if names.len() != classes {
        return Err(DataError::format(
            &meta,
            format!("{} class names, expected {classes}", names.len()),
        ));
    }
    Ok(Splits {
        train: py_batch(&dir.join("train"), key, classes, &names)?,
        test: py_batch(&dir.join("test"), key, classes, &names)?,
    })
}

fn text_lines(path: &Path) -> Result<Vec<String>, DataError> {
    let bytes = read_file(path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| DataError::format(path, "class names are not UTF-8 text"))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// Records of `label_bytes` label bytes then 3072 pixels; `label_index` picks the label byte.
fn bin_file(
    path: &Path,
    label_bytes: usize,
    label_index: usize,
    names: &[String],
) -> Result<ImageSet, DataError> {
    let bytes = read_file(path)?;
    let record = label_bytes + IMAGE_BYTES;
    if bytes.is_empty() || bytes.len() % record != 0 {
        return Err(DataError::format(
            path,
            format!(
                "{} bytes is not a whole number of {record}-byte records (truncated or not a CIFAR binary file)",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / record;
    if n > MAX_IMAGES_PER_FILE {
        return Err(DataError::format(
            path,
            format!("{n} records: oversized for a CIFAR file"),
        ));
    }
    let mut pixels = Vec::with_capacity(n * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(n);
    for (index, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[label_index] as usize;
        if label >= names.len() {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                index,
                label: label as i64,
                classes: names.len(),
            });
        }
        labels.push(label as u32);
        pixels.extend_from_slice(&rec[label_bytes..]);
    }
    ImageSet::new(SHAPE, pixels, labels, names.to_vec())
}

fn load_cifar10_bin(dir: &Path) -> Result<Splits, DataError> {
    let meta = dir.join("batches.meta.txt");
    let names = text_lines(&meta)?;
    if names.len() != 10 {
        return Err(DataError::format(
            &meta,
            format!("{} class names, expected 10", names.len()),
        ));
    }
    let train = (1..=5)
        .map(|i| bin_file(&dir.join(format!("data_batch_{i}.bin")), 1, 0, &names))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Splits {
        train: ImageSet::concat(train)?,
        test: bin_file(&dir.join("test_batch.bin"), 1, 0, &names)?,
    })
}

fn load_cifar100_bin(dir: &Path, labels: CifarLabels) -> Result<Splits, DataError> {
    let (names_file, index, classes) = match labels {
        CifarLabels::Fine => ("fine_label_names.txt", 1, 100),
        CifarLabels::Coarse => ("coarse_label_names.txt", 0, 20),
    };
    let meta = dir.join(names_file);
    let names = text_lines(&meta)?;
    if names.len() != classes {
        return Err(DataError::format(
            &meta,
            format!("{} class names, expected {classes}", names.len()),
        ));
    }
    Ok(Splits {
        train: bin_file(&dir.join("train.bin"), 2, index, &names)?,
        test: bin_file(&dir.join("test.bin"), 2, index, &names)?,
    })
}
