//! The official augmentation (shared/PROTOCOL.md §2-3), written into a normalised `f32` CHW
//! buffer. Deterministic steps are exact; random ones draw from the RNG they are given.

use std::cell::RefCell;

use fast_image_resize::images::ImageRef;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use rand::Rng;
use rand_distr::{Distribution, Normal};

mod jitter;

pub use jitter::{
    JitterOp, adjust_brightness, adjust_contrast, adjust_saturation, apply_jitter, color_jitter,
    jitter_table,
};

/// Per-channel normalisation `(x / 255 - mean) / std`.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    /// Per-channel mean on the [0, 1] scale.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation on the [0, 1] scale.
    pub std: Vec<f32>,
}

impl Normalize {
    /// The official CIFAR-10 constants (`utils/mytransforms.py`).
    pub fn cifar10() -> Self {
        Self {
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2023, 0.1994, 0.2010],
        }
    }
    /// The official CIFAR-100 constants.
    pub fn cifar100() -> Self {
        Self {
            mean: vec![0.5071, 0.4867, 0.4408],
            std: vec![0.2675, 0.2565, 0.2761],
        }
    }
    /// The ImageNet constants.
    pub fn imagenet() -> Self {
        Self {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }
    /// Normalisation from measured statistics (any channel count).
    pub fn from_stats(mean: &[f64], std: &[f64]) -> Self {
        Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std: std.iter().map(|&s| s.max(1e-6) as f32).collect(),
        }
    }
    /// Normalised value of a byte in channel `c`.
    #[inline]
    pub fn byte(&self, c: usize, v: u8) -> f32 {
        (v as f32 / 255.0 - self.mean[c]) / self.std[c]
    }
}

/// The random choices of the CIFAR training transform, drawn from `rng`: crop offsets in
/// `0..=2*pad` and a flip with probability 1/2.
pub fn draw_cifar_choice(rng: &mut impl Rng, pad: usize) -> (usize, usize, bool) {
    let dx = rng.random_range(0..=2 * pad);
    let dy = rng.random_range(0..=2 * pad);
    (dx, dy, rng.random_bool(0.5))
}

/// CIFAR training augmentation with given choices: pad `pad` pixels of colour `fill`, crop the
/// original size at `(dx, dy)` of the padded image, flip horizontally if `flip`, normalise.
/// `image` is planar `[c, h, w]`; `out` receives the same shape.
///
/// ```
/// use lmsoftmax_data::transforms::{Normalize, cifar_crop};
/// let img = [10u8, 20, 30, 40]; // 1 x 2 x 2
/// let norm = Normalize { mean: vec![0.0], std: vec![1.0 / 255.0] }; // output = byte value
/// let mut out = [0.0f32; 4];
/// cifar_crop(&img, [1, 2, 2], &[7], 1, 0, 0, false, &norm, &mut out); // shift down-right
/// let want = [7.0, 7.0, 7.0, 10.0];
/// assert!(out.iter().zip(want).all(|(o, w)| (o - w).abs() < 1e-4), "{out:?}");
/// ```
#[allow(clippy::too_many_arguments)]
pub fn cifar_crop(
    image: &[u8],
    shape: [usize; 3],
    fill: &[u8],
    pad: usize,
    dx: usize,
    dy: usize,
    flip: bool,
    norm: &Normalize,
    out: &mut [f32],
) {
    let [c, h, w] = shape;
    for ch in 0..c {
        let filled = norm.byte(ch, fill[ch]);
        let plane = &image[ch * h * w..(ch + 1) * h * w];
        let out_plane = &mut out[ch * h * w..(ch + 1) * h * w];
        for y in 0..h {
            let sy = (y + dy) as isize - pad as isize;
            for x in 0..w {
                let cx = if flip { w - 1 - x } else { x };
                let sx = (cx + dx) as isize - pad as isize;
                out_plane[y * w + x] =
                    if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                        norm.byte(ch, plane[sy as usize * w + sx as usize])
                    } else {
                        filled
                    };
            }
        }
    }
}

/// Normalises a planar image without augmentation (the test transform).
pub fn normalize_planar(image: &[u8], shape: [usize; 3], norm: &Normalize, out: &mut [f32]) {
    let plane = shape[1] * shape[2];
    for (i, (&v, o)) in image.iter().zip(out.iter_mut()).enumerate() {
        *o = norm.byte(i / plane, v);
    }
}

/// torchvision's `RandomResizedCrop` box `(left, top, width, height)`: scale in `[0.08, 1]` of the
/// area, log-uniform aspect ratio in `[3/4, 4/3]`, 10 tries, then the centre-crop fallback.
pub fn random_resized_crop_box(
    rng: &mut impl Rng,
    width: u32,
    height: u32,
) -> (u32, u32, u32, u32) {
    let area = (width * height) as f64;
    let (lo, hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.random_range(0.08..=1.0);
        let ratio = rng.random_range(lo..=hi).exp();
        // `int(round(..))` in torchvision: Python's round() takes ties to even
        let w = (target * ratio).sqrt().round_ties_even() as u32;
        let h = (target / ratio).sqrt().round_ties_even() as u32;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return (left, top, w, h);
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < 3.0 / 4.0 {
        (
            width,
            ((width as f64) / (3.0 / 4.0)).round_ties_even() as u32,
        )
    } else if in_ratio > 4.0 / 3.0 {
        (
            ((height as f64) * (4.0 / 3.0)).round_ties_even() as u32,
            height,
        )
    } else {
        (width, height)
    };
    ((width - w) / 2, (height - h) / 2, w, h)
}

/// AlexNet-style PCA lighting: eigenvalues and eigenvectors (columns) of ImageNet's RGB covariance.
pub const LIGHTING_EIGVAL: [f32; 3] = [0.2175, 0.0188, 0.0045];
/// Rows are R, G, B; column k is eigenvector k.
pub const LIGHTING_EIGVEC: [[f32; 3]; 3] = [
    [-0.5675, 0.7192, 0.4009],
    [-0.5808, -0.0045, -0.8140],
    [-0.5836, -0.6948, 0.4203],
];

/// The per-channel offset (on the [0, 1] scale) of PCA lighting with `alpha ~ N(0, std^2)`.
pub fn lighting_offset(rng: &mut impl Rng, std: f32) -> [f32; 3] {
    let normal = Normal::new(0.0f32, std).expect("finite std");
    let alpha: [f32; 3] = [normal.sample(rng), normal.sample(rng), normal.sample(rng)];
    let mut off = [0.0f32; 3];
    for (c, o) in off.iter_mut().enumerate() {
        *o = (0..3)
            .map(|k| LIGHTING_EIGVEC[c][k] * alpha[k] * LIGHTING_EIGVAL[k])
            .sum();
    }
    off
}

/// Writes an RGB image as normalised planar floats, adding `offset` (lighting) before normalising.
pub fn rgb_to_planar(img: &RgbImage, offset: [f32; 3], norm: &Normalize, out: &mut [f32]) {
    let plane = (img.width() * img.height()) as usize;
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (p[c] as f32 / 255.0 + offset[c] - norm.mean[c]) / norm.std[c];
        }
    }
}

thread_local! {
    /// One resizer per thread: it keeps its scratch buffers between images.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
    /// The crop of the image being resized, one buffer per thread.
    static CROP: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Crops `(left, top, w, h)` out of `img` and resizes it to `out_w x out_h` with a bilinear
/// (triangle) filter whose support widens when shrinking, as PIL's `BILINEAR` does.
pub fn crop_resize(
    img: &RgbImage,
    (left, top, w, h): (u32, u32, u32, u32),
    out_w: u32,
    out_h: u32,
) -> RgbImage {
    // Only pixels inside the box take part, as in torchvision's crop-then-resize (the resizer's
    // own cropping would let the filter reach outside the box). The crop is copied row by row
    // into a per-thread buffer that is reused from image to image.
    let mut dst = RgbImage::new(out_w, out_h);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    let whole = (left, top, w, h) == (0, 0, img.width(), img.height());
    CROP.with(|buf| {
        let mut buf = buf.borrow_mut();
        let pixels: &[u8] = if whole {
            img.as_raw()
        } else {
            let (stride, row) = (3 * img.width() as usize, 3 * w as usize);
            buf.clear();
            for y in top as usize..(top + h) as usize {
                let at = y * stride + 3 * left as usize;
                buf.extend_from_slice(&img.as_raw()[at..at + row]);
            }
            &buf
        };
        let src = ImageRef::new(w, h, pixels, PixelType::U8x3)
            .expect("the crop buffer holds w x h RGB pixels");
        RESIZER.with(|r| {
            r.borrow_mut()
                .resize(&src, &mut dst, &options)
                .expect("RGB8 images of non-zero size resize")
        });
    });
    dst
}

/// ImageNet training augmentation: RandomResizedCrop(size), flip, ColorJitter 0.4, lighting 0.1,
/// normalise.
///
/// The same numbers as applying [`color_jitter`] and [`rgb_to_planar`] to the flipped crop, in
/// fewer passes: [`jitter_table`] folds brightness and contrast into one 256-entry table and
/// gives only saturation a pass of its own; that table, the lighting offset and the
/// normalisation become three float tables read while writing the planar output, and the flip
/// happens there too (every step before it is per pixel or, like contrast's mean, order-free).
pub fn imagenet_train(
    img: &RgbImage,
    size: u32,
    norm: &Normalize,
    rng: &mut impl Rng,
    out: &mut [f32],
) {
    let crop = random_resized_crop_box(rng, img.width(), img.height());
    let mut resized = crop_resize(img, crop, size, size);
    let flip = rng.random_bool(0.5);
    let table = jitter_table(&mut resized, &jitter::jitter_draws(0.4, rng));
    let offset = lighting_offset(rng, 0.1);
    let planes: [[f32; 256]; 3] = std::array::from_fn(|c| {
        std::array::from_fn(|v| (table[v] as f32 / 255.0 + offset[c] - norm.mean[c]) / norm.std[c])
    });
    let (w, h) = (resized.width() as usize, resized.height() as usize);
    let plane = w * h;
    let (r_out, rest) = out[..3 * plane].split_at_mut(plane);
    let (g_out, b_out) = rest.split_at_mut(plane);
    for (y, row) in resized.as_raw().chunks_exact(3 * w).enumerate() {
        let at = y * w;
        let (r_row, g_row, b_row) = (
            &mut r_out[at..at + w],
            &mut g_out[at..at + w],
            &mut b_out[at..at + w],
        );
        for (x, px) in row.chunks_exact(3).enumerate() {
            let x = if flip { w - 1 - x } else { x };
            r_row[x] = planes[0][px[0] as usize];
            g_row[x] = planes[1][px[1] as usize];
            b_row[x] = planes[2][px[2] as usize];
        }
    }
}

/// ImageNet test transform: resize the shorter side to `resize` (bilinear), centre crop `crop`.
pub fn imagenet_test(img: &RgbImage, resize_to: u32, crop: u32, norm: &Normalize, out: &mut [f32]) {
    let (w, h) = (img.width(), img.height());
    let (nw, nh) = if w <= h {
        (resize_to, ((h as f64) * resize_to as f64 / w as f64) as u32)
    } else {
        (((w as f64) * resize_to as f64 / h as f64) as u32, resize_to)
    };
    let resized = crop_resize(img, (0, 0, w, h), nw, nh);
    // torchvision's CenterCrop: `int(round((size - crop) / 2.0))`, and Python's round() takes
    // ties to even (an odd margin of 69 starts the crop at row 34, not 35)
    let left = ((nw as f64 - crop as f64) / 2.0).round_ties_even() as u32;
    let top = ((nh as f64 - crop as f64) / 2.0).round_ties_even() as u32;
    let cropped = image::imageops::crop_imm(&resized, left, top, crop, crop).to_image();
    rgb_to_planar(&cropped, [0.0; 3], norm, out);
}
