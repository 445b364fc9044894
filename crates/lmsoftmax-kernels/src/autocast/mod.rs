//! Mixed precision as `torch.autocast(device_type, dtype=torch.bfloat16)` runs it: inside an
//! [`autocast`] scope set to [`Precision::Bf16`], the networks' convolutions
//! ([`crate::flex::conv::forward`]) and linear layers ([`linear`]) take their input, weight and
//! bias rounded to bf16, sum the products in f32, and round their output to bf16; the gradients
//! that flow back through them are rounded to bf16 the same way (a bf16 tensor's gradient is a
//! bf16 tensor). Everything else stays f32: the parameters (the master weights), the optimizer
//! state, BatchNorm and its running statistics, and the loss.
//!
//! The tensors themselves keep the `f32` dtype: a value rounded to bf16 is exact in f32, and the
//! product of two bf16 values is exact in f32 too, so an f32 product of rounded operands is the
//! product a bf16 unit (AMX `tdpbf16ps`, AVX-512 `vdpbf16ps`) makes, and an f32 sum of them
//! differs from the unit's only in the order of the additions. On a CPU with AVX-512-BF16 the
//! convolutions' products run on it ([`crate::flex::bf16_gemm`]); the rest, and every product on
//! other CPUs, runs on the f32 kernels (see [`bf16_kernel`]). bf16 keeps f32's exponent range, so gradients do not underflow
//! as they can in f16: no loss scaling is needed.
//!
//! The scope is per thread, as PyTorch's: a thread that runs a forward pass sets its own.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use lmsoftmax_kernels::autocast::{self, Precision};
//!
//! let x = Tensor::<1>::from_floats([1.0 + 1.0 / 256.0, 1.0 / 3.0], &Device::flex());
//! assert_eq!(autocast::current(), Precision::Fp32);
//! {
//!     let _bf16 = autocast::autocast(Precision::Bf16);
//!     assert_eq!(autocast::current(), Precision::Bf16);
//!     // 1 + 2^-8 lies half-way between two bf16 values and rounds to the even one
//!     let rounded = autocast::operand(x.clone()).into_data().try_to_vec::<f32>().unwrap();
//!     assert_eq!(rounded, [1.0, 0.333984375]);
//! }
//! assert_eq!(autocast::current(), Precision::Fp32);
//! ```

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use burn::nn::Linear;
use burn::tensor::{DType, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::cpu::CpuFeatures;

mod rounding;

/// The precision of the convolutions and matrix products of a forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 throughout (the official code's, and the default).
    #[default]
    Fp32,
    /// bf16 operands and outputs of convolutions and linear layers, f32 sums; f32 elsewhere.
    Bf16,
}

impl Precision {
    /// Every precision, in the order the command line lists them.
    pub const ALL: [Precision; 2] = [Precision::Fp32, Precision::Bf16];

    /// The name on the command line and in run files: `fp32` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A precision name that is neither `fp32` nor `bf16`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPrecision(pub String);

impl fmt::Display for UnknownPrecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown precision `{}`: use fp32 or bf16 (bf32, fp16 and fp8 are not supported)",
            self.0
        )
    }
}

impl std::error::Error for UnknownPrecision {}

impl FromStr for Precision {
    type Err = UnknownPrecision;

    /// `fp32` (also `f32`, `float32`) or `bf16` (also `bfloat16`), in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" => Ok(Precision::Fp32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            _ => Err(UnknownPrecision(s.to_owned())),
        }
    }
}

thread_local! {
    static CURRENT: Cell<Precision> = const { Cell::new(Precision::Fp32) };
}

/// The precision of this thread's autocast scope ([`Precision::Fp32`] outside any).
pub fn current() -> Precision {
    CURRENT.with(Cell::get)
}

/// Sets this thread's precision until the returned guard is dropped (then the previous one is
/// back, so scopes nest).
#[must_use = "the precision is set only while the guard lives"]
pub fn autocast(precision: Precision) -> AutocastGuard {
    let previous = CURRENT.with(|c| c.replace(precision));
    AutocastGuard {
        previous,
        _this_thread: PhantomData,
    }
}

/// Restores the previous precision of its thread when dropped (see [`autocast`]).
#[derive(Debug)]
pub struct AutocastGuard {
    previous: Precision,
    /// The scope belongs to the thread that opened it.
    _this_thread: PhantomData<*const ()>,
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// Every value of an `f32` tensor rounded to the nearest bf16 (ties to even; NaN and infinities
/// kept), still as `f32`; in an autodiff graph the gradient flowing back through it is rounded
/// the same way. Tensors of other dtypes are returned as they are.
///
/// On flex it is one backend operation, one pass in place where the tensor's memory is its own;
/// elsewhere the backend's own cast to bf16 and back (GPU backends without a bf16 type, wgpu,
/// cannot run it).
pub fn round_to_bf16<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.dtype() != DType::F32 {
        return x;
    }
    if rounding::runs_on(&x) {
        return rounding::round(x);
    }
    x.cast(FloatDType::BF16).cast(FloatDType::F32)
}

/// An operand of a convolution or matrix product under this thread's autocast: rounded to
/// bf16 under [`Precision::Bf16`] ([`round_to_bf16`]), unchanged under [`Precision::Fp32`].
pub fn operand<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    match current() {
        Precision::Fp32 => x,
        Precision::Bf16 => round_to_bf16(x),
    }
}

/// `lin.forward(x)` under this thread's autocast: under bf16, the input, weight and bias
/// rounded to bf16, the products summed in f32, the output rounded to bf16 (as PyTorch's
/// autocast `linear`); under fp32, [`Linear::forward`] itself.
///
/// ```
/// use burn::nn::LinearConfig;
/// use burn::tensor::{Device, Distribution, Tensor};
/// use lmsoftmax_kernels::autocast::{self, Precision};
///
/// let device = Device::flex();
/// let lin = LinearConfig::new(16, 4).init(&device);
/// let x = Tensor::<2>::random([3, 16], Distribution::Default, &device);
/// let fp32 = autocast::linear(&lin, x.clone());
/// fp32.to_data().assert_eq(&lin.forward(x.clone()).to_data(), true);
/// let _bf16 = autocast::autocast(Precision::Bf16);
/// let bf16 = autocast::linear(&lin, x);
/// // every output is a bf16 value: its low 16 bits are zero
/// let bits: Vec<u32> = bf16.into_data().try_to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect();
/// assert!(bits.iter().all(|b| (b & 0xffff) == 0));
/// ```
pub fn linear<const D: usize>(lin: &Linear, x: Tensor<D>) -> Tensor<D> {
    if current() == Precision::Fp32 || x.dtype() != DType::F32 {
        return lin.forward(x);
    }
    let weight = round_to_bf16(lin.weight.val());
    let bias = lin.bias.as_ref().map(|b| round_to_bf16(b.val()));
    round_to_bf16(burn::tensor::module::linear(round_to_bf16(x), weight, bias))
}

/// What carries out the bf16 products on `cpu`, as the training log and `bench --json` name
/// it. With AVX-512-BF16 the convolutions' products (forward, weight and input gradients) run on
/// it ([`crate::flex::bf16_gemm`], `vdpbf16ps`); everything else (the linear layers, and every
/// product on CPUs without it, AMX ones included: this version has no AMX kernel) runs on the
/// f32 kernels with the operands rounded to bf16: autocast's numerics at f32's speed.
///
/// ```
/// use lmsoftmax_kernels::cpu::CpuFeatures;
/// let none = CpuFeatures { avx512f: false, avx2_fma: true, avx512_bf16: false, amx_bf16: false, neon: false };
/// assert!(lmsoftmax_kernels::autocast::bf16_kernel(&none).starts_with("emulated"));
/// let zen4 = CpuFeatures { avx512f: true, avx512_bf16: true, ..none };
/// assert!(lmsoftmax_kernels::autocast::bf16_kernel(&zen4).starts_with("avx512-bf16"));
/// ```
pub fn bf16_kernel(cpu: &CpuFeatures) -> String {
    if cpu.avx512f && cpu.avx512_bf16 {
        return "avx512-bf16 (vdpbf16ps) for the convolutions' products (forward, weight and \
                input gradients); the linear layers emulated (bf16 operands, f32 products and \
                sums on the f32 kernels)"
            .to_owned();
    }
    let units = cpu.bf16_units();
    if units == "none" {
        "emulated: bf16 operands, f32 products and sums on the f32 kernels (this CPU has no \
         bf16 units: autocast's numerics at f32 speed)"
            .to_owned()
    } else {
        format!(
            "emulated: bf16 operands, f32 products and sums on the f32 kernels (this CPU has \
             {units}, which lmsoftmax has no kernel for yet: autocast's numerics at f32 speed)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// The bf16 rounding of `v` by bit arithmetic, written independently of Burn's and the
    /// `half` crate's: keep the top 16 bits, round to nearest, ties to even; NaN stays NaN.
    fn reference_round(v: f32) -> f32 {
        if v.is_nan() {
            return f32::NAN;
        }
        let bits = v.to_bits();
        let lsb = (bits >> 16) & 1;
        f32::from_bits(bits.wrapping_add(0x7fff + lsb) & 0xffff_0000)
    }

    fn values(t: Tensor<1>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn rounding_is_to_nearest_bf16_ties_to_even() {
        let device = Device::flex();
        let step = 1.0 / 128.0; // bf16's spacing in [1, 2)
        let cases = [
            (1.0 + step / 2.0, 1.0),                    // tie, rounds down to even
            (1.0 + 3.0 * step / 2.0, 1.0 + 2.0 * step), // tie, rounds up to even
            (1.0 + step / 2.0 + 1e-6, 1.0 + step),      // just above the tie
            (-(1.0 + step / 2.0 + 1e-6), -(1.0 + step)),
            (f32::INFINITY, f32::INFINITY),
            (f32::NEG_INFINITY, f32::NEG_INFINITY),
            (0.0, 0.0),
            (1.0e-40, reference_round(1.0e-40)), // subnormal
        ];
        let input: Vec<f32> = cases.iter().map(|c| c.0).collect();
        let got = values(round_to_bf16(Tensor::<1>::from_floats(&input[..], &device)));
        for ((x, want), got) in cases.iter().zip(&got) {
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{x:e}: {got:e}, want {want:e}"
            );
        }
        let nan = values(round_to_bf16(Tensor::<1>::from_floats([f32::NAN], &device)));
        assert!(nan[0].is_nan());
    }

    #[test]
    fn rounding_matches_the_bit_reference_on_random_values() {
        let device = Device::flex();
        let x = Tensor::<1>::random([4096], Distribution::Normal(0.0, 100.0), &device);
        let input = values(x.clone());
        for (v, got) in input.iter().zip(values(round_to_bf16(x))) {
            assert_eq!(got.to_bits(), reference_round(*v).to_bits(), "{v:e}");
        }
    }

    #[test]
    fn the_gradient_through_the_rounding_is_rounded_too() {
        let device = Device::flex().autodiff();
        let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device).require_grad();
        // d/dx sum(c * round(x)) = round(c): the upstream gradient c rounded to bf16
        let c = [1.0 + 1.0 / 256.0 + 1e-6, 0.3, -7.77];
        let coefficients = Tensor::<1>::from_floats(c, &device);
        let grads = (round_to_bf16(x.clone()) * coefficients).sum().backward();
        let grad = values(x.grad(&grads).unwrap());
        let want: Vec<f32> = c.iter().map(|v| reference_round(*v)).collect();
        assert_eq!(grad, want);
    }

    #[test]
    fn scopes_nest_and_belong_to_their_thread() {
        assert_eq!(current(), Precision::Fp32);
        let outer = autocast(Precision::Bf16);
        {
            let _inner = autocast(Precision::Fp32);
            assert_eq!(current(), Precision::Fp32);
        }
        assert_eq!(current(), Precision::Bf16);
        // another thread starts in fp32 whatever this one set
        assert_eq!(std::thread::spawn(current).join().unwrap(), Precision::Fp32);
        drop(outer);
        assert_eq!(current(), Precision::Fp32);
    }

    #[test]
    fn names_parse_and_print() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>(), Ok(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!("BFloat16".parse::<Precision>(), Ok(Precision::Bf16));
        let err = "fp16".parse::<Precision>().unwrap_err().to_string();
        assert!(err.contains("fp32 or bf16"), "{err}");
        assert_eq!(serde_json::to_string(&Precision::Bf16).unwrap(), "\"bf16\"");
    }

    #[test]
    fn linear_under_bf16_is_the_f32_product_of_rounded_operands_rounded() {
        let device = Device::flex();
        let lin = burn::nn::LinearConfig::new(64, 8).init(&device);
        let x = Tensor::<2>::random([5, 64], Distribution::Normal(0.0, 1.0), &device);
        let got = {
            let _bf16 = autocast(Precision::Bf16);
            linear(&lin, x.clone())
        };
        // reference on the host: f64 sums of the rounded operands, then the f32 -> bf16 rounding
        let xs = x.into_data().try_to_vec::<f32>().unwrap();
        let w = lin.weight.val().into_data().try_to_vec::<f32>().unwrap(); // [64, 8]
        let b = lin
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let got = got.into_data().try_to_vec::<f32>().unwrap();
        let mut differs_from_fp32 = false;
        for r in 0..5 {
            for o in 0..8 {
                let mut sum = reference_round(b[o]) as f64;
                let mut plain = b[o] as f64;
                for i in 0..64 {
                    sum += reference_round(xs[r * 64 + i]) as f64
                        * reference_round(w[i * 8 + o]) as f64;
                    plain += xs[r * 64 + i] as f64 * w[i * 8 + o] as f64;
                }
                let want = reference_round(sum as f32);
                let g = got[r * 8 + o];
                // the f32 sum's rounding may differ from the f64 one by one f32 ulp, which can
                // move the bf16 rounding by one bf16 ulp at most
                let ulp = (want.abs() / 128.0).max(1e-30);
                assert!((g - want).abs() <= ulp, "[{r}, {o}]: {g} vs {want}");
                differs_from_fp32 |= g != plain as f32;
            }
        }
        assert!(differs_from_fp32, "bf16 rounding changed no output");
    }
}
