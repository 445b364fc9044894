//! ColorJitter(brightness, contrast, saturation) as torchvision applies it to PIL images.
//!
//! torchvision's `adjust_brightness`, `adjust_contrast` and `adjust_saturation` on a PIL image
//! are `ImageEnhance.Brightness / Contrast / Color(img).enhance(factor)`, which is Pillow's
//! `Image.blend(degenerate, img, factor)`: C `ImagingBlend` computes
//! `degenerate + factor * (img - degenerate)` per byte in `float` (the factor narrowed to
//! float32), clamps it to [0, 255] and truncates it to `u8` (no rounding). The degenerate images:
//!
//! - brightness: black;
//! - contrast: a uniform grey whose level is the mean of the image converted to "L",
//!   `int(mean + 0.5)` (`ImageStat.Stat(l).mean[0]`);
//! - saturation: the image converted to "L" and back to RGB (the grey level copied to all three
//!   channels).
//!
//! Pillow's RGB -> L is ITU-R 601-2 luma in 16-bit fixed point with rounding:
//! `(19595 r + 38470 g + 7471 b + 0x8000) >> 16` (`L24` in `libImaging/Convert.c`).
//!
//! All of this was checked against Pillow 13.0.0 by experiment (every `(degenerate, value)` byte
//! pair for 50 factors, all 2^24 colours for the luma), and the tests hold both paths here to
//! Pillow's bytes (`tests/data/pil/color_jitter.json`, made by `scripts/make_pil_fixtures.py`).
//!
//! Two paths compute the same bytes: the step-by-step one ([`apply_jitter`], and
//! [`adjust_brightness`], [`adjust_contrast`], [`adjust_saturation`]) and the fused one used by
//! the ImageNet pipeline ([`jitter_table`]), which folds brightness and contrast into a byte table.

use image::RgbImage;
use rand::Rng;

/// One of ColorJitter's three operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JitterOp {
    /// Blend with black.
    Brightness,
    /// Blend with the mean grey level.
    Contrast,
    /// Blend with the greyscale image.
    Saturation,
}

/// Pillow's `ImagingBlend` of one byte with the degenerate byte `degenerate`:
/// `degenerate + f (p - degenerate)` in f32, clamped to [0, 255], truncated.
#[inline(always)]
fn blend_px(p: u8, degenerate: u8, f: f32) -> u8 {
    let d = degenerate as f32;
    // the same f32 operations in the same order as the C expression (Rust never fuses them)
    let v = (d + f * (p as f32 - d)).clamp(0.0, 255.0);
    if v.is_finite() {
        // SAFETY: finite and within [0, 255], so the truncation fits an u8
        unsafe { v.to_int_unchecked::<u8>() }
    } else {
        0 // a non-finite factor: never drawn (factors are in [1 - s, 1 + s])
    }
}

/// ITU-R 601-2 luma as Pillow's `convert("L")` computes it.
#[inline(always)]
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// `ImageEnhance.Contrast`'s grey level: the mean luma of `pixels` (after `table`), rounded as
/// `int(mean + 0.5)`.
fn mean_grey(pixels: &[u8], table: &[u8; 256]) -> u8 {
    let n = (pixels.len() / 3) as f64;
    let sum: u64 = pixels
        .chunks_exact(3)
        .map(|p| {
            luma(
                table[p[0] as usize],
                table[p[1] as usize],
                table[p[2] as usize],
            ) as u64
        })
        .sum();
    // the sum is exact in f64 (at most 255 per pixel), as ImageStat's histogram sum is
    (sum as f64 / n + 0.5) as u8
}

const IDENTITY: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut v = 0;
    while v < 256 {
        t[v] = v as u8;
        v += 1;
    }
    t
};

/// torchvision's `adjust_brightness` on a PIL image: blend with black.
///
/// ```
/// use lmsoftmax_data::transforms::adjust_brightness;
/// let mut img = image::RgbImage::from_pixel(1, 1, image::Rgb([1, 100, 200]));
/// adjust_brightness(&mut img, 0.6);
/// // 0.6, 60.000004, 120.00001 truncate (Pillow does not round)
/// assert_eq!(img.get_pixel(0, 0).0, [0, 60, 120]);
/// ```
pub fn adjust_brightness(img: &mut RgbImage, factor: f32) {
    img.iter_mut().for_each(|p| *p = blend_px(*p, 0, factor));
}

/// torchvision's `adjust_contrast` on a PIL image: blend with a uniform grey at the image's
/// mean luma (rounded half up).
///
/// ```
/// use lmsoftmax_data::transforms::adjust_contrast;
/// // grey levels 100 and 101: the mean 100.5 rounds to 101
/// let mut img = image::RgbImage::from_fn(2, 1, |x, _| image::Rgb([100 + x as u8; 3]));
/// adjust_contrast(&mut img, 0.0);
/// assert!(img.pixels().all(|p| p.0 == [101; 3]));
/// ```
pub fn adjust_contrast(img: &mut RgbImage, factor: f32) {
    let grey = mean_grey(img.as_raw(), &IDENTITY);
    img.iter_mut().for_each(|p| *p = blend_px(*p, grey, factor));
}

/// torchvision's `adjust_saturation` on a PIL image: blend each pixel with its own luma.
///
/// ```
/// use lmsoftmax_data::transforms::adjust_saturation;
/// let mut img = image::RgbImage::from_pixel(1, 1, image::Rgb([255, 0, 0]));
/// adjust_saturation(&mut img, 0.0);
/// assert_eq!(img.get_pixel(0, 0).0, [76; 3]); // Pillow's L of pure red
/// ```
pub fn adjust_saturation(img: &mut RgbImage, factor: f32) {
    for px in img.chunks_exact_mut(3) {
        let grey = luma(px[0], px[1], px[2]);
        for p in px {
            *p = blend_px(*p, grey, factor);
        }
    }
}

/// Applies `steps` in order, one full pass each: torchvision's ColorJitter with its random
/// order and factors given.
///
/// ```
/// use lmsoftmax_data::transforms::{JitterOp, apply_jitter};
/// let mut img = image::RgbImage::from_pixel(2, 2, image::Rgb([200, 30, 90]));
/// apply_jitter(&mut img, &[(JitterOp::Saturation, 0.0), (JitterOp::Brightness, 0.5)]);
/// assert_eq!(img.get_pixel(0, 0).0, [44; 3]); // L = 88, then halved
/// ```
pub fn apply_jitter(img: &mut RgbImage, steps: &[(JitterOp, f32)]) {
    for &(op, f) in steps {
        match op {
            JitterOp::Brightness => adjust_brightness(img, f),
            JitterOp::Contrast => adjust_contrast(img, f),
            JitterOp::Saturation => adjust_saturation(img, f),
        }
    }
}

/// The fused form of [`apply_jitter`]: saturation steps are applied to `img` in place, and the
/// brightness and contrast steps after the last of them are returned as a byte table for the
/// caller to apply (`table[v]` for every byte `v` of `img`). Brightness and contrast are
/// functions of the byte value alone (contrast's grey level is a mean over the whole image), so
/// consecutive ones compose into one table; saturation mixes a pixel's channels and needs a pass
/// of its own. Applying the table to `img` gives [`apply_jitter`]'s bytes exactly.
///
/// ```
/// use lmsoftmax_data::transforms::{JitterOp, apply_jitter, jitter_table};
/// let img = image::RgbImage::from_fn(3, 2, |x, y| image::Rgb([(x * 90) as u8, (y * 200) as u8, 17]));
/// let steps = [(JitterOp::Contrast, 1.4), (JitterOp::Saturation, 0.7), (JitterOp::Brightness, 0.9)];
/// let mut fused = img.clone();
/// let table = jitter_table(&mut fused, &steps);
/// fused.iter_mut().for_each(|v| *v = table[*v as usize]);
/// let mut step_by_step = img;
/// apply_jitter(&mut step_by_step, &steps);
/// assert_eq!(fused, step_by_step);
/// ```
pub fn jitter_table(img: &mut RgbImage, steps: &[(JitterOp, f32)]) -> [u8; 256] {
    let mut table = IDENTITY;
    for &(op, f) in steps {
        match op {
            JitterOp::Brightness => table = table.map(|v| blend_px(v, 0, f)),
            JitterOp::Contrast => {
                let grey = mean_grey(img.as_raw(), &table);
                table = table.map(|v| blend_px(v, grey, f));
            }
            JitterOp::Saturation => {
                for px in img.chunks_exact_mut(3) {
                    let (r, g, b) = (
                        table[px[0] as usize],
                        table[px[1] as usize],
                        table[px[2] as usize],
                    );
                    let grey = luma(r, g, b);
                    px[0] = blend_px(r, grey, f);
                    px[1] = blend_px(g, grey, f);
                    px[2] = blend_px(b, grey, f);
                }
                table = IDENTITY;
            }
        }
    }
    table
}

/// ColorJitter's random choices, in the order they are drawn: a random order of the three
/// operations, then each one's factor, uniform in `[1 - strength, 1 + strength]`.
pub(crate) fn jitter_draws(strength: f32, rng: &mut impl Rng) -> [(JitterOp, f32); 3] {
    let mut order = [
        JitterOp::Brightness,
        JitterOp::Contrast,
        JitterOp::Saturation,
    ];
    for i in (1..3).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
    order.map(|op| (op, rng.random_range(1.0 - strength..=1.0 + strength)))
}

/// ColorJitter(brightness, contrast, saturation) with factors uniform in `[1-s, 1+s]`, applied
/// in a random order, with torchvision's PIL semantics (see the [module docs](self)).
pub fn color_jitter(img: &mut RgbImage, strength: f32, rng: &mut impl Rng) {
    apply_jitter(img, &jitter_draws(strength, rng));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_is_pillows_rounded_fixed_point() {
        // Pillow 13: Image.new("RGB", (1, 1), c).convert("L").getpixel((0, 0))
        for (c, want) in [
            ([255, 0, 0], 76),
            ([0, 255, 0], 150),
            ([0, 0, 255], 29),
            ([255, 255, 255], 255),
            ([1, 1, 0], 1),
            ([200, 30, 90], 88),
        ] {
            assert_eq!(luma(c[0], c[1], c[2]), want, "{c:?}");
        }
    }

    #[test]
    fn blend_truncates_and_clamps_as_imaging_blend() {
        // Pillow 13, Image.blend of 1x1 "L" images (degenerate, p, f)
        assert_eq!(blend_px(1, 0, 0.6), 0); // 0.6
        assert_eq!(blend_px(255, 0, 0.999), 254); // 254.745
        assert_eq!(blend_px(200, 0, 1.4), 255); // 280 clamps
        assert_eq!(blend_px(0, 128, 1.4), 0); // -51.2 clamps
        assert_eq!(blend_px(101, 100, 1.4), 101); // 101.4
        assert_eq!(blend_px(37, 37, 2.5), 37);
        assert_eq!(blend_px(9, 3, f32::NAN), 0);
    }
}
