//! `fwload-manifest.json`: what was downloaded into a folder, from where,
//! with which checksum and validators, and when.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::error::{FetchError, FetchErrorKind};
use super::fs::write_atomic;

/// The manifest's file name inside the download folder.
pub const MANIFEST_FILE: &str = "fwload-manifest.json";

/// The manifest format version written and understood.
const VERSION: u32 = 1;

/// Every file fetched into one folder, by file name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version (1).
    pub version: u32,
    /// One entry per file name, in name order.
    pub files: BTreeMap<String, ManifestEntry>,
}

/// What is known about one downloaded file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The URL it was downloaded from.
    pub url: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256 (lower-case hex).
    pub sha256: String,
    /// The server's `ETag` for it, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The server's `Last-Modified` for it, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// When it was downloaded (RFC 3339, UTC).
    pub fetched: String,
    /// When the server last confirmed it (RFC 3339, UTC): the download or
    /// a later "not modified" answer.
    pub checked: String,
}

impl Manifest {
    /// Reads the manifest of `dir`; a folder without one has an empty
    /// manifest.
    ///
    /// # Errors
    /// The file exists but cannot be read, is not valid JSON of this shape
    /// (the message gives line and column), or has another version.
    pub fn load(dir: &Path) -> Result<Manifest, FetchError> {
        let path = dir.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Manifest {
                    version: VERSION,
                    files: BTreeMap::new(),
                });
            }
            Err(e) => return Err(FetchError::io("read", &path, e)),
        };
        let m: Manifest = serde_json::from_str(&text).map_err(|e| {
            FetchError::at_path(
                FetchErrorKind::Manifest(format!(
                    "line {}, column {}: not a fetch manifest (delete it to \
                     download everything again)",
                    e.line(),
                    e.column()
                )),
                &path,
            )
            .caused_by(e)
        })?;
        if m.version != VERSION {
            return Err(FetchError::at_path(
                FetchErrorKind::Manifest(format!(
                    "manifest version {} is not supported (expected {VERSION})",
                    m.version
                )),
                &path,
            ));
        }
        Ok(m)
    }

    /// The entry for `name`.
    pub fn get(&self, name: &str) -> Option<&ManifestEntry> {
        self.files.get(name)
    }
}

/// The manifest shared by a run's downloads; every change is written
/// through atomically.
pub(crate) struct ManifestStore {
    path: PathBuf,
    manifest: Mutex<Manifest>,
}

impl ManifestStore {
    /// The store for `dir`, starting from its manifest on disk.
    ///
    /// # Errors
    /// See [`Manifest::load`].
    pub(crate) fn open(dir: &Path) -> Result<ManifestStore, FetchError> {
        Ok(ManifestStore {
            path: dir.join(MANIFEST_FILE),
            manifest: Mutex::new(Manifest::load(dir)?),
        })
    }

    /// A copy of the entry for `name`.
    pub(crate) async fn get(&self, name: &str) -> Option<ManifestEntry> {
        self.manifest.lock().await.get(name).cloned()
    }

    /// Sets the entry for `name` and writes the manifest.
    ///
    /// # Errors
    /// The manifest could not be written; the file on disk is unchanged.
    pub(crate) async fn record(
        &self,
        name: &str,
        entry: ManifestEntry,
    ) -> Result<(), FetchError> {
        let mut m = self.manifest.lock().await;
        let previous = m.files.insert(name.to_owned(), entry);
        let text = serde_json::to_string_pretty(&*m).map_err(|e| {
            FetchError::at_path(
                FetchErrorKind::Manifest("cannot encode".into()),
                &self.path,
            )
            .caused_by(e)
        });
        let result = match text {
            Ok(t) => write_atomic(&self.path, (t + "\n").as_bytes()).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            match previous {
                Some(p) => m.files.insert(name.to_owned(), p),
                None => m.files.remove(name),
            };
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> ManifestEntry {
        ManifestEntry {
            url: "http://h/a.zip".into(),
            size: 3,
            sha256: "ab".repeat(32),
            etag: Some("\"v1\"".into()),
            last_modified: None,
            fetched: "2025-01-01T00:00:00Z".into(),
            checked: "2025-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn missing_manifest_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = Manifest::load(dir.path()).expect("load");
        assert_eq!(m.version, 1);
        assert!(m.files.is_empty());
    }

    #[test]
    fn corrupt_manifest_names_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(MANIFEST_FILE), "{\n  oops")
            .expect("write");
        let e = Manifest::load(dir.path()).expect_err("corrupt");
        let text = e.to_string();
        assert!(
            text.contains("fwload-manifest.json: line 2, column 3"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn records_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ManifestStore::open(dir.path()).expect("open");
        store.record("a.zip", entry()).await.expect("record");
        let m = Manifest::load(dir.path()).expect("reload");
        assert_eq!(m.get("a.zip"), Some(&entry()));
        assert!(!dir.path().join("fwload-manifest.json.tmp").exists());
    }
}
