//! What each subcommand does: the handlers behind [`crate::cli`], and the dispatcher `main`
//! calls.

pub mod bench;
pub mod export;
pub mod info;
pub mod train;

use anyhow::Result;
use lmsoftmax_data::download::{Archive, download_and_extract};
use lmsoftmax_data::{
    Cifar, Dataset, DatasetName, FolderOptions, OpenOptions, SyntheticSpec, open_dataset,
};

use crate::cli::{BenchCommand, Cli, Command, DataArgs, DatasetCommand};
use crate::error::input;

/// Runs the command line.
///
/// # Errors
/// The command's error; [`crate::error::exit_code`] tells its exit status.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Bench(BenchCommand::Loss(args)) => bench::loss(&args),
        Command::Bench(BenchCommand::Data(args)) => bench::data(&args),
        Command::Bench(BenchCommand::TrainStep(args)) => bench::train_step(&args),
        Command::Dataset(DatasetCommand::Info(args)) => info::dataset(&args),
        Command::Models(args) => info::models(&args),
        Command::Configs => info::configs(),
        Command::Export(args) => export::export(&args),
        Command::Train(args) => train::train_cmd(&args),
        Command::Demo(args) => train::demo_cmd(&args),
        Command::Eval(args) => train::eval_cmd(&args),
        Command::Report(args) => train::report_cmd(&args),
    }
}

/// The dataset's name; commands other than `train` need `--dataset`.
///
/// # Errors
/// No `--dataset`.
pub fn dataset_name(args: &DataArgs) -> Result<&str> {
    args.dataset.as_deref().ok_or_else(|| {
        input(
            "--dataset is required: cifar10, cifar100, mnist, fashion-mnist, imagefolder, \
             imagenet or synthetic",
        )
    })
}

/// Opens the dataset of `args` (downloading it first with `--download`).
///
/// # Errors
/// An unknown dataset, a missing or corrupt folder, a failed download.
pub fn open_data(args: &DataArgs) -> Result<Dataset> {
    let name: DatasetName = dataset_name(args)?.parse()?;
    if args.download {
        let which = match name {
            DatasetName::Cifar10 => Cifar::Ten,
            DatasetName::Cifar100 => Cifar::Hundred,
            other => {
                return Err(input(format!(
                    "--download fetches cifar10 and cifar100 only, not {other:?}"
                )));
            }
        };
        let Some(dir) = &args.data else {
            return Err(input("--download needs --data DIR to download into"));
        };
        let mut archive = Archive::cifar(which);
        if let (Some(url), Some(md5)) = (&args.download_url, &args.download_md5) {
            lmsoftmax_data::download::check_md5(md5)?;
            archive.url = url.clone();
            archive.md5 = md5.to_ascii_lowercase();
        }
        if !(args.download_timeout.is_finite() && args.download_timeout > 0.0) {
            return Err(input(format!(
                "--download-timeout must be a number of seconds > 0, got {}",
                args.download_timeout
            )));
        }
        archive.timeout = std::time::Duration::from_secs_f64(args.download_timeout);
        let folder = download_and_extract(&archive, dir)?;
        eprintln!("dataset ready in {}", folder.display());
    }
    let mut folder = FolderOptions {
        skip_bad_images: args.skip_bad_images,
        ..Default::default()
    };
    if let Some(list) = &args.blacklist {
        folder = folder.with_blacklist_file(list)?;
    }
    let options = OpenOptions {
        folder,
        synthetic: SyntheticSpec {
            train: args.synthetic_train,
            test: args.synthetic_test,
            seed: 0,
        },
        no_augment: false,
    };
    Ok(open_dataset(name, args.data.as_deref(), &options)?)
}
