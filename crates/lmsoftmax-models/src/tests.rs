//! Unit tests: parameter counts, MACs, shapes, BatchNorm train/eval behaviour, initialisation.

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};

use crate::layer13::Layer13Config;
use crate::{ModelError, Network, build, list, model_info};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Trainable parameter counts from PROTOCOL section 4 and torchvision (1000 classes unless noted).
const EXPECTED_PARAMS: &[(&str, usize, usize)] = &[
    ("layer13", 10, 4_432_522),
    ("layer13", 100, 4_444_132),
    ("layer13", 1000, 4_560_232),
    ("small_cnn", 10, 94_762),
    // 3*32*9 + 32*64*9 + 64*128*9 conv weights + 128*10 + 10 linear, no BN
    ("small_cnn_nobn", 10, 94_314),
    ("vgg16bow_bn", 1000, 37_719_080),
    ("vgg11orig", 1000, 132_863_336),
    ("vgg11orig_bn", 1000, 132_885_224),
    ("vgg13orig", 1000, 133_047_848),
    ("vgg13orig_bn", 1000, 133_070_120),
    ("vgg16orig", 1000, 138_357_544),
    ("vgg16orig_bn", 1000, 138_382_376),
    ("vgg19orig", 1000, 143_667_240),
    ("vgg19orig_bn", 1000, 143_694_632),
    ("vgg11bow", 1000, 32_200_040),
    ("vgg11bow_bn", 1000, 32_221_928),
    ("vgg13bow", 1000, 32_384_552),
    ("vgg13bow_bn", 1000, 32_406_824),
    ("vgg16bow", 1000, 37_694_248),
    ("vgg19bow", 1000, 43_003_944),
    ("vgg19bow_bn", 1000, 43_031_336),
    ("vgg11", 1000, 132_863_336),
    ("vgg11_bn", 1000, 132_868_840),
    ("vgg13", 1000, 133_047_848),
    ("vgg13_bn", 1000, 133_053_736),
    ("vgg16", 1000, 138_357_544),
    ("vgg16_bn", 1000, 138_365_992),
    ("vgg19", 1000, 143_667_240),
    ("vgg19_bn", 1000, 143_678_248),
    ("resnet50", 1000, 25_557_032),
    ("resnext50_32x4d", 1000, 25_028_904),
    ("densenet169", 1000, 14_149_480),
];

#[test]
fn parameter_counts_match_reference() {
    // Building is lazy: weights are never allocated, so even the 143M-parameter VGGs are cheap.
    let device = Device::flex();
    for &(name, classes, expected) in EXPECTED_PARAMS {
        let net = build(name, 3, classes, 1.0, &device).unwrap();
        assert_eq!(
            net.num_trainable_params(),
            expected,
            "{name} at {classes} classes"
        );
    }
}

/// The penultimate feature sizes at width 1: the in-features of the reference classifier
/// (PROTOCOL section 4, torchvision's `fc` / `classifier`).
const FEATURE_DIMS: &[(&str, usize)] = &[
    ("layer13", 128),
    ("small_cnn", 128),
    ("vgg16bow_bn", 4096),
    ("vgg16orig", 4096),
    ("vgg16", 4096),
    ("resnet50", 2048),
    ("resnext50_32x4d", 2048),
    ("densenet169", 1664),
];

#[test]
fn without_its_classifier_a_network_hands_its_reference_features_to_a_head() {
    let device = Device::flex();
    for &(name, dim) in FEATURE_DIMS {
        let net = build(name, 3, 1000, 1.0, &device).unwrap();
        assert_eq!(net.feature_dim(), dim, "{name}");
        let full = net.num_trainable_params();
        let body = net.without_classifier();
        assert!(!body.has_classifier());
        // exactly the last linear layer, `dim x 1000` and its bias, is gone
        assert_eq!(
            full - body.num_trainable_params(),
            dim * 1000 + 1000,
            "{name}"
        );
        assert_eq!(body.feature_dim(), dim, "{name}");
    }
    // the features are the classifier's input, at any width
    device.seed(7);
    for name in [
        "layer13",
        "small_cnn",
        "resnet50",
        "vgg11bow_bn",
        "densenet169",
    ] {
        let net = build(name, 3, 10, 0.0625, &device).unwrap().valid();
        let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let feats = net.features(x.clone());
        assert_eq!(feats.dims(), [2, net.feature_dim()], "{name}");
        let body = net.clone().without_classifier();
        assert_eq!(
            values(body.features(x.clone())),
            values(feats),
            "{name}: removing the classifier leaves the features alone"
        );
        let err = body.try_forward(x.clone()).unwrap_err().to_string();
        assert!(err.contains("no classifier"), "{name}: {err}");
        assert!(net.try_forward(x).is_ok());
    }
}

#[test]
fn every_registered_name_has_an_expected_count() {
    for name in crate::ARCHITECTURES {
        assert!(
            EXPECTED_PARAMS.iter().any(|(n, _, _)| n == name),
            "{name} has no parameter-count test"
        );
    }
}

#[test]
fn num_params_minus_running_stats_is_trainable() {
    let device = Device::flex();
    let net = build("layer13", 3, 10, 1.0, &device).unwrap();
    // 9 BNs with 128+128+128+256+256+256+512+256+128 = 2048 channels, mean + var each.
    assert_eq!(net.num_params() - net.num_trainable_params(), 4096);
    let net = build("vgg16bow_bn", 3, 1000, 1.0, &device).unwrap();
    assert_eq!(net.num_params(), 37_719_080 + 8448 + 8192 + 8192);
}

#[test]
fn list_reports_usual_configurations() {
    let infos = list();
    assert_eq!(infos.len(), crate::ARCHITECTURES.len() + 1); // layer13 twice
    let l13: Vec<_> = infos.iter().filter(|i| i.name == "layer13").collect();
    assert_eq!(l13.len(), 2);
    for info in l13 {
        assert_eq!(info.input, [3, 32, 32]);
        assert_eq!(info.macs, 778_567_680 + 128 * info.num_classes as u64);
        assert!((info.gmacs - 0.7786).abs() < 1e-3);
    }
    for info in &infos {
        let expected = EXPECTED_PARAMS
            .iter()
            .find(|(n, c, _)| *n == info.name && *c == info.num_classes)
            .unwrap()
            .2;
        assert_eq!(info.parameters, expected, "{}", info.name);
        if !["layer13", "small_cnn", "small_cnn_nobn"].contains(&info.name) {
            assert_eq!((info.num_classes, info.input), (1000, [3, 224, 224]));
        }
    }
}

#[test]
fn macs_match_known_values() {
    let macs = |name: &str| model_info(name, 1000, [3, 224, 224], 1.0).unwrap().macs;
    // torchvision VGG-16: 15,346,630,656 conv + 123,633,664 FC multiply-adds.
    assert_eq!(macs("vgg16"), 15_470_264_320);
    assert_eq!(macs("vgg16orig"), 15_470_264_320);
    // vgg16bow_bn: 13 convs up to the 14x14 map (the last pool removed) + W conv + FC.
    let convs_14 = 15_346_630_656u64; // the conv MACs are the same: pools do not change them
    let w = 14 * 14 * 512 * 4096;
    let fc = 4096 * 4096 + 4096 * 1000;
    assert_eq!(macs("vgg16bow_bn"), convs_14 + w + fc);
    assert!((15.75e9..15.77e9).contains(&((convs_14 + w) as f64)));
    // ResNet-50: ~4.09 GMAC (fvcore/ptflops convention), DenseNet-169 ~3.36 GMAC.
    let r50 = macs("resnet50") as f64;
    assert!((4.08e9..4.12e9).contains(&r50), "resnet50 {r50}");
    let d169 = macs("densenet169") as f64;
    assert!((3.3e9..3.45e9).contains(&d169), "densenet169 {d169}");
    let x50 = macs("resnext50_32x4d") as f64;
    assert!((4.2e9..4.3e9).contains(&x50), "resnext50 {x50}");
    // small_cnn on CIFAR: 32*32*32*27 + 16*16*64*288 + 8*8*128*576 + 128*10
    let s = model_info("small_cnn", 10, [3, 32, 32], 1.0).unwrap().macs;
    assert_eq!(
        s,
        32 * 32 * 32 * 27 + 16 * 16 * 64 * 288 + 8 * 8 * 128 * 576 + 1280
    );
}

#[test]
fn layer13_and_small_cnn_output_shapes() {
    let device = Device::flex();
    for arch in ["layer13", "small_cnn"] {
        for in_ch in [1, 3] {
            for classes in [10, 100] {
                let net = build(arch, in_ch, classes, 0.125, &device).unwrap();
                for hw in [28, 32] {
                    let x = Tensor::<4>::random(
                        [2, in_ch, hw, hw],
                        Distribution::Normal(0.0, 1.0),
                        &device,
                    );
                    let y = net.try_forward(x).unwrap();
                    assert_eq!(y.dims(), [2, classes], "{arch} {in_ch}x{hw}x{hw}");
                }
            }
        }
    }
    // Full width layer13, one CIFAR image, also on a larger input.
    let net = build("layer13", 3, 100, 1.0, &device).unwrap();
    let y = net.forward(Tensor::<4>::ones([1, 3, 32, 32], &device));
    assert_eq!(y.dims(), [1, 100]);
    assert!(values(y).iter().all(|v| v.is_finite()));
    let y = net.forward(Tensor::<4>::ones([1, 3, 48, 40], &device));
    assert_eq!(y.dims(), [1, 100]);
}

#[test]
fn layer13_width_multiplier_and_shapes_trace() {
    let cfg = Layer13Config::new().with_width(0.5);
    assert_eq!(cfg.channels(), [64, 64, 64, 128, 128, 128, 256, 128, 64]);
    let cfg = Layer13Config::new().with_width(0.001);
    assert_eq!(cfg.channels(), [1; 9]);
    // MNIST: 28 -> 14 -> 7 -> conv7 (pad 0) -> 5.
    let info = model_info("layer13", 10, [1, 28, 28], 1.0).unwrap();
    let expected = 28 * 28 * 128 * 9 * (1 + 128 + 128)
        + 14 * 14 * 256 * 9 * (128 + 256 + 256)
        + 5 * 5 * 9 * (256 * 512 + 512 * 256 + 256 * 128)
        + 1280;
    assert_eq!(info.macs, expected as u64);
}

#[test]
fn imagenet_nets_at_224_reduced_width() {
    let device = Device::flex();
    for (arch, width) in [
        ("resnet50", 0.125),
        ("resnext50_32x4d", 0.125),
        ("densenet169", 0.125),
        ("vgg16bow_bn", 0.0625),
        ("vgg16_bn", 0.0625),
    ] {
        let net = build(arch, 3, 1000, width, &device).unwrap();
        let x = Tensor::<4>::random([1, 3, 224, 224], Distribution::Normal(0.0, 1.0), &device);
        let y = net.try_forward(x).unwrap();
        assert_eq!(y.dims(), [1, 1000], "{arch}");
        assert!(values(y).iter().all(|v| v.is_finite()), "{arch}");
    }
}

#[test]
fn errors_are_descriptive() {
    let device = Device::flex();
    let err = build("resnet18", 3, 10, 1.0, &device).unwrap_err();
    assert!(matches!(err, ModelError::UnknownArch { .. }));
    let msg = err.to_string();
    assert!(msg.contains("resnet18") && msg.contains("layer13") && msg.contains("vgg16bow_bn"));
    assert!(build("vgg17orig", 3, 10, 1.0, &device).is_err());
    assert!(matches!(
        build("layer13", 3, 10, 0.0, &device),
        Err(ModelError::InvalidArgument(_))
    ));
    assert!(matches!(
        build("layer13", 3, 0, 1.0, &device),
        Err(ModelError::InvalidArgument(_))
    ));

    let net = build("layer13", 3, 10, 0.125, &device).unwrap();
    // 8 -> 4 -> 2, then the unpadded 3x3 conv 7 needs 3.
    let err = net.macs([3, 8, 8]).unwrap_err();
    assert!(matches!(err, ModelError::InputTooSmall { .. }), "{err}");
    assert!(net.macs([3, 12, 12]).is_ok());
    let x = Tensor::<4>::zeros([1, 3, 8, 8], &device);
    assert!(net.try_forward(x).is_err());
    let x = Tensor::<4>::zeros([1, 1, 32, 32], &device);
    assert!(matches!(
        net.try_forward(x),
        Err(ModelError::ChannelMismatch {
            expected: 3,
            got: 1,
            ..
        })
    ));
    let resnet = build("resnet50", 3, 10, 0.125, &device).unwrap();
    assert!(resnet.macs([3, 16, 16]).is_ok());
}

#[test]
fn batchnorm_train_updates_running_stats_eval_uses_them() {
    let device = Device::flex().autodiff();
    let net = Layer13Config::new().with_width(0.125).init(&device);
    let x = Tensor::<4>::random([4, 3, 32, 32], Distribution::Normal(0.5, 1.0), &device);

    // Batch mean of the first conv's output, per channel.
    let conv_out = net.blocks[0].conv.forward(x.clone()).detach();
    let conv_out_for_var = conv_out.clone();
    let batch_mean = values(
        conv_out
            .mean_dim(3)
            .mean_dim(2)
            .mean_dim(0)
            .flatten::<1>(0, 3),
    );
    let bn = net.blocks[0].bn.as_ref().unwrap();
    assert!(values(bn.running_mean.value()).iter().all(|&v| v == 0.0));

    // Train mode (autodiff device, training flag on): batch statistics, momentum 0.1 update.
    let y_train = net.forward(x.clone());
    let bn = net.blocks[0].bn.as_ref().unwrap();
    // Updates are kept per thread until synchronised (`valid()` also synchronises).
    let running = values(bn.running_mean.value_sync());
    assert_eq!(running.len(), batch_mean.len());
    for (r, m) in running.iter().zip(&batch_mean) {
        assert!(
            (r - 0.1 * m).abs() <= 1e-5 + 1e-4 * m.abs(),
            "{r} vs 0.1*{m}"
        );
    }
    // PyTorch rule: running_var = 0.9 * 1 + 0.1 * unbiased batch variance (n = 4 * 32 * 32).
    let n = (4 * 32 * 32) as f32;
    let centred = conv_out_for_var.clone() - conv_out_for_var.mean_dim(3).mean_dim(2).mean_dim(0);
    let unbiased = values(
        centred
            .powi_scalar(2)
            .sum_dim(3)
            .sum_dim(2)
            .sum_dim(0)
            .flatten::<1>(0, 3)
            .div_scalar(n - 1.0),
    );
    let running_var = values(bn.running_var.value_sync());
    for (r, v) in running_var.iter().zip(&unbiased) {
        let want = 0.9 + 0.1 * v;
        assert!((r - want).abs() <= 1e-4 * want.abs(), "{r} vs {want}");
    }

    // Eval mode: running statistics are used and left unchanged; samples are independent.
    let eval = net.valid();
    let y_eval = eval.forward(x.clone().inner());
    let bn = eval.blocks[0].bn.as_ref().unwrap();
    assert_eq!(values(bn.running_mean.value()), running);
    let y_eval_again = eval.forward(x.clone().inner());
    assert_eq!(values(y_eval.clone()), values(y_eval_again));
    let first = eval.forward(x.clone().inner().narrow(0, 0, 1));
    let all = values(y_eval.clone());
    for (a, b) in values(first).iter().zip(&all[..10]) {
        assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
    }
    // Train and eval outputs differ (batch vs running statistics).
    let diff: f32 = values(y_train.inner())
        .iter()
        .zip(&all)
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(diff > 1e-6);
}

#[test]
fn network_enum_valid_keeps_structure() {
    let device = Device::flex().autodiff();
    let net: Network = build("small_cnn", 1, 10, 0.25, &device).unwrap();
    let x = Tensor::<4>::random([3, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    let logits = net.forward(x.clone());
    let grads = logits.sum().backward();
    let Network::SmallCnn(inner) = &net else {
        panic!("wrong variant")
    };
    assert!(inner.blocks[0].conv.weight.val().grad(&grads).is_some());
    let eval = net.valid();
    assert_eq!(eval.forward(x.inner()).dims(), [3, 10]);
}

#[test]
fn layer13_initialisation_statistics() {
    let device = Device::flex();
    let net = Layer13Config::new().init(&device);
    for (i, block) in net.blocks.iter().enumerate().skip(1) {
        let w = block.conv.weight.val();
        let [out, _, kh, kw] = w.dims();
        let (mean, std) = mean_std(&values(w));
        let expected = (2.0 / (out * kh * kw) as f64).sqrt();
        assert!(
            (std / expected - 1.0).abs() < 0.1,
            "block {i}: {std} vs {expected}"
        );
        assert!(mean.abs() < 0.1 * expected);
        assert!(block.conv.bias.is_none());
        let bn = block.bn.as_ref().unwrap();
        assert!(values(bn.gamma.val()).iter().all(|&g| g == 1.0));
        assert!(values(bn.beta.val()).iter().all(|&b| b == 0.0));
        assert_eq!((bn.epsilon, bn.momentum), (1e-5, 0.1));
    }
    let (_, std) = mean_std(&values(net.classifier.as_ref().unwrap().weight.val()));
    assert!((std / 0.01 - 1.0).abs() < 0.1, "fc std {std}");
    let bias = net
        .classifier
        .as_ref()
        .unwrap()
        .bias
        .as_ref()
        .unwrap()
        .val();
    assert!(values(bias).iter().all(|&b| b == 0.0));
}

#[test]
fn vgg_initialisation_and_bn_eps() {
    let device = Device::flex();
    let Network::Vgg(net) = build("vgg11bow_bn", 3, 10, 0.25, &device).unwrap() else {
        panic!("wrong variant")
    };
    let crate::vgg::VggLayer::Conv(block) = &net.features[2] else {
        panic!("expected conv")
    };
    let (_, std) = mean_std(&values(block.conv.weight.val()));
    assert!((std / 0.01 - 1.0).abs() < 0.1, "repo vgg conv std {std}");
    assert!(
        values(block.conv.bias.as_ref().unwrap().val())
            .iter()
            .all(|&b| b == 0.0)
    );
    assert_eq!(block.bn.as_ref().unwrap().epsilon, 1e-4);
    assert_eq!(net.hidden.len(), 1);
    assert!(net.hidden[0].dropout.is_none());
    assert_eq!(net.hidden[0].bn.as_ref().unwrap().epsilon, 1e-4);

    let Network::Vgg(tv) = build("vgg16_bn", 3, 10, 0.125, &device).unwrap() else {
        panic!("wrong variant")
    };
    assert_eq!(tv.hidden.len(), 2);
    assert!(
        tv.hidden
            .iter()
            .all(|h| h.dropout.is_some() && h.bn.is_none())
    );
    assert_eq!(tv.avgpool.output_size, [7, 7]);
}

#[test]
fn vgg_bow_bn_trains_with_batchnorm1d() {
    let device = Device::flex().autodiff();
    let net = build("vgg11bow_bn", 3, 10, 0.0625, &device).unwrap();
    let x = Tensor::<4>::random([3, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let y = net.forward(x.clone());
    assert_eq!(y.dims(), [3, 10]);
    let grads = y.sum().backward();
    let Network::Vgg(vgg) = &net else {
        panic!("wrong variant")
    };
    let bn1d = vgg.hidden[0].bn.as_ref().unwrap();
    assert!(bn1d.gamma.val().grad(&grads).is_some());
    // The BN1d running mean moved away from 0 after one training step.
    assert!(
        values(bn1d.running_mean.value_sync())
            .iter()
            .any(|v| v.abs() > 0.0)
    );
    assert_eq!(net.valid().forward(x.inner()).dims(), [3, 10]);
}

/// Under a bf16 autocast scope every network's logits are bf16 values (its last layer rounds its
/// output) and stay close to the fp32 ones; the weights are untouched f32.
#[test]
fn every_family_runs_under_bf16_autocast_close_to_fp32() {
    use lmsoftmax_kernels::autocast::{Precision, autocast};
    let device = Device::flex();
    for (arch, width, size) in [
        ("layer13", 0.125, 32),
        ("small_cnn", 0.5, 32),
        ("resnet50", 0.0625, 64),
        ("densenet169", 0.0625, 64),
        ("vgg16bow_bn", 0.0625, 64),
    ] {
        device.seed(7);
        let net = build(arch, 3, 10, width, &device).unwrap();
        let x = Tensor::<4>::random([2, 3, size, size], Distribution::Normal(0.0, 1.0), &device);
        let fp32 = values(net.forward(x.clone()));
        let bf16 = {
            let _bf16 = autocast(Precision::Bf16);
            values(net.forward(x))
        };
        assert!(
            bf16.iter().all(|v| v.to_bits() & 0xffff == 0),
            "{arch}: {bf16:?}"
        );
        let scale = fp32.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let worst = fp32
            .iter()
            .zip(&bf16)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 0.05 * scale, "{arch}: {fp32:?} vs {bf16:?}");
        assert!(worst > 0.0, "{arch}: bf16 changed nothing");
    }
}
