//! ImageFolder: one sub-folder per class (sorted names give the class indices), JPEG/PNG images,
//! and the ImageNet layout `train/` + `val/` (or the official script's `val_dir/`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::error::DataError;

/// Image files by extension (case-insensitive), as torchvision's `IMG_EXTENSIONS` subset the
/// decoder supports.
const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Options of a folder scan.
#[derive(Debug, Clone, Default)]
pub struct FolderOptions {
    /// File names (not paths) to leave out, e.g. from the official blacklist file.
    pub blacklist: HashSet<String>,
    /// Check every image's header while scanning and skip (counting) the ones that cannot be
    /// read, instead of failing when they are loaded.
    pub skip_bad_images: bool,
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
}

impl ImageFolder {
    /// Scans `root/<class>/*.{jpg,jpeg,png}`.
    ///
    /// # Errors
    /// A [`DataError`] for a missing root, a root without class folders, an empty class folder,
    /// or (without `skip_bad_images`) nothing; with it, unreadable files are skipped and listed
    /// in [`skipped`](Self::skipped).
    pub fn scan(root: &Path, options: &FolderOptions) -> Result<Self, DataError> {
        let read = |dir: &Path| -> Result<Vec<PathBuf>, DataError> {
            let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| DataError::io(dir, e))?
                .map(|e| e.map(|e| e.path()).map_err(|e| DataError::io(dir, e)))
                .collect::<Result<_, _>>()?;
            v.sort();
            Ok(v)
        };
        if !root.is_dir() {
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
                if options.skip_bad_images && header_error(&path).is_some() {
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
    /// Files skipped as unreadable during the scan.
    pub fn skipped(&self) -> &[PathBuf] {
        &self.skipped
    }
    /// Path and label of image `i`.
    pub fn entry(&self, i: usize) -> (&Path, u32) {
        let (p, l) = &self.files[i];
        (p, *l)
    }

    /// Decodes image `i` to RGB.
    ///
    /// # Errors
    /// [`DataError::BadImage`] naming the file.
    pub fn load(&self, i: usize) -> Result<(RgbImage, u32), DataError> {
        let (path, label) = self.entry(i);
        let img = image::ImageReader::open(path)
            .map_err(|e| DataError::io(path, e))?
            .with_guessed_format()
            .map_err(|e| DataError::io(path, e))?
            .decode()
            .map_err(|e| DataError::BadImage {
                path: path.into(),
                reason: e.to_string(),
            })?;
        // a JPEG decodes to RGB8 already: into_rgb8 then hands the buffer over without a copy
        Ok((img.into_rgb8(), label))
    }
}

fn header_error(path: &Path) -> Option<String> {
    let reader = image::ImageReader::open(path)
        .ok()?
        .with_guessed_format()
        .ok()?;
    match reader.into_dimensions() {
        Ok((w, h)) if w > 0 && h > 0 => None,
        Ok(_) => Some("empty image".into()),
        Err(e) => Some(e.to_string()),
    }
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
    let val_dir = if root.join("val").is_dir() {
        root.join("val")
    } else {
        root.join("val_dir")
    };
    if !val_dir.is_dir() {
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
