//! Builds a seeded network, exports it with `export_safetensors` and writes a fixed input and
//! the network's eval-mode logits next to it, for `scripts/check_export.py` to compare with the
//! PyTorch reference.
//!
//! ```text
//! cargo run --release -p lmsoftmax-models --example export_check -- ARCH OUT_DIR \
//!     [--classes N] [--size S] [--batch B] [--seed S]
//! ```
//!
//! Writes `OUT_DIR/ARCH.safetensors` (the PyTorch `state_dict`) and `OUT_DIR/ARCH.io.safetensors`
//! (`input` `[B, 3, S, S]`, `logits` `[B, N]`). Defaults: 10 classes and 32x32 for `layer13`,
//! 1000 classes and 224x224 otherwise; batch 2; seed 0. The network is at full width (the
//! PyTorch references have fixed widths), and before the export every BatchNorm's weight, bias
//! and running statistics and every bias are moved off their initial constants (seeded), so
//! that a swapped or missing tensor shows in the logits.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use lmsoftmax_models::testing::Perturb;
use lmsoftmax_models::{build, export_safetensors};
use safetensors::{Dtype, tensor::TensorView};

struct Args {
    arch: String,
    out: PathBuf,
    classes: usize,
    size: usize,
    batch: usize,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let usage = "usage: export_check ARCH OUT_DIR [--classes N] [--size S] [--batch B] [--seed S]";
    let arch = it.next().ok_or(usage)?;
    let out = PathBuf::from(it.next().ok_or(usage)?);
    let cifar = arch == "layer13";
    let mut args = Args {
        classes: if cifar { 10 } else { 1000 },
        size: if cifar { 32 } else { 224 },
        batch: 2,
        seed: 0,
        arch,
        out,
    };
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value; {usage}"))?;
        let number = value
            .parse::<u64>()
            .map_err(|_| format!("{flag}: `{value}` is not a number"))?;
        match flag.as_str() {
            "--classes" => args.classes = number as usize,
            "--size" => args.size = number as usize,
            "--batch" => args.batch = number as usize,
            "--seed" => args.seed = number,
            _ => return Err(format!("unknown flag {flag}; {usage}")),
        }
    }
    Ok(args)
}

fn run(args: &Args) -> Result<(), String> {
    let device = Device::flex();
    device.seed(args.seed);
    let net = build(&args.arch, 3, args.classes, 1.0, &device).map_err(|e| e.to_string())?;
    let net = net.map(&mut Perturb::new()).valid();
    let x = Tensor::<4>::random(
        [args.batch, 3, args.size, args.size],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let logits = net.try_forward(x.clone()).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    let weights = args.out.join(format!("{}.safetensors", args.arch));
    let summary = export_safetensors(&net, &args.arch, &weights).map_err(|e| e.to_string())?;

    let bytes = |t: Vec<f32>| t.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
    let input = bytes(
        x.clone()
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| format!("{e:?}"))?,
    );
    let out = bytes(
        logits
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| format!("{e:?}"))?,
    );
    let views = [
        (
            "input",
            TensorView::new(Dtype::F32, x.dims().to_vec(), &input),
        ),
        (
            "logits",
            TensorView::new(Dtype::F32, logits.dims().to_vec(), &out),
        ),
    ];
    let views = views
        .into_iter()
        .map(|(k, v)| v.map(|v| (k, v)).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let io = args.out.join(format!("{}.io.safetensors", args.arch));
    let meta = HashMap::from([("arch".to_string(), args.arch.clone())]);
    safetensors::serialize_to_file(views, Some(meta), &io).map_err(|e| e.to_string())?;
    println!(
        "{}: {} tensors, {} values, {} bytes -> {}; input {:?}, logits {:?} -> {}",
        args.arch,
        summary.tensors,
        summary.values,
        summary.bytes,
        weights.display(),
        x.dims(),
        logits.dims(),
        io.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("export_check: {e}");
            ExitCode::FAILURE
        }
    }
}
