//! Writing a network as a PyTorch `state_dict` in safetensors format, and reading such a file
//! (or a `torch.save`d `state_dict`) back, under the reference's key names
//! ([`crate::torch_state_keys`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::store::{
    ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use safetensors::{Dtype, View};

use crate::error::ModelError;
use crate::registry::Network;
use crate::torch::{is_safetensors, strict_problems};
use crate::torch_keys::named_tensors;

/// Options of [`export_safetensors_with`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportOptions {
    /// Value of every BatchNorm's `num_batches_tracked` buffer. PyTorch counts the
    /// training-mode forward passes there (it only matters to a BatchNorm built with
    /// `momentum=None`, which none of the references is); Burn does not track it, so pass the
    /// number of training steps if it is known, 0 (the default) otherwise.
    pub num_batches_tracked: i64,
    /// Extra string pairs for the file's `__metadata__` (next to `format: pt` and `arch`).
    pub metadata: BTreeMap<String, String>,
    /// Extra float32 tensors written beside the network's, as `(key, shape, values)` (a margin
    /// head's class weights, say); a key the network already uses is an error.
    pub extra_tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

/// What [`export_safetensors`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// Number of `state_dict` entries (parameters, running statistics, `num_batches_tracked`).
    pub tensors: usize,
    /// Number of float32 values (parameters and running statistics).
    pub values: usize,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// A tensor ready for the safetensors writer.
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Entry {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `[rows, cols]` row-major to `[cols, rows]` row-major.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// Writes `net`'s parameters and BatchNorm buffers to `path` as a safetensors file holding the
/// PyTorch `state_dict` of `arch`'s reference (the official code for `layer13` and the repo
/// VGGs, torchvision for `resnet50`, `resnext50_32x4d`, `densenet169` and `vgg*[_bn]`), with
/// its exact keys, shapes and dtypes ([`crate::torch_state_keys`]): float32 parameters and
/// running statistics, linear weights as `[out, in]`, BatchNorm `weight`/`bias`, and an int64
/// scalar `num_batches_tracked` (0) per BatchNorm. The metadata has `format: pt` and
/// `arch: <arch>`.
///
/// In PyTorch: `model.load_state_dict(safetensors.torch.load_file(path), strict=True)`; in
/// Rust: [`load_torch_state`], [`crate::load_layer13_pytorch`] or [`crate::load_resnet_pytorch`].
/// See [`export_safetensors_with`] for `num_batches_tracked` and extra metadata.
///
/// # Errors
/// [`ModelError::UnknownArch`] / [`ModelError::InvalidArgument`] as [`crate::torch_state_keys`]
/// (unknown name, `net` not an `arch` network, `small_cnn`); [`ModelError::Save`] if the file
/// cannot be written.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
/// use lmsoftmax_models::{build, export_safetensors, load_torch_state};
///
/// let device = Device::flex();
/// let net = build("resnet50", 3, 10, 0.0625, &device)?;
/// let path = std::env::temp_dir().join(format!("doc-export-{}.safetensors", std::process::id()));
/// let summary = export_safetensors(&net, "resnet50", &path)?;
/// assert_eq!(summary.tensors, 320); // torchvision's resnet50().state_dict() has 320 keys
///
/// let x = Tensor::<4>::ones([1, 3, 32, 32], &device);
/// let back = load_torch_state(build("resnet50", 3, 10, 0.0625, &device)?, "resnet50", &path)?;
/// let (a, b) = (net.forward(x.clone()).into_data(), back.forward(x).into_data());
/// assert_eq!(a, b);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), lmsoftmax_models::ModelError>(())
/// ```
pub fn export_safetensors(
    net: &Network,
    arch: &str,
    path: impl AsRef<Path>,
) -> Result<ExportSummary, ModelError> {
    export_safetensors_with(net, arch, path, &ExportOptions::default())
}

/// [`export_safetensors`] with a `num_batches_tracked` value and extra metadata.
///
/// # Errors
/// As [`export_safetensors`].
pub fn export_safetensors_with(
    net: &Network,
    arch: &str,
    path: impl AsRef<Path>,
    options: &ExportOptions,
) -> Result<ExportSummary, ModelError> {
    let path = path.as_ref();
    let (tensors, batch_norms) = named_tensors(net, arch, true)?;
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let mut values = 0;
    for tensor in tensors {
        let data = tensor.entry.values.as_deref().expect("walked with values");
        values += data.len();
        let data = if tensor.is_linear_weight() {
            let [d_in, d_out] = tensor.entry.shape[..] else {
                unreachable!("a linear weight is 2-D")
            };
            f32_bytes(&transpose(data, d_in, d_out))
        } else {
            f32_bytes(data)
        };
        let entry = Entry {
            dtype: Dtype::F32,
            shape: tensor.shape,
            data,
        };
        if entries.insert(tensor.key.clone(), entry).is_some() {
            unreachable!("two tensors named `{}`", tensor.key);
        }
    }
    for bn in batch_norms {
        entries.insert(
            format!("{bn}.num_batches_tracked"),
            Entry {
                dtype: Dtype::I64,
                shape: Vec::new(),
                data: options.num_batches_tracked.to_le_bytes().to_vec(),
            },
        );
    }
    for (key, shape, data) in &options.extra_tensors {
        if shape.iter().product::<usize>() != data.len() || entries.contains_key(key) {
            return Err(ModelError::InvalidArgument(format!(
                "extra tensor `{key}`: its shape {shape:?} does not hold {} values, or the \
                 network already has that key",
                data.len()
            )));
        }
        values += data.len();
        entries.insert(
            key.clone(),
            Entry {
                dtype: Dtype::F32,
                shape: shape.clone(),
                data: f32_bytes(data),
            },
        );
    }
    let mut metadata: HashMap<String, String> = options.metadata.clone().into_iter().collect();
    metadata.insert("format".into(), "pt".into());
    metadata.insert("arch".into(), arch.into());
    let count = entries.len();
    // through a temporary file and a rename: a failed write leaves no half file, and an
    // existing file under `path` stays as it was
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = safetensors::serialize_to_file(entries.iter(), Some(metadata), &tmp)
        .map_err(|e| e.to_string())
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| e.to_string()));
    if let Err(detail) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(ModelError::Save {
            path: path.display().to_string(),
            detail,
        });
    }
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(ExportSummary {
        tensors: count,
        values,
        bytes,
    })
}

/// Reads every tensor of a `.safetensors` file or, for any other extension, of a
/// `torch.save`d `state_dict`, under its own key (burn-store's renumbering of
/// `nn.Sequential` indices is turned off).
pub(crate) fn read_tensors(path: &Path) -> Result<Vec<burn::store::burn_pack::Tensor>, String> {
    let tensors = if is_safetensors(path) {
        let mut store = SafetensorsStore::from_file(path).map_indices_contiguous(false);
        store
            .get_all_tensors()
            .map_err(|e| e.to_string())?
            .values()
            .cloned()
            .collect()
    } else {
        let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
        store
            .get_all_tensors()
            .map_err(|e| e.to_string())?
            .values()
            .cloned()
            .collect()
    };
    Ok(tensors)
}

/// Loads a PyTorch `state_dict` of `arch`'s reference into `net`, strictly (like PyTorch's
/// `load_state_dict(strict=True)`: every tensor of `net` must be in the file with the PyTorch
/// shape, and every key of the file but `*.num_batches_tracked` must be used). The file is a
/// safetensors file (`.safetensors`, e.g. from [`export_safetensors`] or
/// `safetensors.torch.save_file(model.state_dict(), path)`) or a `torch.save(model.state_dict())`
/// file (any other extension). Keys are matched exactly, through [`crate::torch_state_keys`]'s
/// layout; linear weights are transposed and BatchNorm `weight`/`bias` become `gamma`/`beta`.
///
/// `net` must have been built as `arch` with the checkpoint's class count and width.
///
/// # Errors
/// As [`crate::torch_state_keys`] for `arch`; [`ModelError::Load`] if the file cannot be read,
/// a key is missing, a tensor has the wrong shape or the file has keys `net` does not (named
/// with their PyTorch keys).
pub fn load_torch_state(
    net: Network,
    arch: &str,
    path: impl AsRef<Path>,
) -> Result<Network, ModelError> {
    let path = path.as_ref();
    let err = |detail: String| ModelError::Load {
        path: path.display().to_string(),
        detail,
    };
    let (named, _) = named_tensors(&net, arch, false)?;
    // PyTorch key -> Burn path with PyTorch's field name (the adapter renames the fields).
    let mut to_burn = HashMap::with_capacity(named.len());
    let mut to_torch = HashMap::with_capacity(named.len());
    for t in &named {
        let burn = format!(
            "{}.{}",
            t.entry.module_path,
            t.key.rsplit('.').next().unwrap_or("")
        );
        to_torch.insert(t.entry.path(), t.key.clone());
        to_torch.insert(burn.clone(), t.key.clone());
        to_burn.insert(t.key.clone(), burn);
    }
    let mut tensors = read_tensors(path).map_err(err)?;
    for tensor in &mut tensors {
        if let Some(burn) = to_burn.get(&tensor.name) {
            tensor.name = burn.clone();
        }
    }
    let mut net = net;
    let result = net.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    let name = |p: &str| to_torch.get(p).cloned().unwrap_or_else(|| p.to_string());
    match strict_problems(&result, &name) {
        Some(detail) => Err(err(detail)),
        None => Ok(net),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use burn::module::Module;
    use burn::tensor::{Device, Distribution, Tensor, TensorData};

    use super::*;
    use crate::testing::Perturb;
    use crate::torch_keys::{TorchDtype, TorchTensor};
    use crate::walk::walk;
    use crate::{build, load_layer13_pytorch, load_resnet_pytorch, torch_state_keys};

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");

    /// A file in a fresh per-test temporary directory.
    fn temp_file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "lmsoftmax-models-export-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(format!("{name}.safetensors"))
    }

    /// Every architecture with a PyTorch layout and a width that keeps it small.
    const ROUND_TRIP: &[(&str, f32)] = &[
        ("layer13", 0.25),
        ("resnet50", 0.0625),
        ("resnext50_32x4d", 0.125),
        ("densenet169", 0.125),
        ("vgg16", 0.0625),
        ("vgg16_bn", 0.0625),
        ("vgg11orig", 0.0625),
        ("vgg19orig_bn", 0.0625),
        ("vgg13bow", 0.0625),
        ("vgg16bow_bn", 0.0625),
    ];

    /// A seeded, perturbed network in eval mode and a fixed input.
    fn seeded(arch: &str, width: f32, device: &Device) -> (Network, Tensor<4>) {
        device.seed(11);
        let net = build(arch, 3, 10, width, device)
            .unwrap()
            .map(&mut Perturb::new())
            .valid();
        let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), device);
        (net, x)
    }

    fn all_values(net: &Network) -> Vec<(String, Vec<f32>)> {
        walk(net, true)
            .into_iter()
            .map(|e| (e.path(), e.values.clone().unwrap()))
            .collect()
    }

    #[test]
    fn export_then_import_round_trip_gives_identical_logits() {
        let device = Device::flex();
        for &(arch, width) in ROUND_TRIP {
            let (net, x) = seeded(arch, width, &device);
            let path = temp_file(arch);
            let summary = export_safetensors(&net, arch, &path).unwrap();
            assert_eq!(summary.tensors, torch_state_keys(&net, arch).unwrap().len());
            let fresh = build(arch, 3, 10, width, &device).unwrap();
            let loaded = load_torch_state(fresh, arch, &path).unwrap().valid();
            assert_eq!(all_values(&loaded), all_values(&net), "{arch}: tensors");
            let want = net.forward(x.clone()).into_data();
            let got = loaded.forward(x).into_data();
            assert_eq!(got, want, "{arch}: logits");
            std::fs::remove_file(&path).unwrap();
        }
    }

    /// The exports of layer13 and the ResNets load with the older prefix-regex importers too
    /// (written independently of the exporter's key table).
    #[test]
    fn layer13_and_resnet_exports_load_with_the_regex_importers() {
        let device = Device::flex();
        for (arch, width) in [
            ("layer13", 0.25),
            ("resnet50", 0.0625),
            ("resnext50_32x4d", 0.125),
        ] {
            let (net, x) = seeded(arch, width, &device);
            let path = temp_file(&format!("regex-{arch}"));
            export_safetensors(&net, arch, &path).unwrap();
            let loaded = match build(arch, 3, 10, width, &device).unwrap() {
                Network::Layer13(m) => Network::Layer13(load_layer13_pytorch(m, &path).unwrap()),
                Network::ResNet(m) => Network::ResNet(load_resnet_pytorch(m, &path).unwrap()),
                _ => unreachable!(),
            };
            let want = net.forward(x.clone()).into_data();
            assert_eq!(loaded.valid().forward(x).into_data(), want, "{arch}");
            std::fs::remove_file(&path).unwrap();
        }
    }

    fn fixture_keys() -> serde_json::Value {
        let text = std::fs::read_to_string(format!("{DATA}torch_state_keys.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The key sets (with shapes and dtypes) of the full-size networks equal those of the
    /// PyTorch references' `state_dict()`s, listed by `scripts/make_torch_keys.py`.
    #[test]
    fn exported_key_set_equals_the_torch_reference_key_set() {
        let fixture = fixture_keys();
        let device = Device::flex();
        let mut checked = 0;
        for (arch, spec) in fixture.as_object().unwrap() {
            if arch.starts_with('_') {
                continue;
            }
            let classes = spec["num_classes"].as_u64().unwrap() as usize;
            let want: BTreeSet<TorchTensor> = spec["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| TorchTensor {
                    key: k[0].as_str().unwrap().to_string(),
                    shape: k[1]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_u64().unwrap() as usize)
                        .collect(),
                    dtype: match k[2].as_str().unwrap() {
                        "F32" => TorchDtype::F32,
                        "I64" => TorchDtype::I64,
                        other => panic!("dtype {other}"),
                    },
                })
                .collect();
            // Built lazily: nothing is allocated, even for the 138M-parameter VGGs.
            let net = build(arch, 3, classes, 1.0, &device).unwrap();
            let got: BTreeSet<TorchTensor> =
                torch_state_keys(&net, arch).unwrap().into_iter().collect();
            let missing: Vec<_> = want.difference(&got).take(5).collect();
            let extra: Vec<_> = got.difference(&want).take(5).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{arch}: reference has {missing:?}, ours has {extra:?}"
            );
            checked += 1;
        }
        assert_eq!(checked, 10);
    }

    /// The file holds exactly the layout's keys, shapes and dtypes, linear weights transposed,
    /// `num_batches_tracked` as given, and `format: pt` metadata.
    #[test]
    fn export_file_holds_the_layout_with_torch_layout_values() {
        let device = Device::flex();
        let (net, _) = seeded("vgg16bow_bn", 0.0625, &device);
        let path = temp_file("file-layout");
        let options = ExportOptions {
            num_batches_tracked: 391,
            metadata: BTreeMap::from([("epoch".to_string(), "3".to_string())]),
            ..ExportOptions::default()
        };
        export_safetensors_with(&net, "vgg16bow_bn", &path, &options).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut got = BTreeSet::new();
        for (name, view) in file.tensors() {
            let dtype = match view.dtype() {
                Dtype::F32 => TorchDtype::F32,
                Dtype::I64 => {
                    assert_eq!(view.data(), 391i64.to_le_bytes(), "{name}");
                    TorchDtype::I64
                }
                other => panic!("{name}: {other:?}"),
            };
            got.insert(TorchTensor {
                key: name,
                shape: view.shape().to_vec(),
                dtype,
            });
        }
        let want: BTreeSet<_> = torch_state_keys(&net, "vgg16bow_bn")
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(got, want);
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta["format"], "pt");
        assert_eq!(meta["arch"], "vgg16bow_bn");
        assert_eq!(meta["epoch"], "3");
        // classifier.3 is the last linear layer: PyTorch [out, in] = Burn's [in, out] transposed.
        let Network::Vgg(vgg) = &net else {
            unreachable!()
        };
        let last = vgg.last.as_ref().unwrap();
        let burn = last.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let [d_in, d_out] = last.weight.val().dims();
        let view = file.tensor("classifier.3.weight").unwrap();
        assert_eq!(view.shape(), [d_out, d_in]);
        let torch: Vec<f32> = view
            .data()
            .chunks(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        for o in [0, d_out - 1] {
            for i in [0, 1, d_in - 1] {
                assert_eq!(torch[o * d_in + i], burn[i * d_out + o]);
            }
        }
        std::fs::remove_file(&path).unwrap();
    }

    /// The generic importer reads real PyTorch `torch.save` files (the checkpoint-interop
    /// fixtures of torchvision's ResNet-50 and the reference layer13) to PyTorch's logits.
    #[test]
    fn load_torch_state_reads_pytorch_fixtures() {
        let device = Device::flex();
        for (arch, name) in [("resnet50", "resnet50_w0625"), ("layer13", "layer13_w0625")] {
            let text = std::fs::read_to_string(format!("{DATA}{name}.json")).unwrap();
            let fx: serde_json::Value = serde_json::from_str(&text).unwrap();
            let floats = |v: &serde_json::Value| -> Vec<f32> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect()
            };
            let shape: Vec<usize> = fx["input_shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let x = Tensor::<4>::from_data(TensorData::new(floats(&fx["input"]), shape), &device);
            let width = fx["width"].as_f64().unwrap() as f32;
            let net = build(arch, 3, 10, width, &device).unwrap();
            let net = load_torch_state(net, arch, format!("{DATA}{name}.pt")).unwrap();
            let got = net
                .valid()
                .forward(x)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let want = floats(&fx["logits_eval"]);
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-4 * scale + 1e-5, "{arch}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn export_errors_are_descriptive() {
        let device = Device::flex();
        let path = temp_file("errors");
        let small = build("small_cnn", 3, 10, 0.25, &device).unwrap();
        let err = export_safetensors(&small, "small_cnn", &path).unwrap_err();
        assert!(err.to_string().contains("no PyTorch reference"), "{err}");
        let layer13 = build("layer13", 3, 10, 0.25, &device).unwrap();
        let err = export_safetensors(&layer13, "resnet50", &path).unwrap_err();
        assert!(
            err.to_string()
                .contains("not a `resnet50` (layer13 network"),
            "{err}"
        );
        let err = export_safetensors(&layer13, "lenet", &path).unwrap_err();
        assert!(matches!(err, ModelError::UnknownArch { .. }), "{err}");
        let resnet = build("resnet50", 3, 10, 0.0625, &device).unwrap();
        let err = export_safetensors(&resnet, "resnext50_32x4d", &path).unwrap_err();
        assert!(err.to_string().contains("1-group"), "{err}");
        let vgg = build("vgg16", 3, 10, 0.0625, &device).unwrap();
        for other in ["vgg16_bn", "vgg13", "vgg16orig"] {
            let err = export_safetensors(&vgg, other, &path).unwrap_err();
            assert!(
                err.to_string().contains(&format!("not a `{other}`")),
                "{err}"
            );
        }
        let err = export_safetensors(&layer13, "layer13", path.join("no/such/dir")).unwrap_err();
        assert!(matches!(err, ModelError::Save { .. }), "{err}");
        assert!(!path.exists());
    }

    /// Strict loading names missing and unexpected keys with their PyTorch names.
    #[test]
    fn load_torch_state_is_strict() {
        let device = Device::flex();
        let (net, _) = seeded("layer13", 0.25, &device);
        let path = temp_file("strict");
        export_safetensors(&net, "layer13", &path).unwrap();
        // A vgg16 checkpoint is not a layer13 one.
        let vgg = build("vgg16", 3, 10, 0.0625, &device).unwrap();
        let err = load_torch_state(vgg, "vgg16", &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing from the checkpoint"), "{err}");
        assert!(err.contains("`classifier.0.weight`"), "{err}");
        assert!(err.contains("unexpected key(s) in the checkpoint"), "{err}");
        assert!(err.contains("`classifier.weight`"), "{err}");
        assert!(!err.contains("gamma"), "{err}");
        // Another width: every tensor is there with another shape.
        let wide = build("layer13", 3, 10, 0.5, &device).unwrap();
        let err = load_torch_state(wide, "layer13", &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`features.0.weight` has shape [32, 3, 3, 3]"),
            "{err}"
        );
        // 9 convs, 9 BNs x 4 tensors and the classifier weight (its bias has 10 entries still).
        assert!(err.contains("46 tensor(s) do not fit"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }
}
