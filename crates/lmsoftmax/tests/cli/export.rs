//! `lmsoftmax export`: a trained checkpoint as a PyTorch state_dict in safetensors.

use burn::tensor::{Device, Tensor, TensorData};
use lmsoftmax::train::checkpoint;
use lmsoftmax::train::model::Classifier;
use lmsoftmax::train::state::read_state;

use super::{assert_ok, lmsoftmax};

#[test]
fn export_writes_a_state_dict_that_loads_back_with_the_checkpoints_logits() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let train = |arch: &str, out: &std::path::Path| {
        lmsoftmax()
            .args(["train", "--dataset", "synthetic", "--synthetic-train", "64"])
            .args(["--synthetic-test", "32", "--arch", arch, "--width", "0.25"])
            .args(["--epochs", "1", "--batch-size", "32", "--quiet"])
            .args(["--save-last-checkpoint", "--out-dir"])
            .arg(out)
            .output()
            .unwrap()
    };
    assert_ok(&train("layer13", &run));
    let ckpt = run.join("checkpoint-last.ckpt");
    let out = dir.path().join("layer13.safetensors");
    let res = lmsoftmax()
        .arg("export")
        .arg(&ckpt)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_ok(&res);
    assert!(String::from_utf8_lossy(&res.stdout).contains("tensors"));

    // the checkpoint's own network, and a fresh one loaded from the export under the torch names
    let device = Device::flex();
    let parts = checkpoint::read(&ckpt).unwrap();
    let state = read_state(&parts, &ckpt).unwrap();
    let shape = state
        .shape
        .expect("the checkpoint records the network's shape");
    let build = || lmsoftmax_models::build("layer13", shape.channels, shape.classes, 0.25, &device);
    let softmax = lmsoftmax_loss::LossConfig::of_kind(lmsoftmax_loss::LossKind::Softmax);
    let trained = Classifier::build(
        "layer13",
        shape.channels,
        shape.classes,
        0.25,
        &softmax,
        &device,
    )
    .unwrap()
    .load_record_bytes(parts.model, &ckpt)
    .unwrap()
    .network;
    let exported = lmsoftmax_models::load_torch_state(build().unwrap(), "layer13", &out).unwrap();
    let x: Vec<f32> = (0..2 * 3 * 32 * 32)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    let input = || Tensor::<4>::from_data(TensorData::new(x.clone(), [2, 3, 32, 32]), &device);
    use burn::module::Module;
    let a: Vec<f32> = trained
        .valid()
        .forward(input())
        .into_data()
        .try_to_vec()
        .unwrap();
    let b: Vec<f32> = exported
        .valid()
        .forward(input())
        .into_data()
        .try_to_vec()
        .unwrap();
    assert_eq!(a, b, "the exported weights give other logits");

    // a network without a PyTorch reference is refused with the reason
    let small = dir.path().join("small");
    assert_ok(&train("small_cnn", &small));
    let res = lmsoftmax()
        .arg("export")
        .arg(small.join("checkpoint-last.ckpt"))
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&res.stderr).contains("small_cnn"),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
}
