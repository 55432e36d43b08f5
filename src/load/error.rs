//! The load layer's error: what failed, where, and for database errors
//! the server's SQLSTATE, detail, hint and object names.

use std::fmt;

use crate::source::SourceError;

/// Why a load stopped.
#[derive(Debug)]
pub struct LoadError {
    kind: Box<LoadErrorKind>,
}

/// The kinds of [`LoadError`]. Those with an underlying error carry it
/// and return it from [`std::error::Error::source`]; a message shows the
/// whole chain (see [`LoadError::line`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// Bad connection settings or options.
    Config(String),
    /// The server could not be reached or refused the connection.
    Connect {
        /// Where (never with the password).
        target: String,
        /// The driver's error.
        source: ServerError,
    },
    /// A statement failed.
    Db {
        /// What fwload was doing.
        context: String,
        /// The driver's error (with SQLSTATE and detail).
        source: ServerError,
    },
    /// Writing a `COPY` stream failed, without a server error to say why
    /// (the connection broke under the write): a database failure.
    Copy {
        /// What fwload was copying.
        context: String,
        /// The write's error.
        source: std::io::Error,
    },
    /// A target table does not match its layout.
    Schema(String),
    /// An input could not be read.
    Source(SourceError),
    /// An input is not what the load needs (a member gone since it was
    /// listed, an unreadable control record).
    Input(String),
    /// A local file of the load (the rejects spool, a key-index spill)
    /// could not be written or read.
    Spill {
        /// Which file, doing what.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The data crossed a threshold (rejects, deletes, orphans); nothing
    /// was changed.
    Refused(String),
    /// Another load of the dataset holds the lock (`--no-wait`).
    Busy(String),
    /// A signal (its number) stopped the load; nothing was committed.
    Interrupted(i32),
}

/// A driver error shown with the server's fields (SQLSTATE, detail, hint,
/// table, column, constraint) on one line.
#[derive(Debug)]
pub struct ServerError(pub postgres::Error);

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe(&self.0))
    }
}

impl std::error::Error for ServerError {
    /// The driver's own cause where it has one the description above does
    /// not already show (an I/O error of the connection).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        None
    }
}

impl LoadError {
    /// The kind.
    pub fn kind(&self) -> &LoadErrorKind {
        &self.kind
    }

    pub(crate) fn config(m: impl Into<String>) -> LoadError {
        LoadError { kind: Box::new(LoadErrorKind::Config(m.into())) }
    }

    pub(crate) fn connect(
        target: &impl fmt::Display,
        source: postgres::Error,
    ) -> LoadError {
        LoadError {
            kind: Box::new(LoadErrorKind::Connect {
                target: target.to_string(),
                source: ServerError(source),
            }),
        }
    }

    pub(crate) fn db(
        context: impl Into<String>,
        source: postgres::Error,
    ) -> LoadError {
        LoadError {
            kind: Box::new(LoadErrorKind::Db {
                context: context.into(),
                source: ServerError(source),
            }),
        }
    }

    pub(crate) fn schema(m: impl Into<String>) -> LoadError {
        LoadError { kind: Box::new(LoadErrorKind::Schema(m.into())) }
    }

    pub(crate) fn input(m: impl Into<String>) -> LoadError {
        LoadError { kind: Box::new(LoadErrorKind::Input(m.into())) }
    }

    pub(crate) fn spill(
        context: impl Into<String>,
        source: std::io::Error,
    ) -> LoadError {
        LoadError {
            kind: Box::new(LoadErrorKind::Spill {
                context: context.into(),
                source,
            }),
        }
    }

    pub(crate) fn refused(m: impl Into<String>) -> LoadError {
        LoadError { kind: Box::new(LoadErrorKind::Refused(m.into())) }
    }

    pub(crate) fn busy(m: impl Into<String>) -> LoadError {
        LoadError { kind: Box::new(LoadErrorKind::Busy(m.into())) }
    }

    pub(crate) fn interrupted(signal: i32) -> LoadError {
        LoadError { kind: Box::new(LoadErrorKind::Interrupted(signal)) }
    }

    /// An error of writing a `COPY` stream: the driver's error when the
    /// server said why, else the write's own error; a database failure
    /// either way (what is written was read and checked already).
    pub(crate) fn copy(
        context: impl Into<String>,
        e: std::io::Error,
    ) -> LoadError {
        let context = context.into();
        if e.get_ref().is_some_and(|x| x.is::<postgres::Error>()) {
            let pg = e.into_inner().and_then(|x| x.downcast().ok());
            if let Some(pg) = pg {
                return LoadError::db(context, *pg);
            }
            unreachable!("checked to be a driver error above");
        }
        LoadError {
            kind: Box::new(LoadErrorKind::Copy { context, source: e }),
        }
    }

    /// The error and its causes on one line, `: `-separated: what the
    /// run records and the JSON report shows.
    pub fn line(&self) -> String {
        crate::report::one_line(self)
    }

    /// The server's SQLSTATE, for a database error.
    pub fn sqlstate(&self) -> Option<&str> {
        match &*self.kind {
            LoadErrorKind::Db { source, .. }
            | LoadErrorKind::Connect { source, .. } => {
                source.0.code().map(|c| c.code())
            }
            _ => None,
        }
    }
}

/// Renders a driver error with the server's fields, one line.
pub fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!(
                "{} {}: {}",
                db.severity(),
                db.code().code(),
                db.message()
            );
            if let Some(d) = db.detail() {
                s.push_str(&format!(" (detail: {d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!(" (hint: {h})"));
            }
            if let Some(t) = db.table() {
                s.push_str(&format!(" (table: {t}"));
                if let Some(c) = db.column() {
                    s.push_str(&format!(", column: {c}"));
                }
                s.push(')');
            }
            if let Some(c) = db.constraint() {
                s.push_str(&format!(" (constraint: {c})"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(c) = src {
                s.push_str(&format!(": {c}"));
                src = c.source();
            }
            s
        }
    }
}

impl fmt::Display for LoadError {
    /// One line without the cause (see [`LoadError::line`]); an input
    /// error is its own message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            LoadErrorKind::Config(m)
            | LoadErrorKind::Schema(m)
            | LoadErrorKind::Input(m)
            | LoadErrorKind::Refused(m)
            | LoadErrorKind::Busy(m) => f.write_str(m),
            LoadErrorKind::Source(e) => write!(f, "{e}"),
            LoadErrorKind::Connect { target, .. } => {
                write!(f, "cannot connect to PostgreSQL at {target}")
            }
            LoadErrorKind::Db { context, .. }
            | LoadErrorKind::Copy { context, .. }
            | LoadErrorKind::Spill { context, .. } => f.write_str(context),
            LoadErrorKind::Interrupted(signal) => write!(
                f,
                "interrupted by {}; nothing was committed",
                match signal {
                    2 => "SIGINT".to_owned(),
                    15 => "SIGTERM".to_owned(),
                    s => format!("signal {s}"),
                }
            ),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            LoadErrorKind::Connect { source, .. }
            | LoadErrorKind::Db { source, .. } => Some(source),
            LoadErrorKind::Copy { source, .. }
            | LoadErrorKind::Spill { source, .. } => Some(source),
            // A source error's message already shows its cause.
            _ => None,
        }
    }
}

impl From<crate::pipeline::ControlError> for LoadError {
    fn from(e: crate::pipeline::ControlError) -> Self {
        match e {
            crate::pipeline::ControlError::Source(e) => LoadError::from(e),
            crate::pipeline::ControlError::Refused(m) => LoadError::refused(m),
        }
    }
}

impl From<SourceError> for LoadError {
    fn from(e: SourceError) -> Self {
        LoadError { kind: Box::new(LoadErrorKind::Source(e)) }
    }
}
