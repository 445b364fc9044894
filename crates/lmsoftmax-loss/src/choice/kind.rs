//! The kinds of loss by name: the logit-level kinds and the margin heads, their parameters and
//! defaults, as configuration files and the command line spell them.

use serde::{Deserialize, Serialize};

/// The kinds of loss, by the names used in configuration files and on the command line.
///
/// ```
/// use lmsoftmax_loss::LossKind;
/// assert_eq!(LossKind::LargeMargin.name(), "large-margin");
/// assert_eq!("softmax".parse::<LossKind>(), Ok(LossKind::Softmax));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Softmax cross-entropy.
    Softmax,
    /// Large-margin in softmax cross-entropy (Kobayashi, BMVC 2019).
    LargeMargin,
    /// Label smoothing (Szegedy et al., 2016).
    LabelSmoothing,
    /// Focal loss (Lin et al., ICCV 2017).
    Focal,
    /// Poly-1 loss (Leng et al., ICLR 2022).
    Poly,
    /// Confidence penalty (Pereyra et al., 2017).
    ConfidencePenalty,
    /// CosFace / AM-softmax (Wang et al., 2018), a margin head.
    #[serde(rename = "cosface")]
    CosFace,
    /// ArcFace (Deng et al., CVPR 2019), a margin head.
    #[serde(rename = "arcface")]
    ArcFace,
    /// insightface's combined margin, a margin head.
    Combined,
    /// Sub-centre ArcFace (Deng et al., ECCV 2020), a margin head.
    #[serde(rename = "subcenter-arcface")]
    SubcenterArcFace,
    /// SphereFace / A-Softmax (Liu et al., CVPR 2017), a margin head.
    #[serde(rename = "sphereface")]
    SphereFace,
    /// L-Softmax (Liu et al., ICML 2016), a margin head.
    #[serde(rename = "lsoftmax")]
    LSoftmax,
}

impl LossKind {
    /// Every kind, in the order tables list them: the logit-level kinds, then the margin heads.
    pub const ALL: [LossKind; 12] = [
        LossKind::Softmax,
        LossKind::LargeMargin,
        LossKind::LabelSmoothing,
        LossKind::Focal,
        LossKind::Poly,
        LossKind::ConfidencePenalty,
        LossKind::CosFace,
        LossKind::ArcFace,
        LossKind::Combined,
        LossKind::SubcenterArcFace,
        LossKind::SphereFace,
        LossKind::LSoftmax,
    ];

    /// The logit-level kinds: losses over a network's logits ([`LossConfig::init`]).
    pub const LOGIT: [LossKind; 6] = [
        LossKind::Softmax,
        LossKind::LargeMargin,
        LossKind::LabelSmoothing,
        LossKind::Focal,
        LossKind::Poly,
        LossKind::ConfidencePenalty,
    ];

    /// The margin heads: modules over a network's features that own the class weights
    /// ([`LossConfig::init_head`]).
    pub const HEADS: [LossKind; 6] = [
        LossKind::CosFace,
        LossKind::ArcFace,
        LossKind::Combined,
        LossKind::SubcenterArcFace,
        LossKind::SphereFace,
        LossKind::LSoftmax,
    ];

    /// Whether the kind is a margin head.
    ///
    /// ```
    /// use lmsoftmax_loss::LossKind;
    /// assert!(LossKind::ArcFace.is_head());
    /// assert!(!LossKind::Focal.is_head());
    /// ```
    pub fn is_head(self) -> bool {
        Self::HEADS.contains(&self)
    }

    /// Whether the parameter `name` of this kind takes integers (sub-centre ArcFace's
    /// `centers`, SphereFace's and L-Softmax's `margin`).
    pub fn integer_parameter(self, name: &str) -> bool {
        matches!(
            (self, name),
            (Self::SubcenterArcFace, "centers") | (Self::SphereFace | Self::LSoftmax, "margin")
        )
    }

    /// The kind's name in configuration files (`kind = "large-margin"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Softmax => "softmax",
            Self::LargeMargin => "large-margin",
            Self::LabelSmoothing => "label-smoothing",
            Self::Focal => "focal",
            Self::Poly => "poly",
            Self::ConfidencePenalty => "confidence-penalty",
            Self::CosFace => "cosface",
            Self::ArcFace => "arcface",
            Self::Combined => "combined",
            Self::SubcenterArcFace => "subcenter-arcface",
            Self::SphereFace => "sphereface",
            Self::LSoftmax => "lsoftmax",
        }
    }

    /// The kind's own parameters with their defaults, as `name=value` (FAMILY.md).
    ///
    /// ```
    /// use lmsoftmax_loss::LossKind;
    /// assert_eq!(LossKind::Focal.parameters(), [("gamma", 2.0)]);
    /// assert!(LossKind::Softmax.parameters().is_empty());
    /// ```
    pub fn parameters(self) -> &'static [(&'static str, f64)] {
        match self {
            Self::Softmax => &[],
            Self::LargeMargin => &[("reg_lambda", 0.3)],
            Self::LabelSmoothing => &[("smoothing", 0.1)],
            Self::Focal => &[("gamma", 2.0)],
            Self::Poly => &[("epsilon", 1.0)],
            Self::ConfidencePenalty => &[("beta", 0.1)],
            Self::CosFace => &[("scale", 30.0), ("margin", 0.35)],
            Self::ArcFace => &[("scale", 30.0), ("margin", 0.5)],
            Self::Combined => &[("scale", 30.0), ("m1", 1.0), ("m2", 0.5), ("m3", 0.0)],
            Self::SubcenterArcFace => &[("scale", 30.0), ("margin", 0.5), ("centers", 3.0)],
            Self::SphereFace | Self::LSoftmax => &[
                ("margin", 4.0),
                ("lambda_base", 1000.0),
                ("lambda_gamma", 0.12),
                ("lambda_power", 1.0),
                ("lambda_min", 5.0),
            ],
        }
    }
}

impl std::fmt::Display for LossKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for LossKind {
    type Err = String;

    /// A kind by name; `_` may stand for `-` (`subcenter_arcface`, as FAMILY.md spells it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown loss '{s}': the kinds are {}",
                    Self::ALL.map(LossKind::name).join(", ")
                )
            })
    }
}
