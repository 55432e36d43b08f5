//! The one error type of the fetch layer.

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A download or set-up step that failed.
///
/// `Display` is one line naming where (the URL, or the local path for file
/// errors) and what; the underlying cause (an I/O, TLS or HTTP client
/// error) stays reachable through [`std::error::Error::source`].
#[derive(Debug)]
pub struct FetchError {
    inner: Box<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: FetchErrorKind,
    url: Option<String>,
    path: Option<PathBuf>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchErrorKind {
    /// A source cannot be used: bad URL, file name, year or checksum text,
    /// or two sources with one file name.
    InvalidSource(String),
    /// The server answered with an error status.
    Status {
        /// The HTTP status code.
        code: u16,
        /// The wait the server asked for (`Retry-After`), when it did.
        retry_after: Option<Duration>,
    },
    /// Connecting, sending the request or receiving the answer failed.
    Connection,
    /// The server's TLS certificate was not trusted.
    Certificate,
    /// No data arrived for this long.
    Timeout(Duration),
    /// The body ended before the announced length.
    Truncated {
        /// Bytes of the file on disk when the body ended.
        received: u64,
        /// Bytes the server announced.
        expected: u64,
    },
    /// The server answered something that cannot be used (a range that
    /// does not start where asked, a body longer than announced).
    Protocol(String),
    /// The finished file's sha256 is not the expected one.
    Checksum {
        /// The expected sha256 (lower-case hex).
        expected: String,
        /// The sha256 of the downloaded bytes.
        actual: String,
    },
    /// A local file operation failed; the text names the operation.
    Io(&'static str),
    /// A `--ca-cert` file is unreadable or holds no usable certificate.
    CaCert(String),
    /// The manifest cannot be read or written.
    Manifest(String),
    /// The HTTP client could not be set up.
    Client,
}

impl FetchError {
    pub(crate) fn new(kind: FetchErrorKind) -> FetchError {
        FetchError {
            inner: Box::new(Inner {
                kind,
                url: None,
                path: None,
                source: None,
            }),
        }
    }

    pub(crate) fn at_url(kind: FetchErrorKind, url: &str) -> FetchError {
        FetchError::new(kind).with_url(url)
    }

    pub(crate) fn at_path(kind: FetchErrorKind, path: &Path) -> FetchError {
        let mut e = FetchError::new(kind);
        e.inner.path = Some(path.to_owned());
        e
    }

    /// An I/O failure of `op` ("write", "rename", ...) on `path`.
    pub(crate) fn io(
        op: &'static str,
        path: &Path,
        e: std::io::Error,
    ) -> FetchError {
        FetchError::at_path(FetchErrorKind::Io(op), path).caused_by(e)
    }

    pub(crate) fn with_url(mut self, url: &str) -> FetchError {
        self.inner.url = Some(url.to_owned());
        self
    }

    pub(crate) fn caused_by(
        mut self,
        e: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> FetchError {
        self.inner.source = Some(e.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &FetchErrorKind {
        &self.inner.kind
    }

    /// The URL concerned, when the error concerns one.
    pub fn url(&self) -> Option<&str> {
        self.inner.url.as_deref()
    }

    /// The local file concerned, when the error concerns one.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The HTTP status, when the server answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self.inner.kind {
            FetchErrorKind::Status { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether trying again may succeed: connection failures, timeouts,
    /// truncated bodies, 408, 429 and 5xx answers other than 501 and 505.
    /// Everything else (404, 403, other 4xx, certificate, checksum and
    /// file errors) is permanent.
    pub fn is_transient(&self) -> bool {
        match &self.inner.kind {
            FetchErrorKind::Status { code, .. } => transient_status(*code),
            FetchErrorKind::Connection
            | FetchErrorKind::Timeout(_)
            | FetchErrorKind::Truncated { .. } => true,
            _ => false,
        }
    }

    /// The wait the server asked for with `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.inner.kind {
            FetchErrorKind::Status { retry_after, .. } => retry_after,
            _ => None,
        }
    }
}

/// Whether an HTTP error status is worth another try.
pub(crate) fn transient_status(code: u16) -> bool {
    matches!(code, 408 | 429)
        || (500..600).contains(&code) && code != 501 && code != 505
}

fn reason(code: u16) -> &'static str {
    reqwest::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.inner.path, &self.inner.url) {
            (Some(p), _) => write!(f, "{}: ", p.display())?,
            (None, Some(u)) => write!(f, "{u}: ")?,
            (None, None) => {}
        }
        match &self.inner.kind {
            FetchErrorKind::InvalidSource(m) => f.write_str(m),
            FetchErrorKind::Status { code, .. } => {
                write!(f, "server answered {code}")?;
                match reason(*code) {
                    "" => Ok(()),
                    r => write!(f, " {r}"),
                }
            }
            FetchErrorKind::Connection => f.write_str("connection failed"),
            FetchErrorKind::Certificate => {
                f.write_str("server certificate not trusted")
            }
            FetchErrorKind::Timeout(t) => {
                write!(f, "no data for {} s", t.as_secs_f64())
            }
            FetchErrorKind::Truncated { received, expected } => {
                write!(f, "body ended after {received} of {expected} bytes")
            }
            FetchErrorKind::Protocol(m) => f.write_str(m),
            FetchErrorKind::Checksum { expected, actual } => write!(
                f,
                "sha256 mismatch: expected {expected}, downloaded {actual}"
            ),
            FetchErrorKind::Io(op) => write!(f, "cannot {op}"),
            FetchErrorKind::CaCert(m) => f.write_str(m),
            FetchErrorKind::Manifest(m) => f.write_str(m),
            FetchErrorKind::Client => {
                f.write_str("cannot set up the HTTP client")
            }
        }
    }
}

impl StdError for FetchError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source.as_deref().map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_statuses() {
        for code in [408, 429, 500, 502, 503, 504, 599] {
            assert!(transient_status(code), "{code}");
        }
        for code in [400, 401, 403, 404, 410, 416, 501, 505] {
            assert!(!transient_status(code), "{code}");
        }
    }

    #[test]
    fn display_names_the_url() {
        let e = FetchError::at_url(
            FetchErrorKind::Status { code: 404, retry_after: None },
            "http://h/a.zip",
        );
        assert_eq!(
            e.to_string(),
            "http://h/a.zip: server answered 404 Not Found"
        );
        assert!(!e.is_transient());
        let e = FetchError::at_url(
            FetchErrorKind::Status { code: 599, retry_after: None },
            "http://h/a.zip",
        );
        assert_eq!(e.to_string(), "http://h/a.zip: server answered 599");
        assert!(e.is_transient());
    }

    #[test]
    fn display_prefers_the_path_for_file_errors() {
        let e = FetchError::io(
            "write",
            Path::new("/d/a.zip.part"),
            std::io::Error::other("disk full"),
        )
        .with_url("http://h/a.zip");
        assert_eq!(e.to_string(), "/d/a.zip.part: cannot write");
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("disk full")
        );
        assert_eq!(e.url(), Some("http://h/a.zip"));
    }
}
