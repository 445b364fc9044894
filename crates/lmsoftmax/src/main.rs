//! The `lmsoftmax` command: parses the command line and hands it to
//! [`lmsoftmax::commands::run`] ([`lmsoftmax::entry::main`]). Exit status ([`lmsoftmax::error`]):
//! 0 on success, 2 on bad usage or input, 1 on a failure while running.

/// mimalloc keeps freed blocks for reuse across threads. With the system allocator every large
/// tensor a training step makes (tens of MB each, on rayon threads) is a fresh `mmap` whose pages
/// the kernel zeroes on first touch: 10-20% of a layer13 step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    lmsoftmax::entry::main()
}
