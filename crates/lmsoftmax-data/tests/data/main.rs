//! Integration tests of the data crate: one binary, one module per area.
//!
//! - `cifar`: the real CIFAR-10 subset in ../shared/data (both layouts) and generated CIFAR-100 files.
//! - `formats`: IDX files and image folders made here, every error path.
//! - `bad_images`: crafted broken image files, with and without `--skip-bad-images`.
//! - `pipeline`: transforms and the loader's determinism.
//! - `pil`: ColorJitter against Pillow's bytes (tests/data/pil/, from scripts/make_pil_fixtures.py).
//! - `fuzz`: arbitrary bytes into every parser, and the regression corpus.

mod bad_images;
mod cifar;
mod common;
mod download;
mod formats;
mod fuzz;
mod pil;
mod pipeline;
