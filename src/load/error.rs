//! The load layer's error: what failed, where, and for database errors
//! the server's SQLSTATE, detail, hint and object names.

use std::fmt;

/// Why a load stopped.
#[derive(Debug)]
pub struct LoadError {
    kind: Box<LoadErrorKind>,
}

/// The kinds of [`LoadError`].
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
        source: postgres::Error,
    },
    /// A statement failed.
    Db {
        /// What fwload was doing.
        context: String,
        /// The driver's error (with SQLSTATE and detail).
        source: postgres::Error,
    },
    /// A target table does not match its layout.
    Schema(String),
    /// An input could not be read.
    Input(String),
    /// The data crossed a threshold (rejects, deletes, orphans); nothing
    /// was changed.
    Refused(String),
    /// Another load of the dataset holds the lock (`--no-wait`).
    Busy(String),
    /// A signal (its number) stopped the load; nothing was committed.
    Interrupted(i32),
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
                source,
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
                source,
            }),
        }
    }

    pub(crate) fn schema(m: impl Into<String>) -> LoadError {
        LoadError { kind: Box::new(LoadErrorKind::Schema(m.into())) }
    }

    pub(crate) fn input(m: impl Into<String>) -> LoadError {
        LoadError { kind: Box::new(LoadErrorKind::Input(m.into())) }
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
    /// server or the connection failed (a database error, not the
    /// input's), else a local write error.
    pub(crate) fn copy(
        context: impl Into<String>,
        e: std::io::Error,
    ) -> LoadError {
        let context = context.into();
        let text = e.to_string();
        match e.into_inner().map(|x| x.downcast::<postgres::Error>()) {
            Some(Ok(pg)) => LoadError::db(context, *pg),
            _ => LoadError::input(format!("{context}: {text}")),
        }
    }

    /// The server's SQLSTATE, for a database error.
    pub fn sqlstate(&self) -> Option<&str> {
        match &*self.kind {
            LoadErrorKind::Db { source, .. }
            | LoadErrorKind::Connect { source, .. } => {
                source.code().map(|c| c.code())
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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            LoadErrorKind::Config(m)
            | LoadErrorKind::Schema(m)
            | LoadErrorKind::Input(m)
            | LoadErrorKind::Refused(m)
            | LoadErrorKind::Busy(m) => f.write_str(m),
            LoadErrorKind::Connect { target, source } => {
                write!(
                    f,
                    "cannot connect to PostgreSQL at {target}: {}",
                    describe(source)
                )
            }
            LoadErrorKind::Db { context, source } => {
                write!(f, "{context}: {}", describe(source))
            }
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

impl std::error::Error for LoadError {}

impl From<crate::source::SourceError> for LoadError {
    fn from(e: crate::source::SourceError) -> Self {
        LoadError::input(e.to_string())
    }
}
