//! Cutting a member into numbered, record-aligned chunks.
//!
//! Two input shapes, one cutter: a whole slice (a mapped file) is cut
//! without copying; a stream fills a bounded buffer with whole records.
//! Either way every chunk ends on a record boundary, carries its absolute
//! byte offset and first line, and the member's sha256 is computed over
//! the bytes as they pass.

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
                    while !*eof && buf.len() <= window {
                        let old = buf.len();
                        let grow = (window + 1 - old).max(64 * 1024);
                        buf.resize(old + grow, 0);
                        let n = loop {
                            match r.read(&mut buf[old..]) {
                                Ok(n) => break n,
                                Err(e)
                                    if e.kind()
                                        == io::ErrorKind::Interrupted =>
                                {
                                    continue;
                                }
                                Err(e) => {
                                    buf.truncate(old);
                                    return Err(ReadError::Io(e));
                                }
                            }
                        };
                        buf.truncate(old + n);
                        *eof = n == 0;
                    }
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
            self.hasher.map(crate::source::sha256_hex).unwrap_or_default(),
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
