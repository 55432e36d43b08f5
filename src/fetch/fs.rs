//! Crash-safe file updates: write a temporary file, fsync it, rename it
//! over the target, fsync the folder.

use std::io;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use super::error::FetchError;

/// `path` with `suffix` appended to its file name.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Replaces `path` with `bytes` atomically: readers see the old or the
/// new contents, never a mix, also after a crash.
///
/// # Errors
/// The write, fsync or rename failed; the temporary file is removed.
pub(crate) async fn write_atomic(
    path: &Path,
    bytes: &[u8],
) -> Result<(), FetchError> {
    let tmp = with_suffix(path, ".tmp");
    let result = async {
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| FetchError::io("create", &tmp, e))?;
        f.write_all(bytes)
            .await
            .map_err(|e| FetchError::io("write", &tmp, e))?;
        f.sync_all().await.map_err(|e| FetchError::io("fsync", &tmp, e))?;
        drop(f);
        rename(&tmp, path).await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

/// Renames `from` to `to` (replacing it) and fsyncs the folder, so the
/// rename survives a crash.
///
/// # Errors
/// The rename or the folder fsync failed.
pub(crate) async fn rename(from: &Path, to: &Path) -> Result<(), FetchError> {
    tokio::fs::rename(from, to)
        .await
        .map_err(|e| FetchError::io("rename into place", to, e))?;
    let dir = to.parent().filter(|p| !p.as_os_str().is_empty());
    sync_dir(dir.unwrap_or(Path::new(".")))
        .await
        .map_err(|e| FetchError::io("fsync folder", to, e))
}

/// Fsyncs a folder so renames in it are durable. Windows cannot open a
/// folder as a file and orders renames itself, so this is Unix only.
async fn sync_dir(dir: &Path) -> io::Result<()> {
    if cfg!(unix) {
        tokio::fs::File::open(dir).await?.sync_all().await
    } else {
        Ok(())
    }
}

/// Removes `path`; a file that is not there is not an error.
///
/// # Errors
/// The removal failed for another reason.
pub(crate) async fn remove_if_exists(path: &Path) -> Result<(), FetchError> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(FetchError::io("remove", path, e))
        }
        _ => Ok(()),
    }
}
