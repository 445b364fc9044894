//! ImageFolder: one sub-folder per class (sorted names give the class indices), JPEG/PNG images,
//! and the ImageNet layout `train/` + `val/` (or the official script's `val_dir/`).

use std::collections::HashSet;
use std::io::{BufRead, Cursor, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use image::{ImageDecoder, ImageFormat, ImageReader, RgbImage};

use crate::error::{DataError, is_dir};

/// Image files by extension (case-insensitive), as torchvision's `IMG_EXTENSIONS` subset the
/// decoder supports.
const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Default of [`FolderOptions::max_image_side`]: the largest width or height decoded.
pub const DEFAULT_MAX_IMAGE_SIDE: u32 = 16384;

/// Default of [`FolderOptions::max_decode_bytes`]: the most memory one decoded image may take
/// (the `image` crate's own default allocation limit).
pub const DEFAULT_MAX_DECODE_BYTES: u64 = 512 << 20;

/// Options of a folder scan.
///
/// ```
/// use lmsoftmax_data::FolderOptions;
/// let o = FolderOptions { skip_bad_images: true, ..Default::default() };
/// assert_eq!(o.max_image_side, 16384);
/// ```
#[derive(Debug, Clone)]
pub struct FolderOptions {
    /// File names (not paths) to leave out, e.g. from the official blacklist file.
    pub blacklist: HashSet<String>,
    /// Skip (and count) images that cannot be read instead of failing: the scan checks every
    /// image's header (unreadable, empty, unknown format, over the limits), and
    /// [`ImageFolder::load`] replaces an image that fails to decode by the next good one.
    pub skip_bad_images: bool,
    /// Images wider or taller than this are refused before any pixel is allocated.
    pub max_image_side: u32,
    /// Images whose decoded pixels would take more bytes than this are refused.
    pub max_decode_bytes: u64,
}

impl Default for FolderOptions {
    fn default() -> Self {
        Self {
            blacklist: HashSet::new(),
            skip_bad_images: false,
            max_image_side: DEFAULT_MAX_IMAGE_SIDE,
            max_decode_bytes: DEFAULT_MAX_DECODE_BYTES,
        }
    }
}

impl FolderOptions {
    /// Reads a blacklist file: one file name (or path; its last component is used) per line.
    ///
    /// # Errors
    /// [`DataError`] if the file cannot be read.
    pub fn with_blacklist_file(mut self, path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let name = Path::new(line)
                .file_name()
                .map_or(line.into(), |n| n.to_string_lossy().into_owned());
            self.blacklist.insert(name);
        }
        Ok(self)
    }
}

/// A scanned image folder: the files and their labels; images are decoded on access.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    files: Vec<(PathBuf, u32)>,
    class_names: Vec<String>,
    skipped: Vec<PathBuf>,
    limits: DecodeLimits,
    skip_bad_images: bool,
    /// Files that failed while loading (with `skip_bad_images`), shared by the clones.
    load_skipped: Arc<Mutex<Vec<PathBuf>>>,
}

/// The decoding limits an [`ImageFolder`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DecodeLimits {
    max_side: u32,
    max_bytes: u64,
}

impl ImageFolder {
    /// Scans `root/<class>/*.{jpg,jpeg,png}`.
    ///
    /// # Errors
    /// A [`DataError`] for a missing root, a root without class folders, or an empty class
    /// folder (with `skip_bad_images`, a folder whose every image is bad counts as empty);
    /// with `skip_bad_images`, files whose header cannot be read are skipped and listed in
    /// [`skipped`](Self::skipped).
    pub fn scan(root: &Path, options: &FolderOptions) -> Result<Self, DataError> {
        let limits = DecodeLimits {
            max_side: options.max_image_side,
            max_bytes: options.max_decode_bytes,
        };
        let read = |dir: &Path| -> Result<Vec<PathBuf>, DataError> {
            let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| DataError::io(dir, e))?
                .map(|e| e.map(|e| e.path()).map_err(|e| DataError::io(dir, e)))
                .collect::<Result<_, _>>()?;
            v.sort();
            Ok(v)
        };
        if !is_dir(root)? {
            return Err(DataError::Missing {
                path: root.into(),
                what: "an image folder with one sub-folder per class".into(),
            });
        }
        let classes: Vec<PathBuf> = read(root)?.into_iter().filter(|p| p.is_dir()).collect();
        if classes.is_empty() {
            return Err(DataError::format(
                root,
                "no class sub-folders (expected root/<class>/<image>.jpg)",
            ));
        }
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        let mut class_names = Vec::new();
        for (label, class_dir) in classes.iter().enumerate() {
            class_names.push(
                class_dir
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            let mut count = 0;
            for path in read(class_dir)? {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let ext_ok = path.extension().is_some_and(|e| {
                    EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str())
                });
                if !path.is_file() || !ext_ok || options.blacklist.contains(&name) {
                    continue;
                }
                if options.skip_bad_images && header_error(&path, limits).is_some() {
                    skipped.push(path);
                    continue;
                }
                files.push((path, label as u32));
                count += 1;
            }
            if count == 0 {
                return Err(DataError::format(
                    class_dir,
                    "empty class folder: no .jpg/.jpeg/.png image in it",
                ));
            }
        }
        Ok(Self {
            root: root.into(),
            files,
            class_names,
            skipped,
            limits,
            skip_bad_images: options.skip_bad_images,
            load_skipped: Arc::default(),
        })
    }

    /// The folder scanned.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Number of images.
    pub fn len(&self) -> usize {
        self.files.len()
    }
    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
    /// Class names (sorted folder names).
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }
    /// Files skipped as unreadable: those the scan left out, then those that failed to decode
    /// in [`load`](Self::load) so far (with `skip_bad_images`), each once.
    pub fn skipped(&self) -> Vec<PathBuf> {
        let mut all = self.skipped.clone();
        all.extend(self.load_skipped.lock().unwrap().iter().cloned());
        all
    }
    /// Path and label of image `i`.
    pub fn entry(&self, i: usize) -> (&Path, u32) {
        let (p, l) = &self.files[i];
        (p, *l)
    }

    /// Decodes image `i` to RGB, within the folder's limits
    /// ([`FolderOptions::max_image_side`], [`FolderOptions::max_decode_bytes`]).
    ///
    /// With `skip_bad_images`, an image that fails (unreadable, truncated, over the limits, a
    /// decode error) is recorded in [`skipped`](Self::skipped) and the next good image (in
    /// scan order, wrapping) is returned with *its* label instead, so a batch keeps its size.
    ///
    /// # Errors
    /// [`DataError::BadImage`] naming the file and why (and suggesting `--skip-bad-images`);
    /// with `skip_bad_images`, only when no image of the folder decodes.
    pub fn load(&self, i: usize) -> Result<(RgbImage, u32), DataError> {
        let first = match self.decode(i) {
            Ok(ok) => return Ok(ok),
            Err(e) if !self.skip_bad_images => return Err(e),
            Err(e) => e,
        };
        self.record_skip(i);
        for k in 1..self.files.len() {
            let j = (i + k) % self.files.len();
            match self.decode(j) {
                Ok(ok) => return Ok(ok),
                Err(_) => self.record_skip(j),
            }
        }
        Err(DataError::Invalid(format!(
            "{}: no image of the folder can be decoded (the first failure: {first})",
            self.root.display()
        )))
    }

    fn decode(&self, i: usize) -> Result<(RgbImage, u32), DataError> {
        let (path, label) = self.entry(i);
        let bad = |reason: String| DataError::BadImage {
            path: path.into(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read the file: {e}")))?;
        if bytes.is_empty() {
            return Err(bad("empty file (0 bytes)".into()));
        }
        let reader = ImageReader::new(Cursor::new(&bytes[..]))
            .with_guessed_format()
            .map_err(|e| bad(format!("cannot read the file: {e}")))?;
        if reader.format() == Some(ImageFormat::Jpeg) && !ends_with_eoi(&bytes) {
            // the decoder would fill the missing part with grey and report success
            return Err(bad(
                "truncated JPEG: no end-of-image marker (FF D9) at its end".into(),
            ));
        }
        let decoder = open_checked(reader, self.limits).map_err(bad)?;
        let img = image::DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
        // a JPEG decodes to RGB8 already: into_rgb8 then hands the buffer over without a copy
        Ok((img.into_rgb8(), label))
    }

    fn record_skip(&self, i: usize) {
        let path = &self.files[i].0;
        let mut list = self.load_skipped.lock().unwrap();
        if !list.contains(path) {
            list.push(path.clone());
        }
    }
}

/// How far from the end of a JPEG its end-of-image marker may be (trailing bytes some writers
/// append after it).
const EOI_WINDOW: usize = 4096;

/// Whether a JPEG file holds its end-of-image marker `FF D9` near its end. A marker cannot occur
/// inside the entropy-coded data (an `FF` byte there is followed by `00`), so a file cut short in
/// its image data has none there.
fn ends_with_eoi(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(EOI_WINDOW)..];
    tail.windows(2).any(|w| w == [0xff, 0xd9])
}

/// Why the header of the image at `path` is unusable (see [`open_checked`]), if it is.
fn header_error(path: &Path, limits: DecodeLimits) -> Option<String> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
        return Some("empty file (0 bytes)".into());
    }
    let reader = match ImageReader::open(path).and_then(ImageReader::with_guessed_format) {
        Ok(r) => r,
        Err(e) => return Some(format!("cannot read the file: {e}")),
    };
    open_checked(reader, limits).err()
}

/// Reads the header of an image: the decoder, ready to decode within `limits`, or why not
/// (empty, unknown format, bad header, over the limits).
fn open_checked<'a, R: BufRead + Seek + 'a>(
    mut reader: ImageReader<R>,
    limits: DecodeLimits,
) -> Result<impl ImageDecoder + 'a, String> {
    // the header is read without limits so that an oversized image is reported with its size
    reader.no_limits();
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(format!("empty image ({w}x{h})"));
    }
    if w > limits.max_side || h > limits.max_side {
        return Err(format!(
            "its header claims {w}x{h} pixels, over the decoding limit of {0}x{0}",
            limits.max_side
        ));
    }
    let bytes = decoder.total_bytes();
    if bytes > limits.max_bytes {
        return Err(format!(
            "decoding its {w}x{h} pixels would take {bytes} bytes, over the limit of {} bytes",
            limits.max_bytes
        ));
    }
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_side);
    image_limits.max_image_height = Some(limits.max_side);
    image_limits.max_alloc = Some(limits.max_bytes);
    decoder
        .set_limits(image_limits)
        .map_err(|e| e.to_string())?;
    Ok(decoder)
}

/// The ImageNet layout under `root`: `train/` and `val/` (or `val_dir/`), with the same classes.
///
/// # Errors
/// A [`DataError`] for a missing split or differing class folders.
pub fn imagenet_layout(
    root: &Path,
    options: &FolderOptions,
) -> Result<(ImageFolder, ImageFolder), DataError> {
    let train = ImageFolder::scan(&root.join("train"), options)?;
    let val_dir = if is_dir(&root.join("val"))? {
        root.join("val")
    } else {
        root.join("val_dir")
    };
    if !is_dir(&val_dir)? {
        return Err(DataError::Missing {
            path: root.join("val"),
            what: "the validation split (val/ or val_dir/)".into(),
        });
    }
    let val = ImageFolder::scan(&val_dir, options)?;
    if train.class_names != val.class_names {
        return Err(DataError::format(
            &val_dir,
            "its class folders differ from train/'s: class indices would not match",
        ));
    }
    Ok((train, val))
}

#[cfg(test)]
mod tests {
    use super::ends_with_eoi;

    #[test]
    fn end_of_image_marker_at_or_near_the_end() {
        assert!(ends_with_eoi(&[0xff, 0xd8, 1, 2, 0xff, 0xd9]));
        // trailing bytes after the marker, within the window
        let mut tail = vec![0xff, 0xd8, 0xff, 0xd9];
        tail.extend(std::iter::repeat_n(0u8, 100));
        assert!(ends_with_eoi(&tail));
        // cut short: no marker; a marker only far from the end (an EXIF thumbnail's) is not it
        assert!(!ends_with_eoi(&[0xff, 0xd8, 1, 2, 0xff, 0x00]));
        let mut thumb = vec![0xff, 0xd8, 0xff, 0xd9];
        thumb.extend(std::iter::repeat_n(7u8, super::EOI_WINDOW));
        assert!(!ends_with_eoi(&thumb));
        assert!(!ends_with_eoi(&[]));
    }
}
