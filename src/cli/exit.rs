//! Exit codes: the one place they are defined.

use std::fmt;

/// How fwload ends; the numeric values are documented in README.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything passed.
    Ok = 0,
    /// 1: the data crossed a threshold (rejects, delete guard, orphans);
    /// nothing was changed.
    Data = 1,
    /// 2: bad arguments or schema, or input that no longer matches the
    /// schema (header drift).
    Usage = 2,
    /// 3: an input could not be read (missing, corrupt, truncated, over a
    /// size limit).
    Input = 3,
    /// 4: a database error; the target is unchanged.
    Database = 4,
    /// 5: a download failed.
    Fetch = 5,
    /// 6: another load of the same dataset holds the lock (`--no-wait`).
    Busy = 6,
    /// 130 (128 + SIGINT): stopped by SIGINT (Ctrl-C); nothing was
    /// committed.
    Interrupt = 130,
    /// 143 (128 + SIGTERM): stopped by SIGTERM; nothing was committed.
    Terminate = 143,
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: Exit,
    /// What happened (with its cause chain).
    pub error: anyhow::Error,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: Exit, error: impl Into<anyhow::Error>) -> Failure {
        Failure { code, error: error.into() }
    }

    /// A failure with `code` and a plain message.
    pub fn msg(code: Exit, msg: impl fmt::Display) -> Failure {
        Failure { code, error: anyhow::anyhow!("{msg}") }
    }
}

impl Failure {
    /// Whether the failure is only a closed standard output
    /// (`fwload … | head`), which is not a failure: the error itself is a
    /// broken pipe. A broken pipe further down a chain (a database
    /// connection that closed under a `COPY`) is a failure.
    pub fn is_closed_stdout(&self) -> bool {
        self.error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)
    }
}

/// The result of a subcommand.
pub(crate) type CliResult = Result<Exit, Failure>;
