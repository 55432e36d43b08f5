//! Inputs and their members: plain files (memory-mapped), zip, tar,
//! tar.gz, gzip and directories, detected by magic bytes and read as
//! streams, never extracted to disk.
//!
//! [`read_input`] visits the members of one input in archive order, hands
//! each wanted member to the caller as a [`Body`] (a whole mapped slice or
//! a decompressing stream), and returns the input's sha256, computed on
//! the way. Streams are guarded: a member that grows beyond its declared
//! size, past a size limit, or at a decompression ratio typical of a bomb
//! stops with a [`SourceError`] naming it; so does a member whose name
//! climbs out of the archive (`../`), and an input whose members together
//! pass the input's limits. A zip whose entries overlap is refused before
//! any member is read, and so is an input that is not a regular file (a
//! FIFO would be read more than once).

mod hash;
mod mmap;

pub use hash::{HashingReader, HashingSeeker};
pub use mmap::{MappedFile, MmapChoice};

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use flate2::read::MultiGzDecoder;

use crate::decode::excerpt_text;

/// Limits that keep a hostile or broken input from exhausting memory or
/// disk time.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest decompressed member, in bytes.
    pub max_member_bytes: u64,
    /// Largest total of an input's decompressed members, in bytes.
    pub max_input_bytes: u64,
    /// Largest decompressed/compressed ratio, checked once a member has
    /// produced `ratio_floor` bytes (small members may compress very well),
    /// and for an input's members together against the input's size once
    /// they have produced that much.
    pub max_ratio: u64,
    /// See `max_ratio`.
    pub ratio_floor: u64,
    /// Longest record, in bytes; a longer one is an error.
    pub max_record_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_member_bytes: 256 << 30,
            max_input_bytes: 1 << 40,
            max_ratio: 500,
            ratio_floor: 64 << 20,
            max_record_bytes: 16 << 20,
        }
    }
}

/// How inputs are read.
#[derive(Clone, Copy, Debug, Default)]
pub struct SourceOptions {
    /// Size and ratio limits.
    pub limits: Limits,
    /// Whether plain files may be memory-mapped.
    pub mmap: MmapChoice,
    /// Leave a zip archive's own sha256 uncomputed ([`InputDigest`]'s
    /// `sha256` empty): for a caller that hashed the file already and
    /// reads one member per pass, which would otherwise read and hash
    /// every other member's bytes each time. Members are always hashed.
    pub skip_archive_hash: bool,
}

/// What an input file is, by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// Uncompressed data: one member.
    Plain,
    /// A gzip stream holding one member (not a tar).
    Gzip,
    /// A zip archive.
    Zip,
    /// A tar archive.
    Tar,
    /// A gzip-compressed tar archive.
    TarGz,
}

impl InputKind {
    /// Short name (`zip`, `tar.gz`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Plain => "plain",
            InputKind::Gzip => "gzip",
            InputKind::Zip => "zip",
            InputKind::Tar => "tar",
            InputKind::TarGz => "tar.gz",
        }
    }
}

/// One member of an input.
#[derive(Clone, Debug)]
pub struct MemberInfo {
    /// The input's path as given.
    pub input: Arc<str>,
    /// The member's path inside the archive (the file name for a plain or
    /// gzip input).
    pub name: String,
    /// Uncompressed size the archive declares, when it declares one.
    pub declared_size: Option<u64>,
    /// Compressed size, for compressed members of a zip.
    pub compressed_size: Option<u64>,
}

/// A member's bytes.
pub enum Body<'a> {
    /// The whole member in memory (a mapped plain file); `map` allows
    /// releasing consumed pages.
    Slice {
        /// The bytes.
        data: Bytes,
        /// The mapping behind `data`, when mapped.
        map: Option<Arc<MappedFile>>,
    },
    /// A stream, decompressed on the fly and guarded by the limits.
    Stream(&'a mut dyn Read),
}

/// The visitor [`read_input`] calls for each wanted member; it returns the
/// member's sha256 when it computed one.
pub type Visit<'v, E> =
    dyn FnMut(&MemberInfo, Body<'_>) -> Result<Option<String>, E> + 'v;

/// The digest of one input, computed while its members were read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputDigest {
    /// The input's path as given.
    pub path: String,
    /// Detected kind.
    pub kind: InputKind,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the input file (hex).
    pub sha256: String,
}

/// An input that cannot be read.
#[derive(Debug)]
pub struct SourceError {
    input: String,
    member: Option<String>,
    kind: SourceErrorKind,
}

/// What went wrong reading an input.
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceErrorKind {
    /// The operating system refused (missing file, permission, …).
    Io(io::Error),
    /// The archive or compressed stream is damaged (bad header, truncated,
    /// checksum mismatch).
    Corrupt(String),
    /// A member's name leaves the archive (`../`, absolute path).
    UnsafeName,
    /// A member holds a different number of bytes than it declares.
    SizeMismatch {
        /// Declared size.
        declared: u64,
        /// Bytes actually read (so far, when larger).
        actual: u64,
    },
    /// A member decompressed beyond a limit (a decompression bomb).
    Limit(String),
    /// The input file is empty.
    Empty,
    /// The input is not a regular file: a FIFO, socket or device, which
    /// cannot be read more than once and may never end.
    NotRegular {
        /// What it is (`FIFO (named pipe)`, `socket`, …).
        what: &'static str,
        /// The input directory it was found in, when it was found there.
        dir: Option<String>,
    },
    /// Two zip entries share bytes of the archive: one member's data read
    /// again as another's, as a zip bomb does.
    Overlap {
        /// The entry whose bytes reach into the other's.
        first: String,
        /// The entry starting inside them.
        second: String,
    },
}

impl SourceError {
    /// A new error for `input` (and `member`, when inside an archive).
    pub fn new(
        input: &str,
        member: Option<&str>,
        kind: SourceErrorKind,
    ) -> SourceError {
        SourceError {
            input: input.to_owned(),
            member: member.map(str::to_owned),
            kind,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &SourceErrorKind {
        &self.kind
    }

    /// The input path.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// The member, when the error concerns one.
    pub fn member(&self) -> Option<&str> {
        self.member.as_deref()
    }

    /// Turns an I/O error raised while reading a member's stream into a
    /// source error, recovering the kinds the guards raise.
    pub fn from_read(input: &str, member: &str, e: io::Error) -> SourceError {
        let kind = match e
            .get_ref()
            .and_then(|x| x.downcast_ref::<GuardError>())
        {
            Some(GuardError::Size { declared, actual }) => {
                SourceErrorKind::SizeMismatch {
                    declared: *declared,
                    actual: *actual,
                }
            }
            Some(GuardError::Limit(m)) => SourceErrorKind::Limit(m.clone()),
            Some(e @ GuardError::Checksum { .. }) => SourceErrorKind::Corrupt(
                format!("checksum mismatch, the member is corrupt ({e})"),
            ),
            None => classify(e),
        };
        SourceError::new(input, Some(member), kind)
    }
}

/// The kind of a decompressor's I/O error, told by its `io::ErrorKind`
/// only: a zip member's checksum is checked by [`Guard`] itself, before the
/// zip reader's own check would fire.
fn classify(e: io::Error) -> SourceErrorKind {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => SourceErrorKind::Corrupt(format!(
            "unexpected end of compressed data, the archive is truncated ({e})"
        )),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
            SourceErrorKind::Corrupt(format!("corrupt compressed data ({e})"))
        }
        _ => SourceErrorKind::Io(e),
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.input)?;
        if let Some(m) = &self.member {
            write!(f, ":{}", excerpt_text(m))?;
        }
        f.write_str(": ")?;
        match &self.kind {
            SourceErrorKind::Io(e) => write!(f, "{e}"),
            SourceErrorKind::Corrupt(m) => f.write_str(m),
            SourceErrorKind::UnsafeName => f.write_str("member name leaves the archive (absolute or '..' path); refusing the archive"),
            SourceErrorKind::SizeMismatch { declared, actual } if actual > declared => {
                write!(f, "member holds more than the {declared} bytes it declares (read {actual})")
            }
            SourceErrorKind::SizeMismatch { declared, actual } => {
                write!(f, "member declares {declared} bytes but holds {actual}")
            }
            SourceErrorKind::Limit(m) => f.write_str(m),
            SourceErrorKind::Empty => f.write_str("input is empty (0 bytes)"),
            SourceErrorKind::NotRegular { what, dir } => {
                write!(f, "is a {what}, not a regular file")?;
                if let Some(d) = dir {
                    write!(f, ", found in input directory {d}")?;
                }
                f.write_str("; fwload reads an input more than once, so copy it to a file first")
            }
            SourceErrorKind::Overlap { first, second } => write!(
                f,
                "members {} and {} overlap: they share bytes of the archive, which only a crafted zip (a decompression bomb?) does; refusing the archive",
                excerpt_text(first),
                excerpt_text(second)
            ),
        }
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            SourceErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Errors raised inside a guarded stream, carried through `io::Error`.
#[derive(Debug)]
enum GuardError {
    Size {
        declared: u64,
        actual: u64,
    },
    Limit(String),
    /// The CRC-32 of the member's bytes is not the one its archive
    /// declares.
    Checksum {
        declared: u32,
        actual: u32,
    },
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::Size { declared, actual } => {
                write!(f, "size {actual} differs from declared {declared}")
            }
            GuardError::Limit(m) => f.write_str(m),
            GuardError::Checksum { declared, actual } => write!(
                f,
                "its CRC-32 is {actual:08x}, the archive declares {declared:08x}"
            ),
        }
    }
}

impl std::error::Error for GuardError {}

/// Counts decompressed bytes and enforces the limits and declared size.
struct Guard<R> {
    inner: R,
    count: u64,
    declared: Option<u64>,
    /// Compressed bytes consumed so far (shared with a counting reader
    /// below the decompressor), for the ratio check.
    compressed: Arc<AtomicU64>,
    /// Decompressed bytes of the input's members read before this one.
    earlier: u64,
    /// The input file's size in bytes.
    input_size: u64,
    limits: Limits,
    /// The CRC-32 the archive declares for the member and the one of its
    /// bytes so far; checked once the declared size has been read.
    crc: Option<Crc>,
}

/// A member's declared CRC-32 and the running one of its bytes.
struct Crc {
    declared: u32,
    running: crc32fast::Hasher,
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.declared == Some(self.count)
            && let Some(crc) = self.crc.take()
        {
            let actual = crc.running.finalize();
            if actual != crc.declared {
                let e =
                    GuardError::Checksum { declared: crc.declared, actual };
                return Err(io::Error::other(e));
            }
        }
        // Never read more than one byte past the declared size: enough to
        // notice a member that is longer than it says.
        let cap = match self.declared {
            Some(d) => ((d + 1).saturating_sub(self.count) as usize)
                .min(buf.len())
                .max(1),
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..cap])?;
        self.count += n as u64;
        if let Some(crc) = &mut self.crc {
            crc.running.update(&buf[..n]);
        }
        if let Some(d) = self.declared
            && (self.count > d || (n == 0 && self.count != d))
        {
            let e = GuardError::Size { declared: d, actual: self.count };
            return Err(io::Error::other(e));
        }
        if self.count > self.limits.max_member_bytes {
            let e = GuardError::Limit(format!(
                "member decompresses beyond the {} byte limit (--max-member-bytes)",
                self.limits.max_member_bytes
            ));
            return Err(io::Error::other(e));
        }
        let packed = self.compressed.load(Ordering::Relaxed).max(1);
        if self.count > self.limits.ratio_floor
            && self.count / packed > self.limits.max_ratio
        {
            let e = GuardError::Limit(format!(
                "member expands {}:1 from {} compressed bytes, beyond the {}:1 limit (a decompression bomb?); raise --max-ratio if it is genuine",
                self.count / packed,
                packed,
                self.limits.max_ratio
            ));
            return Err(io::Error::other(e));
        }
        self.check_input()?;
        Ok(n)
    }
}

impl<R> Guard<R> {
    /// The input's limits, over its members so far: total bytes, and
    /// their ratio to the input's size once past the ratio floor.
    fn check_input(&self) -> io::Result<()> {
        let total = self.earlier + self.count;
        let limits = &self.limits;
        let e = if total > limits.max_input_bytes {
            GuardError::Limit(format!(
                "the input decompresses beyond the {} byte limit of an input (--max-input-bytes)",
                limits.max_input_bytes
            ))
        } else if total > limits.ratio_floor
            && total / self.input_size.max(1) > limits.max_ratio
        {
            GuardError::Limit(format!(
                "the input's members together expand {}:1 from its {} bytes, beyond the {}:1 limit (a decompression bomb?); raise --max-ratio if it is genuine",
                total / self.input_size.max(1),
                self.input_size,
                limits.max_ratio
            ))
        } else {
            return Ok(());
        };
        Err(io::Error::other(e))
    }
}

/// Counts bytes read into a shared counter.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Refuses an input that is not a regular file (nor a directory, which
/// [`expand_inputs`] walks): a FIFO, socket or device. An input is read
/// more than once (its first bytes tell its kind, then its members are
/// read; load hashes it first), which a pipe cannot give, and opening a
/// FIFO waits for a writer. `dir` is the input directory it was found
/// in. A path that cannot be examined is left to fail when opened.
fn check_regular(path: &Path, dir: Option<&Path>) -> Result<(), SourceError> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let ty = meta.file_type();
    if ty.is_file() || ty.is_dir() {
        return Ok(());
    }
    Err(SourceError::new(
        &path.display().to_string(),
        None,
        SourceErrorKind::NotRegular {
            what: special_file(ty),
            dir: dir.map(|d| d.display().to_string()),
        },
    ))
}

#[cfg(unix)]
fn special_file(ty: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ty.is_fifo() {
        "FIFO (named pipe)"
    } else if ty.is_socket() {
        "socket"
    } else if ty.is_char_device() {
        "character device"
    } else if ty.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

#[cfg(not(unix))]
fn special_file(_: std::fs::FileType) -> &'static str {
    "special file"
}

/// Expands directories into the files below them (sorted, recursively);
/// other paths are kept as given.
///
/// # Errors
/// A directory that cannot be listed, or a path given or found that is
/// not a regular file (a FIFO, socket or device).
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SourceError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SourceError> {
        let err = |e| {
            SourceError::new(
                &dir.display().to_string(),
                None,
                SourceErrorKind::Io(e),
            )
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else {
                check_regular(&p, Some(dir))?;
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else {
            check_regular(p, None)?;
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Detects an input's kind from its first bytes.
///
/// # Errors
/// The file cannot be opened or read, or is not a regular file.
pub fn detect(path: &Path) -> Result<InputKind, SourceError> {
    check_regular(path, None)?;
    let name = path.display().to_string();
    let io_err = |e| SourceError::new(&name, None, SourceErrorKind::Io(e));
    let mut f = File::open(path).map_err(io_err)?;
    let mut head = [0u8; 512];
    let n = read_full(&mut f, &mut head).map_err(io_err)?;
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04")
        || head.starts_with(b"PK\x05\x06")
        || head.starts_with(b"PK\x07\x08")
    {
        return Ok(InputKind::Zip);
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        f.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let mut gz = MultiGzDecoder::new(BufReader::new(f));
        let mut inner = [0u8; 512];
        // A damaged stream is reported when it is read; here it is a gzip.
        let m = read_full(&mut gz, &mut inner).unwrap_or(0);
        return Ok(if is_tar(&inner[..m]) {
            InputKind::TarGz
        } else {
            InputKind::Gzip
        });
    }
    Ok(if is_tar(head) { InputKind::Tar } else { InputKind::Plain })
}

fn is_tar(head: &[u8]) -> bool {
    head.len() >= 262 && &head[257..262] == b"ustar"
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Whether an archive member path stays inside the archive.
pub fn safe_member_name(name: &str) -> bool {
    let p = Path::new(name);
    !name.starts_with('/')
        && !name.starts_with('\\')
        && !name.contains("\\..")
        && !name.contains("..\\")
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Reads one input: calls `visit` for each member `want` accepts, in
/// archive order, and returns the input's digest.
///
/// `visit` should read a stream body to its end; whatever it leaves is
/// read (and checked) after it returns, so checksums and sizes are
/// always verified. It returns the member's sha256 when it computed one
/// (for a plain file that is the input's digest, so the file is hashed
/// once, as it is read).
///
/// # Errors
/// Any [`SourceError`], or an error `visit` returns (which stops reading).
pub fn read_input<E: From<SourceError>>(
    path: &Path,
    opts: &SourceOptions,
    want: &dyn Fn(&str) -> bool,
    visit: &mut Visit<'_, E>,
) -> Result<InputDigest, E> {
    let name = path.display().to_string();
    let input: Arc<str> = Arc::from(name.as_str());
    let kind = detect(path)?;
    let file = File::open(path).map_err(|e| io_err(&name, e))?;
    let size = file.metadata().map_err(|e| io_err(&name, e))?.len();
    if size == 0 {
        return Err(
            SourceError::new(&name, None, SourceErrorKind::Empty).into()
        );
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.clone());
    let opened = Opened { path, name: &name, input, file, size, file_name };
    let sha256 = match kind {
        InputKind::Plain => opened.plain(opts, want, visit)?,
        InputKind::Gzip => opened.gzip(opts, want, visit)?,
        InputKind::Tar | InputKind::TarGz => {
            opened.tar(kind == InputKind::TarGz, opts, want, visit)?
        }
        InputKind::Zip => {
            // Read, not mapped: mapped pages of a compressed archive would
            // stay resident as it is inflated and hashed, so memory would
            // grow with the archive.
            let Opened { name, input, file, size, .. } = opened;
            let file = BufReader::with_capacity(256 * 1024, file);
            read_zip(
                (name, size),
                &input,
                if opts.skip_archive_hash {
                    HashingSeeker::unhashed(file, size)
                } else {
                    HashingSeeker::new(file, size)
                },
                opts,
                want,
                visit,
            )?
        }
    };
    Ok(InputDigest { path: name, kind, size, sha256 })
}

/// An input file opened for reading, with the names its errors use.
struct Opened<'a> {
    path: &'a Path,
    /// The input's name in messages.
    name: &'a str,
    input: Arc<str>,
    file: File,
    /// Its size in bytes.
    size: u64,
    /// Its file name, the member name of a plain or gzip input.
    file_name: String,
}

/// An I/O error of the input `name` itself.
fn io_err(name: &str, e: io::Error) -> SourceError {
    SourceError::new(name, None, SourceErrorKind::Io(e))
}

impl Opened<'_> {
    /// A plain file: one member, mapped when it may be; returns the
    /// input's digest (the member's, when `visit` hashed it).
    fn plain<E: From<SourceError>>(
        self,
        opts: &SourceOptions,
        want: &dyn Fn(&str) -> bool,
        visit: &mut Visit<'_, E>,
    ) -> Result<String, E> {
        let size = self.size;
        let info = MemberInfo {
            input: self.input.clone(),
            name: self.file_name.clone(),
            declared_size: Some(size),
            compressed_size: None,
        };
        let digest = if !want(&info.name) {
            None
        } else if let Some(map) = opts.mmap.map(&self.file) {
            visit(&info, Body::Slice { data: map.bytes(), map: Some(map) })?
        } else {
            let file = self.file;
            let mut g = Guard {
                inner: BufReader::with_capacity(1 << 20, file),
                count: 0,
                declared: Some(size),
                compressed: Arc::new(AtomicU64::new(size)),
                earlier: 0,
                input_size: size,
                limits: opts.limits,
                crc: None,
            };
            let d = visit(&info, Body::Stream(&mut g))?;
            io::copy(&mut g, &mut io::sink()).map_err(|e| {
                SourceError::from_read(self.name, &info.name, e)
            })?;
            d
        };
        Ok(match digest {
            // The member is the whole file: its digest is the input's.
            Some(d) => d,
            None => {
                let f =
                    File::open(self.path).map_err(|e| io_err(self.name, e))?;
                HashingReader::new(BufReader::new(f))
                    .finish()
                    .map_err(|e| io_err(self.name, e))?
                    .0
            }
        })
    }

    /// A gzip file: one member, named after the file without `.gz`;
    /// returns the digest of the compressed file.
    fn gzip<E: From<SourceError>>(
        self,
        opts: &SourceOptions,
        want: &dyn Fn(&str) -> bool,
        visit: &mut Visit<'_, E>,
    ) -> Result<String, E> {
        let file_name = &self.file_name;
        let member = file_name
            .strip_suffix(".gz")
            .or_else(|| file_name.strip_suffix(".GZ"))
            .unwrap_or(file_name)
            .to_owned();
        let compressed = Arc::new(AtomicU64::new(0));
        let file = self.file;
        let mut outer = HashingReader::new(Counting {
            inner: BufReader::with_capacity(1 << 20, file),
            count: compressed.clone(),
        });
        let info = MemberInfo {
            input: self.input.clone(),
            name: member,
            declared_size: None,
            compressed_size: Some(self.size),
        };
        {
            let mut r = Guard {
                inner: MultiGzDecoder::new(&mut outer),
                count: 0,
                declared: None,
                compressed,
                earlier: 0,
                input_size: self.size,
                limits: opts.limits,
                crc: None,
            };
            if want(&info.name) {
                visit(&info, Body::Stream(&mut r))?;
            }
            io::copy(&mut r, &mut io::sink()).map_err(|e| {
                SourceError::from_read(self.name, &info.name, e)
            })?;
        }
        Ok(outer.finish().map_err(|e| io_err(self.name, e))?.0)
    }

    /// A tar (`gz`: gzip-compressed) archive; returns the digest of the
    /// file.
    fn tar<E: From<SourceError>>(
        self,
        gz: bool,
        opts: &SourceOptions,
        want: &dyn Fn(&str) -> bool,
        visit: &mut Visit<'_, E>,
    ) -> Result<String, E> {
        let compressed = Arc::new(AtomicU64::new(0));
        let file = self.file;
        let mut outer = HashingReader::new(Counting {
            inner: BufReader::with_capacity(1 << 20, file),
            count: compressed.clone(),
        });
        {
            let stream: Box<dyn Read + '_> = if gz {
                Box::new(MultiGzDecoder::new(&mut outer))
            } else {
                Box::new(&mut outer)
            };
            let total = Guard {
                inner: stream,
                count: 0,
                declared: None,
                compressed: compressed.clone(),
                earlier: 0,
                input_size: self.size,
                limits: opts.limits,
                crc: None,
            };
            read_tar(self.name, &self.input, total, want, visit)?;
        }
        Ok(outer.finish().map_err(|e| io_err(self.name, e))?.0)
    }
}

fn read_tar<E: From<SourceError>>(
    name: &str,
    input: &Arc<str>,
    stream: impl Read,
    want: &dyn Fn(&str) -> bool,
    visit: &mut Visit<'_, E>,
) -> Result<(), E> {
    let corrupt =
        |m: String| SourceError::new(name, None, SourceErrorKind::Corrupt(m));
    let mut ar = tar::Archive::new(stream);
    let entries = ar
        .entries()
        .map_err(|e| corrupt(format!("not a readable tar archive: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| corrupt(format!("damaged tar archive: {e}")))?;
        let kind = entry.header().entry_type();
        let member = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if !safe_member_name(&member) {
            return Err(SourceError::new(
                name,
                Some(&member),
                SourceErrorKind::UnsafeName,
            )
            .into());
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.size();
        let info = MemberInfo {
            input: input.clone(),
            name: member.clone(),
            declared_size: Some(size),
            compressed_size: None,
        };
        if want(&member) {
            visit(&info, Body::Stream(&mut entry))?;
            io::copy(&mut entry, &mut io::sink())
                .map_err(|e| SourceError::from_read(name, &member, e))?;
        }
    }
    Ok(())
}

/// The smallest local file header: 30 bytes before the member's name and
/// extra field (APPNOTE.TXT 4.3.7), so an entry's bytes span at least
/// `30 + compressed size` from its header.
const LOCAL_HEADER_MIN: u64 = 30;

/// One file entry of a zip's central directory.
struct ZipEntry {
    /// Index in the central directory.
    index: usize,
    /// Offset of the entry's local header in the archive.
    header_start: u64,
    name: String,
    size: u64,
    compressed_size: u64,
    /// The CRC-32 the central directory declares.
    crc32: u32,
}

/// The file entries of a zip (directories left out), in the order their
/// local headers lie in the archive, refused when a name leaves the
/// archive or when two entries' bytes overlap as far as the central
/// directory tells: a local header and its data are at least
/// [`LOCAL_HEADER_MIN`] bytes plus the compressed size long.
/// [`read_zip`] checks the exact extents as it reaches each entry.
fn zip_entries<R: Read + Seek>(
    name: &str,
    zip: &zip::ZipArchive<R>,
) -> Result<Vec<ZipEntry>, SourceError> {
    let mut entries = Vec::with_capacity(zip.len());
    for index in 0..zip.len() {
        let e = zip.by_index_data(index).map_err(|e| {
            SourceError::new(
                name,
                None,
                SourceErrorKind::Corrupt(format!(
                    "damaged central directory: {e}"
                )),
            )
        })?;
        let member = String::from_utf8_lossy(e.name_raw()).into_owned();
        if !safe_member_name(&member) || e.enclosed_name().is_none() {
            return Err(SourceError::new(
                name,
                Some(&member),
                SourceErrorKind::UnsafeName,
            ));
        }
        if e.is_dir() {
            continue;
        }
        entries.push(ZipEntry {
            index,
            header_start: e.header_start(),
            name: member,
            size: e.size(),
            compressed_size: e.compressed_size(),
            crc32: e.crc32(),
        });
    }
    entries.sort_by_key(|e| (e.header_start, e.index));
    let mut reach: Option<(u64, usize)> = None;
    for (i, e) in entries.iter().enumerate() {
        if let Some((end, j)) = reach
            && e.header_start < end
        {
            return Err(overlap(name, &entries[j], e));
        }
        let end = e
            .header_start
            .saturating_add(LOCAL_HEADER_MIN)
            .saturating_add(e.compressed_size);
        if reach.is_none_or(|(r, _)| end > r) {
            reach = Some((end, i));
        }
    }
    Ok(entries)
}

fn overlap(name: &str, first: &ZipEntry, second: &ZipEntry) -> SourceError {
    SourceError::new(
        name,
        None,
        SourceErrorKind::Overlap {
            first: first.name.clone(),
            second: second.name.clone(),
        },
    )
}

fn read_zip<R: Read + Seek, E: From<SourceError>>(
    (name, size): (&str, u64),
    input: &Arc<str>,
    reader: HashingSeeker<R>,
    opts: &SourceOptions,
    want: &dyn Fn(&str) -> bool,
    visit: &mut Visit<'_, E>,
) -> Result<String, E> {
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| {
        SourceError::new(
            name,
            None,
            SourceErrorKind::Corrupt(format!(
                "not a readable zip archive ({e}); is it truncated?"
            )),
        )
    })?;
    // Members are visited in the order their data lies in the file, so
    // the archive is read (and hashed) front to back.
    let entries = zip_entries(name, &zip)?;
    check_declared(name, size, &entries, &opts.limits)?;
    let cannot_open = |member: &str, e: zip::result::ZipError| {
        SourceError::new(
            name,
            Some(member),
            SourceErrorKind::Corrupt(format!("cannot open member: {e}")),
        )
    };
    // The furthest end of an entry's data so far, and that entry. Each
    // local header is read (those of skipped members too, which lie on
    // the way), so the exact extents are compared, not just the
    // central directory's lower bounds.
    let mut reach: Option<(u64, usize)> = None;
    let mut earlier = 0;
    for (i, e) in entries.iter().enumerate() {
        if let Some((end, j)) = reach
            && e.header_start < end
        {
            return Err(overlap(name, &entries[j], e).into());
        }
        let data_start = |start: Option<u64>| {
            start.unwrap_or(e.header_start + LOCAL_HEADER_MIN)
        };
        let start = if want(&e.name) {
            let file =
                zip.by_index(e.index).map_err(|x| cannot_open(&e.name, x))?;
            let start = data_start(file.data_start());
            let member = ZipMember { entry: e, earlier, input_size: size };
            earlier +=
                visit_zip_member(name, input, member, file, opts, visit)?;
            start
        } else {
            let file = zip
                .by_index_raw(e.index)
                .map_err(|x| cannot_open(&e.name, x))?;
            data_start(file.data_start())
        };
        let end = start.saturating_add(e.compressed_size);
        if reach.is_none_or(|(r, _)| end > r) {
            reach = Some((end, i));
        }
    }
    let reader = zip.into_inner();
    Ok(reader
        .finish()
        .map_err(|e| SourceError::new(name, None, SourceErrorKind::Io(e)))?)
}

/// A zip entry being read, with what the input's limits need.
struct ZipMember<'a> {
    entry: &'a ZipEntry,
    /// Decompressed bytes of the members read before it.
    earlier: u64,
    /// The archive's size in bytes.
    input_size: u64,
}

/// Hands one zip member to `visit` through the guard, and reads what it
/// leaves so its size and CRC are checked. Returns its size in bytes.
fn visit_zip_member<E: From<SourceError>>(
    name: &str,
    input: &Arc<str>,
    member: ZipMember<'_>,
    file: impl Read,
    opts: &SourceOptions,
    visit: &mut Visit<'_, E>,
) -> Result<u64, E> {
    let e = member.entry;
    let info = MemberInfo {
        input: input.clone(),
        name: e.name.clone(),
        declared_size: Some(e.size),
        compressed_size: Some(e.compressed_size),
    };
    let mut g = Guard {
        inner: file,
        count: 0,
        declared: Some(e.size),
        compressed: Arc::new(AtomicU64::new(e.compressed_size)),
        earlier: member.earlier,
        input_size: member.input_size,
        limits: opts.limits,
        crc: Some(Crc {
            declared: e.crc32,
            running: crc32fast::Hasher::new(),
        }),
    };
    visit(&info, Body::Stream(&mut g))?;
    io::copy(&mut g, &mut io::sink())
        .map_err(|x| SourceError::from_read(name, &e.name, x))?;
    Ok(g.count)
}

/// Refuses a zip whose members declare more than the input's limits
/// allow, before any is read: a member is held to its declared size as
/// it is read, so what they declare bounds what they hold. The member
/// at which the running total crosses a limit is named.
fn check_declared(
    name: &str,
    size: u64,
    entries: &[ZipEntry],
    limits: &Limits,
) -> Result<(), SourceError> {
    let mut total = 0u64;
    for (i, e) in entries.iter().enumerate() {
        total = total.saturating_add(e.size);
        let declare = if i == 0 {
            format!("the member declares {total} bytes")
        } else {
            format!("the members together declare {total} bytes")
        };
        let ratio = total / size.max(1);
        let msg = if total > limits.max_input_bytes {
            format!(
                "{declare}, beyond the {} byte limit of an input (--max-input-bytes)",
                limits.max_input_bytes
            )
        } else if total > limits.ratio_floor && ratio > limits.max_ratio {
            format!(
                "{declare}, {ratio}:1 of the {size} byte archive, beyond the {}:1 limit (a decompression bomb?); raise --max-ratio if it is genuine",
                limits.max_ratio
            )
        } else {
            continue;
        };
        return Err(SourceError::new(
            name,
            Some(&e.name),
            SourceErrorKind::Limit(msg),
        ));
    }
    Ok(())
}

/// Lists an input's members without reading their data (tar and gzip
/// inputs are streamed through to find them).
///
/// # Errors
/// As [`read_input`].
pub fn list_members(
    path: &Path,
    opts: &SourceOptions,
) -> Result<(Vec<MemberInfo>, InputKind), SourceError> {
    let kind = detect(path)?;
    let name = path.display().to_string();
    let mut out = Vec::new();
    if kind == InputKind::Zip {
        let io_err = |e| SourceError::new(&name, None, SourceErrorKind::Io(e));
        let file = File::open(path).map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        let zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
            SourceError::new(
                &name,
                None,
                SourceErrorKind::Corrupt(format!(
                    "not a readable zip archive ({e}); is it truncated?"
                )),
            )
        })?;
        let input: Arc<str> = Arc::from(name.as_str());
        let mut entries = zip_entries(&name, &zip)?;
        check_declared(&name, size, &entries, &opts.limits)?;
        // Central directory order, as listed before.
        entries.sort_by_key(|e| e.index);
        for e in entries {
            out.push(MemberInfo {
                input: input.clone(),
                name: e.name,
                declared_size: Some(e.size),
                compressed_size: Some(e.compressed_size),
            });
        }
        return Ok((out, kind));
    }
    read_input::<SourceError>(path, opts, &|_| true, &mut |m, body| {
        let mut info = m.clone();
        if let Body::Stream(r) = body {
            let n = io::copy(r, &mut io::sink())
                .map_err(|e| SourceError::from_read(&m.input, &m.name, e))?;
            info.declared_size = Some(n);
        }
        out.push(info);
        Ok(None)
    })?;
    Ok((out, kind))
}

/// An in-memory body for tests and tools: the whole member as a slice.
pub fn slice_body(data: impl Into<Bytes>) -> Body<'static> {
    Body::Slice { data: data.into(), map: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names() {
        assert!(safe_member_name("real_acct.txt"));
        assert!(safe_member_name("2025/real_acct.txt"));
        assert!(safe_member_name("./a.txt"));
        assert!(!safe_member_name("../evil.txt"));
        assert!(!safe_member_name("a/../../evil.txt"));
        assert!(!safe_member_name("/etc/passwd"));
        assert!(!safe_member_name("..\\evil.txt"));
    }

    #[test]
    fn guard_holds_the_input_to_its_limits() {
        let limits = Limits {
            max_input_bytes: 1000,
            max_ratio: 10,
            ratio_floor: 100,
            ..Limits::default()
        };
        let guard = |earlier, input_size| Guard {
            inner: io::Cursor::new(vec![0u8; 200]),
            count: 0,
            declared: None,
            compressed: Arc::new(AtomicU64::new(200)),
            earlier,
            input_size,
            limits,
            crc: None,
        };
        let read = |mut g: Guard<io::Cursor<Vec<u8>>>| {
            io::copy(&mut g, &mut io::sink()).map_err(|e| e.to_string())
        };
        // 200 bytes after 700 others, from a 100-byte input: 9:1.
        assert_eq!(read(guard(700, 100)), Ok(200));
        let e = read(guard(900, 100)).unwrap_err();
        assert!(e.contains("beyond the 1000 byte limit of an input"), "{e}");
        let e = read(guard(700, 50)).unwrap_err();
        assert!(e.contains("together expand 18:1 from its 50 bytes"), "{e}");
    }

    #[test]
    fn guard_checks_the_declared_crc_itself() {
        let data = b"0123456789".repeat(100);
        let read = |declared: u32| {
            let mut g = Guard {
                inner: io::Cursor::new(data.clone()),
                count: 0,
                declared: Some(data.len() as u64),
                compressed: Arc::new(AtomicU64::new(data.len() as u64)),
                earlier: 0,
                input_size: data.len() as u64,
                limits: Limits::default(),
                crc: Some(Crc { declared, running: crc32fast::Hasher::new() }),
            };
            io::copy(&mut g, &mut io::sink())
        };
        let good = crc32fast::hash(&data);
        assert_eq!(read(good).unwrap(), data.len() as u64);
        let e =
            SourceError::from_read("a.zip", "m", read(good ^ 1).unwrap_err());
        let text = e.to_string();
        assert!(text.contains("a.zip:m: checksum mismatch"), "{text}");
        assert!(text.contains(&format!("{:08x}", good ^ 1)), "{text}");
    }
}
