//! `lmsoftmax models`, `configs`, `dataset info`: what the tool knows about.

use anyhow::Result;

use super::open_data;
use crate::cli::{DatasetInfoArgs, ModelsArgs};
use crate::dataset_info::dataset_info;
use crate::train::TrainConfig;
use crate::train::config::BUILTIN;

/// `lmsoftmax dataset info`.
///
/// # Errors
/// Data errors.
pub fn dataset(args: &DatasetInfoArgs) -> Result<()> {
    let data = open_data(&args.data)?;
    let info = dataset_info(super::dataset_name(&args.data)?, &data)?;
    println!("dataset      {}", info.dataset);
    println!("train        {} images", info.train);
    println!("test         {} images", info.test);
    println!(
        "classes      {}: {}",
        info.classes,
        info.class_names.join(", ")
    );
    println!("shape        {:?} (channels, height, width)", info.shape);
    println!(
        "mean         {:?}",
        info.mean
            .iter()
            .map(|v| format!("{v:.4}"))
            .collect::<Vec<_>>()
    );
    println!(
        "std          {:?}",
        info.std
            .iter()
            .map(|v| format!("{v:.4}"))
            .collect::<Vec<_>>()
    );
    if info.skipped > 0 {
        println!("skipped      {} unreadable images", info.skipped);
    }
    if args.json {
        println!("{}", serde_json::to_string(&info)?);
    }
    Ok(())
}

/// `lmsoftmax models`.
///
/// # Errors
/// Output errors.
pub fn models(args: &ModelsArgs) -> Result<()> {
    let rows = lmsoftmax_models::list();
    if args.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|m| {
                serde_json::json!({
                    "name": m.name, "num_classes": m.num_classes, "parameters": m.parameters,
                    "input": m.input, "gmacs": m.gmacs, "head_features": m.features,
                    "head_input": head_input(m.name),
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    println!(
        "| name | classes | parameters | input | GMACs | a margin head takes |\n\
         |---|---:|---:|---|---:|---|"
    );
    for m in rows {
        println!(
            "| {} | {} | {} | {}x{}x{} | {:.3} | {} ({}-d) |",
            m.name,
            m.num_classes,
            m.parameters,
            m.input[0],
            m.input[1],
            m.input[2],
            m.gmacs,
            head_input(m.name),
            m.features
        );
    }
    println!(
        "\nWith a margin-head loss (--loss cosface, arcface, ...) the last linear layer is replaced \
         by the head on those features."
    );
    Ok(())
}

/// Which feature of a network a margin head takes in place of its last linear layer.
fn head_input(arch: &str) -> &'static str {
    if arch.starts_with("vgg") {
        "the last hidden layer's output, after ReLU and dropout"
    } else {
        "the globally average-pooled last feature map"
    }
}

/// `lmsoftmax configs`.
///
/// # Errors
/// A shipped configuration that does not parse (a bug).
pub fn configs() -> Result<()> {
    for (name, _) in BUILTIN {
        let c = TrainConfig::builtin(name)?;
        println!(
            "{name:22} {}, {} epochs, batch {}, lr {:?}",
            c.loss.label(),
            c.epochs,
            c.batch_size,
            c.lr
        );
    }
    Ok(())
}
