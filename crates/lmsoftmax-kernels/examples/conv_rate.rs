//! Times the convolution forward and weight gradient of layer13's 3x3 layer shapes (batch 128)
//! on this crate's flex kernels, best of three after a warm-up, as ms and GFLOP/s:
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo run --release -p lmsoftmax-kernels --example conv_rate -- bf16
//! ```
//!
//! Arguments: the precision (`bf16`, the default, or `fp32`), then optionally `forward` or
//! `weight-grad` to time one phase only (for a profile).
use burn::backend::ops::ConvOptions;
use lmsoftmax_kernels::autocast::{Precision, autocast};
use lmsoftmax_kernels::flex::conv;
use std::time::Instant;

/// Best wall time of three runs of `f` after one warm-up, in ms.
fn best_ms<F: FnMut()>(mut f: F) -> f64 {
    f();
    (0..3)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::MAX, f64::min)
}

/// Deterministic values in `[-scale/2, scale/2)`.
fn values(len: usize, step: usize, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * step) % 1000) as f32 / 1000.0 * scale - scale / 2.0)
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let precision = match args.first().map(String::as_str) {
        None | Some("bf16") => Precision::Bf16,
        Some("fp32") => Precision::Fp32,
        Some(other) => panic!("precision {other:?}: expected bf16 or fp32"),
    };
    let phase = args.get(1).map(String::as_str).unwrap_or("both");
    assert!(
        matches!(phase, "both" | "forward" | "weight-grad"),
        "phase {phase:?}: expected forward or weight-grad"
    );
    let _scope = autocast(precision);
    let n = 128;
    // (input channels, output channels, input side, padding): layer13's 3x3 convolutions
    for (c, o, side, pad) in [
        (128, 128, 32, 1),
        (256, 256, 16, 1),
        (256, 512, 8, 0),
        (512, 256, 6, 1),
    ] {
        let x_dims = [n, c, side, side];
        let w_dims = [o, c, 3, 3];
        let x = values(n * c * side * side, 7919, 1.0);
        let w = values(o * c * 9, 104_729, 0.1);
        let options = ConvOptions::new([1, 1], [pad, pad], [1, 1], 1);
        let out = side + 2 * pad - 2;
        let dy_dims = [n, o, out, out];
        let dy = values(dy_dims.iter().product(), 31, 1.0);
        let flop = 2.0 * (n * out * out * o * c * 9) as f64;
        let mut line = format!("{c:>3} -> {o:>3} at {side:>2}x{side:<2} ({precision:?}):");
        if phase != "weight-grad" {
            let ms = best_ms(|| {
                std::hint::black_box(conv::forward_f32(&x, x_dims, &w, w_dims, &options));
            });
            line += &format!(" forward {ms:.1} ms ({:.0} GFLOP/s)", flop / ms / 1e6);
        }
        if phase != "forward" {
            let ms = best_ms(|| {
                std::hint::black_box(conv::weight_grad(
                    &x,
                    x_dims,
                    &dy,
                    dy_dims,
                    [3, 3],
                    &options,
                ));
            });
            line += &format!(
                " weight gradient {ms:.1} ms ({:.0} GFLOP/s)",
                flop / ms / 1e6
            );
        }
        println!("{line}");
    }
}
