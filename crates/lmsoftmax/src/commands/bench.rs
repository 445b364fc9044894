//! `lmsoftmax bench loss | data | train-step`.

use anyhow::{Context, Result};
use burn::tensor::Device;

use super::open_data;
use crate::bench::loss::{
    HEADS_HEADER, LossPath, REFERENCE_SHAPES, TABLE_HEADER, heads_row, measure_paths, table_row,
};
use crate::cli::{BenchDataArgs, BenchLossArgs, BenchTrainStepArgs};
use crate::error::input;

/// `lmsoftmax bench loss`.
///
/// # Errors
/// Bad shapes.
pub fn loss(args: &BenchLossArgs) -> Result<()> {
    if args.embed_dim == 0 {
        return Err(input("--embed-dim must be >= 1"));
    }
    if args.n == 0 || args.c < 2 {
        return Err(input(format!(
            "--n must be >= 1 and --c >= 2 (the loss needs two classes), got --n {} --c {}",
            args.n, args.c
        )));
    }
    let shapes: Vec<(usize, usize)> = if args.all {
        REFERENCE_SHAPES.to_vec()
    } else {
        vec![(args.n, args.c)]
    };
    let device = crate::device::parse_device(&args.device)?;
    println!(
        "forward+backward, f32, {device:?}, {} threads, warm-up {}, median of {}",
        rayon::current_num_threads(),
        args.warmup,
        args.reps
    );
    println!("{TABLE_HEADER}");
    let mut rows = Vec::new();
    for (n, c) in shapes {
        let t = measure_paths(
            &device,
            n,
            c,
            args.embed_dim,
            args.warmup,
            args.reps,
            &args.paths,
        );
        println!("{}", table_row(&t));
        rows.push(t);
    }
    if args.paths.contains(&LossPath::Heads) {
        println!("\nmargin heads on N x D embeddings, gradients of the embeddings and of W [C, D]");
        println!("{HEADS_HEADER}");
        for t in &rows {
            println!("{}", heads_row(t));
        }
    }
    if args.json {
        for t in &rows {
            println!("{}", serde_json::to_string(t)?);
        }
    }
    Ok(())
}

/// `lmsoftmax bench data`.
///
/// # Errors
/// Bad flags, data errors.
pub fn data(args: &BenchDataArgs) -> Result<()> {
    if args.batch_size == 0 || args.epochs == 0 {
        return Err(input("--batch-size and --epochs must be >= 1"));
    }
    let data = open_data(&args.data)?;
    let t = crate::bench::data::measure(
        &data,
        args.batch_size,
        args.workers,
        args.epochs,
        &Device::flex(),
    )
    .context("reading the training data")?;
    println!(
        "{} training images x {} epochs, batch {}, {} workers: {:.0} images/s ({:.2} s)",
        data.train.len(),
        t.epochs,
        t.batch_size,
        t.workers,
        t.images_per_s,
        t.seconds
    );
    if args.json {
        println!("{}", serde_json::to_string(&t)?);
    }
    Ok(())
}

/// `lmsoftmax bench train-step`.
///
/// # Errors
/// Bad flags, an unknown network.
pub fn train_step(a: &BenchTrainStepArgs) -> Result<()> {
    if a.batch_size == 0 || a.reps == 0 {
        return Err(input("--batch-size and --reps must be >= 1"));
    }
    let device = crate::device::parse_device(&a.device)?;
    crate::plan::check_precision(a.precision, std::slice::from_ref(&device))
        .map_err(crate::error::as_input)?;
    let _autocast = lmsoftmax_kernels::autocast::autocast(a.precision);
    let t = crate::bench::train_step::measure(
        &device,
        &a.arch,
        a.batch_size,
        a.loss,
        a.width,
        a.classes,
        a.warmup,
        a.reps,
    )?;
    println!(
        "{} (width {}), batch {}, input {:?}, {} classes, {:?} loss, {}, {} threads, {} (CPU {}; bf16 units: {}): train step {:.1} ms, eval {:.1} images/s",
        t.arch,
        a.width,
        t.batch_size,
        t.input,
        t.classes,
        t.loss,
        t.precision,
        t.threads,
        t.device,
        t.isa,
        t.bf16_units,
        t.step_ms,
        t.eval_images_per_s
    );
    if let Some(kernel) = &t.bf16_kernel {
        println!("bf16 products: {kernel}");
    }
    if a.json {
        println!("{}", serde_json::to_string(&t)?);
    }
    Ok(())
}
