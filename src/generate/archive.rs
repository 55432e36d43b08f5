//! Writing generated members into archives: zip (deflate), tar, tar.gz,
//! gzip or a plain directory, streamed so memory stays flat.

use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

/// What an output path is written as, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutKind {
    /// `.zip`
    Zip,
    /// `.tar`
    Tar,
    /// `.tar.gz` / `.tgz`
    TarGz,
    /// `.gz` (one member)
    Gz,
    /// A directory of plain files.
    Dir,
}

impl OutKind {
    /// The kind a path names (a path without a known extension is a
    /// directory).
    pub fn of(path: &Path) -> OutKind {
        let n = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if n.ends_with(".zip") {
            OutKind::Zip
        } else if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
            OutKind::TarGz
        } else if n.ends_with(".tar") {
            OutKind::Tar
        } else if n.ends_with(".gz") {
            OutKind::Gz
        } else {
            OutKind::Dir
        }
    }
}

/// An archive being written, one member at a time.
pub struct ArchiveWriter {
    kind: OutKind,
    path: PathBuf,
    zip: Option<zip::ZipWriter<BufWriter<File>>>,
    tar: Option<tar::Builder<TarOut>>,
    gz: Option<GzEncoder<BufWriter<File>>>,
    plain: Option<BufWriter<File>>,
    /// Member data for tar, which needs sizes before data.
    spool: Option<(String, File)>,
    level: u32,
    members: usize,
}

impl ArchiveWriter {
    /// Creates the output (a directory is created if missing).
    ///
    /// # Errors
    /// The file or directory cannot be created.
    pub fn create(path: &Path, level: u32) -> io::Result<ArchiveWriter> {
        let kind = OutKind::of(path);
        if let Some(parent) =
            path.parent().filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)?;
        }
        let mut w = ArchiveWriter {
            kind,
            path: path.to_owned(),
            zip: None,
            tar: None,
            gz: None,
            plain: None,
            spool: None,
            level,
            members: 0,
        };
        match kind {
            OutKind::Zip => {
                w.zip = Some(zip::ZipWriter::new(BufWriter::with_capacity(
                    1 << 20,
                    File::create(path)?,
                )))
            }
            OutKind::Tar => {
                let f = BufWriter::with_capacity(1 << 20, File::create(path)?);
                w.tar = Some(tar::Builder::new(TarOut::Plain(f)));
            }
            OutKind::TarGz => {
                let f = BufWriter::with_capacity(1 << 20, File::create(path)?);
                let gz = GzEncoder::new(f, Compression::new(level));
                w.tar = Some(tar::Builder::new(TarOut::Gz(Box::new(gz))));
            }
            OutKind::Gz => {}
            OutKind::Dir => std::fs::create_dir_all(path)?,
        }
        Ok(w)
    }

    /// The output path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts member `name`; `size_hint` is the expected size (for zip64).
    ///
    /// # Errors
    /// Writing failed, or a second member for a `.gz` output.
    pub fn begin(&mut self, name: &str, size_hint: u64) -> io::Result<()> {
        self.members += 1;
        match self.kind {
            OutKind::Zip => {
                let opts = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .compression_level(Some(self.level as i64))
                    .last_modified_time(zip::DateTime::default())
                    .large_file(size_hint > (3u64 << 30));
                self.zip
                    .as_mut()
                    .expect("zip")
                    .start_file(name, opts)
                    .map_err(io::Error::other)?;
            }
            OutKind::Tar | OutKind::TarGz => {
                self.spool = Some((name.to_owned(), tempfile::tempfile()?))
            }
            OutKind::Gz => {
                if self.members > 1 {
                    return Err(io::Error::other(
                        "a .gz output holds one member; use .zip, .tar or .tar.gz",
                    ));
                }
                self.gz = Some(GzEncoder::new(
                    BufWriter::with_capacity(
                        1 << 20,
                        File::create(&self.path)?,
                    ),
                    Compression::new(self.level),
                ));
            }
            OutKind::Dir => {
                let p = self.path.join(name);
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                self.plain =
                    Some(BufWriter::with_capacity(1 << 20, File::create(p)?));
            }
        }
        Ok(())
    }

    /// Appends member data.
    ///
    /// # Errors
    /// Writing failed.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match self.kind {
            OutKind::Zip => self.zip.as_mut().expect("zip").write_all(data),
            OutKind::Tar | OutKind::TarGz => {
                self.spool.as_mut().expect("member started").1.write_all(data)
            }
            OutKind::Gz => {
                self.gz.as_mut().expect("member started").write_all(data)
            }
            OutKind::Dir => {
                self.plain.as_mut().expect("member started").write_all(data)
            }
        }
    }

    /// Ends the current member.
    ///
    /// # Errors
    /// Writing failed.
    pub fn end(&mut self) -> io::Result<()> {
        match self.kind {
            OutKind::Tar | OutKind::TarGz => {
                let (name, mut f) = self.spool.take().expect("member started");
                let size = f.stream_position()?;
                f.rewind()?;
                let mut h = tar::Header::new_gnu();
                h.set_size(size);
                h.set_mode(0o644);
                h.set_mtime(0);
                h.set_cksum();
                self.tar
                    .as_mut()
                    .expect("tar")
                    .append_data(&mut h, &name, f)?;
            }
            OutKind::Dir => {
                if let Some(mut p) = self.plain.take() {
                    p.flush()?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Finishes the archive.
    ///
    /// # Errors
    /// Writing failed.
    pub fn finish(mut self) -> io::Result<()> {
        if let Some(z) = self.zip.take() {
            z.finish().map_err(io::Error::other)?.flush()?;
        }
        if let Some(t) = self.tar.take() {
            match t.into_inner()? {
                TarOut::Plain(mut f) => f.flush()?,
                TarOut::Gz(g) => g.finish()?.flush()?,
            }
        }
        if let Some(g) = self.gz.take() {
            g.finish()?.flush()?;
        }
        Ok(())
    }
}

/// The file under a tar archive: plain or gzip-compressed.
enum TarOut {
    Plain(BufWriter<File>),
    Gz(Box<GzEncoder<BufWriter<File>>>),
}

impl Write for TarOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            TarOut::Plain(f) => f.write(buf),
            TarOut::Gz(g) => g.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            TarOut::Plain(f) => f.flush(),
            TarOut::Gz(g) => g.flush(),
        }
    }
}

enum Msg {
    Begin(String, u64),
    Data(Vec<u8>),
    End,
}

/// An [`ArchiveWriter`] on a thread of its own, so compressing overlaps
/// generating the next rows.
pub struct BackgroundWriter {
    tx: Option<crossbeam_channel::Sender<Msg>>,
    handle: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl BackgroundWriter {
    /// Creates the output and starts the writing thread.
    ///
    /// # Errors
    /// The output cannot be created.
    pub fn create(path: &Path, level: u32) -> io::Result<BackgroundWriter> {
        let mut w = ArchiveWriter::create(path, level)?;
        // A few blocks of rows queued at most: memory stays bounded.
        let (tx, rx) = crossbeam_channel::bounded::<Msg>(8);
        let handle = std::thread::spawn(move || {
            for m in rx {
                match m {
                    Msg::Begin(name, hint) => w.begin(&name, hint)?,
                    Msg::Data(d) => w.write(&d)?,
                    Msg::End => w.end()?,
                }
            }
            w.finish()
        });
        Ok(BackgroundWriter { tx: Some(tx), handle: Some(handle) })
    }

    fn send(&mut self, m: Msg) -> io::Result<()> {
        let sent =
            self.tx.as_ref().map(|tx| tx.send(m).is_ok()).unwrap_or(false);
        if sent {
            return Ok(());
        }
        // The writer stopped: its own error says why.
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(Err(e))) => Err(e),
            _ => Err(io::Error::other("the archive writer stopped")),
        }
    }

    /// Starts member `name`.
    ///
    /// # Errors
    /// The writer failed.
    pub fn begin(&mut self, name: &str, size_hint: u64) -> io::Result<()> {
        self.send(Msg::Begin(name.to_owned(), size_hint))
    }

    /// Appends member data.
    ///
    /// # Errors
    /// The writer failed.
    pub fn write(&mut self, data: Vec<u8>) -> io::Result<()> {
        self.send(Msg::Data(data))
    }

    /// Ends the current member.
    ///
    /// # Errors
    /// The writer failed.
    pub fn end(&mut self) -> io::Result<()> {
        self.send(Msg::End)
    }

    /// Waits for everything to be written and the archive finished.
    ///
    /// # Errors
    /// The writer failed.
    pub fn finish(mut self) -> io::Result<()> {
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => {
                Err(io::Error::other("the archive writer panicked"))
            }
            None => Err(io::Error::other("the archive writer stopped")),
        }
    }
}
