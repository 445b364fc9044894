//! GFLOP/s of [`bf16_gemm::gemm`] on the calling thread for a few convolution-like shapes, best
//! of 15 runs, after the unit's own peak: a loop of 16 independent `vdpbf16ps` on registers
//! (64 flops each; one a cycle on Zen 4). `scripts/bench_bf16_matmul.py` times PyTorch's
//! `bf16 @ bf16` on the same shapes.
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
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the CPU has AVX-512 F and BF16 (checked above).
        let peak = unsafe { peak_gflops() };
        println!("vdpbf16ps peak on this core: {peak:.1} GFLOP/s");
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

/// GFLOP/s of 16 independent chains of `vdpbf16ps` (zmm0-15 += zmm30 * zmm31 pairwise), 2 x 10^8
/// rounds: the unit's rate with no loads.
///
/// # Safety
/// The CPU has AVX-512 F and BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn peak_gflops() -> f64 {
    let rounds: u64 = 200_000_000;
    let t = Instant::now();
    // SAFETY: registers only; every register written is declared clobbered.
    unsafe {
        std::arch::asm!(
            "vpxord zmm30, zmm30, zmm30",
            "vpxord zmm31, zmm31, zmm31",
            "2:",
            "vdpbf16ps zmm0, zmm30, zmm31",
            "vdpbf16ps zmm1, zmm30, zmm31",
            "vdpbf16ps zmm2, zmm30, zmm31",
            "vdpbf16ps zmm3, zmm30, zmm31",
            "vdpbf16ps zmm4, zmm30, zmm31",
            "vdpbf16ps zmm5, zmm30, zmm31",
            "vdpbf16ps zmm6, zmm30, zmm31",
            "vdpbf16ps zmm7, zmm30, zmm31",
            "vdpbf16ps zmm8, zmm30, zmm31",
            "vdpbf16ps zmm9, zmm30, zmm31",
            "vdpbf16ps zmm10, zmm30, zmm31",
            "vdpbf16ps zmm11, zmm30, zmm31",
            "vdpbf16ps zmm12, zmm30, zmm31",
            "vdpbf16ps zmm13, zmm30, zmm31",
            "vdpbf16ps zmm14, zmm30, zmm31",
            "vdpbf16ps zmm15, zmm30, zmm31",
            "dec {rounds}",
            "jnz 2b",
            rounds = inout(reg) rounds => _,
            out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _,
            out("zmm4") _, out("zmm5") _, out("zmm6") _, out("zmm7") _,
            out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
            out("zmm12") _, out("zmm13") _, out("zmm14") _, out("zmm15") _,
            out("zmm30") _, out("zmm31") _,
            options(nostack, nomem),
        );
    }
    rounds as f64 * 16.0 * 64.0 / t.elapsed().as_secs_f64() / 1e9
}
