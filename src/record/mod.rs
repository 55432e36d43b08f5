//! Zero-copy field slicing of one record.
//!
//! [`Slicer::slice`] turns a record's bytes into field ranges held in a
//! reused [`Fields`] buffer: byte ranges of the record for fixed-width and
//! unquoted delimited layouts, and only for a quoted field containing `""`
//! a copy with the escapes removed.

use std::ops::Range;

use memchr::memchr;

use crate::decode::Reason;
use crate::schema::{Format, Layout, Longer, Quoting, Shorter};

/// Where a field's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
    /// In [`Fields::owned`] rather than the record.
    owned: bool,
}

/// The fields of one record; reused from record to record.
#[derive(Debug, Default)]
pub struct Fields {
    spans: Vec<Span>,
    owned: Vec<u8>,
    /// For fields held unescaped in `owned`: (field index, offset of the
    /// field in the record).
    origins: Vec<(usize, u32)>,
}

impl Fields {
    /// Field `i` of `record` (the record these fields were sliced from).
    ///
    /// # Panics
    /// When `i` is out of range.
    #[inline]
    pub fn get<'a>(&'a self, record: &'a [u8], i: usize) -> &'a [u8] {
        let (src, span) = self.within(record, i);
        &src[span]
    }

    /// Field `i` of `record` as the bytes that hold it (the record, or an
    /// unescaped copy) and where it is in them.
    #[inline]
    pub fn within<'a>(
        &'a self,
        record: &'a [u8],
        i: usize,
    ) -> (&'a [u8], Range<usize>) {
        let s = self.spans[i];
        let src = if s.owned { &self.owned[..] } else { record };
        (src, s.start as usize..s.end as usize)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Byte offset of field `i` within the record (for reject positions);
    /// for an unescaped copy, where the field starts in the record.
    pub fn offset(&self, i: usize) -> u32 {
        if self.spans[i].owned {
            return self.origins.iter().find(|o| o.0 == i).map_or(0, |o| o.1);
        }
        self.spans[i].start
    }
}

/// Slices records of one layout.
#[derive(Clone, Debug)]
pub struct Slicer {
    mode: Mode,
}

#[derive(Clone, Debug)]
enum Mode {
    Fixed {
        spans: Vec<Range<usize>>,
        record_length: usize,
        longer: Longer,
        shorter: Shorter,
    },
    Delimited {
        delimiter: u8,
        quoted: bool,
        count: usize,
    },
}

impl Slicer {
    /// A slicer for `layout`.
    pub fn new(layout: &Layout) -> Slicer {
        let mode = match &layout.format {
            Format::Fixed(f) => Mode::Fixed {
                spans: layout
                    .fields
                    .iter()
                    .map(|fl| fl.span.clone().unwrap_or(0..0))
                    .collect(),
                record_length: f.record_length,
                longer: f.longer,
                shorter: f.shorter,
            },
            Format::Delimited(d) => Mode::Delimited {
                delimiter: d.delimiter,
                quoted: d.quoting == Quoting::Standard,
                count: layout.fields.len(),
            },
        };
        Slicer { mode }
    }

    /// Slices `record` (without terminator) into `out`.
    ///
    /// # Errors
    /// A record-level [`Reason`]: wrong length or field count, or a quote
    /// problem. `out` is then unspecified.
    #[inline]
    pub fn slice(
        &self,
        record: &[u8],
        out: &mut Fields,
    ) -> Result<(), Reason> {
        out.spans.clear();
        match &self.mode {
            Mode::Fixed { spans, record_length, longer, shorter } => {
                let len = record.len();
                if len < *record_length && *shorter == Shorter::Reject {
                    return Err(Reason::RecordTooShort {
                        len: len as u32,
                        expected: *record_length as u32,
                    });
                }
                if len > *record_length && *longer == Longer::Reject {
                    return Err(Reason::RecordTooLong {
                        len: len as u32,
                        expected: *record_length as u32,
                    });
                }
                for s in spans {
                    let start = s.start.min(len) as u32;
                    let end = s.end.min(len) as u32;
                    out.spans.push(Span { start, end, owned: false });
                }
                Ok(())
            }
            Mode::Delimited { delimiter, quoted, count } => {
                if !*quoted || memchr(b'"', record).is_none() {
                    return slice_plain(record, *delimiter, *count, out);
                }
                out.owned.clear();
                out.origins.clear();
                slice_quoted(record, *delimiter, out)?;
                check_count(out.spans.len(), *count)
            }
        }
    }
}

/// Splits on every delimiter byte: no quoting.
#[inline]
fn slice_plain(
    record: &[u8],
    d: u8,
    count: usize,
    out: &mut Fields,
) -> Result<(), Reason> {
    let mut start = 0usize;
    for i in memchr::memchr_iter(d, record) {
        out.spans.push(Span {
            start: start as u32,
            end: i as u32,
            owned: false,
        });
        start = i + 1;
    }
    out.spans.push(Span {
        start: start as u32,
        end: record.len() as u32,
        owned: false,
    });
    check_count(out.spans.len(), count)
}

fn check_count(found: usize, expected: usize) -> Result<(), Reason> {
    if found == expected {
        Ok(())
    } else {
        Err(Reason::FieldCount {
            found: found as u32,
            expected: expected as u32,
        })
    }
}

/// RFC 4180 fields: `"…"` encloses a field, `""` inside is one quote.
fn slice_quoted(rec: &[u8], d: u8, out: &mut Fields) -> Result<(), Reason> {
    let mut i = 0;
    loop {
        if rec.get(i) == Some(&b'"') {
            // Quoted field.
            let body = i + 1;
            let mut k = body;
            let mut escaped = false;
            let close = loop {
                match memchr(b'"', &rec[k..]) {
                    None => return Err(Reason::UnterminatedQuote),
                    Some(q) if rec.get(k + q + 1) == Some(&b'"') => {
                        escaped = true;
                        k += q + 2;
                    }
                    Some(q) => break k + q,
                }
            };
            if escaped {
                let start = out.owned.len();
                let mut prev_quote = false;
                for &b in &rec[body..close] {
                    if b == b'"' && prev_quote {
                        prev_quote = false;
                        continue;
                    }
                    prev_quote = b == b'"';
                    out.owned.push(b);
                }
                out.origins.push((out.spans.len(), body as u32));
                out.spans.push(Span {
                    start: start as u32,
                    end: out.owned.len() as u32,
                    owned: true,
                });
            } else {
                out.spans.push(Span {
                    start: body as u32,
                    end: close as u32,
                    owned: false,
                });
            }
            match rec.get(close + 1) {
                None => return Ok(()),
                Some(&b) if b == d => i = close + 2,
                Some(_) => return Err(Reason::StrayQuote),
            }
        } else {
            let end = memchr(d, &rec[i..]).map_or(rec.len(), |p| i + p);
            if memchr(b'"', &rec[i..end]).is_some() {
                return Err(Reason::StrayQuote);
            }
            out.spans.push(Span {
                start: i as u32,
                end: end as u32,
                owned: false,
            });
            if end == rec.len() {
                return Ok(());
            }
            i = end + 1;
        }
    }
}

/// Records and fields of an unquoted delimited chunk in one pass: a single
/// scan for the delimiter and LF finds record ends and field bounds
/// together (the same records and fields as `split::Records` followed by
/// [`Slicer::slice`]).
pub struct DelimitedRecords<'a> {
    buf: &'a [u8],
    hits: Hits<'a>,
    pos: usize,
    delim: u8,
    expected: usize,
    plain: bool,
}

/// Positions of two bytes in a buffer, found a block at a time: fields are
/// short (a few bytes each), so a per-call vector search costs more than it
/// saves; this keeps a match mask per 64-byte block instead (one bit per
/// byte), so that a record of a few hundred bytes costs a few block loads
/// and one mask refill per 64 bytes.
struct Hits<'a> {
    buf: &'a [u8],
    a: u8,
    b: u8,
    /// Offset of the block `mask` describes.
    base: usize,
    /// Matches left in the current block, bit i for byte `base + i`.
    mask: u64,
    /// Bytes outside 0x01..=0x7F in the current block from the current
    /// record's first byte on (see [`Hits::end_record`]).
    odd: u64,
    /// Whether an earlier block of the current record had such a byte.
    odd_before: bool,
}

const BLOCK: usize = 64;

impl<'a> Hits<'a> {
    fn new(buf: &'a [u8], a: u8, b: u8) -> Hits<'a> {
        let mut h =
            Hits { buf, a, b, base: 0, mask: 0, odd: 0, odd_before: false };
        (h.mask, h.odd) = h.block_mask(0);
        h
    }

    /// The match mask of the block at `at` (bytes past the end never match)
    /// and the mask of its bytes outside 0x01..=0x7F.
    #[inline]
    fn block_mask(&self, at: usize) -> (u64, u64) {
        match self.buf.get(at..at + BLOCK) {
            Some(block) => {
                let block = block.try_into().expect("64 bytes");
                full_block_mask(block, self.a, self.b)
            }
            None => {
                let rest = &self.buf[at.min(self.buf.len())..];
                rest.iter().enumerate().fold((0, 0), |(m, o), (i, &c)| {
                    let hit = (c == self.a) | (c == self.b);
                    let odd = !(1..=0x7F).contains(&c);
                    (m | (hit as u64) << i, o | (odd as u64) << i)
                })
            }
        }
    }

    /// Ends the current record at `end` (a position [`Hits::next`] just
    /// returned, or the end of the buffer after it returned `None`):
    /// whether the record's bytes before `end` are all 0x01..=0x7F. The
    /// next record starts after `end`.
    #[inline]
    fn end_record(&mut self, end: usize) -> bool {
        // `end` lies in the current block, or past its end once `next`
        // has run out (then `odd_before` holds every block).
        let k = end.saturating_sub(self.base).min(BLOCK - 1);
        let plain = !self.odd_before && self.odd & ((1 << k) - 1) == 0;
        self.odd &= u64::MAX << k << 1;
        self.odd_before = false;
        plain
    }
}

/// Bit i set when byte i of a block is `a` or `b`, and bit i of the
/// second mask when it is 0x00 or ≥ 0x80 (SSE2, part of the x86-64
/// baseline: four 16-byte compares).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
fn full_block_mask(block: &[u8; BLOCK], a: u8, b: u8) -> (u64, u64) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8, _mm_setzero_si128,
    };
    let (mut m, mut o) = (0u64, 0u64);
    for (k, part) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of every x86-64 target, so the intrinsics
        // are available; `part` is exactly 16 readable bytes and the load
        // is unaligned. Measured: the word arithmetic this replaces made
        // field splitting 16% of validation time on HCAD records
        // (benches/decode.rs `slice`).
        let (bits, odd) = unsafe {
            let x = _mm_loadu_si128(part.as_ptr().cast::<__m128i>());
            let hits = _mm_or_si128(
                _mm_cmpeq_epi8(x, _mm_set1_epi8(a as i8)),
                _mm_cmpeq_epi8(x, _mm_set1_epi8(b as i8)),
            );
            // The sign bit of each byte ≥ 0x80, or of the all-ones NUL
            // compare.
            let odd = _mm_or_si128(x, _mm_cmpeq_epi8(x, _mm_setzero_si128()));
            (
                _mm_movemask_epi8(hits) as u32 as u64,
                _mm_movemask_epi8(odd) as u32 as u64,
            )
        };
        m |= bits << (16 * k);
        o |= odd << (16 * k);
    }
    (m, o)
}

/// Bit i set when byte i of a block is `a` or `b` (word arithmetic).
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn full_block_mask(block: &[u8; BLOCK], a: u8, b: u8) -> (u64, u64) {
    use crate::decode::swar::{HIGH, equal, zero};
    // Bit 7 of each byte to bit i of the result.
    let pack =
        |m: u64| (0..8).fold(0, |acc, i| acc | ((m >> (8 * i + 7)) & 1) << i);
    let (mut out, mut odd) = (0u64, 0u64);
    for (k, w) in block.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        out |= pack(equal(x, a) | equal(x, b)) << (8 * k);
        odd |= pack((x & HIGH) | zero(x)) << (8 * k);
    }
    (out, odd)
}

impl Iterator for Hits<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.odd_before |= self.odd != 0;
            self.base += BLOCK;
            if self.base >= self.buf.len() {
                return None;
            }
            (self.mask, self.odd) = self.block_mask(self.base);
        }
        let bit = self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(self.base + bit)
    }
}

impl<'a> DelimitedRecords<'a> {
    /// Records of `buf` (whole records; the last may lack its LF) with
    /// `expected` fields each.
    pub fn new(
        buf: &'a [u8],
        delim: u8,
        expected: usize,
    ) -> DelimitedRecords<'a> {
        DelimitedRecords {
            buf,
            hits: Hits::new(buf, delim, b'\n'),
            pos: 0,
            delim,
            expected,
            plain: false,
        }
    }

    /// Whether the record [`DelimitedRecords::next_record`] last returned
    /// holds only bytes 0x01 to 0x7F (found by the same block scan that
    /// splits it; see [`crate::decode::plain_ascii`]).
    pub fn plain(&self) -> bool {
        self.plain
    }

    /// The next record, with its fields sliced into `out` (or the field
    /// count problem).
    #[inline]
    pub fn next_record(
        &mut self,
        out: &mut Fields,
    ) -> Option<(crate::split::RecordRef<'a>, Result<(), Reason>)> {
        use crate::split::{Ending, RecordRef};
        let start = self.pos;
        if start >= self.buf.len() {
            return None;
        }
        out.spans.clear();
        let mut field = start;
        let (end, next) = loop {
            match self.hits.next() {
                Some(i) if self.buf[i] == self.delim => {
                    out.spans.push(Span {
                        start: (field - start) as u32,
                        end: (i - start) as u32,
                        owned: false,
                    });
                    field = i + 1;
                }
                Some(i) => break (i, i + 1),
                None => break (self.buf.len(), self.buf.len()),
            }
        };
        self.pos = next;
        self.plain = self.hits.end_record(end);
        let (body_end, ending) = if next > end {
            if end > start && self.buf[end - 1] == b'\r' {
                (end - 1, Ending::CrLf)
            } else {
                (end, Ending::Lf)
            }
        } else {
            (end, Ending::Eof)
        };
        // The last field ends where the record does (a CR belongs to the
        // terminator; the delimiter is never CR, so `field` ≤ `body_end`).
        debug_assert!(field <= body_end);
        out.spans.push(Span {
            start: (field - start) as u32,
            end: (body_end - start) as u32,
            owned: false,
        });

        let rec = RecordRef {
            bytes: &self.buf[start..body_end],
            offset: start,
            ending,
            extra_lines: 0,
            unterminated_quote: false,
        };
        Some((rec, check_count(out.spans.len(), self.expected)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SchemaSet;
    use std::path::Path;

    fn layout(toml: &str) -> Layout {
        SchemaSet::layout_from_str(Path::new("t.toml"), toml).unwrap()
    }

    fn fields(s: &Slicer, rec: &[u8]) -> Result<Vec<Vec<u8>>, Reason> {
        let mut f = Fields::default();
        s.slice(rec, &mut f)?;
        Ok((0..f.len()).map(|i| f.get(rec, i).to_vec()).collect())
    }

    #[test]
    fn fixed() {
        let l = layout(
            r#"members = ["x"]
format = "fixed"
record_length = 6
[[field]]
name = "a"
type = "text"
start = 0
width = 2
[[field]]
name = "b"
type = "text"
from = 3
to = 6
"#,
        );
        let s = Slicer::new(&l);
        assert_eq!(
            fields(&s, b"abcdef"),
            Ok(vec![b"ab".to_vec(), b"cdef".to_vec()])
        );
        assert_eq!(
            fields(&s, b"abcdefXX"),
            Ok(vec![b"ab".to_vec(), b"cdef".to_vec()])
        );
        assert_eq!(
            fields(&s, b"abc"),
            Err(Reason::RecordTooShort { len: 3, expected: 6 })
        );
    }

    #[test]
    fn hits_find_every_match() {
        let data: Vec<u8> = (0..300u32)
            .map(|i| [b'a', b'\t', b'\n', b'x'][(i * 7 % 11 % 4) as usize])
            .collect();
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 100, 300] {
            let buf = &data[..len];
            let want: Vec<usize> =
                memchr::memchr2_iter(b'\t', b'\n', buf).collect();
            let got: Vec<usize> = Hits::new(buf, b'\t', b'\n').collect();
            assert_eq!(want, got, "len {len}");
        }
        let high: Vec<u8> = vec![0x89, 0x0a, 0xff, 0x09, 0x8a, 0x0a];
        assert_eq!(
            Hits::new(&high, b'\t', b'\n').collect::<Vec<_>>(),
            vec![1, 3, 5]
        );
    }

    #[test]
    fn one_pass_agrees_with_records_and_slicer() {
        let base =
            "members = [\"x\"]\nformat = \"delimited\"\ndelimiter = \",\"\n";
        let f3 = "[[field]]\nname=\"a\"\ntype=\"text\"\n[[field]]\nname=\"b\"\ntype=\"text\"\n[[field]]\nname=\"c\"\ntype=\"text\"\n";
        let l = layout(&format!("{base}{f3}"));
        let s = Slicer::new(&l);
        let data: &[u8] =
            b"a,b,c\r\n\n,,\r\na,b\r\nx,y,z,w\n\r\na,b,\r\nlast,x,";
        let framing = crate::split::Framing::Lines { quoted: None };
        let mut want = Vec::new();
        let mut f = Fields::default();
        for r in crate::split::Records::new(data, framing) {
            let res = s.slice(r.bytes, &mut f);
            let fields: Vec<Vec<u8>> =
                (0..f.len()).map(|i| f.get(r.bytes, i).to_vec()).collect();
            want.push((
                r.bytes.to_vec(),
                r.offset,
                r.ending,
                res,
                if res.is_ok() { fields } else { vec![] },
            ));
        }
        let mut got = Vec::new();
        let mut it = DelimitedRecords::new(data, b',', 3);
        while let Some((r, res)) = it.next_record(&mut f) {
            let fields: Vec<Vec<u8>> =
                (0..f.len()).map(|i| f.get(r.bytes, i).to_vec()).collect();
            got.push((
                r.bytes.to_vec(),
                r.offset,
                r.ending,
                res,
                if res.is_ok() { fields } else { vec![] },
            ));
        }
        assert_eq!(want, got);
    }

    #[test]
    fn delimited() {
        let base =
            "members = [\"x\"]\nformat = \"delimited\"\ndelimiter = \",\"\n";
        let f3 = "[[field]]\nname=\"a\"\ntype=\"text\"\n[[field]]\nname=\"b\"\ntype=\"text\"\n[[field]]\nname=\"c\"\ntype=\"text\"\n";
        let plain = Slicer::new(&layout(&format!("{base}{f3}")));
        assert_eq!(
            fields(&plain, b"1,200 OAK \"AVE,x"),
            Ok(vec![b"1".to_vec(), b"200 OAK \"AVE".to_vec(), b"x".to_vec()])
        );
        assert_eq!(
            fields(&plain, b"1,2"),
            Err(Reason::FieldCount { found: 2, expected: 3 })
        );
        let q = Slicer::new(&layout(&format!(
            "{base}quoting = \"standard\"\n{f3}"
        )));
        assert_eq!(
            fields(&q, b"\"a,b\",\"say \"\"hi\"\"\",c"),
            Ok(vec![b"a,b".to_vec(), b"say \"hi\"".to_vec(), b"c".to_vec()])
        );
        assert_eq!(
            fields(&q, b"\"\",,"),
            Ok(vec![b"".to_vec(), b"".to_vec(), b"".to_vec()])
        );
        assert_eq!(fields(&q, b"a,b\"c,d"), Err(Reason::StrayQuote));
        assert_eq!(fields(&q, b"\"a\"x,b,c"), Err(Reason::StrayQuote));
        assert_eq!(fields(&q, b"\"abc,b,c"), Err(Reason::UnterminatedQuote));
        // A field with escaped quotes reports where it is in the record.
        let mut f = Fields::default();
        q.slice(b"x,\"a\"\"b\",c", &mut f).unwrap();
        assert_eq!((f.offset(0), f.offset(1), f.offset(2)), (0, 3, 9));
    }
}
