//! What defines a run, recorded in its checkpoints so that `--resume` refuses to continue one
//! run with another's data or settings: the dataset and a cheap fingerprint of its contents, the
//! network, the seed, the configuration (loss and batch included), the number of devices.

use lmsoftmax_data::Dataset;
use lmsoftmax_data::source::{Images, Source};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

/// The data a run trains and tests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataIdentity {
    /// Dataset name.
    pub dataset: String,
    /// Classes.
    pub classes: usize,
    /// Training images.
    pub train: usize,
    /// Test images.
    pub test: usize,
    /// MD5 (hex) of the class names, the image shape and, for data held in memory, the first,
    /// middle and last image of each split and their labels: changes when the files do.
    pub fingerprint: String,
}

fn digest_split(h: &mut Md5, split: &Source) {
    h.update((split.len() as u64).to_le_bytes());
    for c in split.output_shape() {
        h.update((c as u64).to_le_bytes());
    }
    if let Images::Memory(set) = &split.images {
        let n = set.len();
        if n > 0 {
            for i in [0, n / 2, n - 1] {
                h.update(set.image(i));
                h.update(set.label(i).to_le_bytes());
            }
        }
    }
}

/// The identity of `data`, opened as `dataset`.
///
/// ```no_run
/// # let data: lmsoftmax_data::Dataset = unimplemented!();
/// let id = lmsoftmax::train::identity::data_identity("cifar10", &data);
/// assert_eq!(id.fingerprint.len(), 32);
/// ```
pub fn data_identity(dataset: &str, data: &Dataset) -> DataIdentity {
    let mut h = Md5::new();
    for name in &data.class_names {
        h.update(name.as_bytes());
        h.update([0]);
    }
    digest_split(&mut h, &data.train);
    digest_split(&mut h, &data.test);
    DataIdentity {
        dataset: dataset.into(),
        classes: data.class_names.len(),
        train: data.train.len(),
        test: data.test.len(),
        fingerprint: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// `field: checkpoint A, now B` for every field where two identities differ.
///
/// ```
/// use lmsoftmax::train::identity::{DataIdentity, differences};
/// let a = DataIdentity { dataset: "cifar10".into(), classes: 10, train: 5, test: 2, fingerprint: "x".into() };
/// let b = DataIdentity { dataset: "synthetic".into(), ..a.clone() };
/// assert_eq!(differences(&a, &b), vec!["dataset: checkpoint cifar10, now synthetic".to_string()]);
/// ```
pub fn differences(saved: &DataIdentity, now: &DataIdentity) -> Vec<String> {
    let mut d = Vec::new();
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            d.push(format!("{name}: checkpoint {a}, now {b}"));
        }
    };
    field("dataset", saved.dataset.clone(), now.dataset.clone());
    field(
        "classes",
        saved.classes.to_string(),
        now.classes.to_string(),
    );
    field(
        "training images",
        saved.train.to_string(),
        now.train.to_string(),
    );
    field("test images", saved.test.to_string(), now.test.to_string());
    field(
        "data fingerprint",
        saved.fingerprint.clone(),
        now.fingerprint.clone(),
    );
    d
}
