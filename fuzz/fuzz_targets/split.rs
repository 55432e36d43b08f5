//! Record framing and chunk cutting.
//!
//! Arbitrary bytes are cut into chunks by `ChunkReader` three ways: over a
//! slice body, over a streaming body reading a `Cursor`, and over a
//! streaming body that returns short reads (and `Interrupted` now and
//! then). For each of several chunk sizes the three must give identical
//! chunks, header, error and digest; the chunks must concatenate to the
//! input, carry their byte offset and first line, end on a record boundary
//! (all but the last), and iterating `Records` over each chunk must give
//! the records `Records` finds in the whole input. A UTF-8 byte order mark
//! opening the input is skipped (the records are those after it); a
//! UTF-16 one stops every way of cutting before any chunk.
#![no_main]

use std::io::{self, Cursor, Read};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

use fwload::pipeline::{ChunkReader, ReadError, UTF8_BOM, Utf16};
use fwload::source::{Body, slice_body};
use fwload::split::{Ending, Framing, Records, last_boundary};

#[derive(Arbitrary, Debug)]
enum FramingChoice {
    /// LF-terminated lines, `"` an ordinary byte.
    Lines,
    /// Lines with standard quoting; the byte picks the delimiter.
    Quoted(u8),
    /// Fixed blocks of `1 + n % 64` bytes.
    Blocks(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    framing: FramingChoice,
    /// Chunk sizes (each `1 + s % 64`); the input length is added.
    sizes: [u8; 3],
    /// A small record limit (`1 + n % 64`) instead of a large one.
    limit: Option<u8>,
    /// Bytes per read of the trickling stream (`1 + n % 16`).
    step: u8,
    /// Take a header record first, as a delimited layout with a header
    /// row does (lines framing only: headers exist only there).
    header: bool,
    data: Vec<u8>,
}

/// A reader handing out at most `step` bytes per call, failing with
/// `Interrupted` every third call.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
    calls: u32,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(3) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// One record as `Records` reports it, with its offset in the member.
#[derive(Debug, PartialEq, Eq)]
struct Rec {
    bytes: Vec<u8>,
    offset: usize,
    ending: Ending,
    extra_lines: u32,
    unterminated_quote: bool,
}

fn records(buf: &[u8], framing: Framing, base: usize) -> Vec<Rec> {
    Records::new(buf, framing)
        .map(|r| Rec {
            bytes: r.bytes.to_vec(),
            offset: base + r.offset,
            ending: r.ending,
            extra_lines: r.extra_lines,
            unterminated_quote: r.unterminated_quote,
        })
        .collect()
}

/// Whether a record (a final one, without terminator) ends inside a quoted
/// field: `"` opens a quoted field only at the start of a field, `""`
/// inside it is a quote, any other `"` closes it.
fn open_at_end(rec: &[u8], delim: u8) -> bool {
    let mut quoted = false;
    let mut field_start = true;
    let mut i = 0;
    while i < rec.len() {
        let b = rec[i];
        i += 1;
        if quoted {
            if b == b'"' {
                if rec.get(i) == Some(&b'"') {
                    i += 1;
                } else {
                    quoted = false;
                }
            }
        } else if b == delim {
            field_start = true;
            continue;
        } else if b == b'"' && field_start {
            quoted = true;
        }
        field_start = false;
    }
    quoted
}

/// Checks the records of the whole input against the framing rules.
fn check_records(recs: &[Rec], data: &[u8], framing: Framing) {
    let mut pos = 0;
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.offset, pos, "record {i} does not follow the last");
        let end = pos + r.bytes.len();
        assert_eq!(&data[pos..end], &r.bytes[..]);
        pos = end
            + match r.ending {
                Ending::Lf => 1,
                Ending::CrLf => 2,
                Ending::Eof => 0,
            };
        let lfs = r.bytes.iter().filter(|&&b| b == b'\n').count() as u32;
        match framing {
            Framing::Blocks { record_length } => {
                assert_eq!(r.ending, Ending::Eof);
                assert!(r.bytes.len() == record_length || pos == data.len());
                assert_eq!((r.extra_lines, r.unterminated_quote), (0, false));
            }
            Framing::Lines { quoted } => {
                assert_eq!(r.extra_lines, lfs, "record {i}: extra lines");
                let last = r.ending == Ending::Eof;
                let open =
                    quoted.is_some_and(|d| last && open_at_end(&r.bytes, d));
                assert_eq!(
                    r.unterminated_quote, open,
                    "record {i}: unterminated quote flag"
                );
                if quoted.is_none() {
                    assert_eq!(lfs, 0, "record {i} holds a line feed");
                }
            }
        }
    }
    assert_eq!(pos, data.len(), "records do not cover the input");
}

/// Everything one way of cutting produced.
#[derive(Debug, PartialEq, Eq)]
struct Cut {
    header: Option<Option<Vec<u8>>>,
    /// `(seq, start_byte, first_line, data)`.
    chunks: Vec<(u64, u64, u64, Vec<u8>)>,
    error: Option<CutError>,
    digest: (String, u64),
}

/// Why a way of cutting stopped.
#[derive(Debug, PartialEq, Eq)]
enum CutError {
    /// `RecordTooLarge { byte, line, limit }`.
    TooLarge(u64, u64, usize),
    /// A UTF-16 byte order mark.
    Utf16(Utf16),
}

fn too_large(e: ReadError) -> CutError {
    match e {
        ReadError::RecordTooLarge { byte, line, limit } => {
            CutError::TooLarge(byte, line, limit)
        }
        ReadError::Utf16(u) => CutError::Utf16(u),
        ReadError::Io(e) => panic!("in-memory read failed: {e}"),
    }
}

fn cut(
    body: Body<'_>,
    framing: Framing,
    size: usize,
    limit: usize,
    header: bool,
) -> Cut {
    let mut r = ChunkReader::new(body, framing, size, limit);
    let mut out = Cut {
        header: None,
        chunks: Vec::new(),
        error: None,
        digest: (String::new(), 0),
    };
    if header {
        match r.take_header() {
            Ok(h) => {
                if let Some(h) = &h {
                    r.skip_lines(1 + fwload::split::count_lines(h));
                }
                out.header = Some(h.map(|h| h.to_vec()));
            }
            Err(e) => out.error = Some(too_large(e)),
        }
    }
    while out.error.is_none() {
        match r.next_chunk() {
            Ok(Some(c)) => out.chunks.push((
                c.seq,
                c.start_byte,
                // A reader that counts lines (this one never stops)
                // gives every chunk its first line.
                c.first_line.expect("a counting reader numbers chunks"),
                c.data.to_vec(),
            )),
            Ok(None) => break,
            Err(e) => out.error = Some(too_large(e)),
        }
    }
    out.digest = r.finish();
    out
}

/// Checks one way of cutting against the input and its records: `data`
/// is the input after the `skip` bytes of a byte order mark, and
/// positions in it are `skip` less than the member's.
fn check_cut(
    a: &Cut,
    (data, skip): (&[u8], usize),
    framing: Framing,
    limit: usize,
    whole: &[Rec],
) {
    // A UTF-16 mark counts only where the member starts.
    let mark = if skip == 0 { Utf16::bom(data) } else { None };
    if let Some(CutError::Utf16(u)) = a.error {
        assert_eq!(mark, Some(u), "UTF-16 without its mark");
        assert!(a.chunks.is_empty() && a.header.is_none());
        assert_eq!(a.digest.1, 0);
        return;
    }
    assert_eq!(mark, None, "a UTF-16 mark not refused");
    // The pieces tile a prefix of the input (all of it without error).
    let mut pos = 0usize;
    let mut want = whole.iter();
    if let Some(h) = &a.header {
        let first = want.next();
        assert_eq!(
            h.as_deref(),
            first.map(|r| &r.bytes[..]),
            "header is not the first record"
        );
        pos = match first {
            Some(r) => match r.ending {
                Ending::Lf => r.offset + r.bytes.len() + 1,
                Ending::CrLf => r.offset + r.bytes.len() + 2,
                Ending::Eof => data.len(),
            },
            None => 0,
        };
    }
    let line_at = |pos: usize| match framing {
        Framing::Lines { .. } => {
            1 + data[..pos].iter().filter(|&&b| b == b'\n').count()
        }
        Framing::Blocks { record_length } => 1 + pos / record_length,
    };
    let mut got = Vec::new();
    for (i, (seq, start, line, bytes)) in a.chunks.iter().enumerate() {
        assert_eq!(*seq, i as u64, "chunk numbers");
        assert_eq!(*start as usize, skip + pos, "chunk {i} start byte");
        assert!(!bytes.is_empty(), "chunk {i} is empty");
        assert_eq!(&data[pos..pos + bytes.len()], &bytes[..]);
        assert_eq!(*line as usize, line_at(pos), "chunk {i} first line");
        let last = i + 1 == a.chunks.len() && a.error.is_none();
        if !last {
            assert_eq!(
                last_boundary(framing, bytes),
                Some(bytes.len()),
                "chunk {i} does not end on a record boundary"
            );
        }
        got.extend(records(bytes, framing, pos));
        pos += bytes.len();
    }
    match a.error {
        None => {
            assert_eq!(pos, data.len(), "chunks do not cover the input");
            assert_eq!(a.digest.1 as usize, skip + data.len());
            let rest: Vec<&Rec> = want.collect();
            assert_eq!(got.iter().collect::<Vec<_>>(), rest);
        }
        Some(CutError::Utf16(_)) => unreachable!("returned above"),
        Some(CutError::TooLarge(byte, line, lim)) => {
            assert_eq!(lim, limit);
            assert_eq!(byte as usize, skip + pos, "error position");
            assert_eq!(line as usize, line_at(pos), "error line");
            assert_eq!(a.digest.1 as usize, skip + pos);
            // The records before the error are whole records.
            let before: Vec<&Rec> = want.take(got.len()).collect();
            assert_eq!(got.iter().collect::<Vec<_>>(), before);
            // The record there really is longer than the limit: no
            // boundary within limit + 1 bytes.
            let tail = &data[pos..];
            assert!(tail.len() > limit, "error on a short tail");
            assert_eq!(last_boundary(framing, &tail[..limit + 1]), None);
        }
    }
}

fuzz_target!(|input: Input| {
    let data = &input.data[..];
    let framing = match input.framing {
        FramingChoice::Lines => Framing::Lines { quoted: None },
        FramingChoice::Quoted(d) => Framing::Lines {
            quoted: Some(match d % 6 {
                0 => b',',
                1 => b'\t',
                2 => b'|',
                3 => b';',
                4 => b' ',
                // Any other byte a schema accepts as a delimiter.
                _ => match d & 0x7f {
                    b'\n' | b'\r' | b'"' => b',',
                    b => b,
                },
            }),
        },
        FramingChoice::Blocks(n) => {
            Framing::Blocks { record_length: 1 + n as usize % 64 }
        }
    };
    let header = input.header && matches!(framing, Framing::Lines { .. });
    let limit = input.limit.map_or(1 << 20, |n| 1 + n as usize % 64);
    let step = 1 + input.step as usize % 16;

    // The records of the whole input after a UTF-8 byte order mark, cut
    // by nobody.
    let skip = if data.starts_with(UTF8_BOM) { UTF8_BOM.len() } else { 0 };
    let whole = records(&data[skip..], framing, 0);
    check_records(&whole, &data[skip..], framing);

    let mut sizes: Vec<usize> =
        input.sizes.iter().map(|&s| 1 + s as usize % 64).collect();
    sizes.push(data.len().max(1));
    for size in sizes {
        let a = cut(slice_body(data.to_vec()), framing, size, limit, header);
        check_cut(&a, (&data[skip..], skip), framing, limit, &whole);
        let mut cur = Cursor::new(data);
        let b = cut(Body::Stream(&mut cur), framing, size, limit, header);
        check_cut(&b, (&data[skip..], skip), framing, limit, &whole);
        let mut t = Trickle { data, step, calls: 0 };
        let c = cut(Body::Stream(&mut t), framing, size, limit, header);
        check_cut(&c, (&data[skip..], skip), framing, limit, &whole);
        assert_eq!(a, b, "slice and stream disagree, chunk size {size}");
        assert_eq!(a, c, "slice and short reads disagree, chunk size {size}");
    }
});
