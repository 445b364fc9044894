//! Loading PyTorch `state_dict` checkpoints with the reference code's key names.

use std::path::Path;

use burn::module::Module;
use burn::store::{
    ApplyError, ApplyResult, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore,
    SafetensorsStore,
};

use crate::error::ModelError;
use crate::layer13::Layer13;
use crate::resnet::ResNet;

/// PyTorch `nn.Sequential` indices of layer13's nine convolutions (the BN of conv `i` sits at
/// index `i + 1`, the ReLU at `i + 2`, the max-pools at 9 and 19).
pub const LAYER13_TORCH_CONV_INDICES: [usize; 9] = [0, 3, 6, 10, 13, 16, 20, 23, 26];

/// `(pytorch prefix regex, burn prefix)` pairs mapping the reference `state_dict` keys
/// (`features.{0,3,..}.weight`, `features.{1,4,..}.{weight,bias,running_mean,running_var}`,
/// `classifier.{weight,bias}`) onto [`Layer13`]'s field paths (`blocks.{i}.conv.weight`,
/// `blocks.{i}.bn.{gamma,beta,running_mean,running_var}`, `classifier.{weight,bias}`).
/// BN `weight`/`bias` become `gamma`/`beta` and linear weights are transposed by burn-store's
/// PyTorch adapter; `num_batches_tracked` is ignored.
pub fn layer13_torch_key_map() -> Vec<(String, String)> {
    let mut map = Vec::with_capacity(18);
    for (block, idx) in LAYER13_TORCH_CONV_INDICES.into_iter().enumerate() {
        map.push((
            format!(r"^features\.{idx}\."),
            format!("blocks.{block}.conv."),
        ));
        map.push((
            format!(r"^features\.{}\.", idx + 1),
            format!("blocks.{block}.bn."),
        ));
    }
    map
}

/// Loads a PyTorch `state_dict` of the reference `layer13` (or a width-reduced copy with the
/// same structure) into `net`: a `torch.save(model.state_dict(), path)` file, or a safetensors
/// file when `path` ends in `.safetensors` (e.g. from [`crate::export_safetensors`]).
///
/// Not strict about extra keys; [`crate::load_torch_state`] is.
///
/// # Errors
/// [`ModelError::Load`] if the file cannot be read, a tensor is missing or has the wrong shape.
pub fn load_layer13_pytorch(net: Layer13, path: impl AsRef<Path>) -> Result<Layer13, ModelError> {
    let path = path.as_ref();
    let err = |detail: String| ModelError::Load {
        path: path.display().to_string(),
        detail,
    };
    let mut remapper = KeyRemapper::new();
    for (from, to) in layer13_torch_key_map() {
        remapper = remapper
            .add_pattern(from, to)
            .map_err(|e| err(e.to_string()))?;
    }
    let mut net = net;
    let result = if is_safetensors(path) {
        let mut store = SafetensorsStore::from_file(path)
            .with_from_adapter(PyTorchToBurnAdapter)
            .map_indices_contiguous(false)
            .remap(remapper);
        net.load_from(&mut store).map_err(|e| err(e.to_string()))?
    } else {
        let mut store = PytorchStore::from_file(path)
            .map_indices_contiguous(false)
            .remap(remapper);
        net.load_from(&mut store).map_err(|e| err(e.to_string()))?
    };
    if !result.errors.is_empty() {
        return Err(err(format!("{result}")));
    }
    Ok(net)
}

/// `(pytorch key regex, burn path replacement)` pairs mapping a torchvision ResNet / ResNeXt
/// `state_dict` onto [`ResNet`]'s field paths. Only the projection shortcut differs:
/// torchvision's `layer{k}.0.downsample` is an `nn.Sequential(conv1x1, BatchNorm2d)`, so
/// `downsample.0.*` becomes `downsample.conv.*` and `downsample.1.*` becomes `downsample.bn.*`.
/// Every other key is already the Burn path: `conv1.weight`, `bn1.*`,
/// `layer{1..4}.{i}.conv{1,2,3}.weight`, `layer{1..4}.{i}.bn{1,2,3}.*`, `fc.{weight,bias}`
/// (BN `weight`/`bias` become `gamma`/`beta` and the `fc` weight is transposed by burn-store's
/// PyTorch adapter; `num_batches_tracked` is ignored).
pub fn resnet_torch_key_map() -> Vec<(String, String)> {
    vec![
        (
            r"^(layer[1-4]\.[0-9]+)\.downsample\.0\.".into(),
            "$1.downsample.conv.".into(),
        ),
        (
            r"^(layer[1-4]\.[0-9]+)\.downsample\.1\.".into(),
            "$1.downsample.bn.".into(),
        ),
    ]
}

/// The torchvision `state_dict` key of a [`ResNet`] tensor path (inverse of
/// [`resnet_torch_key_map`] plus BatchNorm's `gamma`/`beta` -> `weight`/`bias`).
pub fn resnet_torch_key(burn_path: &str) -> String {
    let key = burn_path
        .replace(".downsample.conv.", ".downsample.0.")
        .replace(".downsample.bn.", ".downsample.1.");
    if let Some(stem) = key.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = key.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        key
    }
}

/// Loads a torchvision ResNet / ResNeXt `state_dict`
/// (`torch.save(torchvision.models.resnet50().state_dict(), path)`, or `resnext50_32x4d`, or a
/// width-reduced copy with the same structure; a safetensors file when `path` ends in
/// `.safetensors`, e.g. from [`crate::export_safetensors`]) into `net`, strictly: like PyTorch's
/// `load_state_dict(strict=True)`, every tensor of `net` must be in the file with the same
/// shape, and every key of the file except `*.num_batches_tracked` must be used.
///
/// `net` must have been built with the checkpoint's configuration (e.g.
/// `build("resnet50", 3, 1000, 1.0, ..)` for torchvision's ImageNet weights).
///
/// # Errors
/// [`ModelError::Load`] if the file cannot be read, a key is missing, a tensor has the wrong
/// shape, or the file has keys the network does not (all named with their PyTorch keys).
pub fn load_resnet_pytorch(net: ResNet, path: impl AsRef<Path>) -> Result<ResNet, ModelError> {
    load_pytorch_strict(
        net,
        path.as_ref(),
        &resnet_torch_key_map(),
        resnet_torch_key,
    )
}

/// Whether `path` names a safetensors file (by its extension).
pub(crate) fn is_safetensors(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

/// At most this many keys are named per category in a load error.
const MAX_LISTED: usize = 16;

fn list_keys(keys: &[String]) -> String {
    let mut out = keys
        .iter()
        .take(MAX_LISTED)
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > MAX_LISTED {
        out.push_str(&format!(" and {} more", keys.len() - MAX_LISTED));
    }
    out
}

/// Describes what went wrong in `result` with PyTorch key names, or `None` when every tensor
/// of the module was loaded and every key of the file (but `num_batches_tracked`) was used.
pub(crate) fn strict_problems(
    result: &ApplyResult,
    to_torch: &dyn Fn(&str) -> String,
) -> Option<String> {
    let mut problems = Vec::new();
    let mut missing: Vec<String> = result.missing.iter().map(|(p, _)| to_torch(p)).collect();
    missing.sort();
    if !missing.is_empty() {
        problems.push(format!(
            "{} key(s) missing from the checkpoint: {}",
            missing.len(),
            list_keys(&missing)
        ));
    }
    let mismatched: Vec<String> = result
        .errors
        .iter()
        .map(|e| match e {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => format!(
                "`{}` has shape {:?} in the checkpoint, the network expects {:?}{}",
                to_torch(path),
                found.as_slice(),
                expected.as_slice(),
                if expected.as_slice().len() == 2 {
                    " (Burn's [in, out] linear layout)"
                } else {
                    ""
                }
            ),
            other => other.to_string(),
        })
        .collect();
    if !mismatched.is_empty() {
        let shown = mismatched.len().min(MAX_LISTED);
        let mut text = format!(
            "{} tensor(s) do not fit: {}",
            mismatched.len(),
            mismatched[..shown].join("; ")
        );
        if mismatched.len() > shown {
            text.push_str(&format!("; and {} more", mismatched.len() - shown));
        }
        problems.push(text);
    }
    let mut unexpected: Vec<String> = result
        .unused
        .iter()
        .filter(|k| !k.ends_with("num_batches_tracked"))
        .map(|k| to_torch(k))
        .collect();
    unexpected.sort();
    if !unexpected.is_empty() {
        problems.push(format!(
            "{} unexpected key(s) in the checkpoint: {}",
            unexpected.len(),
            list_keys(&unexpected)
        ));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// Loads `path` into `net` after renaming keys with `key_map` (regex, replacement), strictly
/// (see [`load_resnet_pytorch`]); `to_torch` names Burn paths in errors.
pub(crate) fn load_pytorch_strict<M: Module>(
    mut net: M,
    path: &Path,
    key_map: &[(String, String)],
    to_torch: fn(&str) -> String,
) -> Result<M, ModelError> {
    let err = |detail: String| ModelError::Load {
        path: path.display().to_string(),
        detail,
    };
    let remapper = KeyRemapper::from_patterns(key_map.to_vec()).map_err(|e| err(e.to_string()))?;
    let result = if is_safetensors(path) {
        let mut store = SafetensorsStore::from_file(path)
            .with_from_adapter(PyTorchToBurnAdapter)
            .map_indices_contiguous(false)
            .remap(remapper)
            .validate(false)
            .allow_partial(true);
        net.load_from(&mut store).map_err(|e| err(e.to_string()))?
    } else {
        let mut store = PytorchStore::from_file(path)
            .map_indices_contiguous(false)
            .remap(remapper)
            .validate(false)
            .allow_partial(true);
        net.load_from(&mut store).map_err(|e| err(e.to_string()))?
    };
    match strict_problems(&result, &to_torch) {
        Some(detail) => Err(err(detail)),
        None => Ok(net),
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::tensor::{Device, Tensor, TensorData};

    use super::*;
    use crate::layer13::Layer13Config;
    use crate::registry::{Network, build};
    use crate::resnet::ResNetConfig;

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");

    fn fixture() -> serde_json::Value {
        let text = std::fs::read_to_string(format!("{DATA}layer13_w0625.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn floats(v: &serde_json::Value) -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn assert_close(got: &[f32], want: &[f32], rel: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= rel * scale,
                "{what}[{i}]: {g} vs {w} (scale {scale})"
            );
        }
    }

    fn load(device: &Device) -> (Layer13, Tensor<4>, serde_json::Value) {
        let fx = fixture();
        let width = fx["width"].as_f64().unwrap() as f32;
        let net = Layer13Config::new()
            .with_width(width)
            .with_num_classes(fx["num_classes"].as_u64().unwrap() as usize)
            .init(device);
        let net = load_layer13_pytorch(net, format!("{DATA}layer13_w0625.pt")).unwrap();
        let shape: Vec<usize> = fx["input_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(floats(&fx["input"]), shape), device);
        (net, x, fx)
    }

    #[test]
    fn key_map_covers_reference_indices() {
        let map = layer13_torch_key_map();
        assert_eq!(map.len(), 18);
        assert_eq!(map[0], (r"^features\.0\.".into(), "blocks.0.conv.".into()));
        assert_eq!(map[17], (r"^features\.27\.".into(), "blocks.8.bn.".into()));
    }

    #[test]
    fn pytorch_layer13_eval_logits_match() {
        let device = Device::flex();
        let (net, x, fx) = load(&device);
        let logits = net.valid().forward(x);
        assert_close(
            &values(logits),
            &floats(&fx["logits_eval"]),
            1e-4,
            "eval logits",
        );
    }

    #[test]
    fn pytorch_layer13_train_logits_and_running_stats_match() {
        let device = Device::flex().autodiff();
        let (net, x, fx) = load(&device);
        let logits = net.forward(x);
        assert_close(
            &values(logits),
            &floats(&fx["logits_train"]),
            1e-4,
            "train logits",
        );
        let bn = net.blocks[0].bn.as_ref().unwrap();
        assert_close(
            &values(bn.running_mean.value_sync()),
            &floats(&fx["bn0_running_mean_after_train"]),
            1e-4,
            "running mean",
        );
        assert_close(
            &values(bn.running_var.value_sync()),
            &floats(&fx["bn0_running_var_after_train"]),
            1e-4,
            "running var",
        );
    }

    #[test]
    fn missing_file_is_a_load_error() {
        let net = Layer13Config::new()
            .with_width(0.0625)
            .init(&Device::flex());
        let err = load_layer13_pytorch(net, format!("{DATA}does_not_exist.pt")).unwrap_err();
        assert!(matches!(err, ModelError::Load { .. }), "{err}");
    }

    #[test]
    fn wrong_width_is_a_load_error() {
        let net = Layer13Config::new().with_width(0.125).init(&Device::flex());
        let err = load_layer13_pytorch(net, format!("{DATA}layer13_w0625.pt")).unwrap_err();
        assert!(matches!(err, ModelError::Load { .. }), "{err}");
    }

    const RESNET50: &str = "resnet50_w0625";
    const RESNEXT: &str = "resnext50_4x32d_w03125";

    fn json(name: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(format!("{DATA}{name}.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn usize_of(v: &serde_json::Value) -> usize {
        v.as_u64().unwrap() as usize
    }

    /// `|got - want| <= abs + rel * max|want|` for every element: `rel` is relative to the
    /// largest reference magnitude, as in the layer13 test. An element-wise relative bound is
    /// not meaningful for train-mode logits: batch-statistics BatchNorm over 16 bottlenecks
    /// amplifies rounding, and PyTorch's own float32 and float64 train-mode logits of these
    /// fixtures differ by up to ~1e-3 relative to a small logit (but ~4e-5 of the largest).
    fn assert_allclose(got: &[f32], want: &[f32], rel: f32, abs: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = got
            .iter()
            .zip(want)
            .fold(0f32, |m, (g, w)| m.max((g - w).abs()));
        eprintln!("{what}: max |diff| {worst:e}, max |want| {scale}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= abs + rel * scale,
                "{what}[{i}]: {g} vs {w} (|diff| {}, scale {scale})",
                (g - w).abs()
            );
        }
    }

    fn input(fx: &serde_json::Value, device: &Device) -> Tensor<4> {
        let shape: Vec<usize> = fx["input_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(usize_of)
            .collect();
        Tensor::<4>::from_data(TensorData::new(floats(&fx["input"]), shape), device)
    }

    /// The fixture's network, configured from its JSON and built with [`ResNetConfig`].
    fn resnet_config(fx: &serde_json::Value) -> ResNetConfig {
        ResNetConfig::new()
            .with_width(fx["width"].as_f64().unwrap() as f32)
            .with_groups(usize_of(&fx["groups"]))
            .with_width_per_group(usize_of(&fx["width_per_group"]))
            .with_num_classes(usize_of(&fx["num_classes"]))
    }

    fn load_resnet(name: &str, device: &Device) -> (ResNet, Tensor<4>, serde_json::Value) {
        let fx = json(name);
        let net = resnet_config(&fx).init(device);
        let net = load_resnet_pytorch(net, format!("{DATA}{name}.pt")).unwrap();
        (net, input(&fx, device), fx)
    }

    fn check_resnet_eval(name: &str) {
        let device = Device::flex();
        let (net, x, fx) = load_resnet(name, &device);
        let logits = net.valid().forward(x);
        assert_eq!(logits.dims(), [2, 10]);
        assert_allclose(
            &values(logits),
            &floats(&fx["logits_eval"]),
            1e-4,
            1e-5,
            &format!("{name} eval logits"),
        );
    }

    fn check_resnet_train(name: &str) {
        let device = Device::flex().autodiff();
        let (net, x, fx) = load_resnet(name, &device);
        let logits = net.forward(x);
        assert_allclose(
            &values(logits),
            &floats(&fx["logits_train"]),
            1e-4,
            1e-5,
            &format!("{name} train logits"),
        );
        let last = &net.layer4.last().unwrap().bn3;
        for (bn, key) in [(&net.bn1, "bn1"), (last, "last_bn")] {
            assert_allclose(
                &values(bn.running_mean.value_sync()),
                &floats(&fx[format!("{key}_running_mean_after_train")]),
                1e-4,
                1e-5,
                &format!("{name} {key} running mean"),
            );
            assert_allclose(
                &values(bn.running_var.value_sync()),
                &floats(&fx[format!("{key}_running_var_after_train")]),
                1e-4,
                1e-5,
                &format!("{name} {key} running var"),
            );
        }
    }

    #[test]
    fn resnet_key_map_round_trips() {
        let map = resnet_torch_key_map();
        let remapper = KeyRemapper::from_patterns(map).unwrap();
        for (re, to) in remapper.to_regex_pairs() {
            let torch = if to.contains("conv") {
                "layer3.0.downsample.0.weight"
            } else {
                "layer3.0.downsample.1.running_mean"
            };
            let burn = re.replace(torch, to.as_str()).to_string();
            assert_eq!(resnet_torch_key(&burn), torch);
        }
        assert_eq!(
            resnet_torch_key("layer1.2.bn3.gamma"),
            "layer1.2.bn3.weight"
        );
        assert_eq!(resnet_torch_key("bn1.beta"), "bn1.bias");
        assert_eq!(resnet_torch_key("fc.weight"), "fc.weight");
        assert_eq!(
            resnet_torch_key("layer4.0.downsample.bn.gamma"),
            "layer4.0.downsample.1.weight"
        );
    }

    /// Built through the registry (`build("resnet50", 3, 10, 1/16, ..)`), so the width
    /// multiplier's channel rounding is checked against torchvision's shapes too.
    #[test]
    fn pytorch_resnet50_eval_logits_match_via_registry() {
        let device = Device::flex();
        let fx = json(RESNET50);
        let width = fx["width"].as_f64().unwrap() as f32;
        let Network::ResNet(net) = build("resnet50", 3, 10, width, &device).unwrap() else {
            panic!("resnet50 is a ResNet");
        };
        assert_eq!(
            crate::count_trainable_params(&net),
            usize_of(&fx["num_parameters"])
        );
        let net = load_resnet_pytorch(net, format!("{DATA}{RESNET50}.pt")).unwrap();
        let logits = net.valid().forward(input(&fx, &device));
        assert_allclose(
            &values(logits),
            &floats(&fx["logits_eval"]),
            1e-4,
            1e-5,
            "resnet50 eval logits",
        );
    }

    #[test]
    fn pytorch_resnet50_eval_logits_match() {
        check_resnet_eval(RESNET50);
    }

    #[test]
    fn pytorch_resnet50_train_logits_and_running_stats_match() {
        check_resnet_train(RESNET50);
    }

    #[test]
    fn pytorch_resnext_grouped_eval_logits_match() {
        check_resnet_eval(RESNEXT);
    }

    #[test]
    fn pytorch_resnext_grouped_train_logits_and_running_stats_match() {
        check_resnet_train(RESNEXT);
    }

    /// A network with one more block in `layer4` than the checkpoint: the missing keys are
    /// named with their PyTorch names.
    #[test]
    fn resnet_missing_block_keys_are_named() {
        let fx = json(RESNET50);
        let net = resnet_config(&fx)
            .with_blocks([3, 4, 6, 4])
            .init(&Device::flex());
        let err = load_resnet_pytorch(net, format!("{DATA}{RESNET50}.pt")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ModelError::Load { .. }), "{msg}");
        assert!(msg.contains("resnet50_w0625.pt"), "{msg}");
        assert!(
            msg.contains("15 key(s) missing from the checkpoint"),
            "{msg}"
        );
        assert!(msg.contains("`layer4.3.bn1.weight`"), "{msg}");
        assert!(msg.contains("`layer4.3.conv1.weight`"), "{msg}");
        assert!(!msg.contains("gamma"), "{msg}");
    }

    /// A checkpoint whose `layer2.0.downsample.1.running_var` is stored under another key:
    /// reported as missing (PyTorch name) and the stray key as unexpected.
    #[test]
    fn resnet_missing_downsample_key_is_named() {
        let fx = json(RESNET50);
        let net = resnet_config(&fx).init(&Device::flex());
        let mut map = resnet_torch_key_map();
        map.push((
            r"^layer2\.0\.downsample\.bn\.running_var$".into(),
            "stray.running_var".into(),
        ));
        let path = format!("{DATA}{RESNET50}.pt");
        let err = load_pytorch_strict(net, Path::new(&path), &map, resnet_torch_key).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ModelError::Load { .. }), "{msg}");
        assert!(
            msg.contains(
                "1 key(s) missing from the checkpoint: `layer2.0.downsample.1.running_var`"
            ),
            "{msg}"
        );
        assert!(
            msg.contains("1 unexpected key(s) in the checkpoint: `stray.running_var`"),
            "{msg}"
        );
    }

    #[test]
    fn resnet_extra_block_is_an_unexpected_key() {
        let fx = json(RESNET50);
        let net = resnet_config(&fx)
            .with_blocks([3, 4, 6, 2])
            .init(&Device::flex());
        let err = load_resnet_pytorch(net, format!("{DATA}{RESNET50}.pt")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unexpected key(s)"), "{msg}");
        assert!(msg.contains("15 unexpected key(s)"), "{msg}");
        assert!(msg.contains("`layer4.2.conv1.weight`"), "{msg}");
        assert!(!msg.contains("missing"), "{msg}");
    }

    #[test]
    fn resnet_shape_mismatch_is_named() {
        let fx = json(RESNET50);
        let net = resnet_config(&fx)
            .with_num_classes(1000)
            .init(&Device::flex());
        let err = load_resnet_pytorch(net, format!("{DATA}{RESNET50}.pt")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ModelError::Load { .. }), "{msg}");
        assert!(msg.contains("2 tensor(s) do not fit"), "{msg}");
        assert!(
            msg.contains("`fc.bias` has shape [10] in the checkpoint, the network expects [1000]"),
            "{msg}"
        );
        assert!(msg.contains("`fc.weight`"), "{msg}");
    }

    #[test]
    fn resnet_missing_file_is_a_load_error() {
        let net = ResNetConfig::new().with_width(0.0625).init(&Device::flex());
        let err = load_resnet_pytorch(net, format!("{DATA}does_not_exist.pt")).unwrap_err();
        assert!(matches!(err, ModelError::Load { .. }), "{err}");
    }
}
