//! Cutting a member into numbered, record-aligned chunks.
//!
//! Two input shapes, one cutter: a whole slice (a mapped file) is cut
//! without copying; a stream fills a bounded buffer with whole records.
//! Either way every chunk ends on a record boundary, carries its absolute
//! byte offset and first line, and the member's sha256 is computed over
//! the bytes as they pass. A UTF-8 byte order mark opening a member is
//! skipped (counted and hashed, never part of a record); a UTF-16 one
//! stops the member.

use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};

use crate::source::{Body, MappedFile};
use crate::split::{Framing, Records, count_lines, last_boundary};

/// A record-aligned piece of a member.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// Sequence number in the member, from 0.
    pub seq: u64,
    /// The bytes: whole records (the member's last may lack a terminator).
    pub data: Bytes,
    /// Offset of `data[0]` in the member, from 0.
    pub start_byte: u64,
    /// Line number of the first record, from 1; `None` when the reader
    /// does not count lines (see [`ChunkReader::stop_counting_lines`]):
    /// the chunk's lines are then numbered from 0, and whoever takes the
    /// chunks in order adds the line it starts on.
    pub first_line: Option<u64>,
}

/// Why cutting stopped.
#[derive(Debug)]
pub enum ReadError {
    /// Reading the stream failed.
    Io(io::Error),
    /// The member is UTF-16 text, which no layout reads.
    Utf16(Utf16),
    /// No record boundary within the record size limit.
    RecordTooLarge {
        /// Where the record starts.
        byte: u64,
        /// Its line.
        line: u64,
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Utf16(u) => write!(f, "{u}"),
            ReadError::RecordTooLarge { byte, line, limit } => write!(
                f,
                "line {line}, byte {byte}: no record end within {limit} bytes"
            ),
        }
    }
}

/// The UTF-8 byte order mark, skipped where a member starts with it.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// How a member was seen to be UTF-16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Utf16 {
    /// It starts with `FF FE`.
    LittleEndianBom,
    /// It starts with `FE FF`.
    BigEndianBom,
    /// Its header row has a NUL byte every other byte.
    NulEveryOtherByte,
}

impl Utf16 {
    /// The UTF-16 byte order mark `start` begins with, if any.
    pub fn bom(start: &[u8]) -> Option<Utf16> {
        if start.starts_with(b"\xFF\xFE") {
            Some(Utf16::LittleEndianBom)
        } else if start.starts_with(b"\xFE\xFF") {
            Some(Utf16::BigEndianBom)
        } else {
            None
        }
    }
}

impl fmt::Display for Utf16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self {
            Utf16::LittleEndianBom => {
                "it starts with the little-endian byte order mark FF FE"
            }
            Utf16::BigEndianBom => {
                "it starts with the big-endian byte order mark FE FF"
            }
            Utf16::NulEveryOtherByte => {
                "its header row has a NUL byte every other byte"
            }
        };
        write!(
            f,
            "the member is UTF-16 ({why}); convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)"
        )
    }
}

enum Input<'a> {
    Slice { data: Bytes, pos: usize, map: Option<Arc<MappedFile>> },
    Stream { r: &'a mut dyn Read, buf: BytesMut, eof: bool },
}

/// Cuts a member body into chunks.
pub struct ChunkReader<'a> {
    input: Input<'a>,
    framing: Framing,
    chunk_size: usize,
    max_record: usize,
    /// `None` when the caller hashes the chunks itself.
    hasher: Option<Sha256>,
    seq: u64,
    next_byte: u64,
    next_line: u64,
    /// `None` while lines are counted; else the offset in the slice up to
    /// which `next_line` is right.
    uncounted_from: Option<usize>,
    /// Whether the member's first bytes were looked at for a byte order
    /// mark.
    started: bool,
}

impl<'a> ChunkReader<'a> {
    /// A reader of `body` cutting chunks of about `chunk_size` bytes (at
    /// least one record each) under `framing`.
    pub fn new(
        body: Body<'a>,
        framing: Framing,
        chunk_size: usize,
        max_record: usize,
    ) -> ChunkReader<'a> {
        let input = match body {
            Body::Slice { data, map } => Input::Slice { data, pos: 0, map },
            Body::Stream(r) => {
                Input::Stream { r, buf: BytesMut::new(), eof: false }
            }
        };
        ChunkReader {
            input,
            framing,
            chunk_size: chunk_size.max(1),
            max_record,
            hasher: Some(Sha256::new()),
            seq: 0,
            next_byte: 0,
            next_line: 1,
            uncounted_from: None,
            started: false,
        }
    }

    /// Looks at the member's first bytes, which the first cut does
    /// anyway: a UTF-8 byte order mark is skipped (counted in byte
    /// offsets and hashed, but no part of a record) and returned, for a
    /// caller that hashes the pieces itself; later calls return `None`.
    ///
    /// # Errors
    /// A read error, or [`ReadError::Utf16`] for a UTF-16 byte order mark.
    pub fn skip_bom(&mut self) -> Result<Option<&'static [u8]>, ReadError> {
        if self.started {
            return Ok(None);
        }
        self.started = true;
        let start: &[u8] = match &mut self.input {
            Input::Slice { data, pos, .. } => &data[*pos..],
            Input::Stream { r, buf, eof } => {
                fill(&mut **r, buf, eof, UTF8_BOM.len() - 1)?;
                buf
            }
        };
        if let Some(u) = Utf16::bom(start) {
            return Err(ReadError::Utf16(u));
        }
        if !start.starts_with(UTF8_BOM) {
            return Ok(None);
        }
        match &mut self.input {
            Input::Slice { pos, .. } => *pos += UTF8_BOM.len(),
            Input::Stream { buf, .. } => {
                let _ = buf.split_to(UTF8_BOM.len());
            }
        }
        if let Some(h) = &mut self.hasher {
            h.update(UTF8_BOM);
        }
        self.next_byte += UTF8_BOM.len() as u64;
        Ok(Some(UTF8_BOM))
    }

    /// The length of the member's first record (without terminator),
    /// without taking it: `None` for an empty member. Reads no further
    /// than the record's end (or the record size limit).
    ///
    /// # Errors
    /// A read error.
    pub fn peek_record_len(&mut self) -> Result<Option<usize>, ReadError> {
        let framing = self.framing;
        let first = |buf: &[u8]| {
            Records::new(buf, framing).next().map(|r| r.bytes.len())
        };
        match &mut self.input {
            Input::Slice { data, pos, .. } => Ok(first(&data[*pos..])),
            Input::Stream { r, buf, eof } => {
                let mut window = 64 * 1024;
                loop {
                    fill(&mut **r, buf, eof, window)?;
                    if *eof
                        || last_boundary(framing, buf).is_some()
                        || window > self.max_record
                    {
                        return Ok(first(buf));
                    }
                    window *= 2;
                }
            }
        }
    }

    /// Stops counting lines, for a caller that numbers each chunk's lines
    /// from 0 and adds where the chunk starts itself (chunks then carry
    /// no first line). Only a sliced body stops: the line of a record too
    /// long is then counted from the slice when it happens, which a
    /// stream cannot do.
    pub fn stop_counting_lines(&mut self) {
        if let Input::Slice { pos, .. } = &self.input {
            self.uncounted_from = Some(*pos);
        }
    }

    /// The mapping behind a sliced body, for releasing consumed pages.
    pub fn mapping(&self) -> Option<Arc<MappedFile>> {
        match &self.input {
            Input::Slice { map, .. } => map.clone(),
            Input::Stream { .. } => None,
        }
    }

    /// Takes the first record (a header row) off the member: its bytes
    /// without terminator, or `None` for an empty member.
    ///
    /// # Errors
    /// As [`ChunkReader::next_chunk`].
    pub fn take_header(&mut self) -> Result<Option<Bytes>, ReadError> {
        Ok(self.take_header_piece()?.map(|(rec, _)| rec))
    }

    /// As [`ChunkReader::take_header`], also returning the bytes consumed
    /// (the record with its terminator), for a caller that hashes.
    ///
    /// # Errors
    /// As [`ChunkReader::next_chunk`].
    pub fn take_header_piece(
        &mut self,
    ) -> Result<Option<(Bytes, Bytes)>, ReadError> {
        let framing = self.framing;
        let Some(first) = self.cut(
            |buf| last_boundary(framing, buf).map(|_| first_len(buf, framing)),
            1,
            true,
        )?
        else {
            return Ok(None);
        };
        let rec = Records::new(&first, framing)
            .next()
            .map(|r| first.slice_ref(r.bytes));
        Ok(rec.map(|r| (r, first)))
    }

    /// The next chunk, or `None` at the end of the member.
    ///
    /// # Errors
    /// A read error, or a record longer than the limit.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, ReadError> {
        let framing = self.framing;
        let Some(data) = self.cut(
            |buf| last_boundary(framing, buf),
            self.chunk_size,
            false,
        )?
        else {
            return Ok(None);
        };
        let counting = self.uncounted_from.is_none();
        let chunk = Chunk {
            seq: self.seq,
            start_byte: self.next_byte - data.len() as u64,
            first_line: counting.then_some(self.next_line),
            data,
        };
        self.seq += 1;
        if counting {
            self.next_line += match self.framing {
                Framing::Blocks { record_length } => {
                    chunk.data.len().div_ceil(record_length) as u64
                }
                Framing::Lines { .. } => count_lines(&chunk.data),
            };
        }
        Ok(Some(chunk))
    }

    /// Cuts the next piece: at most `want` bytes when a boundary lies
    /// within them (`boundary` finds the cut in a window), more when a
    /// record is longer, and the whole tail once it fits in `want` (unless
    /// `first_only`, which cuts exactly at the first boundary).
    fn cut(
        &mut self,
        boundary: impl Fn(&[u8]) -> Option<usize>,
        want: usize,
        first_only: bool,
    ) -> Result<Option<Bytes>, ReadError> {
        self.skip_bom()?;
        let max_record = self.max_record;
        let start_byte = self.next_byte;
        let line = self.next_line;
        let uncounted_from = self.uncounted_from;
        let too_large = |line| ReadError::RecordTooLarge {
            byte: start_byte,
            line,
            limit: max_record,
        };
        let piece = match &mut self.input {
            Input::Slice { data, pos, .. } => {
                let rest = &data[*pos..];
                if rest.is_empty() {
                    return Ok(None);
                }
                let n = if rest.len() <= want && !first_only {
                    rest.len()
                } else {
                    let mut window = want.min(rest.len());
                    loop {
                        if let Some(b) = boundary(&rest[..window]) {
                            break b;
                        }
                        if window == rest.len() {
                            break rest.len();
                        }
                        if window > max_record {
                            // Lines not counted as chunks were cut are
                            // counted now.
                            let skipped = uncounted_from
                                .map_or(0, |u| count_lines(&data[u..*pos]));
                            return Err(too_large(line + skipped));
                        }
                        window = (window * 2)
                            .min(rest.len())
                            .min(max_record + 1)
                            .max(window + 1);
                    }
                };
                let piece = data.slice(*pos..*pos + n);
                *pos += n;
                piece
            }
            Input::Stream { r, buf, eof } => {
                // The same window search as for a slice, reading ahead
                // only as far as the window needs.
                let mut window = want;
                loop {
                    // Read past the window (or to the end), so that "the
                    // rest fits the window" is known exactly as it is for
                    // a slice.
                    fill(&mut **r, buf, eof, window)?;
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    if *eof && buf.len() <= want && !first_only {
                        break buf.split().freeze();
                    }
                    let w = window.min(buf.len());
                    if let Some(b) = boundary(&buf[..w]) {
                        break buf.split_to(b).freeze();
                    }
                    if *eof && w == buf.len() {
                        break buf.split().freeze();
                    }
                    if w > max_record {
                        return Err(too_large(line));
                    }
                    window = (window * 2).min(max_record + 1).max(window + 1);
                }
            }
        };
        if let Some(h) = &mut self.hasher {
            h.update(&piece);
        }
        self.next_byte += piece.len() as u64;
        Ok(Some(piece))
    }

    /// Leaves hashing to the caller (who must hash every piece it gets,
    /// header included, in order); [`ChunkReader::finish`] then returns an
    /// empty digest.
    pub fn without_hash(mut self) -> ChunkReader<'a> {
        self.hasher = None;
        self
    }

    /// The member's sha256 (hex) and length, after the last chunk.
    pub fn finish(self) -> (String, u64) {
        (
            self.hasher.map(crate::digest::sha256_hex).unwrap_or_default(),
            self.next_byte,
        )
    }

    /// Bytes cut so far.
    pub fn position(&self) -> u64 {
        self.next_byte
    }

    /// The line the next record starts on (while lines are counted).
    pub fn next_line(&self) -> u64 {
        self.next_line
    }

    /// Counts the header's lines (one, or more with quoted line breaks).
    pub fn skip_lines(&mut self, n: u64) {
        self.next_line += n;
    }
}

/// Reads into `buf` until it holds more than `window` bytes or the
/// stream ends.
fn fill(
    r: &mut dyn Read,
    buf: &mut BytesMut,
    eof: &mut bool,
    window: usize,
) -> Result<(), ReadError> {
    while !*eof && buf.len() <= window {
        let old = buf.len();
        let grow = (window + 1 - old).max(64 * 1024);
        buf.resize(old + grow, 0);
        let n = loop {
            match r.read(&mut buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    buf.truncate(old);
                    return Err(ReadError::Io(e));
                }
            }
        };
        buf.truncate(old + n);
        *eof = n == 0;
    }
    Ok(())
}

/// Length of the first record including its terminator.
fn first_len(buf: &[u8], framing: Framing) -> usize {
    if let Framing::Blocks { record_length } = framing {
        return record_length.min(buf.len());
    }
    let mut recs = Records::new(buf, framing);
    match recs.next() {
        Some(r) => match r.ending {
            crate::split::Ending::Lf => r.offset + r.bytes.len() + 1,
            crate::split::Ending::CrLf => r.offset + r.bytes.len() + 2,
            crate::split::Ending::Eof => buf.len(),
        },
        None => buf.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::slice_body;

    fn cut_all(
        body: Body<'_>,
        framing: Framing,
        size: usize,
    ) -> Vec<(u64, u64, Vec<u8>)> {
        let mut r = ChunkReader::new(body, framing, size, 1 << 20);
        let mut v = Vec::new();
        while let Some(c) = r.next_chunk().unwrap() {
            v.push((c.start_byte, c.first_line.unwrap(), c.data.to_vec()));
        }
        v
    }

    #[test]
    fn slice_and_stream_agree() {
        let data = b"a\nbb\r\nccc\n\ndddd\neeeee".to_vec();
        let f = Framing::Lines { quoted: None };
        for size in [1, 2, 3, 5, 8, 100] {
            let a = cut_all(slice_body(data.clone()), f, size);
            let mut cur = io::Cursor::new(data.clone());
            let b = cut_all(Body::Stream(&mut cur), f, size);
            assert_eq!(a, b, "chunk size {size}");
            let joined: Vec<u8> = a.iter().flat_map(|c| c.2.clone()).collect();
            assert_eq!(joined, data);
            for c in &a[..a.len() - 1] {
                assert_eq!(c.2.last(), Some(&b'\n'));
            }
        }
    }

    #[test]
    fn a_tail_of_exactly_the_chunk_size() {
        // Found by the split fuzz target: the stream did not notice the
        // end of input when the rest was exactly one chunk.
        let f = Framing::Lines { quoted: None };
        let a = cut_all(slice_body(b"\n\0".to_vec()), f, 2);
        let mut cur = io::Cursor::new(b"\n\0".to_vec());
        assert_eq!(a, cut_all(Body::Stream(&mut cur), f, 2));
        let mut r = ChunkReader::new(slice_body(b"&\0".to_vec()), f, 1, 1);
        let slice = r.next_chunk().map(|c| c.map(|c| c.data.to_vec()));
        let mut cur = io::Cursor::new(b"&\0".to_vec());
        let mut r = ChunkReader::new(Body::Stream(&mut cur), f, 1, 1);
        let stream = r.next_chunk().map(|c| c.map(|c| c.data.to_vec()));
        assert_eq!(format!("{slice:?}"), format!("{stream:?}"));
    }

    #[test]
    fn record_too_large() {
        let data = vec![b'x'; 5000];
        let f = Framing::Lines { quoted: None };
        let mut r = ChunkReader::new(slice_body(data.clone()), f, 100, 1000);
        assert!(matches!(
            r.next_chunk(),
            Err(ReadError::RecordTooLarge { byte: 0, line: 1, limit: 1000 })
        ));
        let mut cur = io::Cursor::new(data);
        let mut r = ChunkReader::new(Body::Stream(&mut cur), f, 100, 1000);
        assert!(matches!(
            r.next_chunk(),
            Err(ReadError::RecordTooLarge { .. })
        ));
    }

    #[test]
    fn uncounted_chunks_still_place_a_record_too_large() {
        // Three short lines, then one too long: its line is found when it
        // is met, whether or not the chunks before it were counted.
        let mut data = b"h\na\nb\nc\n".to_vec();
        data.extend(vec![b'x'; 5000]);
        let f = Framing::Lines { quoted: None };
        for count in [true, false] {
            let mut r = ChunkReader::new(slice_body(data.clone()), f, 2, 1000);
            r.take_header().unwrap();
            r.skip_lines(1);
            if !count {
                r.stop_counting_lines();
            }
            let mut firsts = Vec::new();
            let err = loop {
                match r.next_chunk() {
                    Ok(Some(c)) => firsts.push(c.first_line),
                    Ok(None) => panic!("no error"),
                    Err(e) => break e,
                }
            };
            assert!(
                matches!(
                    err,
                    ReadError::RecordTooLarge { byte: 8, line: 5, .. }
                ),
                "{err:?}"
            );
            let want = if count {
                vec![Some(2), Some(3), Some(4)]
            } else {
                vec![None; 3]
            };
            assert_eq!(firsts, want);
        }
    }

    #[test]
    fn byte_order_marks() {
        let mut data = UTF8_BOM.to_vec();
        data.extend(b"h1\th2\n1\t2\n");
        let f = Framing::Lines { quoted: None };
        for stream in [false, true] {
            let mut cur = io::Cursor::new(data.clone());
            let body = if stream {
                Body::Stream(&mut cur)
            } else {
                Body::Slice { data: data.clone().into(), map: None }
            };
            let mut r = ChunkReader::new(body, f, 4, 100);
            assert_eq!(
                r.take_header().unwrap().as_deref(),
                Some(&b"h1\th2"[..])
            );
            r.skip_lines(1);
            let c = r.next_chunk().unwrap().unwrap();
            assert_eq!((c.start_byte, &c.data[..]), (9, &b"1\t2\n"[..]));
            let digest = Sha256::new_with_prefix(&data);
            assert_eq!(
                r.finish(),
                (crate::digest::sha256_hex(digest), data.len() as u64)
            );
        }
        for (bom, want) in [
            (&b"\xFF\xFEh\0"[..], Utf16::LittleEndianBom),
            (&b"\xFE\xFF\0h"[..], Utf16::BigEndianBom),
        ] {
            for stream in [false, true] {
                let mut cur = io::Cursor::new(bom.to_vec());
                let body = if stream {
                    Body::Stream(&mut cur)
                } else {
                    Body::Slice { data: bom.to_vec().into(), map: None }
                };
                let mut r = ChunkReader::new(body, f, 4, 100);
                assert!(matches!(
                    r.next_chunk(),
                    Err(ReadError::Utf16(u)) if u == want
                ));
            }
        }
        // Only at the start: later, the same bytes are data.
        let data = b"a\n\xEF\xBB\xBFb\n".to_vec();
        assert_eq!(cut_all(slice_body(data.clone()), f, 100)[0].2, data);
    }

    #[test]
    fn header_then_chunks() {
        let data = b"h1\th2\r\n1\t2\r\n3\t4\r\n".to_vec();
        let f = Framing::Lines { quoted: None };
        let mut r = ChunkReader::new(slice_body(data), f, 4, 100);
        assert_eq!(r.take_header().unwrap().as_deref(), Some(&b"h1\th2"[..]));
        r.skip_lines(1);
        let c = r.next_chunk().unwrap().unwrap();
        assert_eq!(
            (c.start_byte, c.first_line.unwrap(), &c.data[..]),
            (7, 2, &b"1\t2\r\n"[..])
        );
    }
}
