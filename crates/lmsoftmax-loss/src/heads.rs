//! The margin heads of the family (FAMILY.md, section 2): CosFace, ArcFace, the combined margin,
//! sub-centre ArcFace, SphereFace (A-Softmax) and L-Softmax. A head owns the class-weight matrix
//! `W [C*K, D]` (one row per class centre, a [`Param`] the optimizer trains) and turns
//! embeddings `x [N, D]` into logits: [`MarginHead::logits`] without margin (inference, top-1),
//! [`MarginHead::margin_logits`] with the target's margin, [`MarginHead::forward`] the
//! cross-entropy over the margin logits. Composed Burn ops on every backend; autodiff derives the
//! gradients of `x` and `W`.
//!
//! Numerics: squared norms are held at `1e-24` or more before the square root (a zero row of `x`
//! or `W` gives zero cosines and finite gradients, not NaN). Where a formula needs the angle, the cosine is clamped to `[-1 + 1e-7, 1 - 1e-7]`
//! first, which bounds `acos`'s derivative (and ArcFace's `sin(theta + m) / sin(theta)`, whose
//! `sin(theta)` is taken as `sqrt(max(1 - cos^2, 1e-12))`) at an embedding exactly parallel or
//! anti-parallel to its class row; the values differ from the exact ones only within that
//! clamp. SphereFace's and L-Softmax's `cos(m theta)` is the multiple-angle polynomial in
//! `cos theta`, with `k = floor(m theta / pi)` taken without gradient.

use std::f64::consts::PI;

use burn::module::{Module, Param};
use burn::tensor::{Bool, Device, Distribution, Int, Tensor};

use crate::composed::compute_dtype;
use crate::engine::finite_or_row;
use crate::error::{ConfigError, LossError};
use crate::reduction::LossReduction;
use crate::rows::{check_targets, read_targets};

/// Which head, with its parameters (defaults as FAMILY.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeadKind {
    /// CosFace / AM-softmax (Wang et al., 2018): `f_y = s (cos_y - m)`.
    CosFace {
        /// Scale `s` (30).
        scale: f64,
        /// Additive cosine margin `m` (0.35).
        margin: f64,
    },
    /// ArcFace (Deng et al., CVPR 2019): `f_y = s cos(theta_y + m)` while `theta_y + m <= pi`,
    /// else the monotone `s (cos_y - m sin(pi - m))`.
    ArcFace {
        /// Scale `s` (30).
        scale: f64,
        /// Additive angular margin `m` (0.5).
        margin: f64,
    },
    /// insightface's combined margin: `f_y = s (cos(m1 theta_y + m2) - m3)`.
    Combined {
        /// Scale `s`.
        scale: f64,
        /// Multiplicative angular margin `m1` (1).
        m1: f64,
        /// Additive angular margin `m2` (0.5).
        m2: f64,
        /// Additive cosine margin `m3` (0).
        m3: f64,
    },
    /// Sub-centre ArcFace (Deng et al., ECCV 2020): ArcFace on `cos_j = max_k cos(x, W_{j,k})`,
    /// class `j`'s centres being rows `j*K .. j*K+K-1` of `W`.
    SubcenterArcFace {
        /// Scale `s` (30).
        scale: f64,
        /// Additive angular margin `m` (0.5).
        margin: f64,
        /// Centres per class `K` (3).
        centers: usize,
    },
    /// SphereFace / A-Softmax (Liu et al., CVPR 2017):
    /// `f_y = |x| (lambda cos_y + psi(theta_y)) / (1 + lambda)`, others `|x| cos_j`.
    SphereFace {
        /// Integer angular margin `m` (4).
        margin: u32,
        /// The annealing weight `lambda` (see [`LambdaSchedule`]).
        lambda: f64,
    },
    /// L-Softmax (Liu et al., ICML 2016):
    /// `f_y = |W_y| |x| (lambda cos_y + psi(theta_y)) / (1 + lambda)`, others `W_j x`.
    LSoftmax {
        /// Integer angular margin `m` (4).
        margin: u32,
        /// The annealing weight `lambda` (see [`LambdaSchedule`]).
        lambda: f64,
    },
}

impl HeadKind {
    /// The name configuration files use (`arcface`, `subcenter-arcface`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::CosFace { .. } => "cosface",
            Self::ArcFace { .. } => "arcface",
            Self::Combined { .. } => "combined",
            Self::SubcenterArcFace { .. } => "subcenter-arcface",
            Self::SphereFace { .. } => "sphereface",
            Self::LSoftmax { .. } => "lsoftmax",
        }
    }

    /// Rows of `W` per class.
    pub fn centers(&self) -> usize {
        match self {
            Self::SubcenterArcFace { centers, .. } => *centers,
            _ => 1,
        }
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the parameter.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |field: &'static str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange {
                    field,
                    value,
                    range: "finite and > 0",
                })
            }
        };
        let finite = |field: &'static str, value: f64| {
            if value.is_finite() {
                Ok(())
            } else {
                Err(ConfigError::NonFinite { field, value })
            }
        };
        match *self {
            Self::CosFace { scale, margin } | Self::ArcFace { scale, margin } => {
                positive("scale", scale)?;
                finite("margin", margin)
            }
            Self::Combined { scale, m1, m2, m3 } => {
                positive("scale", scale)?;
                positive("m1", m1)?;
                finite("m2", m2)?;
                finite("m3", m3)
            }
            Self::SubcenterArcFace {
                scale,
                margin,
                centers,
            } => {
                positive("scale", scale)?;
                finite("margin", margin)?;
                if centers == 0 {
                    return Err(ConfigError::OutOfRange {
                        field: "centers",
                        value: 0.0,
                        range: ">= 1",
                    });
                }
                Ok(())
            }
            Self::SphereFace { margin, lambda } | Self::LSoftmax { margin, lambda } => {
                if margin == 0 {
                    return Err(ConfigError::OutOfRange {
                        field: "margin",
                        value: 0.0,
                        range: "an integer >= 1",
                    });
                }
                if !(lambda.is_finite() && lambda >= 0.0) {
                    return Err(ConfigError::OutOfRange {
                        field: "lambda",
                        value: lambda,
                        range: "finite and >= 0",
                    });
                }
                Ok(())
            }
        }
    }
}

/// L-Softmax's annealing of `lambda` (defaults of the SphereFace code):
/// `lambda = max(lambda_min, base (1 + gamma iter)^-power)`, stepped per training iteration.
///
/// ```
/// use lmsoftmax_loss::LambdaSchedule;
/// let s = LambdaSchedule::default();
/// assert_eq!(s.lambda(0), 1000.0);
/// assert_eq!(s.lambda(1_000_000), 5.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LambdaSchedule {
    /// `base` (1000).
    pub base: f64,
    /// `gamma` (0.12).
    pub gamma: f64,
    /// `power` (1).
    pub power: f64,
    /// `lambda_min` (5).
    pub lambda_min: f64,
}

impl Default for LambdaSchedule {
    fn default() -> Self {
        Self {
            base: 1000.0,
            gamma: 0.12,
            power: 1.0,
            lambda_min: 5.0,
        }
    }
}

impl LambdaSchedule {
    /// `lambda` at training iteration `iter` (0-based).
    pub fn lambda(&self, iter: u64) -> f64 {
        (self.base * (1.0 + self.gamma * iter as f64).powf(-self.power)).max(self.lambda_min)
    }

    /// Checks the schedule: every value finite and `>= 0`.
    ///
    /// # Errors
    /// A [`ConfigError::OutOfRange`] naming the value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("lambda_base", self.base),
            ("lambda_gamma", self.gamma),
            ("lambda_power", self.power),
            ("lambda_min", self.lambda_min),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(ConfigError::OutOfRange {
                    field,
                    value,
                    range: "finite and >= 0",
                });
            }
        }
        Ok(())
    }
}

/// A margin head: the class-weight matrix and how logits are made from it.
///
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use lmsoftmax_loss::{HeadKind, MarginHead};
///
/// let device = Device::flex().autodiff();
/// let kind = HeadKind::ArcFace { scale: 30.0, margin: 0.5 };
/// let head = MarginHead::new(kind, 8, 10, &device)?;        // D = 8, C = 10
/// let x = Tensor::<2>::ones([4, 8], &device).require_grad();
/// let y = Tensor::<1, Int>::from_ints([0, 1, 2, 3], &device);
/// let loss = head.forward(x.clone(), y);
/// let grads = loss.backward();
/// assert_eq!(x.grad(&grads).unwrap().dims(), [4, 8]);
/// assert_eq!(head.logits(Tensor::<2>::ones([4, 8], &device)).dims(), [4, 10]);
/// # Ok::<(), lmsoftmax_loss::ConfigError>(())
/// ```
#[derive(Module, Debug)]
pub struct MarginHead {
    /// `W [C*K, D]`.
    pub weight: Param<Tensor<2>>,
    #[module(skip)]
    kind: HeadKind,
    #[module(skip)]
    reduction: LossReduction,
    #[module(skip)]
    schedule: Option<LambdaSchedule>,
}

/// Cosines are clamped this far inside `[-1, 1]` where the angle is needed.
const ANGLE_CLAMP: f64 = 1e-7;
/// Norms are held at this or more.
const NORM_FLOOR: f64 = 1e-12;

impl MarginHead {
    /// A head for `embed_dim`-dimensional embeddings and `classes` classes, `W` initialised as
    /// the papers' code: `N(0, 0.01)` for the cosine-margin heads (insightface's), uniform in
    /// `[-1, 1]` with each row scaled to norm 1 for SphereFace and L-Softmax (SphereFace's
    /// `AngleLinear`). Mean reduction.
    ///
    /// # Errors
    /// Invalid parameters, or zero classes or dimensions.
    pub fn new(
        kind: HeadKind,
        embed_dim: usize,
        classes: usize,
        device: &Device,
    ) -> Result<Self, ConfigError> {
        kind.validate()?;
        if embed_dim == 0 || classes < 2 {
            return Err(ConfigError::OutOfRange {
                field: "classes and embedding size",
                value: classes.min(embed_dim) as f64,
                range: "at least 2 classes and 1 dimension",
            });
        }
        let rows = classes * kind.centers();
        let weight = match kind {
            HeadKind::SphereFace { .. } | HeadKind::LSoftmax { .. } => {
                let w = Tensor::<2>::random(
                    [rows, embed_dim],
                    Distribution::Uniform(-1.0, 1.0),
                    device,
                );
                w.clone() / row_norms(w)
            }
            _ => Tensor::<2>::random([rows, embed_dim], Distribution::Normal(0.0, 0.01), device),
        };
        Ok(Self::from_weight(kind, weight))
    }

    /// A head over a given class-weight matrix `[C*K, D]` (mean reduction; the parameters are
    /// assumed valid, see [`HeadKind::validate`]).
    pub fn from_weight(kind: HeadKind, weight: Tensor<2>) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            kind,
            reduction: LossReduction::Mean,
            schedule: None,
        }
    }

    /// The same head with another reduction (`None` is not offered: a head's loss is a mean or a
    /// sum over rows; `None` gives the per-row losses).
    pub fn with_reduction(mut self, reduction: LossReduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The kind and its parameters.
    pub fn kind(&self) -> HeadKind {
        self.kind
    }

    /// The same head with `lambda` set (SphereFace, L-Softmax; other kinds are unchanged), as
    /// training steps [`LambdaSchedule`].
    pub fn with_lambda(mut self, value: f64) -> Self {
        if let HeadKind::SphereFace { lambda, .. } | HeadKind::LSoftmax { lambda, .. } =
            &mut self.kind
        {
            *lambda = value;
        }
        self
    }

    /// The same head annealing `lambda` by `schedule` (SphereFace, L-Softmax; ignored by the
    /// other kinds): `lambda` is set to the schedule's first value, and
    /// [`at_iteration`](Self::at_iteration) moves it on.
    ///
    /// ```
    /// use burn::tensor::Device;
    /// use lmsoftmax_loss::{HeadKind, LambdaSchedule, MarginHead};
    /// let kind = HeadKind::SphereFace { margin: 4, lambda: 0.0 };
    /// let head = MarginHead::new(kind, 8, 10, &Device::flex())?
    ///     .with_schedule(LambdaSchedule::default());
    /// assert_eq!(head.lambda(), Some(1000.0));
    /// assert_eq!(head.at_iteration(100_000).lambda(), Some(5.0));
    /// # Ok::<(), lmsoftmax_loss::ConfigError>(())
    /// ```
    pub fn with_schedule(mut self, schedule: LambdaSchedule) -> Self {
        if matches!(
            self.kind,
            HeadKind::SphereFace { .. } | HeadKind::LSoftmax { .. }
        ) {
            self.schedule = Some(schedule);
            self = self.with_lambda(schedule.lambda(0));
        }
        self
    }

    /// The head as training iteration `iter` (0-based) uses it: `lambda` from the schedule, if
    /// the head has one (unchanged otherwise).
    pub fn at_iteration(self, iter: u64) -> Self {
        match self.schedule {
            Some(s) => self.with_lambda(s.lambda(iter)),
            None => self,
        }
    }

    /// The current `lambda` (SphereFace, L-Softmax), else `None`.
    pub fn lambda(&self) -> Option<f64> {
        match self.kind {
            HeadKind::SphereFace { lambda, .. } | HeadKind::LSoftmax { lambda, .. } => Some(lambda),
            _ => None,
        }
    }

    /// Classes `C`.
    pub fn classes(&self) -> usize {
        self.weight.val().dims()[0] / self.kind.centers()
    }

    /// Cosines between each embedding and each class `[N, C]` (the best centre of a class for
    /// sub-centre ArcFace), and `|x|` `[N, 1]`.
    fn cosines(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let w = self.weight.val();
        let x_norm = row_norms(x.clone());
        let xn = x / x_norm.clone();
        let wn = w.clone() / row_norms(w);
        let cos = xn.matmul(wn.transpose());
        let k = self.kind.centers();
        let cos = if k > 1 {
            let [n, ck] = cos.dims();
            cos.reshape([n, ck / k, k]).max_dim(2).reshape([n, ck / k])
        } else {
            cos
        };
        (cos, x_norm)
    }

    /// The logits without margin, `[N, C]`: what evaluation and top-1 use (`s cos`, `|x| cos`
    /// for SphereFace, `W x` for L-Softmax).
    pub fn logits(&self, x: Tensor<2>) -> Tensor<2> {
        let x = compute_dtype(x);
        match self.kind {
            HeadKind::LSoftmax { .. } => x.matmul(self.weight.val().transpose()),
            HeadKind::SphereFace { .. } => {
                let (cos, x_norm) = self.cosines(x);
                cos * x_norm
            }
            HeadKind::CosFace { scale, .. }
            | HeadKind::ArcFace { scale, .. }
            | HeadKind::Combined { scale, .. }
            | HeadKind::SubcenterArcFace { scale, .. } => self.cosines(x).0 * scale,
        }
    }

    /// The logits with the target's margin, `[N, C]` (FAMILY.md's `f`).
    ///
    /// # Errors
    /// Shapes that do not fit, a target outside `[0, C)`.
    pub fn margin_logits(&self, x: Tensor<2>, y: Tensor<1, Int>) -> Result<Tensor<2>, LossError> {
        let x = compute_dtype(x);
        let [n, d] = x.dims();
        let w_dims = self.weight.val().dims();
        if d != w_dims[1] || y.dims()[0] != n {
            return Err(LossError::ShapeMismatch {
                logits: vec![n, d],
                targets: y.dims().to_vec(),
                expected: vec![n],
            });
        }
        let classes = self.classes();
        check_targets(&read_targets(y.clone()), classes)?;
        let y = y.reshape([n, 1]);
        let is_target: Tensor<2, Bool> = y.clone().reshape([n]).one_hot::<2>(classes).equal_elem(1);
        let (cos, x_norm) = self.cosines(x.clone());
        let cos_y = cos.clone().gather(1, y.clone());
        let (others, target) = match self.kind {
            HeadKind::CosFace { scale, margin } => (cos * scale, (cos_y - margin) * scale),
            HeadKind::ArcFace { scale, margin }
            | HeadKind::SubcenterArcFace { scale, margin, .. } => {
                let sin_y = (cos_y.clone().powi_scalar(2).neg() + 1.0)
                    .clamp_min(1e-12)
                    .sqrt();
                let shifted = cos_y.clone() * margin.cos() - sin_y * margin.sin();
                let fallback = cos_y.clone() - margin * (PI - margin).sin();
                let inside = cos_y.greater_elem((PI - margin).cos());
                (cos * scale, fallback.mask_where(inside, shifted) * scale)
            }
            HeadKind::Combined { scale, m1, m2, m3 } => {
                let theta = cos_y.clamp(-1.0 + ANGLE_CLAMP, 1.0 - ANGLE_CLAMP).acos();
                (cos * scale, ((theta * m1 + m2).cos() - m3) * scale)
            }
            HeadKind::SphereFace { margin, lambda } => {
                let psi = psi(cos_y.clone(), margin);
                let f_y = (cos_y * lambda + psi) * x_norm.clone() * (1.0 / (1.0 + lambda));
                (cos * x_norm, f_y)
            }
            HeadKind::LSoftmax { margin, lambda } => {
                let w = self.weight.val();
                let w_norm = row_norms(w.clone());
                let w_norm_y = w_norm
                    .reshape([1, classes])
                    .repeat_dim(0, n)
                    .gather(1, y.clone());
                let plain = x.matmul(w.transpose());
                // lambda |W_y| |x| cos_y is W_y x itself: taken from the plain logits
                let plain_y = plain.clone().gather(1, y.clone());
                let psi = psi(cos_y, margin) * x_norm * w_norm_y;
                let f_y = (plain_y * lambda + psi) * (1.0 / (1.0 + lambda));
                (plain, f_y)
            }
        };
        Ok(others.mask_where(is_target, target.repeat_dim(1, classes)))
    }

    /// The cross-entropy over the margin logits, reduced (mean or sum over rows; none: per row).
    ///
    /// # Errors
    /// As [`margin_logits`](Self::margin_logits); a non-finite embedding or class weight, as
    /// [`LossError::NonFiniteLogits`] naming the row (the per-row losses are read back once).
    pub fn try_forward(&self, x: Tensor<2>, y: Tensor<1, Int>) -> Result<Tensor<1>, LossError> {
        let f = self.margin_logits(x, y.clone())?;
        let [n, _] = f.dims();
        let max = f.clone().max_dim(1).detach();
        let lse = (f.clone() - max.clone()).exp().sum_dim(1).log() + max;
        let rows = (lse - f.clone().gather(1, y.reshape([n, 1]))).reshape([n]);
        finite_or_row(&rows, f)?;
        Ok(match self.reduction {
            LossReduction::Mean => rows.mean(),
            LossReduction::Sum => rows.sum(),
            LossReduction::None => rows,
        })
    }

    /// As [`try_forward`](Self::try_forward).
    ///
    /// # Panics
    /// With the message of the error `try_forward` returns.
    pub fn forward(&self, x: Tensor<2>, y: Tensor<1, Int>) -> Tensor<1> {
        self.try_forward(x, y).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The norm of each row `[M, 1]`, held at [`NORM_FLOOR`] or more before the square root, so that
/// a zero row has a finite gradient (0) instead of `0 / 0`.
fn row_norms(v: Tensor<2>) -> Tensor<2> {
    v.powi_scalar(2)
        .sum_dim(1)
        .clamp_min(NORM_FLOOR * NORM_FLOOR)
        .sqrt()
}

/// `psi(theta) = (-1)^k cos(m theta) - 2k`, `k = floor(m theta / pi)` (no gradient through `k`),
/// with `cos(m theta) = sum_n (-1)^n C(m, 2n) c^(m-2n) (1 - c^2)^n` for `c = cos theta`.
fn psi(c: Tensor<2>, m: u32) -> Tensor<2> {
    let theta = c.clone().detach().clamp(-1.0, 1.0).acos();
    let k = (theta * (f64::from(m) / PI))
        .floor()
        .clamp(0.0, f64::from(m));
    let parity = k.clone() - (k.clone() / 2.0).floor() * 2.0; // 0 or 1
    let sign = parity.neg() * 2.0 + 1.0;
    // powers by repeated products: c^0 .. c^m and (1 - c^2)^0 .. (1 - c^2)^(m/2)
    let sin2 = c.clone() * c.clone() * -1.0 + 1.0;
    let powers = |base: Tensor<2>, up_to: u32| {
        let mut p = vec![base.ones_like()];
        for _ in 0..up_to {
            let next = p.last().unwrap().clone() * base.clone();
            p.push(next);
        }
        p
    };
    let (c_pow, s_pow) = (powers(c.clone(), m), powers(sin2, m / 2));
    let mut cos_m = c.zeros_like();
    for n in 0..=m / 2 {
        let binom = binomial(m, 2 * n);
        let term = c_pow[(m - 2 * n) as usize].clone() * s_pow[n as usize].clone();
        cos_m = cos_m + term * (if n % 2 == 0 { binom } else { -binom });
    }
    cos_m * sign - k * 2.0
}

fn binomial(n: u32, k: u32) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * f64::from(n - i) / f64::from(i + 1))
}

#[cfg(test)]
mod tests {
    use burn::tensor::DType;

    use super::*;

    #[test]
    fn psi_is_continuous_and_the_multiple_angle_cosine_is_exact() {
        let device = Device::flex();
        for m in [1u32, 2, 3, 4] {
            for i in 0..=40 {
                let c = -1.0 + i as f64 / 20.0;
                let t = Tensor::<2>::from_data(
                    burn::tensor::TensorData::new(vec![c], [1, 1]),
                    (&device, DType::F64),
                );
                let got: f64 = psi(t, m).into_scalar::<f64>();
                let theta = c.clamp(-1.0, 1.0).acos();
                let k = (m as f64 * theta / PI).floor().min(m as f64);
                let want = (-1f64).powi(k as i32) * (m as f64 * theta).cos() - 2.0 * k;
                assert!((got - want).abs() < 1e-6, "m {m} c {c}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn lambda_anneals_to_its_floor() {
        let s = LambdaSchedule::default();
        assert_eq!(s.lambda(0), 1000.0);
        assert!((s.lambda(100) - 1000.0 / 13.0).abs() < 1e-9);
        assert_eq!(s.lambda(10_000), 5.0);
    }
}
