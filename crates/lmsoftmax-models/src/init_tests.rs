//! Initialisation fidelity: every tensor of every network is checked against the rule its
//! PyTorch reference applies to a tensor of that shape, written out here from the reference
//! sources (not from this crate's initialisers):
//!
//! * PyTorch: `_calculate_fan_in_and_fan_out(w)` is `fan_in = w.size(1) * rf`,
//!   `fan_out = w.size(0) * rf` (`rf` = product of `w.shape[2:]`), so a grouped conv
//!   `[out, in / groups, kh, kw]` has `fan_out = out * kh * kw` (no division by groups);
//!   `kaiming_normal_(w, mode, nonlinearity="relu")` (and the defaults `fan_in`, `leaky_relu`
//!   with `a = 0`) is `N(0, 2 / fan)`; `nn.Linear`'s own init is weight and bias
//!   `U(-1/sqrt(in), 1/sqrt(in))`; `nn.BatchNorm*` starts at weight 1, bias 0, running mean 0,
//!   running variance 1.
//! * official `models/layer13.py` (and `bench/ref_layer13.py`): conv `kaiming_normal_(fan_out,
//!   relu)`, BN 1 / 0, linear `normal_(0, 0.01)` with bias 0.
//! * official `models/vgg.py`: every conv and linear weight `normal_(0, 0.01)`, biases 0, BN
//!   (2-D and 1-D) 1 / 0.
//! * torchvision `vgg.py`: conv `kaiming_normal_(fan_out, relu)` with bias 0, BN 1 / 0, linear
//!   `normal_(0, 0.01)` with bias 0.
//! * torchvision `resnet.py` (`zero_init_residual=False`): conv `kaiming_normal_(fan_out, relu)`,
//!   BN 1 / 0, the `fc` layer keeps `nn.Linear`'s init.
//! * torchvision `densenet.py`: conv `kaiming_normal_` with its defaults (**fan_in**), BN 1 / 0,
//!   linear bias 0 and weight `nn.Linear`'s init.
//! * `small_cnn` (no reference; as documented): conv `kaiming_normal_(fan_out, relu)`, BN 1 / 0,
//!   `nn.Linear`'s init.

use burn::module::Module;
use burn::nn::conv::Conv2dConfig;
use burn::tensor::Device;

use crate::build;
use crate::walk::{TensorEntry, walk};

/// How the reference draws one tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    Normal { std: f64 },
    Uniform { bound: f64 },
    Const(f32),
}

/// Which reference's rules a network follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reference {
    Layer13,
    SmallCnn,
    RepoVgg,
    TorchvisionVgg,
    ResNet,
    DenseNet,
}

fn reference_of(arch: &str) -> Reference {
    match arch {
        "layer13" => Reference::Layer13,
        "small_cnn" | "small_cnn_nobn" => Reference::SmallCnn,
        "resnet50" | "resnext50_32x4d" => Reference::ResNet,
        "densenet169" => Reference::DenseNet,
        a if a.contains("orig") || a.contains("bow") => Reference::RepoVgg,
        a if a.starts_with("vgg") => Reference::TorchvisionVgg,
        a => panic!("no initialisation reference for `{a}`"),
    }
}

/// PyTorch's fans of a conv weight `[out, in / groups, kh, kw]`.
fn conv_fans(shape: &[usize]) -> (f64, f64) {
    let rf = (shape[2] * shape[3]) as f64;
    (shape[1] as f64 * rf, shape[0] as f64 * rf)
}

/// The reference rule for `entry`; `linear_in` is the input width of the linear layer it
/// belongs to (Burn's linear weight is `[in, out]`).
fn rule(reference: Reference, entry: &TensorEntry, linear_in: Option<usize>) -> Rule {
    use Reference::*;
    let linear_default = || Rule::Uniform {
        bound: 1.0 / (linear_in.expect("a linear layer") as f64).sqrt(),
    };
    match (entry.module_type.as_str(), entry.param.as_str()) {
        ("BatchNorm", "gamma" | "running_var") => Rule::Const(1.0),
        ("BatchNorm", "beta" | "running_mean") => Rule::Const(0.0),
        ("Conv2d", "weight") => {
            let (fan_in, fan_out) = conv_fans(&entry.shape);
            match reference {
                RepoVgg => Rule::Normal { std: 0.01 },
                DenseNet => Rule::Normal {
                    std: (2.0 / fan_in).sqrt(),
                },
                Layer13 | SmallCnn | TorchvisionVgg | ResNet => Rule::Normal {
                    std: (2.0 / fan_out).sqrt(),
                },
            }
        }
        ("Conv2d", "bias") => Rule::Const(0.0),
        ("Linear", "weight") => match reference {
            Layer13 | RepoVgg | TorchvisionVgg => Rule::Normal { std: 0.01 },
            SmallCnn | ResNet | DenseNet => linear_default(),
        },
        ("Linear", "bias") => match reference {
            Layer13 | RepoVgg | TorchvisionVgg | DenseNet => Rule::Const(0.0),
            SmallCnn | ResNet => linear_default(),
        },
        (module, param) => panic!("no rule for {module}.{param} ({})", entry.path()),
    }
}

/// Checks the empirical mean and standard deviation of `values` against `rule`, within six
/// standard errors (the standard deviation first, so that a wrong scale is reported as such) of a sample of this size: the sample mean has standard error `sigma /
/// sqrt(n)`; the sample standard deviation has relative standard error `sqrt((kurtosis - 1) /
/// (4 n))`, i.e. `sqrt(1 / (2 n))` for a normal and `sqrt(1 / (5 n))` for a uniform
/// distribution. Constants must be exact; uniform draws must also lie inside the bounds.
fn check(rule: Rule, values: &[f32]) -> Result<(f64, f64), String> {
    let n = values.len() as f64;
    if let Rule::Const(c) = rule {
        return match values.iter().find(|&&v| v != c) {
            None => Ok((c as f64, 0.0)),
            Some(v) => Err(format!("expected every value {c}, found {v}")),
        };
    }
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = var.sqrt();
    let (sigma, rel_se) = match rule {
        Rule::Normal { std } => (std, (1.0 / (2.0 * n)).sqrt()),
        Rule::Uniform { bound } => {
            if let Some(v) = values
                .iter()
                .find(|v| v.abs() as f64 > bound * (1.0 + 1e-6))
            {
                return Err(format!("{v} outside U(-{bound}, {bound})"));
            }
            (bound / 3f64.sqrt(), (1.0 / (5.0 * n)).sqrt())
        }
        Rule::Const(_) => unreachable!(),
    };
    if (std / sigma - 1.0).abs() > 6.0 * rel_se {
        return Err(format!(
            "std {std:.4e} vs the reference's {sigma:.4e}: ratio {:.3}, allowed 1 +- {:.3} (n = {n})",
            std / sigma,
            6.0 * rel_se
        ));
    }
    if mean.abs() > 6.0 * sigma / n.sqrt() {
        return Err(format!(
            "mean {mean:.3e} is more than 6 standard errors ({:.3e}) from 0 (n = {n})",
            sigma / n.sqrt()
        ));
    }
    Ok((mean, std))
}

/// Checks every tensor of `module` against `reference`'s rules; returns how many were checked.
fn check_module<M: Module>(module: &M, reference: Reference, what: &str) -> Result<usize, String> {
    let entries = walk(module, true);
    for entry in &entries {
        let linear_in = (entry.module_type == "Linear").then(|| {
            entries
                .iter()
                .find(|e| e.module_path == entry.module_path && e.param == "weight")
                .map(|w| w.shape[0])
                .expect("a linear layer has a weight")
        });
        let rule = rule(reference, entry, linear_in);
        let values = entry.values.as_deref().expect("walked with values");
        check(rule, values).map_err(|e| {
            format!(
                "{what}: `{}` {:?} ({rule:?}): {e}",
                entry.path(),
                entry.shape
            )
        })?;
    }
    Ok(entries.len())
}

/// Widths that keep every network small (a few million values) but every tensor large enough
/// for the statistics; ResNeXt keeps its 32 groups (3x3 weights `[32 * k, k, 3, 3]`).
fn test_width(arch: &str) -> f32 {
    match arch {
        a if a.starts_with("vgg") => 0.0625,
        "layer13" | "small_cnn" | "small_cnn_nobn" => 0.5,
        _ => 0.25,
    }
}

#[test]
fn init_of_every_layer_of_every_network_matches_its_reference_rule() {
    let device = Device::flex();
    device.seed(7);
    let mut total = 0;
    for &arch in crate::ARCHITECTURES {
        let classes = 100;
        let net = build(arch, 3, classes, test_width(arch), &device).unwrap();
        let checked =
            check_module(&net, reference_of(arch), arch).unwrap_or_else(|e| panic!("{e}"));
        assert!(checked > 0, "{arch}");
        total += checked;
    }
    // Every network's every parameter and running statistic was checked.
    assert!(total > 2000, "{total}");
}

/// The grouped 3x3 convolutions are where Burn's and PyTorch's fan-out differ: at full width
/// (the real layer shapes), every ResNeXt-50 32x4d grouped conv has torchvision's std.
#[test]
fn init_of_resnext_grouped_convs_at_full_width_uses_torch_fan_out() {
    let device = Device::flex();
    let crate::Network::ResNet(net) = build("resnext50_32x4d", 3, 10, 1.0, &device).unwrap() else {
        panic!("resnext is a ResNet");
    };
    for (stage, blocks) in [&net.layer1, &net.layer2, &net.layer3, &net.layer4]
        .into_iter()
        .enumerate()
    {
        let conv = &blocks[0].conv2;
        assert_eq!(conv.groups, 32);
        let checked = check_module(
            conv,
            Reference::ResNet,
            &format!("layer{}.0.conv2", stage + 1),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(checked, 1);
    }
}

/// The check is sharp enough to catch the mistakes it is for.
#[test]
fn init_check_rejects_burn_grouped_fan_out_and_a_fan_in_fan_out_swap() {
    let device = Device::flex();
    // Burn's own grouped conv init: fan-out divided by the groups, sqrt(32) times too wide.
    let burn_grouped = Conv2dConfig::new([128, 128], [3, 3])
        .with_groups(32)
        .with_bias(false)
        .with_initializer(crate::kaiming_normal_fan_out())
        .init(&device);
    let err = check_module(&burn_grouped, Reference::ResNet, "burn grouped conv").unwrap_err();
    assert!(err.contains("ratio 5."), "{err}");
    // The same layer through the crate's helper passes.
    let ours = crate::common::conv2d(
        128,
        128,
        3,
        1,
        1,
        32,
        false,
        crate::kaiming_normal_fan_out(),
        &device,
    );
    check_module(&ours, Reference::ResNet, "helper grouped conv").unwrap();
    // DenseNet's fan-in convs judged by the fan-out rule (and the reverse) fail.
    let dense = build("densenet169", 3, 10, 0.25, &device).unwrap();
    assert!(check_module(&dense, Reference::ResNet, "densenet as fan-out").is_err());
    let resnet = build("resnet50", 3, 10, 0.25, &device).unwrap();
    assert!(check_module(&resnet, Reference::DenseNet, "resnet as fan-in").is_err());
    // A linear layer's default U(-1/sqrt(in), 1/sqrt(in)) is not N(0, 0.01^2).
    let layer13 = build("layer13", 3, 100, 0.5, &device).unwrap();
    assert!(check_module(&layer13, Reference::SmallCnn, "layer13 as small_cnn").is_err());
}
