//! Record boundaries: where one record ends and the next begins.
//!
//! The reader cuts a member into chunks that end on a record boundary
//! ([`last_boundary`]); a worker walks the records of one chunk
//! ([`Records`]). Both use the same rules, so a record is the same bytes
//! whichever chunk size or input path produced it:
//!
//! - lines: records end at LF; a CR before the LF is part of the
//!   terminator. With standard quoting an LF inside a quoted field does not
//!   end the record (quotes open only at the start of a field, so a stray
//!   `"` in the middle of a value cannot swallow the following lines).
//! - blocks: fixed-width records with no terminator, back to back.

use memchr::{memchr, memchr3, memrchr};

use crate::schema::{Format, Layout, Quoting, Terminator};

/// How a member's bytes are divided into records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// LF-terminated lines; `quoted` with the delimiter for standard
    /// quoting.
    Lines {
        /// `Some(delimiter)` when fields may be quoted.
        quoted: Option<u8>,
    },
    /// Fixed-size blocks without terminator.
    Blocks {
        /// The record length in bytes.
        record_length: usize,
    },
}

impl Framing {
    /// The framing of `layout`'s members.
    pub fn of(layout: &Layout) -> Framing {
        match &layout.format {
            Format::Fixed(f) if f.terminator == Terminator::None => {
                Framing::Blocks { record_length: f.record_length }
            }
            Format::Fixed(_) => Framing::Lines { quoted: None },
            Format::Delimited(d) => Framing::Lines {
                quoted: (d.quoting == Quoting::Standard)
                    .then_some(d.delimiter),
            },
        }
    }
}

/// How a record ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `\n`.
    Lf,
    /// `\r\n`.
    CrLf,
    /// End of input without terminator (or a block record).
    Eof,
}

/// Scans one quoted-framing record starting at `buf[from]`.
///
/// Returns the index of the record's LF, or `None` when `buf` ends first.
/// `newlines` counts LFs inside quoted fields.
fn scan_quoted(
    buf: &[u8],
    from: usize,
    delim: u8,
    newlines: &mut u32,
) -> Option<usize> {
    let mut i = from;
    let mut field_start = from;
    loop {
        // Outside quotes: find the next delimiter, quote or LF.
        let j = i + memchr3(delim, b'"', b'\n', &buf[i..])?;
        match buf[j] {
            b'\n' => return Some(j),
            b'"' if j == field_start => {
                // A quoted field: find its closing quote, skipping "".
                let mut k = j + 1;
                loop {
                    let q = k + memchr(b'"', &buf[k..])?;
                    *newlines +=
                        buf[k..q].iter().filter(|&&b| b == b'\n').count()
                            as u32;
                    if buf.get(q + 1) == Some(&b'"') {
                        k = q + 2;
                        continue;
                    }
                    if q + 1 >= buf.len() {
                        return None;
                    }
                    i = q + 1;
                    break;
                }
            }
            b'"' => i = j + 1, // stray quote: an ordinary byte for framing
            _ => {
                i = j + 1;
                field_start = i;
            }
        }
    }
}

/// The end (exclusive) of the last complete record in `buf`, which starts
/// on a record boundary, or `None` when `buf` holds no complete record.
pub fn last_boundary(framing: Framing, buf: &[u8]) -> Option<usize> {
    match framing {
        Framing::Lines { quoted: None } => memrchr(b'\n', buf).map(|i| i + 1),
        Framing::Lines { quoted: Some(d) } => {
            let mut pos = 0;
            let mut last = None;
            let mut nl = 0;
            while let Some(e) = scan_quoted(buf, pos, d, &mut nl) {
                pos = e + 1;
                last = Some(pos);
            }
            last
        }
        Framing::Blocks { record_length } => {
            let n = buf.len() / record_length * record_length;
            (n > 0).then_some(n)
        }
    }
}

/// One record of a chunk.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    /// The record's bytes without terminator.
    pub bytes: &'a [u8],
    /// Offset of the record's first byte in the chunk.
    pub offset: usize,
    /// How the record ended.
    pub ending: Ending,
    /// Physical lines the record spans minus one (LFs inside quotes).
    pub extra_lines: u32,
    /// With quoting: the record ran into the end of input inside quotes.
    pub unterminated_quote: bool,
}

/// Iterates the records of a chunk (a whole number of records, except that
/// the member's last record may lack its terminator).
pub struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
    framing: Framing,
}

impl<'a> Records<'a> {
    /// Records of `buf` under `framing`.
    pub fn new(buf: &'a [u8], framing: Framing) -> Records<'a> {
        Records { buf, pos: 0, framing }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = RecordRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<RecordRef<'a>> {
        let start = self.pos;
        let buf = self.buf;
        if start >= buf.len() {
            return None;
        }
        let (end, next, extra, unterminated) = match self.framing {
            Framing::Lines { quoted: None } => {
                match memchr(b'\n', &buf[start..]) {
                    Some(i) => (start + i, start + i + 1, 0, false),
                    None => (buf.len(), buf.len(), 0, false),
                }
            }
            Framing::Lines { quoted: Some(d) } => {
                let mut nl = 0;
                match scan_quoted(buf, start, d, &mut nl) {
                    Some(e) => (e, e + 1, nl, false),
                    None => {
                        // Runs to the end of input: count its LFs, and note
                        // whether it stopped inside an open quote.
                        let rest = &buf[start..];
                        let lfs = rest.iter().filter(|&&b| b == b'\n').count()
                            as u32;
                        (
                            buf.len(),
                            buf.len(),
                            lfs,
                            ends_in_open_quote(rest, d),
                        )
                    }
                }
            }
            Framing::Blocks { record_length } => {
                let e = (start + record_length).min(buf.len());
                (e, e, 0, false)
            }
        };
        self.pos = next;
        let (bytes, ending) = if next > end {
            if end > start && buf[end - 1] == b'\r' {
                (&buf[start..end - 1], Ending::CrLf)
            } else {
                (&buf[start..end], Ending::Lf)
            }
        } else {
            (&buf[start..end], Ending::Eof)
        };
        Some(RecordRef {
            bytes,
            offset: start,
            ending,
            extra_lines: extra,
            unterminated_quote: unterminated,
        })
    }
}

/// Whether a final record (no LF after it) stops inside an open quote.
fn ends_in_open_quote(rec: &[u8], delim: u8) -> bool {
    let mut nl = 0;
    let mut padded = rec.to_vec();
    padded.push(b'\n');
    scan_quoted(&padded, 0, delim, &mut nl).is_none_or(|e| e != rec.len())
}

/// Number of LF bytes in `buf`.
pub fn count_lines(buf: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', buf).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: Framing = Framing::Lines { quoted: None };
    const QUOTED: Framing = Framing::Lines { quoted: Some(b',') };

    fn recs(buf: &[u8], f: Framing) -> Vec<(Vec<u8>, Ending)> {
        Records::new(buf, f).map(|r| (r.bytes.to_vec(), r.ending)).collect()
    }

    #[test]
    fn lines_and_endings() {
        let v = recs(b"a\r\nb\nc", LINES);
        assert_eq!(
            v,
            vec![
                (b"a".to_vec(), Ending::CrLf),
                (b"b".to_vec(), Ending::Lf),
                (b"c".to_vec(), Ending::Eof)
            ]
        );
        assert_eq!(last_boundary(LINES, b"a\nb\nc"), Some(4));
        assert_eq!(last_boundary(LINES, b"abc"), None);
        assert_eq!(recs(b"\n\n", LINES).len(), 2);
    }

    #[test]
    fn quoted_framing() {
        let buf = b"1,\"a\nb\",x\n2,\"c\"\"\n\",y\n3,z";
        let v: Vec<_> = Records::new(buf, QUOTED)
            .map(|r| (r.bytes.to_vec(), r.extra_lines))
            .collect();
        assert_eq!(v[0], (b"1,\"a\nb\",x".to_vec(), 1));
        assert_eq!(v[1], (b"2,\"c\"\"\n\",y".to_vec(), 1));
        assert_eq!(v[2], (b"3,z".to_vec(), 0));
        assert_eq!(last_boundary(QUOTED, buf), Some(buf.len() - 3));
        // A stray quote mid-field does not open a quoted section.
        let hcad = b"1,200 OAK \"AVE\nx,y\n";
        assert_eq!(recs(hcad, QUOTED).len(), 2);
        // An unclosed quote runs to the end.
        let open = b"1,\"abc\n2,d\n";
        let r: Vec<_> = Records::new(open, QUOTED).collect();
        assert_eq!(r.len(), 1);
        assert!(r[0].unterminated_quote);
        assert_eq!(last_boundary(QUOTED, open), None);
        // A closed quote holding a line feed, at the end of input.
        let closed: Vec<_> = Records::new(b"\"\n\"", QUOTED).collect();
        assert_eq!(closed.len(), 1);
        assert!(!closed[0].unterminated_quote);
        assert_eq!(closed[0].extra_lines, 1);
    }

    #[test]
    fn blocks() {
        let f = Framing::Blocks { record_length: 3 };
        assert_eq!(
            recs(b"abcdefgh", f)
                .iter()
                .map(|r| r.0.clone())
                .collect::<Vec<_>>(),
            vec![b"abc".to_vec(), b"def".to_vec(), b"gh".to_vec()]
        );
        assert_eq!(last_boundary(f, b"abcdefgh"), Some(6));
        assert_eq!(last_boundary(f, b"ab"), None);
    }
}
