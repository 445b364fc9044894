//! `lmsoftmax export`: a checkpoint's network as a PyTorch `state_dict` in safetensors, under the
//! reference's key names (the inverse of the PyTorch import).

use anyhow::{Context, Result};
use burn::tensor::Device;

use crate::cli::ExportArgs;
use crate::error::{as_input, input};
use crate::train::checkpoint;
use crate::train::model::Classifier;
use crate::train::state::read_state;

/// `lmsoftmax export`.
///
/// # Errors
/// A corrupt checkpoint, a network without a PyTorch reference (`small_cnn`), I/O errors.
pub fn export(a: &ExportArgs) -> Result<()> {
    let parts = checkpoint::read(&a.checkpoint).map_err(as_input)?;
    let state = read_state(&parts, &a.checkpoint).map_err(as_input)?;
    let (channels, classes) = match (state.shape, a.classes) {
        (_, Some(classes)) => (a.channels.unwrap_or(3), classes),
        (Some(shape), None) => (shape.channels, shape.classes),
        (None, None) => {
            return Err(input(format!(
                "{} does not record its class count (an earlier version's checkpoint): pass \
                 --classes N (and --channels C if not 3)",
                a.checkpoint.display()
            )));
        }
    };
    let device = Device::flex();
    let model = Classifier::build(
        &state.arch,
        channels,
        classes,
        state.width,
        &state.config.loss,
        &device,
    )?;
    let model = model
        .load_record_bytes(parts.model, &a.checkpoint)
        .map_err(as_input)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.checkpoint.with_extension("safetensors"));
    let mut options = lmsoftmax_models::ExportOptions::default();
    options
        .metadata
        .insert("config".into(), state.config.name.clone());
    options
        .metadata
        .insert("epochs_done".into(), state.rows.len().to_string());
    options
        .metadata
        .insert("width".into(), state.width.to_string());
    if let Some(head) = &model.head {
        // the network without its last layer (as timm's `num_classes=0`), and the head's
        // class weights `[C*K, D]` beside it
        let w = head.weight.val();
        let shape = w.dims().to_vec();
        let values = w
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading the head's weights: {e:?}"))?;
        options
            .extra_tensors
            .push(("head.weight".into(), shape, values));
        options
            .metadata
            .insert("loss".into(), state.config.loss.label());
    }
    let summary =
        lmsoftmax_models::export_safetensors_with(&model.network, &state.arch, &out, &options)
            .with_context(|| format!("exporting {} ({})", a.checkpoint.display(), state.arch))?;
    println!(
        "wrote {}: {} (width {}), {} tensors, {} values, {} bytes",
        out.display(),
        state.arch,
        state.width,
        summary.tensors,
        summary.values,
        summary.bytes
    );
    Ok(())
}
