//! Downloads of dataset archives: robust, resumable, verified and
//! conditional.
//!
//! [`fetch_all`] downloads a list of [`Source`]s into one folder, several
//! at a time. Each file is received into `NAME.part` (with the validator
//! it belongs to in `NAME.part.json`), hashed while it arrives, checked
//! against the expected sha256, fsynced and renamed into place, so a file
//! under its final name is always complete and verified. Transient
//! failures (connection errors, timeouts, 408, 429, 5xx) are retried with
//! exponential backoff and jitter, honouring `Retry-After`; a retry
//! continues a partial file with a `Range` request guarded by `If-Range`.
//! `fwload-manifest.json` in the folder records each file's URL, size,
//! sha256 and validators, so the next run asks the server with
//! `If-None-Match`/`If-Modified-Since` and skips files that have not
//! changed. The library never prints: progress goes to a
//! [`FetchProgress`], results come back as [`FetchOutcome`]s.

mod client;
mod download;
mod error;
mod fs;
mod manifest;
mod part;
mod rate;
mod retry;
mod source;
mod time;

pub use error::{FetchError, FetchErrorKind};
pub use manifest::{MANIFEST_FILE, Manifest, ManifestEntry};
pub use source::Source;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;

use download::Job;
use manifest::ManifestStore;
use rate::RateLimiter;
use retry::Backoff;

/// How a run downloads.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// The download folder (created when missing).
    pub dir: PathBuf,
    /// Retries after the first attempt of a file (so `retries + 1`
    /// attempts at most); every failed attempt counts.
    pub retries: u32,
    /// Backoff before the first retry; it doubles with each retry (before
    /// jitter, which takes off up to half).
    pub retry_base: Duration,
    /// Longest backoff between two attempts.
    pub retry_max: Duration,
    /// Longest `Retry-After` honoured; a server asking for more is retried
    /// after this.
    pub max_retry_after: Duration,
    /// Longest wait for a connection, the response headers, or the next
    /// piece of the body; reaching it is a transient failure.
    pub timeout: Duration,
    /// Files downloaded at the same time (at least 1).
    pub parallel: usize,
    /// Cap on received bytes per second, over all parallel downloads
    /// together.
    pub limit_rate: Option<u64>,
    /// PEM files with extra root certificates to trust besides the
    /// built-in webpki roots.
    pub ca_certs: Vec<PathBuf>,
    /// Download even when the manifest says the server's file has not
    /// changed (no conditional request).
    pub force: bool,
}

impl FetchOptions {
    /// The defaults, downloading into `dir`: 5 retries from 1 s up to
    /// 60 s apart, `Retry-After` honoured up to 10 minutes, a 30 s
    /// timeout, 3 files at a time, no rate cap.
    pub fn new(dir: impl Into<PathBuf>) -> FetchOptions {
        FetchOptions {
            dir: dir.into(),
            retries: 5,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(600),
            timeout: Duration::from_secs(30),
            parallel: 3,
            limit_rate: None,
            ca_certs: Vec::new(),
            force: false,
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff {
            base: self.retry_base,
            max: self.retry_max,
            max_retry_after: self.max_retry_after,
        }
    }
}

impl Default for FetchOptions {
    /// [`FetchOptions::new`] with the current folder.
    fn default() -> FetchOptions {
        FetchOptions::new(".")
    }
}

/// How a file ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Downloaded from the start.
    Downloaded,
    /// Completed from a partial file (of this run or an earlier one).
    Resumed,
    /// The server said it has not changed since the last fetch; the local
    /// file was kept.
    Unchanged,
    /// Not fetched; see the error.
    Failed,
}

impl Status {
    /// The lower-case word for summaries (`downloaded`, `resumed`,
    /// `unchanged`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Downloaded => "downloaded",
            Status::Resumed => "resumed",
            Status::Unchanged => "unchanged",
            Status::Failed => "failed",
        }
    }
}

/// A file that is in place and verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Downloaded, resumed or unchanged (never failed).
    pub status: Status,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256 (lower-case hex).
    pub sha256: String,
    /// Bytes reused from a partial file (the offset of the last `Range`
    /// request that was honoured); 0 unless resumed.
    pub resumed_from: u64,
}

/// The result for one source.
#[derive(Debug)]
pub struct FetchOutcome {
    /// The source.
    pub source: Source,
    /// Where the file is (or would be): the download folder joined with
    /// the source's name.
    pub path: PathBuf,
    /// Requests made for it (1 when it succeeded the first time).
    pub attempts: u32,
    /// The file, or the last error.
    pub result: Result<Fetched, FetchError>,
}

impl FetchOutcome {
    /// How the file ended up.
    pub fn status(&self) -> Status {
        match &self.result {
            Ok(f) => f.status,
            Err(_) => Status::Failed,
        }
    }
}

/// Receives progress of a run; every method has an empty default. Called
/// from the downloading tasks, so implementations must be cheap and
/// thread-safe. `file` is the source's index in the list given to
/// [`fetch_all`].
pub trait FetchProgress: Send + Sync {
    /// A response arrived and its body is about to be read: `total` bytes
    /// in the whole file when known, `offset` of them already on disk.
    /// Called again for each attempt.
    fn body(&self, file: usize, name: &str, total: Option<u64>, offset: u64) {
        let _ = (file, name, total, offset);
    }

    /// `bytes` more were received.
    fn advance(&self, file: usize, bytes: u64) {
        let _ = (file, bytes);
    }

    /// Attempt `attempt` (from 1) failed with `error`; the next starts
    /// after `wait`.
    fn retry(
        &self,
        file: usize,
        name: &str,
        attempt: u32,
        wait: Duration,
        error: &FetchError,
    ) {
        let _ = (file, name, attempt, wait, error);
    }

    /// The file is done, one way or the other.
    fn done(&self, file: usize, outcome: &FetchOutcome) {
        let _ = (file, outcome);
    }
}

/// A [`FetchProgress`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl FetchProgress for NoProgress {}

/// Shared by a run's downloads.
pub(crate) struct Run<'a> {
    pub client: reqwest::Client,
    pub opts: &'a FetchOptions,
    pub manifest: ManifestStore,
    pub rate: Option<RateLimiter>,
    pub backoff: Backoff,
    pub progress: &'a dyn FetchProgress,
}

/// Downloads `sources` into `opts.dir`, `opts.parallel` at a time, and
/// returns one outcome per source in the order given.
///
/// A failing file does not stop the others; its outcome holds the last
/// error after the retries. Files are only ever replaced by complete,
/// verified downloads, and the manifest is updated after each one.
///
/// # Errors
/// Only set-up problems, before anything is downloaded: two sources with
/// one file name, the folder cannot be created, the manifest is corrupt,
/// a CA certificate file is unusable.
pub async fn fetch_all(
    sources: Vec<Source>,
    opts: &FetchOptions,
    progress: &dyn FetchProgress,
) -> Result<Vec<FetchOutcome>, FetchError> {
    check_unique(&sources)?;
    tokio::fs::create_dir_all(&opts.dir)
        .await
        .map_err(|e| FetchError::io("create folder", &opts.dir, e))?;
    let run = Run {
        client: client::build(&opts.ca_certs, opts.timeout)?,
        opts,
        manifest: ManifestStore::open(&opts.dir)?,
        rate: opts.limit_rate.map(RateLimiter::new),
        backoff: opts.backoff(),
        progress,
    };
    let run = &run;
    let mut outcomes: Vec<(usize, FetchOutcome)> =
        futures_util::stream::iter(sources.into_iter().enumerate())
            .map(|(i, s)| async move {
                let outcome = Job::new(run, i, s).run().await;
                run.progress.done(i, &outcome);
                (i, outcome)
            })
            .buffer_unordered(opts.parallel.max(1))
            .collect()
            .await;
    outcomes.sort_by_key(|(i, _)| *i);
    Ok(outcomes.into_iter().map(|(_, o)| o).collect())
}

/// [`fetch_all`] on a runtime of its own, for callers that are not async.
///
/// # Errors
/// As [`fetch_all`], or the runtime cannot be started.
///
/// # Panics
/// When called from inside an async runtime (use [`fetch_all`] there).
pub fn fetch_all_blocking(
    sources: Vec<Source>,
    opts: &FetchOptions,
    progress: &dyn FetchProgress,
) -> Result<Vec<FetchOutcome>, FetchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.parallel.clamp(1, 4))
        .enable_all()
        .build()
        .map_err(|e| FetchError::new(FetchErrorKind::Client).caused_by(e))?;
    rt.block_on(fetch_all(sources, opts, progress))
}

fn check_unique(sources: &[Source]) -> Result<(), FetchError> {
    let mut seen = HashSet::new();
    for s in sources {
        if !seen.insert(s.name.as_str()) {
            return Err(FetchError::at_url(
                FetchErrorKind::InvalidSource(format!(
                    "another source is also saved as {:?}",
                    s.name
                )),
                &s.url,
            ));
        }
    }
    Ok(())
}
