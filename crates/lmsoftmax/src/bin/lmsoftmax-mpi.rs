//! `lmsoftmax-mpi`: the `lmsoftmax` command built with the `mpi` feature, under its own name so
//! that building it does not replace the default binary (the MPI tests build it beside it):
//! `mpirun -np N lmsoftmax-mpi train ...`. A build of `lmsoftmax` with `--features mpi` is the
//! same command.

/// mimalloc keeps freed blocks for reuse across threads. With the system allocator every large
/// tensor a training step makes (tens of MB each, on rayon threads) is a fresh `mmap` whose pages
/// the kernel zeroes on first touch: 10-20% of a layer13 step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    lmsoftmax::entry::main()
}
