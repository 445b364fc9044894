//! Shared helpers: where the real data lives, and writers for files in the original formats.

use std::path::PathBuf;

/// `../shared/data` beside the repository (or `$LM_SHARED_DATA`). Panics loudly when missing:
/// these tests read the real CIFAR-10 subset in place.
pub fn shared_data() -> PathBuf {
    let dir = std::env::var_os("LM_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    assert!(
        dir.join("cifar-10-subset").is_dir(),
        "\n\n*** the real test data is missing: expected {}/cifar-10-subset (the shared/ folder beside \
         the repository, or set LM_SHARED_DATA) ***\n",
        dir.display()
    );
    dir
}

/// A protocol-2 pickle of a CIFAR-style dict, in the opcode style of the originals: text keys,
/// integer lists and one uint8 numpy array.
pub struct PickleWriter(pub Vec<u8>);

impl PickleWriter {
    pub fn new() -> Self {
        PickleWriter(vec![0x80, 2, b'}', b'('])
    }
    fn text(&mut self, s: &str) {
        self.0.push(b'U');
        self.0.push(s.len() as u8);
        self.0.extend_from_slice(s.as_bytes());
    }
    pub fn strings(mut self, key: &str, items: &[&str]) -> Self {
        self.text(key);
        self.0.extend_from_slice(b"](");
        for s in items {
            self.text(s);
        }
        self.0.push(b'e');
        self
    }
    pub fn ints(mut self, key: &str, items: &[u8]) -> Self {
        self.text(key);
        self.0.extend_from_slice(b"](");
        for &i in items {
            self.0.extend_from_slice(&[b'K', i]);
        }
        self.0.push(b'e');
        self
    }
    pub fn array(mut self, key: &str, rows: usize, cols: usize, data: &[u8]) -> Self {
        self.text(key);
        self.0
            .extend_from_slice(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n");
        self.0
            .extend_from_slice(&[b'K', 0, 0x85, b'U', 1, b'b', 0x87, b'R', b'(', b'K', 1]);
        self.0.push(b'M');
        self.0.extend_from_slice(&(rows as u16).to_le_bytes());
        self.0.push(b'M');
        self.0.extend_from_slice(&(cols as u16).to_le_bytes());
        self.0.push(0x86);
        self.0.extend_from_slice(b"cnumpy\ndtype\n");
        self.0
            .extend_from_slice(&[b'U', 2, b'u', b'1', b'K', 0, b'K', 1, 0x87, b'R']);
        self.0
            .extend_from_slice(&[b'(', b'K', 3, b'U', 1, b'|', b'N', b'N', b'N', b'J']);
        self.0.extend_from_slice(&(-1i32).to_le_bytes());
        self.0.push(b'J');
        self.0.extend_from_slice(&(-1i32).to_le_bytes());
        self.0.extend_from_slice(&[b'K', 0, b't', b'b', 0x89, b'T']);
        self.0.extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.0.extend_from_slice(data);
        self.0.extend_from_slice(b"tb");
        self
    }
    pub fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(b"u.");
        self.0
    }
}

/// An IDX file of unsigned bytes.
pub fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
