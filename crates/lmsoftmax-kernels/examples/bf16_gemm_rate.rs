//! GFLOP/s of [`bf16_gemm::gemm`] on the calling thread for a few convolution-like shapes, best
//! of 15 runs; compare with the CPU's `vdpbf16ps` peak (64 flops a cycle a core on Zen 4):
//!
//! ```text
//! cargo run --release -p lmsoftmax-kernels --example bf16_gemm_rate
//! ```
use lmsoftmax_kernels::flex::bf16_gemm;
use std::time::Instant;

fn main() {
    if !bf16_gemm::available() {
        println!("this CPU has no AVX-512-BF16: nothing to time");
        return;
    }
    // (m, n, k): a layer's output channels, positions of a few images, input channels x 9
    for (m, n, k) in [(256, 4096, 2304), (128, 8192, 1152), (512, 1024, 4608)] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.25).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.5).collect();
        let mut c = vec![0.0f32; m * n];
        let best = (0..15)
            .map(|_| {
                let t = Instant::now();
                // SAFETY: a, b and c hold row-major [m, k], [k, n] and [m, n] matrices; the CPU
                // has the units (checked above).
                unsafe {
                    bf16_gemm::gemm(
                        m,
                        n,
                        k,
                        a.as_ptr(),
                        [k, 1],
                        b.as_ptr(),
                        [n, 1],
                        c.as_mut_ptr(),
                        n,
                        false,
                        false,
                    )
                };
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min);
        let gflops = 2.0 * (m * n * k) as f64 / best / 1e9;
        println!(
            "[{m}, {k}] x [{k}, {n}]: {:.1} ms, {gflops:.1} GFLOP/s",
            best * 1e3
        );
    }
}
