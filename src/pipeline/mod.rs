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
mod locate;
mod read;
mod worker;

pub use control::{
    Control, ControlError, first_field_value, input_year, read_control,
};
pub use header::{HeaderDrift, check_header, looks_utf16};
pub use locate::record_offsets;
pub use read::{Chunk, ChunkReader, ReadError, UTF8_BOM, Utf16};
pub use worker::{ChunkResult, NoRows, Plan, key_bytes, process_chunk};

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
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
    let name = MemberName {
        input: info.input.clone(),
        member: Arc::from(info.name.as_str()),
    };
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
    let start = name.start(&mut reader, plan, origin, in_order.as_mut())?;
    // A sink without values is given each chunk's lines from 0 and the
    // consumer numbers them in order, which spares the reader a pass over
    // every byte (a sink with values writes line numbers into its rows).
    if !S::VALUES {
        reader.stop_counting_lines();
    }
    let mut tally = Tally {
        in_order,
        next_line: reader.next_line(),
        counts: Counts::default(),
        rejects: 0,
    };
    let flow = Flow {
        plan: &start.plan,
        name: &name,
        file: origin.file,
        opts,
        make_rows,
    };
    let digest = flow.run(&mut reader, whole.as_ref(), &mut tally, consume)?;
    let (_, bytes) = reader.finish();
    let sha256 = match tally.in_order {
        Some(h) => crate::digest::sha256_hex(h),
        None => digest.expect("a member hashed beside is hashed to its end"),
    };
    Ok(MemberRun {
        bytes,
        sha256,
        header: start.header,
        counts: tally.counts,
        rejects: tally.rejects,
        version: start.version,
    })
}

/// The input and member being read, for the errors that name them.
struct MemberName {
    input: Arc<str>,
    member: Arc<str>,
}

/// What the first records of a member decided: the plan it is read with
/// (the version its first record fits, for a versioned layout) and its
/// header row.
struct Start {
    plan: Arc<Plan>,
    version: Option<crate::schema::Picked>,
    header: Option<Bytes>,
}

/// What the consumer adds up over a member's chunks, in order.
struct Tally {
    /// The member's digest, when it is hashed in order.
    in_order: Option<sha2::Sha256>,
    /// The line the next chunk starts on.
    next_line: u64,
    counts: Counts,
    rejects: u64,
}

impl MemberName {
    fn utf16<E>(&self, found: Utf16) -> PipelineError<E> {
        PipelineError::Utf16 {
            input: self.input.to_string(),
            member: self.member.to_string(),
            found,
        }
    }

    /// The error of a failed read, the reader standing at `reader_line`.
    fn read_err<E>(&self, e: ReadError, reader_line: u64) -> PipelineError<E> {
        match e {
            ReadError::Io(e) => PipelineError::Source(SourceError::from_read(
                &self.input,
                &self.member,
                e,
            )),
            ReadError::Utf16(found) => self.utf16(found),
            ReadError::RecordTooLarge { byte, line, limit } => {
                PipelineError::RecordTooLarge {
                    input: self.input.to_string(),
                    member: self.member.to_string(),
                    byte,
                    line: line.max(reader_line),
                    limit,
                }
            }
        }
    }

    /// Reads what comes before the first chunk: a byte-order mark, the
    /// record that picks the version, the header row (checked against the
    /// layout). What is read is added to `in_order`.
    fn start<E>(
        &self,
        reader: &mut ChunkReader<'_>,
        plan: &Arc<Plan>,
        origin: Origin<'_>,
        mut in_order: Option<&mut sha2::Sha256>,
    ) -> Result<Start, E> {
        let bom = reader.skip_bom().map_err(|e| self.read_err(e, 1))?;
        if let (Some(bom), Some(h)) = (bom, &mut in_order) {
            h.update(bom);
        }
        let (plan, version) = if plan.variants.is_empty() {
            (plan.clone(), None)
        } else {
            let len =
                reader.peek_record_len().map_err(|e| self.read_err(e, 1))?;
            let picked = plan
                .layout
                .pick_version(len, origin.export_version)
                .map_err(|m| {
                    PipelineError::Version(format!(
                        "{}:{}: {m}",
                        self.input,
                        excerpt_text(&self.member)
                    ))
                })?;
            (plan.variants[picked.index].clone(), Some(picked))
        };
        let header = match &plan.layout.format {
            Format::Delimited(d) if d.header => {
                self.header(reader, &plan, in_order)?
            }
            _ => None,
        };
        Ok(Start { plan, version, header })
    }

    /// Takes the header row and checks it against the layout.
    fn header<E>(
        &self,
        reader: &mut ChunkReader<'_>,
        plan: &Plan,
        in_order: Option<&mut sha2::Sha256>,
    ) -> Result<Option<Bytes>, E> {
        let piece =
            reader.take_header_piece().map_err(|e| self.read_err(e, 1))?;
        if let (Some((_, bytes)), Some(h)) = (&piece, in_order) {
            h.update(bytes);
        }
        let h = piece.map(|(h, _)| h);
        if let Some(h) = &h {
            if let Err(drift) = check_header(&plan.layout, h) {
                if looks_utf16(h) {
                    return Err(self.utf16(Utf16::NulEveryOtherByte));
                }
                return Err(PipelineError::Header(Box::new(
                    drift.at(&self.input, &self.member),
                )));
            }
            reader.skip_lines(1 + crate::split::count_lines(h));
        }
        Ok(h)
    }
}

/// The chunks of one member on their way: cut by the reader (this
/// thread), processed by rayon workers, consumed in order by a scoped
/// thread.
struct Flow<'a, S> {
    plan: &'a Arc<Plan>,
    name: &'a MemberName,
    file: u32,
    opts: &'a PipelineOptions,
    make_rows: Arc<dyn Fn() -> S + Send + Sync>,
}

/// A used sink and key buffer, on their way back to the workers.
type Used<S> = (S, Vec<KeyEntry>);

/// The channels between reader, workers and consumer: tokens bound the
/// chunks alive; results go to the consumer; used sinks and key buffers
/// come back to the workers.
struct Lanes<S> {
    tokens: (Sender<()>, Receiver<()>),
    results: (Sender<ChunkResult<S>>, Receiver<ChunkResult<S>>),
    pool: (Sender<Used<S>>, Receiver<Used<S>>),
}

impl<S: RowSink + 'static> Flow<'_, S> {
    /// Runs every chunk through; returns the member's digest when it was
    /// hashed beside (`whole`).
    fn run<E: Send>(
        &self,
        reader: &mut ChunkReader<'_>,
        whole: Option<&Bytes>,
        tally: &mut Tally,
        consume: &mut (
                 dyn FnMut(&mut ChunkResult<S>) -> std::result::Result<(), E>
                     + Send
             ),
    ) -> Result<Option<String>, E> {
        let in_flight = self.opts.in_flight.max(1);
        // The hasher may be as many chunks ahead or behind as are in
        // flight: on the 213 MB plain HCAD member, leads of 1 and 2 chunks
        // were 6% slower than 5 (medians of 9 runs; the reader waits), 8
        // and 12 no faster; each chunk of lead is up to a chunk more of the
        // mapping resident.
        let window = hash::Window::new(
            reader.mapping(),
            in_flight * self.opts.chunk_size,
            whole.is_some(),
        );
        let lanes = Lanes {
            tokens: crossbeam_channel::bounded(in_flight),
            results: crossbeam_channel::unbounded(),
            pool: crossbeam_channel::bounded(in_flight),
        };
        for _ in 0..in_flight {
            let _ = lanes.tokens.0.send(());
        }
        let cancel = AtomicBool::new(false);
        std::thread::scope(|sc| {
            let _stop = window.stop_on_drop();
            let chunk_size = self.opts.chunk_size.max(64 * 1024);
            let beside = whole.map(|data| {
                let window = &window;
                sc.spawn(move || window.hash(data, chunk_size))
            });
            let Lanes { tokens, results, pool } = lanes;
            let (res_rx, pool_tx) = (results.1, pool.0);
            let (window_ref, cancel_ref) = (&window, &cancel);
            let tok_tx = tokens.0;
            let consumer = sc.spawn(move || {
                consume_in_order(
                    res_rx, tally, consume, cancel_ref, &pool_tx, window_ref,
                    &tok_tx,
                )
            });
            let err = self.cut_chunks(
                reader, &window, &cancel, &tokens.1, results.0, pool.1,
            );
            drop(tokens.1);
            let failed = consumer.join().expect("pipeline consumer panicked");
            if err.is_some() || failed.is_some() {
                window.stop();
            }
            let digest =
                beside.map(|h| h.join().expect("member hasher panicked"));
            match (err, failed) {
                (_, Some(e)) => Err(PipelineError::Sink(e)),
                (Some(e), None) => Err(e),
                (None, None) => Ok(digest.flatten()),
            }
        })
    }

    /// Cuts chunks while tokens come and hands each to a rayon worker;
    /// stops at the end of the member, on a cancel, or on a read error
    /// (returned).
    fn cut_chunks<E>(
        &self,
        reader: &mut ChunkReader<'_>,
        window: &hash::Window,
        cancel: &AtomicBool,
        tokens: &Receiver<()>,
        results: Sender<ChunkResult<S>>,
        pool: Receiver<Used<S>>,
    ) -> Option<PipelineError<E>> {
        loop {
            if cancel.load(Ordering::Relaxed) || tokens.recv().is_err() {
                return None;
            }
            window.cut_to(reader.position());
            match reader.next_chunk() {
                Ok(Some(chunk)) => {
                    let (tx, plan, input, member, make, pool) = (
                        results.clone(),
                        self.plan.clone(),
                        self.name.input.clone(),
                        self.name.member.clone(),
                        self.make_rows.clone(),
                        pool.clone(),
                    );
                    let file = self.file;
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
                    return None;
                }
                Err(e) => {
                    let line = reader.next_line();
                    return Some(self.name.read_err(e, line));
                }
            }
        }
    }
}

/// Receives the workers' results, puts them in input order and hands
/// each to `consume`; after the first error `consume` returns, the rest
/// are dropped (and the reader told to stop). Each consumed chunk gives
/// back its token, its window share and (reset) its sink.
fn consume_in_order<S: RowSink, E>(
    results: Receiver<ChunkResult<S>>,
    tally: &mut Tally,
    consume: &mut (
             dyn FnMut(&mut ChunkResult<S>) -> std::result::Result<(), E>
                 + Send
         ),
    cancel: &AtomicBool,
    pool: &Sender<Used<S>>,
    window: &hash::Window,
    tokens: &Sender<()>,
) -> Option<E> {
    let mut pending: BTreeMap<u64, ChunkResult<S>> = BTreeMap::new();
    let mut next = 0u64;
    let mut failed = None;
    for r in results {
        pending.insert(r.seq, r);
        while let Some(mut r) = pending.remove(&next) {
            next += 1;
            let end = r.start_byte + r.len as u64;
            if let Some(h) = &mut tally.in_order {
                h.update(&r.data);
            }
            r.number_lines(tally.next_line);
            tally.next_line += r.lines;
            tally.counts += r.counts;
            tally.rejects += r.rejects.len() as u64;
            if failed.is_none()
                && let Err(e) = consume(&mut r)
            {
                failed = Some(e);
                cancel.store(true, Ordering::Relaxed);
            }
            if r.rows.reset() {
                r.keys.clear();
                let _ = pool.try_send((r.rows, r.keys));
            }
            window.consumed_to(end);
            let _ = tokens.send(());
        }
    }
    failed
}
