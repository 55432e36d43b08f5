//! Zero-copy field slicing of one record.
//!
//! [`Slicer::slice`] turns a record's bytes into field ranges held in a
//! reused [`Fields`] buffer: byte ranges of the record for fixed-width and
//! unquoted delimited layouts, and only for a quoted field containing `""`
//! a copy with the escapes removed.

mod simd;

use std::ops::Range;

use memchr::memchr;

pub(crate) use simd::prefetch;
use simd::{BLOCK, Blocks};

use crate::reject::Reason;
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
    /// Fields found by [`DelimitedRecords`], in place of `spans` when not
    /// empty: field i is bytes `bounds[i]` to `bounds[i + 1] - 1` of the
    /// chunk, less `origin` (where the record starts).
    bounds: Vec<u32>,
    origin: u32,
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
        if !self.bounds.is_empty() {
            let (s, e) = (self.bounds[i], self.bounds[i + 1]);
            let o = self.origin;
            return (record, (s - o) as usize..(e - 1 - o) as usize);
        }
        let s = self.spans[i];
        let src = if s.owned { &self.owned[..] } else { record };
        (src, s.start as usize..s.end as usize)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        match self.bounds.len() {
            0 => self.spans.len(),
            n => n - 1,
        }
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Byte offset of field `i` within the record (for reject positions);
    /// for an unescaped copy, where the field starts in the record.
    pub fn offset(&self, i: usize) -> u32 {
        if !self.bounds.is_empty() {
            return self.bounds[i] - self.origin;
        }
        if self.spans[i].owned {
            return self.origins.iter().find(|o| o.0 == i).map_or(0, |o| o.1);
        }
        self.spans[i].start
    }

    /// Takes the bounds of a record of [`DelimitedRecords`]: `bounds[0]`
    /// is where it starts, the others one past each delimiter and past
    /// its end; the last field ends at `end` (before a CR).
    fn set_bounds(&mut self, bounds: &[u32], end: usize) {
        self.bounds.clear();
        self.bounds.extend_from_slice(bounds);
        self.origin = bounds[0];
        let last = self.bounds.len() - 1;
        self.bounds[last] = end as u32 + 1;
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
        out.bounds.clear();
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
///
/// The scan runs a window of `WINDOW` (32 KiB) at a time: first every
/// delimiter and LF of the window is written down as a position, from bit
/// masks of each 64-byte block (twelve writes per block whatever its
/// count, without a branch each; a block with more takes the rest one by
/// one), with where each LF falls in that list; then each record is the
/// positions up to its LF, which become its field bounds as they are.
pub struct DelimitedRecords<'a> {
    buf: &'a [u8],
    delim: u8,
    expected: usize,
    /// Bytes scanned at a time ([`WINDOW`] but in tests).
    window: usize,
    plain: bool,
    /// `bounds[0]` is where the record in progress starts; the rest, up
    /// to `len`, one past each delimiter or LF found since (in order).
    bounds: Vec<u32>,
    len: usize,
    /// The LFs of the window: where in `bounds` each is, and one past the
    /// last byte outside 0x01..=0x7F before it (0 for none).
    lfs: Vec<(u32, u32)>,
    /// The next of `lfs` to take.
    next_lf: usize,
    /// Where in `bounds` the record in progress starts.
    first: usize,
    /// Bytes scanned so far.
    scanned: usize,
    /// One past the last byte outside 0x01..=0x7F scanned so far.
    last_odd: u32,
}

/// Bytes scanned per window: the positions of one window stay in cache
/// between writing and reading them.
const WINDOW: usize = 32 * 1024;

impl<'a> DelimitedRecords<'a> {
    /// Records of `buf` (whole records; the last may lack its LF) with
    /// `expected` fields each.
    ///
    /// # Panics
    /// When `buf` is 4 GiB or longer (chunks are far shorter).
    pub fn new(
        buf: &'a [u8],
        delim: u8,
        expected: usize,
    ) -> DelimitedRecords<'a> {
        Self::with_window(buf, delim, expected, WINDOW)
    }

    /// As [`DelimitedRecords::new`], scanning `window` bytes at a time
    /// (a multiple of 64): small windows let tests and fuzzing cross
    /// window ends with short inputs.
    ///
    /// # Panics
    /// When `buf` is 4 GiB or longer, or `window` is not a positive
    /// multiple of 64.
    #[doc(hidden)]
    pub fn with_window(
        buf: &'a [u8],
        delim: u8,
        expected: usize,
        window: usize,
    ) -> DelimitedRecords<'a> {
        assert!(buf.len() < u32::MAX as usize, "chunk under 4 GiB");
        assert!(
            window > 0 && window.is_multiple_of(BLOCK),
            "window of 64-byte blocks"
        );
        DelimitedRecords {
            buf,
            delim,
            expected,
            window,
            plain: false,
            bounds: vec![0],
            len: 1,
            lfs: Vec::new(),
            next_lf: 0,
            first: 0,
            scanned: 0,
            last_odd: 0,
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
        let (last, end, ending, odd) = loop {
            if let Some(&(at, odd)) = self.lfs.get(self.next_lf) {
                self.next_lf += 1;
                let at = at as usize;
                let lf = self.bounds[at] as usize - 1;
                let start = self.bounds[self.first] as usize;
                if lf > start && self.buf[lf - 1] == b'\r' {
                    break (at, lf - 1, Ending::CrLf, odd);
                }
                break (at, lf, Ending::Lf, odd);
            }
            if self.scanned < self.buf.len() {
                self.scan_window();
                continue;
            }
            // No LF left: the rest, if any, is the last record; the bound
            // after it starts nothing.
            if self.bounds[self.first] as usize >= self.buf.len() {
                return None;
            }
            self.bounds.truncate(self.len);
            self.bounds.push(self.buf.len() as u32 + 1);
            self.len += 1;
            break (self.len - 1, self.buf.len(), Ending::Eof, self.last_odd);
        };
        // `scan_window` may have moved the record's bounds to the front.
        let first = self.first;
        let start = self.bounds[first] as usize;
        out.set_bounds(&self.bounds[first..=last], end);
        self.plain = odd as usize <= start;
        self.first = last;
        let rec = RecordRef {
            bytes: &self.buf[start..end],
            offset: start,
            ending,
            extra_lines: 0,
            unterminated_quote: false,
        };
        Some((rec, check_count(last - first, self.expected)))
    }

    /// Scans the next window, keeping the bounds of the record in
    /// progress.
    fn scan_window(&mut self) {
        let keep = self.len - self.first;
        self.bounds.copy_within(self.first..self.len, 0);
        self.first = 0;
        self.len = keep;
        self.lfs.clear();
        self.next_lf = 0;
        let from = self.scanned;
        let to = (from + self.window).min(self.buf.len());
        // Room for a position per byte, and the unconditional writes.
        self.bounds.resize(keep + (to - from) + 2 * BLOCK, 0);
        let mut scan = Scan {
            bounds: &mut self.bounds,
            len: self.len,
            lfs: &mut self.lfs,
            last_odd: self.last_odd,
        };
        simd::scan(&mut scan, &self.buf[from..to], from, self.delim);
        (self.len, self.last_odd) = (scan.len, scan.last_odd);
        self.scanned = to;
    }
}

/// Stage one of [`DelimitedRecords`]: the positions of one window.
struct Scan<'s> {
    bounds: &'s mut [u32],
    len: usize,
    lfs: &'s mut Vec<(u32, u32)>,
    last_odd: u32,
}

impl Blocks for Scan<'_> {
    /// Writes down the block at byte `at`: its delimiters and LFs, where
    /// each LF is among them, and its last byte outside 0x01..=0x7F.
    #[inline(always)]
    fn block(&mut self, at: usize, (hits, lfs, odd): (u64, u64, u64)) {
        // Positions are stored one past the byte.
        let past = at as u32 + 1;
        let mut m = hits;
        // Twelve writes whatever the count (most blocks have fewer
        // hits): no branch on how many there are.
        for slot in &mut self.bounds[self.len..self.len + 12] {
            *slot = past.wrapping_add(m.trailing_zeros());
            m &= m.wrapping_sub(1);
        }
        let mut j = self.len + 12;
        while m != 0 {
            self.bounds[j] = past + m.trailing_zeros();
            m &= m - 1;
            j += 1;
        }
        let mut l = lfs;
        while l != 0 {
            let below = (1u64 << l.trailing_zeros()) - 1;
            if odd & below != 0 {
                self.last_odd = past + 63 - (odd & below).leading_zeros();
            }
            let index = self.len + (hits & below).count_ones() as usize;
            self.lfs.push((index as u32, self.last_odd));
            l &= l - 1;
        }
        if odd != 0 {
            self.last_odd = past + 63 - odd.leading_zeros();
        }
        self.len += hits.count_ones() as usize;
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

    /// Records of every length, some longer than a window, with CRs,
    /// NULs and bytes >= 0x80 in them: in half of them none, in some
    /// only as the first or the last byte. The first record is empty,
    /// the second a lone CR.
    fn rough_records() -> Vec<u8> {
        let mut x = 7u64;
        let mut next = move || {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (x >> 33) as usize
        };
        let mut data = b"\n\r\n".to_vec();
        while data.len() < 12 * WINDOW {
            let len = match next() % 200 {
                0 => WINDOW + next() % 1000,
                1..=40 => next() % 8,
                _ => next() % 300,
            };
            let odd = next() % 2 == 0;
            let start = data.len();
            for _ in 0..len {
                data.push(match next() % 20 {
                    0..=2 => b',',
                    3 => b'\r',
                    4 if odd => 0x89,
                    5 if odd => 0,
                    _ => b'a' + (next() % 26) as u8,
                });
            }
            if len > 0 && !odd {
                match next() % 4 {
                    0 => data[start] = 0x80,
                    1 => data[start + len - 1] = 0xff,
                    _ => {}
                }
            }
            if next() % 10 == 0 {
                data.push(b'\r');
            }
            data.push(b'\n');
        }
        data
    }

    #[test]
    fn one_pass_across_windows() {
        use crate::decode::plain_ascii;
        let data = rough_records();
        let cuts = [data.len(), data.len() - 1, data.len() - 37, 100, 0];
        let windows = [WINDOW, 64, 128, 448];
        for (cut, window) in
            cuts.into_iter().flat_map(|c| windows.iter().map(move |&w| (c, w)))
        {
            let buf = &data[..cut];
            let mut lines: Vec<&[u8]> = buf.split(|&b| b == b'\n').collect();
            if buf.is_empty() || buf.ends_with(b"\n") {
                lines.pop();
            }
            let last = lines.len().saturating_sub(1);
            let mut f = Fields::default();
            let mut it = DelimitedRecords::with_window(buf, b',', 4, window);
            for (k, line) in lines.iter().enumerate() {
                let terminated = k < last || buf.ends_with(b"\n");
                let body = match line.strip_suffix(b"\r") {
                    Some(b) if terminated => b,
                    _ => line,
                };
                let (r, res) = it.next_record(&mut f).expect("a record");
                assert_eq!(r.bytes, body, "cut {cut} window {window} {k}");
                assert_eq!(it.plain(), plain_ascii(body), "record {k}");
                let want: Vec<&[u8]> = body.split(|&b| b == b',').collect();
                assert_eq!(f.len(), want.len(), "record {k}");
                assert_eq!(res.is_ok(), want.len() == 4, "record {k}");
                let mut at = 0;
                for (i, w) in want.iter().enumerate() {
                    assert_eq!(f.get(r.bytes, i), *w, "record {k} field {i}");
                    assert_eq!(f.offset(i), at, "record {k} field {i}");
                    at += w.len() as u32 + 1;
                }
            }
            assert!(it.next_record(&mut f).is_none(), "cut {cut}");
        }
    }

    /// The scan writes down every delimiter and LF of a window, one past
    /// each, and where each LF falls among them.
    #[test]
    fn scan_finds_every_delimiter_and_lf() {
        let data = rough_records();
        let window = &data[3..data.len() - 5];
        let mut bounds = vec![0u32; data.len() + 2 * BLOCK];
        let mut lfs = Vec::new();
        let mut s =
            Scan { bounds: &mut bounds, len: 1, lfs: &mut lfs, last_odd: 0 };
        simd::scan(&mut s, window, 3, b',');
        let len = s.len;
        let mut want = vec![0u32];
        let mut want_lfs = Vec::new();
        for (i, &b) in window.iter().enumerate() {
            if b == b'\n' {
                want_lfs.push(want.len() as u32);
            }
            if b == b',' || b == b'\n' {
                want.push(3 + i as u32 + 1);
            }
        }
        assert_eq!(&bounds[..len], &want[..]);
        let lf_at: Vec<u32> = lfs.iter().map(|l| l.0).collect();
        assert_eq!(lf_at, want_lfs);
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
