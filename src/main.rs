//! The fwload binary: parse arguments, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use fwload::{Cli, run};

/// Keeps glibc to one malloc arena. fwload allocates per chunk, not per
/// record, so threads hardly contend for it, while an arena per thread
/// let peak memory creep up with input size (a 4 M-account load: 98 MiB
/// with the default arenas, 77 MiB with one; 1 M accounts: 78 and 78).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    // SAFETY: mallopt only changes allocator tuning; called before any
    // thread is started.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}

fn main() -> ExitCode {
    one_malloc_arena();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(f) => {
            if f.is_closed_stdout() {
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
