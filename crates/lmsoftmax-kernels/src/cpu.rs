//! What the CPU this process runs on offers the kernels: the x86-64 level whose vector code the
//! CPU paths pick at run time (ours and the `gemm` crate's behind flex), and the bf16 units
//! (AMX tiles, AVX-512-BF16) that a bf16 path could use. `lmsoftmax bench` reports it, so that
//! a timing says which instructions produced it.

use std::fmt;

/// The CPU's vector level and bf16 units, as detected at run time.
///
/// ```
/// let cpu = lmsoftmax_kernels::cpu::CpuFeatures::detect();
/// // the level the kernels run at, e.g. "x86-64-v3 (avx2, fma)"
/// assert!(!cpu.vector_level().is_empty());
/// // "amx-bf16", "avx512-bf16", both, or "none"
/// assert!(!cpu.bf16_units().is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuFeatures {
    /// AVX-512 F, the x86-64-v4 baseline (`gemm`'s widest kernels).
    pub avx512f: bool,
    /// AVX2 and FMA, the x86-64-v3 baseline (our fused loss kernel's widest path).
    pub avx2_fma: bool,
    /// AVX-512-BF16: bf16 dot products in zmm registers.
    pub avx512_bf16: bool,
    /// AMX with bf16 tiles, enabled by the OS (the tile state in XCR0).
    pub amx_bf16: bool,
    /// NEON (aarch64).
    pub neon: bool,
}

impl CpuFeatures {
    /// Detects the features of the CPU this runs on.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            Self {
                avx512f: std::is_x86_feature_detected!("avx512f"),
                avx2_fma: std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma"),
                avx512_bf16: std::is_x86_feature_detected!("avx512bf16"),
                amx_bf16: amx_bf16_enabled(),
                neon: false,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Self {
                avx512f: false,
                avx2_fma: false,
                avx512_bf16: false,
                amx_bf16: false,
                neon: cfg!(target_arch = "aarch64"),
            }
        }
    }

    /// The widest vector level the CPU kernels dispatch to here.
    pub fn vector_level(&self) -> &'static str {
        if self.avx512f {
            "x86-64-v4 (avx512f)"
        } else if self.avx2_fma {
            "x86-64-v3 (avx2, fma)"
        } else if self.neon {
            "aarch64 (neon)"
        } else if cfg!(target_arch = "x86_64") {
            "x86-64 (sse2)"
        } else {
            "scalar"
        }
    }

    /// The bf16 units present: `"amx-bf16"`, `"avx512-bf16"`, both (comma-separated), or
    /// `"none"`.
    pub fn bf16_units(&self) -> String {
        let units: Vec<&str> = [
            (self.amx_bf16, "amx-bf16"),
            (self.avx512_bf16, "avx512-bf16"),
        ]
        .into_iter()
        .filter_map(|(has, name)| has.then_some(name))
        .collect();
        if units.is_empty() {
            "none".to_owned()
        } else {
            units.join(", ")
        }
    }
}

impl fmt::Display for CpuFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}; bf16 units: {}",
            self.vector_level(),
            self.bf16_units()
        )
    }
}

/// AMX-BF16 in CPUID (leaf 7, EDX bit 22, with AMX-TILE, bit 24) and the tile state enabled by
/// the OS in XCR0 (bits 17 and 18). `is_x86_feature_detected!("amx-bf16")` is not stable yet.
#[cfg(target_arch = "x86_64")]
fn amx_bf16_enabled() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // leaf 7 is read only if leaf 0 lists it
    if __cpuid(0).eax < 7 {
        return false;
    }
    let leaf7 = __cpuid_count(7, 0);
    let cpu_has = leaf7.edx & (1 << 22) != 0 && leaf7.edx & (1 << 24) != 0;
    if !cpu_has || !std::is_x86_feature_detected!("xsave") {
        return false;
    }
    // OSXSAVE (CPUID leaf 1, ECX bit 27) says XGETBV may be executed
    let os_xsave = __cpuid(1).ecx & (1 << 27) != 0;
    os_xsave && {
        // SAFETY: XGETBV is available (OSXSAVE, checked above).
        let xcr0 = unsafe { xgetbv0() };
        xcr0 & (0b11 << 17) == (0b11 << 17)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "xsave")]
unsafe fn xgetbv0() -> u64 {
    // SAFETY: the caller checked that the OS enabled XSAVE.
    unsafe { std::arch::x86_64::_xgetbv(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_follows_the_features() {
        let mut cpu = CpuFeatures {
            avx512f: true,
            avx2_fma: true,
            avx512_bf16: false,
            amx_bf16: true,
            neon: false,
        };
        assert_eq!(cpu.vector_level(), "x86-64-v4 (avx512f)");
        assert_eq!(cpu.bf16_units(), "amx-bf16");
        cpu.avx512_bf16 = true;
        assert_eq!(cpu.bf16_units(), "amx-bf16, avx512-bf16");
        cpu = CpuFeatures {
            avx512f: false,
            avx512_bf16: false,
            amx_bf16: false,
            ..cpu
        };
        assert_eq!(cpu.vector_level(), "x86-64-v3 (avx2, fma)");
        assert_eq!(cpu.bf16_units(), "none");
        assert_eq!(cpu.to_string(), "x86-64-v3 (avx2, fma); bf16 units: none");
    }

    /// The detection against what the kernel (Linux) lists in /proc/cpuinfo, where it exists.
    #[test]
    fn detection_agrees_with_proc_cpuinfo() {
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
            eprintln!("SKIPPED: no /proc/cpuinfo to compare the CPU detection with");
            return;
        };
        let Some(flags) = info.lines().find(|l| l.starts_with("flags")) else {
            eprintln!("SKIPPED: /proc/cpuinfo lists no flags (not x86?)");
            return;
        };
        let has = |f: &str| flags.split_whitespace().any(|w| w == f);
        let cpu = CpuFeatures::detect();
        assert_eq!(cpu.avx512f, has("avx512f"), "avx512f");
        assert_eq!(cpu.avx2_fma, has("avx2") && has("fma"), "avx2 + fma");
        assert_eq!(cpu.avx512_bf16, has("avx512_bf16"), "avx512_bf16");
        assert_eq!(cpu.amx_bf16, has("amx_bf16") && has("amx_tile"), "amx_bf16");
    }
}
