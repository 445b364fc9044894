//! The `lmsoftmax` command. Exit status: 0 on success, 2 on bad usage or input, 1 otherwise.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use lmsoftmax::bench::loss::{LossPath, REFERENCE_SHAPES, TABLE_HEADER, measure_paths, table_row};

/// Large-margin softmax (Kobayashi, BMVC 2019): training, evaluation and benchmarks in Rust.
#[derive(Debug, Parser)]
#[command(name = "lmsoftmax", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmarks (CPU backend; threads follow RAYON_NUM_THREADS).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Median forward+backward time of the loss: fused kernel, composed ops, plain cross-entropy.
    Loss(BenchLossArgs),
}

#[derive(Debug, Args)]
struct BenchLossArgs {
    /// Rows (batch size).
    #[arg(long, default_value_t = 1024)]
    n: usize,
    /// Classes.
    #[arg(long, default_value_t = 1000)]
    c: usize,
    /// Run every shape of the PyTorch reference (shared/bench/ref_loss.py) instead of one.
    #[arg(long, conflicts_with_all = ["n", "c"])]
    all: bool,
    /// Paths to time, in this order (the fused ones first: the composed path churns memory).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ce,fused,composed,burn-ce"
    )]
    paths: Vec<LossPath>,
    /// Untimed warm-up runs per path.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Timed runs per path (the median is reported).
    #[arg(long, default_value_t = 50)]
    reps: usize,
    /// End with one JSON object per shape, the last line holding the last shape.
    #[arg(long)]
    json: bool,
}

fn bench_loss(args: &BenchLossArgs) -> Result<()> {
    if args.n == 0 || args.c < 2 {
        bail!(
            "--n must be >= 1 and --c >= 2 (the loss needs two classes), got --n {} --c {}",
            args.n,
            args.c
        );
    }
    let shapes: Vec<(usize, usize)> = if args.all {
        REFERENCE_SHAPES.to_vec()
    } else {
        vec![(args.n, args.c)]
    };
    println!(
        "forward+backward, f32, flex CPU backend, {} threads, warm-up {}, median of {}",
        rayon::current_num_threads(),
        args.warmup,
        args.reps
    );
    println!("{TABLE_HEADER}");
    let mut rows = Vec::new();
    for (n, c) in shapes {
        let t = measure_paths(n, c, args.warmup, args.reps, &args.paths);
        println!("{}", table_row(&t));
        rows.push(t);
    }
    if args.json {
        for t in &rows {
            println!("{}", serde_json::to_string(t)?);
        }
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Bench(BenchCommand::Loss(args)) => bench_loss(&args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
