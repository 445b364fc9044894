//! `lmsoftmax train`, `eval`, `demo`, `report`.

use anyhow::Result;
use lmsoftmax_data::{DatasetName, OpenOptions, SyntheticSpec, open_dataset};
use lmsoftmax_kernels::autocast::autocast;

use super::open_data;
use crate::cli::{DemoArgs, EvalArgs, ReportArgs, TrainArgs};
use crate::device::parse_device;
use crate::distributed::World;
use crate::error::{as_input, input};
use crate::plan::{check_precision, resolve_train_in};
use crate::report::report;
use crate::train::demo::{DemoOptions, demo, table};
use crate::train::run::train_in;
use crate::train::{evaluate_checkpoint, evaluate_run};

/// `lmsoftmax train` (and `-e`, the official evaluate-only run).
///
/// # Errors
/// Bad flags (exit 2), data errors, a diverging run, I/O errors.
pub fn train_cmd(a: &TrainArgs) -> Result<()> {
    if !(a.collective_timeout.is_finite() && a.collective_timeout > 0.0) {
        return Err(input(format!(
            "--collective-timeout must be a positive number of seconds, got {}",
            a.collective_timeout
        )));
    }
    let timeout = std::time::Duration::try_from_secs_f64(a.collective_timeout).map_err(|_| {
        input(format!(
            "--collective-timeout {} is too large: give seconds, such as 1800",
            a.collective_timeout
        ))
    })?;
    let world = World::from_launcher()
        .map_err(as_input)?
        .with_timeout(timeout);
    let result = train_ranks(a, &world);
    if let Err(e) = &result
        && world.size() > 1
    {
        // the other ranks may wait for this one in a collective: end them all
        eprintln!("error: rank {}: {}", world.rank(), crate::error::message(e));
        world.abort(i32::from(crate::error::exit_code(e)));
    }
    result
}

/// [`train_cmd`] as one rank of `world`.
fn train_ranks(a: &TrainArgs, world: &World) -> Result<()> {
    let plan = resolve_train_in(a, world).map_err(as_input)?;
    let data = open_data(&plan.data)?;
    if plan.evaluate {
        if !world.is_root() {
            return Ok(());
        }
        let s = evaluate_run(&plan.options, &data)?;
        println!(
            " * Err@1 {:.3} Err@5 {:.3} Loss {:.4} ({} test images)",
            s.top1_err, s.top5_err, s.loss, s.images
        );
        return Ok(());
    }
    crate::train::interrupt::install();
    train_in(&plan.options, &data, world)?;
    Ok(())
}

/// `lmsoftmax report`.
///
/// # Errors
/// Folders that are not runs, figures that cannot be written.
pub fn report_cmd(a: &ReportArgs) -> Result<()> {
    let r = report(&a.runs, &a.out_dir).map_err(as_input)?;
    for w in &r.warnings {
        eprintln!("{w}");
    }
    print!("{}", r.markdown);
    for f in &r.figures {
        eprintln!("wrote {}", f.display());
    }
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}

/// `lmsoftmax eval`.
///
/// # Errors
/// Bad flags, a checkpoint that does not fit the data, data errors.
pub fn eval_cmd(a: &EvalArgs) -> Result<()> {
    if a.batch_size == 0 {
        return Err(input("--batch-size must be >= 1"));
    }
    let data = open_data(&a.data)?;
    let device = parse_device(&a.device).map_err(as_input)?;
    check_precision(a.precision, std::slice::from_ref(&device)).map_err(as_input)?;
    let _autocast = autocast(a.precision);
    let (what, s) = evaluate_checkpoint(&a.checkpoint, &data, a.batch_size, a.workers, &device)
        .map_err(as_input)?;
    println!("{what}, {} test images, {}", s.images, a.precision);
    println!(
        "top-1 error {:.3}%  top-5 error {:.3}%  loss {:.4}\nmargin mean {:.4}  p10 {:.4}  p50 {:.4}  p90 {:.4}  non-target entropy {:.4}",
        s.top1_err,
        s.top5_err,
        s.loss,
        s.mean_margin,
        s.margin_quantiles[0],
        s.margin_quantiles[1],
        s.margin_quantiles[2],
        s.nontarget_entropy
    );
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
    }
    Ok(())
}

/// `lmsoftmax demo`.
///
/// # Errors
/// Data errors, a diverging run, I/O errors.
pub fn demo_cmd(a: &DemoArgs) -> Result<()> {
    let data = match &a.data {
        Some(dir) => open_dataset(DatasetName::Cifar10, Some(dir), &OpenOptions::default())?,
        None => open_dataset(
            DatasetName::Synthetic,
            None,
            &OpenOptions {
                synthetic: SyntheticSpec {
                    train: a.synthetic_train,
                    test: a.synthetic_test,
                    seed: 0,
                },
                ..Default::default()
            },
        )?,
    };
    let opts = DemoOptions {
        dataset: if a.data.is_some() {
            "cifar10"
        } else {
            "synthetic"
        }
        .into(),
        arch: a.arch.clone(),
        width: a.width,
        epochs: a.epochs,
        seeds: a.seeds,
        out_dir: a.out_dir.clone(),
        workers: a.workers,
        quiet: a.quiet,
    };
    let start = std::time::Instant::now();
    let rows = demo(&opts, &data)?;
    println!(
        "\n{} on {} ({} training / {} test images), {} epochs, {} seeds, {:.0} s\n",
        a.arch,
        if a.data.is_some() {
            "CIFAR-10"
        } else {
            "the synthetic dataset"
        },
        data.train.len(),
        data.test.len(),
        a.epochs,
        a.seeds,
        start.elapsed().as_secs_f64()
    );
    print!("{}", table(&rows));
    let figures = report(std::slice::from_ref(&a.out_dir), &a.out_dir.join("figures"))?;
    for w in &figures.warnings {
        eprintln!("{w}");
    }
    println!(
        "\nruns, metrics.csv and checkpoints: {}\nfigures: {}",
        a.out_dir.display(),
        figures
            .figures
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
