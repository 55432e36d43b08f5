//! Memory-mapped input files: the source stage's one `unsafe` module
//! (README "Where unsafe is" lists the others).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

/// Whether plain input files may be memory-mapped.
///
/// Built only through the `unsafe` [`MmapChoice::auto`], so the caller
/// states once that mapped files will not change underneath the program.
#[derive(Clone, Copy, Debug, Default)]
pub struct MmapChoice {
    enabled: bool,
}

impl MmapChoice {
    /// Map plain files when the platform supports it.
    ///
    /// # Safety
    /// A mapped file must not be truncated or modified by any process while
    /// fwload reads it: truncation makes later reads fault (SIGBUS) and a
    /// modification changes bytes that were already checked or hashed.
    pub unsafe fn auto() -> MmapChoice {
        MmapChoice { enabled: cfg!(unix) }
    }

    /// Never map: read files with `read(2)` into buffers.
    pub fn never() -> MmapChoice {
        MmapChoice { enabled: false }
    }

    /// Whether mapping is allowed.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Maps `file`, or `None` when mapping is disabled or fails (empty
    /// files cannot be mapped; the caller then reads instead).
    pub fn map(&self, file: &File) -> Option<Arc<MappedFile>> {
        if !self.enabled {
            return None;
        }
        let len = file.metadata().ok()?.len();
        if len == 0 {
            return None;
        }
        // SAFETY: the caller of `MmapChoice::auto` promised the file is not
        // modified or truncated while it is read.
        let map = unsafe { memmap2::Mmap::map(file) }.ok()?;
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        // Huge pages where the page cache holds the file in 2 MiB folios
        // (and reads it into such folios when it does not hold it yet):
        // far fewer page faults than one a 4 KiB page. A hint only.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        Some(Arc::new(MappedFile { map }))
    }
}

/// A read-only mapping of a whole file.
#[derive(Debug)]
pub struct MappedFile {
    map: memmap2::Mmap,
}

struct Owner(Arc<MappedFile>);

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        &self.0.map
    }
}

impl MappedFile {
    /// The whole mapping as shared, zero-copy [`Bytes`].
    pub fn bytes(self: &Arc<Self>) -> Bytes {
        Bytes::from_owner(Owner(Arc::clone(self)))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the mapping is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Tells the kernel the pages from the one holding `range.start` to
    /// the last whole one before `range.end` will not be read again soon,
    /// so they stop counting toward resident memory: for a caller passing
    /// through the file in order, which has passed the bytes before
    /// `range.start` too (so the page a boundary falls in is released
    /// with the range after it, not left behind). Reading them again
    /// later is still correct (they fault back in from the file); this
    /// only keeps peak memory flat on large inputs.
    pub fn release(&self, range: Range<usize>) -> io::Result<()> {
        #[cfg(unix)]
        {
            let page = page_size();
            let start = range.start / page * page;
            let end = (range.end.min(self.map.len()) / page) * page;
            if end > start {
                // SAFETY: the mapping is a private read-only file mapping;
                // MADV_DONTNEED drops our copy of those pages and a later
                // access re-reads them from the file, so no live reference
                // observes changed contents (the file itself is unchanged,
                // as promised by the caller of `MmapChoice::auto`).
                unsafe {
                    self.map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                }?;
            }
        }
        #[cfg(not(unix))]
        let _ = range;
        Ok(())
    }
}

#[cfg(unix)]
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as usize } else { 4096 }
}
