//! `clsfc`: the clsf compiler's command line. `main` only parses arguments
//! and dispatches; each command lives in `cli/`, and `sample` reads the
//! values `clsfc suggest` counts.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod sample;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::run(args).into()
}
