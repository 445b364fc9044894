//! ColorJitter against Pillow: `tests/data/pil/color_jitter.json` holds small RGB images and
//! Pillow's exact output bytes of `ImageEnhance.Brightness / Contrast / Color(img).enhance(f)`
//! (what torchvision's ColorJitter runs on PIL images) for single operations and composed orders,
//! made by `scripts/make_pil_fixtures.py`. Both our paths must give those bytes exactly.

use std::collections::HashMap;

use image::RgbImage;
use lmsoftmax_data::transforms::{
    JitterOp, adjust_brightness, adjust_contrast, adjust_saturation, apply_jitter, jitter_table,
};
use serde_json::Value;

/// One fixture case: the input image, the steps in order, and Pillow's output.
struct Case {
    label: String,
    input: RgbImage,
    steps: Vec<(JitterOp, f32)>,
    want: Vec<u8>,
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd-length hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

fn cases() -> Vec<Case> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/pil/color_jitter.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: Value = serde_json::from_str(&text).expect("fixture JSON");
    let images: HashMap<&str, RgbImage> = doc["images"]
        .as_object()
        .expect("images")
        .iter()
        .map(|(name, im)| {
            let (w, h) = (
                im["width"].as_u64().unwrap(),
                im["height"].as_u64().unwrap(),
            );
            let rgb = hex(im["rgb"].as_str().unwrap());
            let img = RgbImage::from_raw(w as u32, h as u32, rgb).expect("w * h * 3 bytes");
            (name.as_str(), img)
        })
        .collect();
    doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| {
            let name = case["image"].as_str().unwrap();
            let steps: Vec<(JitterOp, f32)> = case["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|step| {
                    let op = match step[0].as_str().unwrap() {
                        "brightness" => JitterOp::Brightness,
                        "contrast" => JitterOp::Contrast,
                        "saturation" => JitterOp::Saturation,
                        other => panic!("unknown operation {other}"),
                    };
                    // The JSON holds float32 values as the shortest text of their float64.
                    // serde_json's default parser may land an ulp of f64 off that text, which
                    // never moves the nearest f32; the check says the value was a float32.
                    let x = step[1].as_f64().unwrap();
                    let f = x as f32;
                    assert!((f as f64 - x).abs() <= 1e-12 * x.abs(), "{x} is no float32");
                    (op, f)
                })
                .collect();
            Case {
                label: format!("{name} {steps:?}"),
                input: images[name].clone(),
                steps,
                want: hex(case["out"].as_str().unwrap()),
            }
        })
        .collect()
}

/// Runs `path` on every case and fails listing every case whose bytes differ from Pillow's.
fn check(path: impl Fn(&mut RgbImage, &[(JitterOp, f32)])) -> usize {
    let cases = cases();
    let mut failures = Vec::new();
    for case in &cases {
        let mut img = case.input.clone();
        path(&mut img, &case.steps);
        let got = img.as_raw();
        if got != &case.want {
            let at = got.iter().zip(&case.want).position(|(a, b)| a != b);
            let diff = at.map(|i| (i, got[i], case.want[i]));
            failures.push(format!(
                "{}: first differing byte (index, ours, Pillow's) {diff:?}",
                case.label
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Pillow:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

#[test]
fn pil_fixtures_cover_every_operation_factor_and_order() {
    let cases = cases();
    assert_eq!(cases.len(), 336);
    let singles = cases.iter().filter(|c| c.steps.len() == 1).count();
    assert_eq!(singles, 8 * 3 * 8); // images x operations x factors
    for f in [0.0f32, 0.6, 0.999, 1.0, 1.4, 2.5] {
        for op in [
            JitterOp::Brightness,
            JitterOp::Contrast,
            JitterOp::Saturation,
        ] {
            assert!(cases.iter().any(|c| c.steps == [(op, f)]), "{op:?} {f}");
        }
    }
    let mut orders: Vec<Vec<JitterOp>> = cases
        .iter()
        .filter(|c| c.steps.len() == 3)
        .map(|c| c.steps.iter().map(|s| s.0).collect())
        .collect();
    orders.sort_by_key(|o| format!("{o:?}"));
    orders.dedup();
    assert_eq!(orders.len(), 6, "all orders of the three operations");
    // the fixtures are not all identities: most single cases change the image
    let changed = cases.iter().filter(|c| c.want != *c.input.as_raw()).count();
    assert!(changed > 200, "{changed}");
}

#[test]
fn pil_step_by_step_functions_match_pillow_byte_for_byte() {
    // each operation's own function, one after another
    let n = check(|img, steps| {
        for &(op, f) in steps {
            match op {
                JitterOp::Brightness => adjust_brightness(img, f),
                JitterOp::Contrast => adjust_contrast(img, f),
                JitterOp::Saturation => adjust_saturation(img, f),
            }
        }
    });
    assert_eq!(n, 336);
}

#[test]
fn pil_apply_jitter_matches_pillow_byte_for_byte() {
    assert_eq!(check(apply_jitter), 336);
}

#[test]
fn pil_fused_jitter_table_matches_pillow_byte_for_byte() {
    // the ImageNet pipeline's path: saturation in place, brightness/contrast as a byte table
    let n = check(|img, steps| {
        let table = jitter_table(img, steps);
        img.iter_mut().for_each(|v| *v = table[*v as usize]);
    });
    assert_eq!(n, 336);
}
