//! One file: attempts, retries, resume, verification and the move into
//! place.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};

use super::client::classify;
use super::error::{FetchError, FetchErrorKind};
use super::manifest::ManifestEntry;
use super::part::{Part, Validators};
use super::time::{parse_retry_after, rfc3339};
use super::{FetchOutcome, Fetched, Run, Source, Status};

/// What to do after a failed attempt.
enum Next {
    /// Retry after a backoff if the error is transient.
    Backoff,
    /// Retry at once (the partial file was dropped), attempts permitting.
    StartOver,
}

type Attempt = Result<Fetched, (FetchError, Next)>;

/// What a response's status says about its body.
enum Begin {
    /// Body bytes follow; the whole file's size when known.
    Body(Option<u64>),
    /// The local file is current; nothing to read.
    Unchanged(Fetched),
}

/// Lifts an error into a failed attempt that may back off.
fn backoff(e: FetchError) -> (FetchError, Next) {
    (e, Next::Backoff)
}

/// The download of one source.
pub(crate) struct Job<'r, 'a> {
    run: &'r Run<'a>,
    file: usize,
    source: Source,
    path: PathBuf,
    attempts: u32,
    /// The manifest entry to send a conditional request for, when the
    /// local file still matches it.
    known: Option<ManifestEntry>,
    /// Offset of the last honoured range request.
    resumed_from: u64,
}

impl<'r, 'a> Job<'r, 'a> {
    pub(super) fn new(
        run: &'r Run<'a>,
        file: usize,
        source: Source,
    ) -> Job<'r, 'a> {
        let path = run.opts.dir.join(&source.name);
        Job {
            run,
            file,
            source,
            path,
            attempts: 0,
            known: None,
            resumed_from: 0,
        }
    }

    /// Tries until the file is in place, a permanent error, or the retries
    /// are used up.
    pub(super) async fn run(mut self) -> FetchOutcome {
        let result = self.run_impl().await;
        FetchOutcome {
            source: self.source,
            path: self.path,
            attempts: self.attempts,
            result,
        }
    }

    async fn run_impl(&mut self) -> Result<Fetched, FetchError> {
        let mut part = Part::recover(&self.path, &self.source.url)
            .await
            .map_err(|e| e.with_url(&self.source.url))?;
        self.known = self.conditional_entry().await;
        loop {
            self.attempts += 1;
            let (err, next) = match self.attempt(&mut part).await {
                Ok(f) => return Ok(f),
                Err(failed) => failed,
            };
            part.pause().await.map_err(|e| e.with_url(&self.source.url))?;
            let again = match next {
                Next::Backoff => err.is_transient(),
                Next::StartOver => true,
            };
            if !again || self.attempts > self.run.opts.retries {
                return Err(err);
            }
            let wait = match next {
                Next::Backoff => {
                    self.run.backoff.delay(self.attempts, err.retry_after())
                }
                Next::StartOver => Duration::ZERO,
            };
            self.run.progress.retry(
                self.file,
                &self.source.name,
                self.attempts,
                wait,
                &err,
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// The manifest entry when a conditional request can prove the local
    /// file current: same URL, the file present with the recorded size,
    /// the recorded sha256 the expected one, and a validator to send.
    async fn conditional_entry(&self) -> Option<ManifestEntry> {
        if self.run.opts.force {
            return None;
        }
        let e = self.run.manifest.get(&self.source.name).await?;
        let len = tokio::fs::metadata(&self.path).await.ok()?.len();
        let same_sha =
            self.source.sha256.as_ref().is_none_or(|h| *h == e.sha256);
        let usable = e.url == self.source.url
            && len == e.size
            && same_sha
            && (e.etag.is_some() || e.last_modified.is_some());
        usable.then_some(e)
    }

    /// One request: resume, conditional or plain, then the body, then the
    /// checks and the move into place.
    async fn attempt(&mut self, part: &mut Part) -> Attempt {
        let resume = part.resume_point().map(|(o, v)| (o, v.to_owned()));
        let resp = self.send(resume.as_ref()).await?;
        let total = match self.begin(&resp, part, resume.as_ref()).await? {
            Begin::Body(total) => total,
            Begin::Unchanged(f) => return Ok(f),
        };
        self.run.progress.body(
            self.file,
            &self.source.name,
            total,
            part.len(),
        );
        self.receive(resp, part).await?;
        if let Some(t) = total {
            self.check_length(part, t).await?;
        }
        self.finish(part).await
    }

    /// Sends the request: a range request guarded by `If-Range` when there
    /// is a partial file to resume, else a conditional one when the
    /// manifest allows, else a plain one.
    async fn send(
        &self,
        resume: Option<&(u64, String)>,
    ) -> Result<reqwest::Response, (FetchError, Next)> {
        let url = &self.source.url;
        let mut req = self
            .run
            .client
            .get(url)
            .header(header::ACCEPT_ENCODING, "identity");
        if let Some((offset, validator)) = resume {
            req = req
                .header(header::RANGE, format!("bytes={offset}-"))
                .header(header::IF_RANGE, validator.as_str());
        } else if let Some(e) = &self.known {
            if let Some(etag) = &e.etag {
                req = req.header(header::IF_NONE_MATCH, etag.as_str());
            }
            if let Some(lm) = &e.last_modified {
                req = req.header(header::IF_MODIFIED_SINCE, lm.as_str());
            }
        }
        match tokio::time::timeout(self.run.opts.timeout, req.send()).await {
            Err(_) => Err(backoff(self.timed_out())),
            Ok(Err(e)) => Err(backoff(classify(e, url))),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// Decides from the status what the body is: the rest of the partial
    /// file (206), a fresh file (200, the partial file starts over), or
    /// nothing because the local file is current (304).
    async fn begin(
        &mut self,
        resp: &reqwest::Response,
        part: &mut Part,
        resume: Option<&(u64, String)>,
    ) -> Result<Begin, (FetchError, Next)> {
        let url = self.source.url.clone();
        match (resp.status(), resume) {
            (StatusCode::NOT_MODIFIED, None) if self.known.is_some() => {
                // Bytes of an attempt that could not be resumed are moot.
                part.discard().await.map_err(|e| backoff(e.with_url(&url)))?;
                let f =
                    self.unchanged(resp.headers()).await.map_err(backoff)?;
                Ok(Begin::Unchanged(f))
            }
            (StatusCode::PARTIAL_CONTENT, Some(&(offset, _))) => {
                match content_range(resp.headers()) {
                    Some((start, total)) if start == offset => {
                        self.resumed_from = offset;
                        Ok(Begin::Body(total))
                    }
                    other => {
                        let e = bad_range(&url, offset, other);
                        Err(self.start_over(part, e).await)
                    }
                }
            }
            (StatusCode::OK, _) => {
                // The first try, a server without ranges, or a file that
                // changed since the partial one (If-Range).
                self.resumed_from = 0;
                let v = validators(resp.headers());
                part.restart(v)
                    .await
                    .map_err(|e| backoff(e.with_url(&url)))?;
                Ok(Begin::Body(resp.content_length()))
            }
            (StatusCode::RANGE_NOT_SATISFIABLE, Some(&(offset, _))) => {
                let e = FetchError::at_url(
                    FetchErrorKind::Protocol(format!(
                        "server refused to resume at byte {offset}"
                    )),
                    &url,
                );
                Err(self.start_over(part, e).await)
            }
            (s, _) if s.is_success() || s == StatusCode::NOT_MODIFIED => {
                let e = FetchErrorKind::Protocol(format!(
                    "unexpected answer {s} to a {} request",
                    if resume.is_some() { "range" } else { "plain" }
                ));
                Err(backoff(FetchError::at_url(e, &url)))
            }
            (s, _) => {
                let retry_after = resp
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                let kind =
                    FetchErrorKind::Status { code: s.as_u16(), retry_after };
                Err(backoff(FetchError::at_url(kind, &url)))
            }
        }
    }

    /// Checks the received length against the announced `total`: short is
    /// a truncated body (resumable), long a broken answer (start over).
    async fn check_length(
        &mut self,
        part: &mut Part,
        total: u64,
    ) -> Result<(), (FetchError, Next)> {
        let url = &self.source.url;
        let len = part.len();
        if len < total {
            let kind =
                FetchErrorKind::Truncated { received: len, expected: total };
            return Err(backoff(FetchError::at_url(kind, url)));
        }
        if len > total {
            let e = FetchError::at_url(
                FetchErrorKind::Protocol(format!(
                    "server sent {len} bytes, more than the {total} announced"
                )),
                url,
            );
            return Err(self.start_over(part, e).await);
        }
        Ok(())
    }

    /// Reads the body into the partial file, paced by the rate cap.
    async fn receive(
        &self,
        resp: reqwest::Response,
        part: &mut Part,
    ) -> Result<(), (FetchError, Next)> {
        let url = &self.source.url;
        let mut body = resp.bytes_stream();
        loop {
            let next =
                tokio::time::timeout(self.run.opts.timeout, body.next());
            let chunk = match next.await {
                Err(_) => return Err(backoff(self.timed_out())),
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => return Err(backoff(classify(e, url))),
                Ok(Some(Ok(c))) => c,
            };
            part.append(&chunk).await.map_err(|e| backoff(e.with_url(url)))?;
            self.run.progress.advance(self.file, chunk.len() as u64);
            if let Some(r) = &self.run.rate {
                r.take(chunk.len() as u64).await;
            }
        }
    }

    /// Verifies the complete partial file, moves it into place and records
    /// it in the manifest.
    async fn finish(&mut self, part: &mut Part) -> Attempt {
        let url = self.source.url.clone();
        let sha256 =
            part.finish().await.map_err(|e| backoff(e.with_url(&url)))?;
        let size = part.len();
        if let Some(expected) = &self.source.sha256
            && *expected != sha256
        {
            let kind = FetchErrorKind::Checksum {
                expected: expected.clone(),
                actual: sha256,
            };
            let e = FetchError::at_url(kind, &url);
            if self.resumed_from > 0 {
                // The bytes kept from before may be what is wrong.
                return Err(self.start_over(part, e).await);
            }
            part.discard().await.map_err(|e| backoff(e.with_url(&url)))?;
            return Err(backoff(e));
        }
        let validators = part.validators().clone();
        part.commit(&self.path)
            .await
            .map_err(|e| backoff(e.with_url(&url)))?;
        let now = rfc3339(SystemTime::now());
        let entry = ManifestEntry {
            url: url.clone(),
            size,
            sha256: sha256.clone(),
            etag: validators.etag,
            last_modified: validators.last_modified,
            fetched: now.clone(),
            checked: now,
        };
        self.run
            .manifest
            .record(&self.source.name, entry)
            .await
            .map_err(|e| backoff(e.with_url(&url)))?;
        let status = if self.resumed_from > 0 {
            Status::Resumed
        } else {
            Status::Downloaded
        };
        Ok(Fetched { status, size, sha256, resumed_from: self.resumed_from })
    }

    /// The server answered 304: the local file is current.
    async fn unchanged(
        &self,
        headers: &HeaderMap,
    ) -> Result<Fetched, FetchError> {
        let Some(mut e) = self.known.clone() else {
            return Err(FetchError::at_url(
                FetchErrorKind::Protocol("unexpected 304 Not Modified".into()),
                &self.source.url,
            ));
        };
        let fresh = validators(headers);
        e.etag = fresh.etag.or(e.etag);
        e.last_modified = fresh.last_modified.or(e.last_modified);
        e.checked = rfc3339(SystemTime::now());
        let fetched = Fetched {
            status: Status::Unchanged,
            size: e.size,
            sha256: e.sha256.clone(),
            resumed_from: 0,
        };
        self.run
            .manifest
            .record(&self.source.name, e)
            .await
            .map_err(|err| err.with_url(&self.source.url))?;
        Ok(fetched)
    }

    /// Drops the partial file after `e`, so the next attempt starts from
    /// byte 0 without waiting.
    async fn start_over(
        &mut self,
        part: &mut Part,
        e: FetchError,
    ) -> (FetchError, Next) {
        self.resumed_from = 0;
        match part.discard().await {
            Ok(()) => (e, Next::StartOver),
            Err(d) => backoff(d.with_url(&self.source.url)),
        }
    }

    fn timed_out(&self) -> FetchError {
        FetchError::at_url(
            FetchErrorKind::Timeout(self.run.opts.timeout),
            &self.source.url,
        )
    }
}

/// The validators a response carries.
fn validators(h: &HeaderMap) -> Validators {
    let get =
        |name| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    Validators {
        etag: get(header::ETAG),
        last_modified: get(header::LAST_MODIFIED),
    }
}

/// `(first byte, total size)` of a `Content-Range: bytes A-B/N` header
/// (total `None` for `*`).
fn content_range(h: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let v = h.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

fn bad_range(
    url: &str,
    offset: u64,
    got: Option<(u64, Option<u64>)>,
) -> FetchError {
    let msg = match got {
        Some((start, _)) => {
            format!(
                "asked to resume at byte {offset}, server sent from {start}"
            )
        }
        None => "partial answer without a usable Content-Range".to_owned(),
    };
    FetchError::at_url(FetchErrorKind::Protocol(msg), url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn parses_content_range() {
        let mut h = HeaderMap::new();
        assert_eq!(content_range(&h), None);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 10-99/100"),
        );
        assert_eq!(content_range(&h), Some((10, Some(100))));
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 10-99/*"),
        );
        assert_eq!(content_range(&h), Some((10, None)));
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes */100"),
        );
        assert_eq!(content_range(&h), None);
    }
}
