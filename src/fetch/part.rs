//! The partial file of a download in progress: `NAME.part` holds the bytes
//! received so far and `NAME.part.json` the URL and the validator they
//! belong to, so a later attempt or run can ask for just the rest.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};

use super::error::FetchError;
use super::fs::{remove_if_exists, rename, with_suffix, write_atomic};

/// Write buffer of the partial file: large enough that a fast download
/// is not one system call per network chunk.
const WRITE_BUFFER: usize = 256 * 1024;

/// What identifies the version of a remote file a partial file holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Validators {
    /// The `ETag` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The `Last-Modified` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

impl Validators {
    /// The value for `If-Range`: a strong `ETag`, else `Last-Modified`
    /// (RFC 9110 §13.1.5 does not allow weak tags there).
    pub(super) fn if_range(&self) -> Option<&str> {
        match &self.etag {
            Some(e) if !e.starts_with("W/") => Some(e),
            _ => self.last_modified.as_deref(),
        }
    }
}

/// The sidecar `NAME.part.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    url: String,
    #[serde(flatten)]
    validators: Validators,
}

/// A partial download: its file, the sha256 of the bytes in it so far and
/// their count.
pub(crate) struct Part {
    path: PathBuf,
    sidecar: PathBuf,
    url: String,
    writer: Option<BufWriter<tokio::fs::File>>,
    hasher: Sha256,
    len: u64,
    validators: Validators,
}

impl Part {
    /// The partial file for `target`, picking up a previous one when its
    /// sidecar names the same URL and a validator to resume against; its
    /// bytes are hashed again so the final checksum covers them. Anything
    /// else left over is removed.
    ///
    /// # Errors
    /// A leftover file cannot be read or removed.
    pub(super) async fn recover(
        target: &Path,
        url: &str,
    ) -> Result<Part, FetchError> {
        let path = with_suffix(target, ".part");
        let sidecar = with_suffix(target, ".part.json");
        let mut part = Part {
            path,
            sidecar,
            url: url.to_owned(),
            writer: None,
            hasher: Sha256::new(),
            len: 0,
            validators: Validators::default(),
        };
        match part.read_sidecar().await {
            Some(v) if v.if_range().is_some() => {
                part.validators = v;
                if part.rehash().await? {
                    return Ok(part);
                }
            }
            _ => {}
        }
        part.discard().await?;
        Ok(part)
    }

    /// The sidecar's validators, when it exists, parses and names this URL.
    async fn read_sidecar(&self) -> Option<Validators> {
        let text = tokio::fs::read_to_string(&self.sidecar).await.ok()?;
        let s: Sidecar = serde_json::from_str(&text).ok()?;
        (s.url == self.url).then_some(s.validators)
    }

    /// Hashes the existing partial file; false when there is none.
    async fn rehash(&mut self) -> Result<bool, FetchError> {
        let mut f = match tokio::fs::File::open(&self.path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(false);
            }
            Err(e) => return Err(FetchError::io("open", &self.path, e)),
        };
        let mut buf = vec![0; WRITE_BUFFER];
        loop {
            let n = f
                .read(&mut buf)
                .await
                .map_err(|e| FetchError::io("read", &self.path, e))?;
            if n == 0 {
                return Ok(true);
            }
            self.hasher.update(&buf[..n]);
            self.len += n as u64;
        }
    }

    /// Bytes in the partial file.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// The validators of the remote version being received.
    pub(super) fn validators(&self) -> &Validators {
        &self.validators
    }

    /// Where to resume and the `If-Range` value, when the partial file has
    /// bytes and a validator to resume against.
    pub(super) fn resume_point(&self) -> Option<(u64, &str)> {
        match self.validators.if_range() {
            Some(v) if self.len > 0 => Some((self.len, v)),
            _ => None,
        }
    }

    /// Starts the partial file over, empty, for the version of the remote
    /// file described by `validators` (written to the sidecar first).
    ///
    /// # Errors
    /// The files cannot be written.
    pub(super) async fn restart(
        &mut self,
        validators: Validators,
    ) -> Result<(), FetchError> {
        self.writer = None;
        self.hasher = Sha256::new();
        self.len = 0;
        self.validators = validators;
        if self.validators.if_range().is_some() {
            let s = Sidecar {
                url: self.url.clone(),
                validators: self.validators.clone(),
            };
            let text = serde_json::to_string(&s).unwrap_or_default();
            write_atomic(&self.sidecar, text.as_bytes()).await?;
        } else {
            remove_if_exists(&self.sidecar).await?;
        }
        let f = tokio::fs::File::create(&self.path)
            .await
            .map_err(|e| FetchError::io("create", &self.path, e))?;
        self.writer = Some(BufWriter::with_capacity(WRITE_BUFFER, f));
        Ok(())
    }

    /// Opens the partial file to append after its `len` bytes.
    async fn open_for_append(&mut self) -> Result<(), FetchError> {
        let f = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .await
            .map_err(|e| FetchError::io("open", &self.path, e))?;
        // Bytes past what was hashed (a write cut short) are dropped.
        f.set_len(self.len)
            .await
            .map_err(|e| FetchError::io("truncate", &self.path, e))?;
        let mut w = BufWriter::with_capacity(WRITE_BUFFER, f);
        w.seek(std::io::SeekFrom::End(0))
            .await
            .map_err(|e| FetchError::io("seek", &self.path, e))?;
        self.writer = Some(w);
        Ok(())
    }

    /// Appends received bytes.
    ///
    /// # Errors
    /// The write failed.
    pub(super) async fn append(
        &mut self,
        bytes: &[u8],
    ) -> Result<(), FetchError> {
        if self.writer.is_none() {
            self.open_for_append().await?;
        }
        if let Some(w) = &mut self.writer {
            w.write_all(bytes)
                .await
                .map_err(|e| FetchError::io("write", &self.path, e))?;
        }
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Flushes and closes the file after an attempt ended, keeping what was
    /// received for the next one.
    ///
    /// # Errors
    /// The flush failed.
    pub(super) async fn pause(&mut self) -> Result<(), FetchError> {
        if let Some(mut w) = self.writer.take() {
            w.flush()
                .await
                .map_err(|e| FetchError::io("write", &self.path, e))?;
        }
        Ok(())
    }

    /// Flushes and fsyncs the complete file and returns its sha256.
    ///
    /// # Errors
    /// The flush or fsync failed.
    pub(super) async fn finish(&mut self) -> Result<String, FetchError> {
        if self.writer.is_none() {
            // An empty body: the file may not exist yet.
            self.open_or_create().await?;
        }
        if let Some(mut w) = self.writer.take() {
            w.flush()
                .await
                .map_err(|e| FetchError::io("write", &self.path, e))?;
            w.get_ref()
                .sync_all()
                .await
                .map_err(|e| FetchError::io("fsync", &self.path, e))?;
        }
        Ok(crate::digest::hex(&self.hasher.clone().finalize()))
    }

    async fn open_or_create(&mut self) -> Result<(), FetchError> {
        let f = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .await
            .map_err(|e| FetchError::io("create", &self.path, e))?;
        self.writer = Some(BufWriter::new(f));
        Ok(())
    }

    /// Moves the finished file to `target` atomically and removes the
    /// sidecar.
    ///
    /// # Errors
    /// The rename failed (the partial file stays).
    pub(super) async fn commit(
        &mut self,
        target: &Path,
    ) -> Result<(), FetchError> {
        rename(&self.path, target).await?;
        self.len = 0;
        self.hasher = Sha256::new();
        remove_if_exists(&self.sidecar).await
    }

    /// Removes the partial file and its sidecar and starts from nothing.
    ///
    /// # Errors
    /// A file cannot be removed.
    pub(super) async fn discard(&mut self) -> Result<(), FetchError> {
        self.writer = None;
        self.hasher = Sha256::new();
        self.len = 0;
        self.validators = Validators::default();
        remove_if_exists(&self.path).await?;
        remove_if_exists(&self.sidecar).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(etag: Option<&str>, lm: Option<&str>) -> Validators {
        Validators {
            etag: etag.map(str::to_owned),
            last_modified: lm.map(str::to_owned),
        }
    }

    #[test]
    fn if_range_needs_a_strong_validator() {
        assert_eq!(v(Some("\"a\""), Some("d")).if_range(), Some("\"a\""));
        assert_eq!(v(Some("W/\"a\""), Some("d")).if_range(), Some("d"));
        assert_eq!(v(Some("W/\"a\""), None).if_range(), None);
        assert_eq!(v(None, None).if_range(), None);
    }

    #[tokio::test]
    async fn resumes_only_with_matching_sidecar() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("a.zip");
        let mut p =
            Part::recover(&target, "http://h/a.zip").await.expect("new");
        p.restart(v(Some("\"1\""), None)).await.expect("restart");
        p.append(b"hello").await.expect("append");
        p.pause().await.expect("pause");

        let p = Part::recover(&target, "http://h/a.zip").await.expect("again");
        assert_eq!(p.resume_point(), Some((5, "\"1\"")));

        let p = Part::recover(&target, "http://h/b.zip").await.expect("other");
        assert_eq!(p.resume_point(), None);
        assert!(!dir.path().join("a.zip.part").exists());
        assert!(!dir.path().join("a.zip.part.json").exists());
    }

    #[tokio::test]
    async fn rehashes_resumed_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("a.zip");
        let mut p = Part::recover(&target, "u").await.expect("new");
        p.restart(v(None, Some("d"))).await.expect("restart");
        p.append(b"hel").await.expect("append");
        p.pause().await.expect("pause");
        let mut p = Part::recover(&target, "u").await.expect("again");
        p.append(b"lo").await.expect("append");
        let sha = p.finish().await.expect("finish");
        assert_eq!(sha, crate::digest::hex(&Sha256::digest(b"hello")));
        p.commit(&target).await.expect("commit");
        assert_eq!(std::fs::read(&target).expect("read"), b"hello");
        assert!(!dir.path().join("a.zip.part.json").exists());
    }
}
