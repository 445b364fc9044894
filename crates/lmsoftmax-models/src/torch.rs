//! Loading PyTorch `state_dict` checkpoints with the reference code's key names.

use std::path::Path;

use burn::store::{KeyRemapper, ModuleSnapshot, PytorchStore};

use crate::error::ModelError;
use crate::layer13::Layer13;

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

/// Loads a PyTorch `state_dict` (`torch.save(model.state_dict(), path)`) of the reference
/// `layer13` (or a width-reduced copy with the same structure) into `net`.
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
    let mut store = PytorchStore::from_file(path)
        .map_indices_contiguous(false)
        .remap(remapper);
    let mut net = net;
    let result = net.load_from(&mut store).map_err(|e| err(e.to_string()))?;
    if !result.errors.is_empty() {
        return Err(err(format!("{result}")));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::tensor::{Device, Tensor, TensorData};

    use super::*;
    use crate::layer13::Layer13Config;

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
}
