//! Arbitrary bytes into every parser: an error, never a panic. Plus the regression corpus in
//! `tests/fuzz-corpus` (inputs that once broke a parser, and truncations of real files).

use lmsoftmax_data::pickle;
use proptest::prelude::*;

fn idx_parse(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    for name in ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"] {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    for name in ["train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"] {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let _ = lmsoftmax_data::load_mnist(dir.path(), None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn pickle_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = pickle::parse(&bytes);
    }

    #[test]
    fn pickle_with_a_valid_prefix_never_panics(tail in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut bytes = vec![0x80, 2, b'}', b'q', 1, b'('];
        bytes.extend(tail);
        let _ = pickle::parse(&bytes);
    }

    #[test]
    fn idx_never_panics(mut bytes in prop::collection::vec(any::<u8>(), 0..300), rank in 1u8..4) {
        if bytes.len() >= 4 { bytes[0] = 0; bytes[1] = 0; bytes[2] = 8; bytes[3] = rank; }
        idx_parse(&bytes);
    }
}

#[test]
fn regression_corpus_and_truncated_real_files() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus");
    let mut n = 0;
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = pickle::parse(&bytes);
        idx_parse(&bytes);
        n += 1;
    }
    assert!(n > 0, "empty regression corpus {}", corpus.display());
    let real = std::fs::read(
        crate::common::shared_data().join("cifar-10-subset/cifar-10-batches-py/batches.meta"),
    )
    .unwrap();
    for cut in 0..real.len() {
        assert!(
            pickle::parse(&real[..cut]).is_err(),
            "a truncation at {cut} parsed"
        );
    }
    assert!(pickle::parse(&real).is_ok());
}
