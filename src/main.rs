//! The fwload binary: parse arguments, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use fwload::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(f) => {
            // A closed pipe (`fwload … | head`) is not a failure.
            if f.error.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|e| {
                    e.kind() == std::io::ErrorKind::BrokenPipe
                })
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("fwload: error: {}", f.error);
            for cause in f.error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(f.code as u8)
        }
    }
}
