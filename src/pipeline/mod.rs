//! The parallel pipeline of one member: a reader cuts record-aligned
//! chunks, rayon workers slice, decode and encode them, and one consumer
//! receives the results in input order.
//!
//! ```text
//!  body ──ChunkReader──▶ chunk n ──rayon──▶ process_chunk ──▶ ┐
//!        (this thread)   chunk n+1 ─rayon──▶ process_chunk ──▶ ├─ reorder ─▶ consume (in order)
//!                        …  at most `in_flight` chunks alive   ┘   (scoped thread)
//! ```
//!
//! Memory is bounded by `in_flight × chunk size` whatever the input size:
//! the reader takes a token before cutting a chunk and the consumer gives
//! it back after consuming it. A member held whole in memory (a mapped
//! file) is hashed beside all this by a thread of its own (see `hash`);
//! its pages are released once consumed and hashed.

mod control;
mod hash;
mod header;
mod read;
mod worker;

pub use control::{Control, ControlError, input_year, read_control};
pub use header::{HeaderDrift, check_header, looks_utf16};
pub use read::{Chunk, ChunkReader, ReadError, UTF8_BOM, Utf16};
pub use worker::{ChunkResult, NoRows, Plan, key_bytes, process_chunk};

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use sha2::Digest;

use crate::decode::excerpt_text;
use crate::keys::KeyEntry;
use crate::pgcopy::RowSink;
use crate::reject::Counts;
use crate::schema::Format;
use crate::source::{Body, MemberInfo, SourceError};

/// Default chunk size. 1 MiB, measured with `fwload validate` on the
/// benches/validate.sh archive (350,000 HCAD accounts, 523 MB): 2.37 s and
/// 43 MB peak RSS against 2.93 s and 81 MB with 4 MiB chunks (fewer bytes
/// wait in the reorder queue), and the same speed on the 213 MB plain
/// member (0.39 s against 0.38 s); `benches/pipeline.rs` found 256 KiB to
/// 1 MiB best and 16 MiB never better. Debug builds use 4 KiB so that
/// tests cross chunk boundaries.
pub const CHUNK_SIZE: usize =
    if cfg!(debug_assertions) { 4 * 1024 } else { 1 << 20 };

/// How a member is processed.
#[derive(Clone, Copy, Debug)]
pub struct PipelineOptions {
    /// Target chunk size in bytes (a chunk holds at least one record).
    pub chunk_size: usize,
    /// Chunks alive at once (being read, processed or waiting in order).
    pub in_flight: usize,
    /// Longest record, in bytes.
    pub max_record_bytes: usize,
}

impl Default for PipelineOptions {
    fn default() -> PipelineOptions {
        let threads = rayon::current_num_threads();
        PipelineOptions {
            chunk_size: CHUNK_SIZE,
            in_flight: 2 * threads + 1,
            max_record_bytes: crate::source::Limits::default()
                .max_record_bytes,
        }
    }
}

/// What the pipeline learned about a member besides its records.
#[derive(Clone, Debug)]
pub struct MemberRun {
    /// Member length in bytes.
    pub bytes: u64,
    /// sha256 of the member's bytes (hex).
    pub sha256: String,
    /// The header row, when the layout has one.
    pub header: Option<Bytes>,
    /// Record counts.
    pub counts: Counts,
    /// Rejects seen (also passed to the consumer).
    pub rejects: u64,
    /// The version the member was read with (a versioned layout).
    pub version: Option<crate::schema::Picked>,
}

/// Why a member's pipeline stopped.
#[derive(Debug)]
pub enum PipelineError<E> {
    /// The input could not be read.
    Source(SourceError),
    /// A record longer than the limit.
    RecordTooLarge {
        /// The input.
        input: String,
        /// The member.
        member: String,
        /// Where the record starts.
        byte: u64,
        /// Its line.
        line: u64,
        /// The limit in bytes.
        limit: usize,
    },
    /// The header row does not match the layout.
    Header(Box<HeaderDrift>),
    /// The member fits no version of its layout.
    Version(String),
    /// The member is UTF-16.
    Utf16 {
        /// The input.
        input: String,
        /// The member.
        member: String,
        /// How it was seen.
        found: Utf16,
    },
    /// The consumer failed.
    Sink(E),
}

impl<E: fmt::Display> fmt::Display for PipelineError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::Source(e) => write!(f, "{e}"),
            PipelineError::RecordTooLarge {
                input,
                member,
                byte,
                line,
                limit,
            } => write!(
                f,
                "{input}:{}: line {line}, byte {byte}: no record end within {limit} bytes (wrong line terminator, an unclosed quote, or not a text file?); raise --max-record-bytes if records really are this long",
                excerpt_text(member)
            ),
            PipelineError::Header(d) => write!(f, "{d}"),
            PipelineError::Version(m) => f.write_str(m),
            PipelineError::Utf16 { input, member, found } => {
                write!(f, "{input}:{}: {found}", excerpt_text(member))
            }
            PipelineError::Sink(e) => write!(f, "{e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for PipelineError<E> {}

impl<E> From<SourceError> for PipelineError<E> {
    fn from(e: SourceError) -> Self {
        PipelineError::Source(e)
    }
}

type Result<T, E> = std::result::Result<T, PipelineError<E>>;

/// Where a member stands in its run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Origin<'a> {
    /// The member's number within the run (carried into rows and keys).
    pub file: u32,
    /// The export version its input's control record states, which picks
    /// among a versioned layout's versions.
    pub export_version: Option<&'a str>,
}

/// Runs one member through the pipeline.
///
/// `origin` numbers the member within the run and carries its input's
/// export version; a versioned layout reads the member with the version
/// its first record fits (see [`crate::schema::Version`]);
/// `make_rows` makes an empty row sink when no used one can be reset
/// (on a worker); `consume` receives every chunk's result in input order,
/// on one thread. Sinks and key buffers go round: at most `in_flight` of
/// each are ever made.
///
/// # Errors
/// A read error, an oversized record, a header that does not match, or the
/// first error `consume` returned (after which no more chunks are cut and
/// the remaining results are dropped).
pub fn run_member<S, E>(
    plan: &Arc<Plan>,
    info: &MemberInfo,
    origin: Origin<'_>,
    body: Body<'_>,
    opts: &PipelineOptions,
    make_rows: Arc<dyn Fn() -> S + Send + Sync>,
    consume: &mut (
             dyn FnMut(&mut ChunkResult<S>) -> std::result::Result<(), E>
                 + Send
         ),
) -> Result<MemberRun, E>
where
    S: RowSink + 'static,
    E: Send,
{
    let input: Arc<str> = info.input.clone();
    let member: Arc<str> = Arc::from(info.name.as_str());
    // A member in memory is hashed beside the pipeline (see `hash`); a
    // stream by the consumer, in order, so the reader thread only reads
    // (and inflates).
    let whole = match &body {
        Body::Slice { data, .. } => Some(data.clone()),
        Body::Stream(_) => None,
    };
    let mut reader = ChunkReader::new(
        body,
        plan.framing,
        opts.chunk_size,
        opts.max_record_bytes,
    )
    .without_hash();
    let mut in_order = whole.is_none().then(sha2::Sha256::new);
    let utf16 = |found| PipelineError::Utf16 {
        input: input.to_string(),
        member: member.to_string(),
        found,
    };
    let read_err = |e: ReadError, reader_line: u64| match e {
        ReadError::Io(e) => {
            PipelineError::Source(SourceError::from_read(&input, &member, e))
        }
        ReadError::Utf16(found) => utf16(found),
        ReadError::RecordTooLarge { byte, line, limit } => {
            PipelineError::RecordTooLarge {
                input: input.to_string(),
                member: member.to_string(),
                byte,
                line: line.max(reader_line),
                limit,
            }
        }
    };
    let bom = reader.skip_bom().map_err(|e| read_err(e, 1))?;
    if let (Some(bom), Some(h)) = (bom, &mut in_order) {
        h.update(bom);
    }
    let file = origin.file;
    let mut version = None;
    let chosen;
    let plan = if plan.variants.is_empty() {
        plan
    } else {
        let len = reader.peek_record_len().map_err(|e| read_err(e, 1))?;
        let picked = plan
            .layout
            .pick_version(len, origin.export_version)
            .map_err(|m| {
                PipelineError::Version(format!(
                    "{input}:{}: {m}",
                    excerpt_text(&member)
                ))
            })?;
        chosen = plan.variants[picked.index].clone();
        version = Some(picked);
        &chosen
    };
    let mut header = None;
    if let Format::Delimited(d) = &plan.layout.format
        && d.header
    {
        let piece = reader.take_header_piece().map_err(|e| read_err(e, 1))?;
        if let (Some((_, bytes)), Some(h)) = (&piece, &mut in_order) {
            h.update(bytes);
        }
        let h = piece.map(|(h, _)| h);
        if let Some(h) = &h {
            if let Err(drift) = check_header(&plan.layout, h) {
                if looks_utf16(h) {
                    return Err(utf16(Utf16::NulEveryOtherByte));
                }
                return Err(PipelineError::Header(Box::new(
                    drift.at(&input, &member),
                )));
            }
            reader.skip_lines(1 + crate::split::count_lines(h));
        }
        header = h;
    }
    // A sink without values is given each chunk's lines from 0 and the
    // consumer numbers them in order, which spares the reader a pass over
    // every byte (a sink with values writes line numbers into its rows).
    if !S::VALUES {
        reader.stop_counting_lines();
    }
    let mut next_line = reader.next_line();
    // The hasher may be as many chunks ahead or behind as are in flight:
    // on the 213 MB plain HCAD member, leads of 1 and 2 chunks were 6%
    // slower than 5 (medians of 9 runs; the reader waits), 8 and 12 no
    // faster; each chunk of lead is up to a chunk more of the mapping
    // resident.
    let window = hash::Window::new(
        reader.mapping(),
        opts.in_flight.max(1) * opts.chunk_size,
        whole.is_some(),
    );
    let (tok_tx, tok_rx) =
        crossbeam_channel::bounded::<()>(opts.in_flight.max(1));
    for _ in 0..opts.in_flight.max(1) {
        let _ = tok_tx.send(());
    }
    let (res_tx, res_rx) = crossbeam_channel::unbounded::<ChunkResult<S>>();
    let (pool_tx, pool_rx) = crossbeam_channel::bounded::<(S, Vec<KeyEntry>)>(
        opts.in_flight.max(1),
    );
    let cancel = AtomicBool::new(false);
    let mut counts = Counts::default();
    let mut rejects = 0u64;
    let outcome = std::thread::scope(|sc| {
        let _stop = window.stop_on_drop();
        let beside = whole.as_ref().map(|data| {
            sc.spawn(|| window.hash(data, opts.chunk_size.max(64 * 1024)))
        });
        let consumer = sc.spawn(|| {
            let mut pending: BTreeMap<u64, ChunkResult<S>> = BTreeMap::new();
            let mut next = 0u64;
            let mut failed = None;
            for r in res_rx {
                pending.insert(r.seq, r);
                while let Some(mut r) = pending.remove(&next) {
                    next += 1;
                    let end = r.start_byte + r.len as u64;
                    if let Some(h) = &mut in_order {
                        h.update(&r.data);
                    }
                    r.number_lines(next_line);
                    next_line += r.lines;
                    counts += r.counts;
                    rejects += r.rejects.len() as u64;
                    if failed.is_none()
                        && let Err(e) = consume(&mut r)
                    {
                        failed = Some(e);
                        cancel.store(true, Ordering::Relaxed);
                    }
                    if r.rows.reset() {
                        r.keys.clear();
                        let _ = pool_tx.try_send((r.rows, r.keys));
                    }
                    window.consumed_to(end);
                    let _ = tok_tx.send(());
                }
            }
            failed
        });
        let mut err = None;
        loop {
            if cancel.load(Ordering::Relaxed) || tok_rx.recv().is_err() {
                break;
            }
            window.cut_to(reader.position());
            match reader.next_chunk() {
                Ok(Some(chunk)) => {
                    let (tx, plan, input, member, make, pool) = (
                        res_tx.clone(),
                        plan.clone(),
                        input.clone(),
                        member.clone(),
                        make_rows.clone(),
                        pool_rx.clone(),
                    );
                    rayon::spawn(move || {
                        let (rows, keys) = pool
                            .try_recv()
                            .unwrap_or_else(|_| (make(), Vec::new()));
                        let r = process_chunk(
                            &plan, &input, &member, file, &chunk, rows, keys,
                        );

                        let _ = tx.send(r);
                    });
                }
                Ok(None) => {
                    window.cut_all();
                    break;
                }
                Err(e) => {
                    let line = reader.next_line();
                    err = Some(read_err(e, line));
                    break;
                }
            }
        }
        drop(tok_rx);
        drop(res_tx);
        let failed = consumer.join().expect("pipeline consumer panicked");
        if err.is_some() || failed.is_some() {
            window.stop();
        }
        let digest = beside.map(|h| h.join().expect("member hasher panicked"));
        match (err, failed) {
            (_, Some(e)) => Err(PipelineError::Sink(e)),
            (Some(e), None) => Err(e),
            (None, None) => Ok(digest.flatten()),
        }
    });
    let digest = outcome?;
    let (_, bytes) = reader.finish();
    let sha256 = match in_order {
        Some(h) => crate::digest::sha256_hex(h),
        None => digest.expect("a member hashed beside is hashed to its end"),
    };
    Ok(MemberRun { bytes, sha256, header, counts, rejects, version })
}
