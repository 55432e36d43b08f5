//! One chunk, start to finish, on one worker: records → fields → values →
//! the row sink, with every record counted and every reject positioned.

use std::sync::Arc;

use super::Chunk;
use crate::decode::{FieldType, Quick, Trim, Value, plain_ascii};
use crate::keys::{KeyEntry, KeyOrder};
use crate::pgcopy::RowSink;
use crate::record::{DelimitedRecords, Fields, Slicer};
use crate::reject::{Counts, Position, Reason, Reject};
use crate::schema::{Field, Format, Layout, Terminator};
use crate::split::{Ending, Framing, RecordRef, Records};

/// A sink that keeps nothing (validation only).
#[derive(Default)]
pub struct NoRows;

impl RowSink for NoRows {
    const VALUES: bool = false;
    fn reset(&mut self) -> bool {
        true
    }
    #[inline]
    fn start_row(&mut self, _: u32, _: u64, _: usize) {}
    #[inline]
    fn value(&mut self, _: FieldType, _: &Value<'_>) {}
    #[inline]
    fn end_row(&mut self) {}
    #[inline]
    fn abort_row(&mut self) {}
}

/// A layout compiled for the workers.
#[derive(Debug)]
pub struct Plan {
    /// The layout.
    pub layout: Layout,
    /// Record framing.
    pub framing: Framing,
    slicer: Slicer,
    terminator: Terminator,
    key_mask: Vec<bool>,
    /// Every field, to be decoded: the steps for a sink with values.
    all: Vec<(usize, Quick)>,
    /// The steps for a sink without values: each field with its quick
    /// test, which spares decoding the common valid values. Key fields
    /// are always decoded (their values are compared).
    checked: Checks,
    /// As `checked`, for a record of bytes 0x01-0x7F only: without the
    /// text fields whose checks cannot fail on it.
    checked_plain: Checks,
    /// The delimiter of an unquoted delimited layout, which takes the
    /// one-pass path.
    fast_delimiter: Option<u8>,
    /// One plan per version of a versioned layout, in the layout's order
    /// (empty otherwise): a member is read with the one it fits.
    pub variants: Vec<Arc<Plan>>,
}

impl Plan {
    /// Compiles `layout`.
    pub fn new(layout: Layout) -> Plan {
        let terminator = match &layout.format {
            Format::Fixed(f) => f.terminator,
            Format::Delimited(d) => d.terminator,
        };
        let mut key_mask = vec![false; layout.fields.len()];
        for &k in &layout.key {
            key_mask[k] = true;
        }
        let fast_delimiter = match &layout.format {
            Format::Delimited(d)
                if d.quoting == crate::schema::Quoting::None =>
            {
                Some(d.delimiter)
            }
            _ => None,
        };
        let steps = |plain: bool| {
            let quick = |(i, f): (usize, &Field)| {
                let q = if key_mask[i] {
                    Quick::Decode
                } else {
                    Quick::of(&f.decoder, plain)
                };
                (i, q)
            };
            let all = layout.fields.iter().enumerate().map(quick);
            Checks::new(all.filter(|&(_, q)| q != Quick::Valid).collect())
        };
        let (checked, checked_plain) = (steps(false), steps(true));
        let all = (0..layout.fields.len()).map(|i| (i, Quick::Decode));
        let variants = layout
            .versions
            .iter()
            .map(|v| Arc::new(Plan::new(layout.with_version(v))))
            .collect();
        Plan {
            variants,
            all: all.collect(),
            checked,
            checked_plain,
            framing: Framing::of(&layout),
            slicer: Slicer::new(&layout),
            terminator,
            key_mask,
            fast_delimiter,
            layout,
        }
    }
}

/// How a sink without values checks a record.
#[derive(Debug)]
struct Checks {
    /// Every field to look at, in layout order, with its quick test.
    ordered: Vec<(usize, Quick)>,
    /// The fields with a quick test, grouped by kind (in layout order
    /// within a kind), so that each test runs many times in a row.
    grouped: Vec<(usize, Quick)>,
    /// Each kind's part of `grouped`.
    kinds: Vec<(u8, std::ops::Range<usize>)>,
    /// The fields always decoded, in layout order.
    decoded: Vec<usize>,
}

impl Checks {
    fn new(ordered: Vec<(usize, Quick)>) -> Checks {
        let mut grouped: Vec<_> = ordered
            .iter()
            .copied()
            .filter(|&(_, q)| q != Quick::Decode)
            .collect();
        grouped.sort_by_key(|&(i, q)| (q.kind(), i));
        let mut kinds: Vec<(u8, std::ops::Range<usize>)> = Vec::new();
        for (at, (_, q)) in grouped.iter().enumerate() {
            match kinds.last_mut() {
                Some((k, r)) if *k == q.kind() => r.end = at + 1,
                _ => kinds.push((q.kind(), at..at + 1)),
            }
        }
        let decoded = ordered
            .iter()
            .filter(|&&(_, q)| q == Quick::Decode)
            .map(|&(i, _)| i)
            .collect();
        Checks { ordered, grouped, kinds, decoded }
    }
}

/// What a worker made of one chunk.
pub struct ChunkResult<S> {
    /// The chunk's sequence number.
    pub seq: u64,
    /// Offset of the chunk in the member.
    pub start_byte: u64,
    /// Chunk length in bytes.
    pub len: usize,
    /// The chunk's bytes (shared, not copied), for hashing in order.
    pub data: bytes::Bytes,
    /// Record counts (duplicates are decided later, over all chunks).
    pub counts: Counts,
    /// Rejected records.
    pub rejects: Vec<Reject>,
    /// Keys of valid records (empty when the layout has no key).
    pub keys: Vec<KeyEntry>,
    /// How `keys` are ordered.
    pub key_order: KeyOrder,
    /// Lines the chunk spans.
    pub lines: u64,
    /// Whether the lines of `rejects` and `keys` count from 0 at the
    /// chunk's start (the chunk came without a first line; see
    /// [`ChunkResult::number_lines`]).
    pub lines_from_zero: bool,
    /// The sink with the chunk's valid rows.
    pub rows: S,
}

impl<S> ChunkResult<S> {
    /// Numbers the lines of `rejects` and `keys` from `first`, the line
    /// the chunk starts on, when they count from 0.
    pub fn number_lines(&mut self, first: u64) {
        if !std::mem::take(&mut self.lines_from_zero) {
            return;
        }
        for r in &mut self.rejects {
            r.at.line += first;
        }
        for k in &mut self.keys {
            k.line += first;
        }
    }
}

/// Per-worker scratch space, reused across records.
#[derive(Default)]
struct Scratch {
    fields: Fields,
    text: Vec<u8>,
    key: Vec<u8>,
    key_text: Vec<u8>,
    /// The canonical bytes of the last key taken.
    prev_key: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// Processes one chunk of `member` (file number `file`) into `rows`.
///
/// `rows` and `keys` arrive empty; a caller that reuses them across
/// chunks saves an allocation of each per chunk.
pub fn process_chunk<S: RowSink>(
    plan: &Plan,
    input: &Arc<str>,
    member: &Arc<str>,
    file: u32,
    chunk: &Chunk,
    mut rows: S,
    keys: Vec<KeyEntry>,
) -> ChunkResult<S> {
    debug_assert!(keys.is_empty());
    SCRATCH
        .with(|s| {
            let mut s = s.borrow_mut();
            let origin = Origin { input, member, file };
            process_impl(plan, &origin, chunk, &mut rows, keys, &mut s)
        })
        .into_result(chunk, rows)
}

/// Where a chunk comes from: its input, member and file number.
struct Origin<'a> {
    input: &'a Arc<str>,
    member: &'a Arc<str>,
    file: u32,
}

struct Partial {
    counts: Counts,
    rejects: Vec<Reject>,
    keys: Vec<KeyEntry>,
    key_order: KeyOrder,
    lines: u64,
}

impl Partial {
    fn into_result<S>(self, chunk: &Chunk, rows: S) -> ChunkResult<S> {
        ChunkResult {
            seq: chunk.seq,
            start_byte: chunk.start_byte,
            len: chunk.data.len(),
            data: chunk.data.clone(),
            counts: self.counts,
            rejects: self.rejects,
            keys: self.keys,
            key_order: self.key_order,
            lines: self.lines,
            lines_from_zero: chunk.first_line.is_none(),
            rows,
        }
    }
}

#[inline]
fn process_impl<S: RowSink>(
    plan: &Plan,
    origin: &Origin<'_>,
    chunk: &Chunk,
    rows: &mut S,
    keys: Vec<KeyEntry>,
    s: &mut Scratch,
) -> Partial {
    let Scratch { fields, text, key, key_text, prev_key } = s;
    let first_line = chunk.first_line.unwrap_or(0);
    let mut pass = Pass {
        plan,
        origin,
        chunk,
        rows,
        keys,
        counts: Counts::default(),
        rejects: Vec::new(),
        line: first_line,
        ascending: true,
        first_key: Vec::new(),
        text,
        key,
        key_text,
        prev_key,
    };
    let data = &chunk.data[..];
    if let Some(delim) = plan.fast_delimiter {
        // Unquoted delimited records: records and fields in one pass.
        let nfields = plan.layout.fields.len();
        let mut it = DelimitedRecords::new(data, delim, nfields);
        while let Some((rec, sliced)) = it.next_record(fields) {
            pass.record(rec, sliced, fields, Some(it.plain()));
        }
    } else {
        for rec in Records::new(data, plan.framing) {
            let sliced = plan.slicer.slice(rec.bytes, fields);
            pass.record(rec, sliced, fields, None);
        }
    }
    pass.finish(first_line)
}

/// One chunk's pass over its records: what it has counted, rejected and
/// keyed so far, and the scratch buffers it reuses.
struct Pass<'a, S> {
    plan: &'a Plan,
    origin: &'a Origin<'a>,
    chunk: &'a Chunk,
    rows: &'a mut S,
    keys: Vec<KeyEntry>,
    counts: Counts,
    rejects: Vec<Reject>,
    /// The line the next record starts on.
    line: u64,
    /// Whether the keys so far ascend, and the first of them.
    ascending: bool,
    first_key: Vec<u8>,
    text: &'a mut Vec<u8>,
    key: &'a mut Vec<u8>,
    key_text: &'a mut Vec<u8>,
    prev_key: &'a mut Vec<u8>,
}

/// Where the record being checked starts.
#[derive(Clone, Copy)]
struct At {
    line: u64,
    byte: u64,
}

impl<'a, S: RowSink> Pass<'a, S> {
    /// Checks one record (`plain`: whether it holds only bytes
    /// 0x01-0x7F, when the splitter found out) and hands its row to the
    /// sink, or rejects it.
    #[inline]
    fn record(
        &mut self,
        rec: RecordRef<'_>,
        sliced: Result<(), Reason>,
        fields: &Fields,
        plain: Option<bool>,
    ) {
        let at = At {
            line: self.line,
            byte: self.chunk.start_byte + rec.offset as u64,
        };
        self.line += 1 + rec.extra_lines as u64;
        self.counts.read += 1;
        if !self.admit(&rec, sliced, fields, at) {
            return;
        }
        let has_key = !self.plan.layout.key.is_empty();
        let nfields = self.plan.layout.fields.len();
        self.rows.start_row(self.origin.file, at.line, nfields);
        if has_key {
            self.key.clear();
            self.key_text.clear();
        }
        let order = if S::VALUES {
            &self.plan.all[..]
        } else {
            self.quick_order(rec.bytes, fields, plain)
        };
        if !self.decode_fields(order, rec.bytes, fields, at) {
            return;
        }
        self.rows.end_row();
        self.counts.valid += 1;
        if has_key {
            self.push_key(at);
        }
    }

    /// Whether the record gets to its fields: not a blank line skipped,
    /// nor filtered out by a rule, nor rejected for its framing.
    #[inline]
    fn admit(
        &mut self,
        rec: &RecordRef<'_>,
        sliced: Result<(), Reason>,
        fields: &Fields,
        at: At,
    ) -> bool {
        let plan = self.plan;
        let blocks = matches!(plan.framing, Framing::Blocks { .. });
        if rec.bytes.is_empty() && !blocks && plan.layout.skip_blank {
            self.counts.filtered += 1;
            self.counts.blank += 1;
            return false;
        }
        let bad_ending = matches!(
            (plan.terminator, rec.ending),
            (Terminator::Crlf, Ending::Lf) | (Terminator::Lf, Ending::CrLf)
        );
        let reason = if bad_ending {
            Err(Reason::WrongTerminator)
        } else if rec.unterminated_quote {
            Err(Reason::UnterminatedQuote)
        } else {
            sliced
        };
        if let Err(reason) = reason {
            self.reject(None, rec.bytes, at.line, at.byte, reason);
            return false;
        }
        for f in &plan.layout.filters {
            if !f.keeps(Trim::Both.apply(fields.get(rec.bytes, f.field))) {
                self.counts.filtered += 1;
                self.counts.filtered_by_rule += 1;
                return false;
            }
        }
        true
    }

    /// The fields a sink without values must still decode, in layout
    /// order: none when the quick tests and the always-decoded fields
    /// pass (the key is then taken), else every checked field.
    ///
    /// A sink that does not take values decodes only what a quick test
    /// cannot pass; without a NUL or a byte ≥ 0x80, text is valid in any
    /// encoding, so most text fields are not even looked at. The quick
    /// tests run grouped by kind, then the fields that must be decoded;
    /// only when one fails are the fields taken again in layout order,
    /// so that the first failing field is the one reported.
    #[inline]
    fn quick_order(
        &mut self,
        bytes: &[u8],
        fields: &Fields,
        plain: Option<bool>,
    ) -> &'a [(usize, Quick)] {
        let plan: &'a Plan = self.plan;
        let plain = plain.unwrap_or_else(|| plain_ascii(bytes));
        let checks = if plain { &plan.checked_plain } else { &plan.checked };
        // One loop per kind, each compiled for its kind alone.
        let quick = checks.kinds.iter().all(|(kind, r)| {
            let run = |k: u8| {
                checks.grouped[r.clone()].iter().all(|&(i, q)| {
                    let (buf, span) = fields.within(bytes, i);
                    q.accepts_as(k, buf, span)
                })
            };
            match *kind {
                Quick::KIND_SHORTER => run(Quick::KIND_SHORTER),
                Quick::KIND_DIGITS => run(Quick::KIND_DIGITS),
                Quick::KIND_DECIMAL => run(Quick::KIND_DECIMAL),
                Quick::KIND_DATE => run(Quick::KIND_DATE),
                Quick::KIND_ASCII => run(Quick::KIND_ASCII),
                _ => false,
            }
        });
        let has_key = !plan.layout.key.is_empty();
        let decoded = quick
            && checks.decoded.iter().all(|&i| {
                let raw = fields.get(bytes, i);
                let decoder = &plan.layout.fields[i].decoder;
                // A key (usually text) is often its bytes, trimmed.
                // Other fields decoded here (a required text, say) are
                // checked, never part of the key.
                if let Some(s) = decoder.plain_text(raw) {
                    if has_key && plan.key_mask[i] {
                        key_bytes(&Value::Text(s), self.key, self.key_text);
                    }
                    return true;
                }
                match decoder.decode(raw, self.text) {
                    Ok(v) if has_key && plan.key_mask[i] => {
                        key_bytes(&v, self.key, self.key_text);
                        true
                    }
                    Ok(_) => true,
                    Err(_) => false,
                }
            });
        if decoded {
            &[]
        } else {
            if has_key {
                self.key.clear();
                self.key_text.clear();
            }
            &checks.ordered[..]
        }
    }

    /// Decodes the fields of `order` that their quick test does not
    /// pass into the sink, taking the key; on the first that fails,
    /// aborts the row, rejects the record (keeping its key, when the
    /// sink wants rejected keys) and returns false.
    #[inline]
    fn decode_fields(
        &mut self,
        order: &[(usize, Quick)],
        bytes: &[u8],
        fields: &Fields,
        at: At,
    ) -> bool {
        let plan = self.plan;
        let layout = &plan.layout;
        let has_key = !layout.key.is_empty();
        for &(i, quick) in order {
            let field = &layout.fields[i];
            let (buf, span) = fields.within(bytes, i);
            if quick.accepts(buf, span.clone()) {
                continue;
            }
            let raw = &buf[span];
            match field.decoder.decode(raw, self.text) {
                Ok(v) => {
                    if has_key && plan.key_mask[i] {
                        key_bytes(&v, self.key, self.key_text);
                    }
                    self.rows.value(field.decoder.ty, &v);
                }
                Err(reason) => {
                    self.rows.abort_row();
                    let byte = at.byte + fields.offset(i) as u64;
                    self.reject(Some(i), raw, at.line, byte, reason);
                    let (file, n) = (self.origin.file, layout.fields.len());
                    if has_key
                        && self.rows.start_rejected_key(file, at.line, n)
                    {
                        rejected_key(
                            layout,
                            &plan.key_mask,
                            fields,
                            bytes,
                            self.text,
                            self.rows,
                        );
                    }
                    return false;
                }
            }
        }
        true
    }

    /// Counts and keeps a reject of the record on `line`.
    fn reject(
        &mut self,
        field: Option<usize>,
        raw: &[u8],
        line: u64,
        byte: u64,
        reason: Reason,
    ) {
        self.counts.rejected += 1;
        let at = Position {
            input: self.origin.input.clone(),
            member: self.origin.member.clone(),
            line,
            byte,
            field: field.map(|f| f as u16),
        };
        self.rejects.push(Reject::new(at, raw, reason));
    }

    /// Keeps the key just taken (for the duplicate check), noting whether
    /// the keys still ascend.
    #[inline]
    fn push_key(&mut self, at: At) {
        if self.keys.is_empty() {
            self.first_key.extend_from_slice(self.key);
        } else if self.ascending && self.prev_key[..] >= self.key[..] {
            self.ascending = false;
        }
        std::mem::swap(self.prev_key, self.key);
        let h = xxhash_rust::xxh3::xxh3_128(self.prev_key);
        let mut t = [0u8; 31];
        let n = self.key_text.len().min(31);
        t[..n].copy_from_slice(&self.key_text[..n]);
        self.keys.push(KeyEntry {
            hash: [h as u64, (h >> 64) as u64],
            file: self.origin.file,
            line: at.line,
            byte: at.byte,
            text: t,
            text_len: n as u8,
        });
    }

    /// What the pass made of the chunk, whose first line is `first_line`.
    fn finish(self, first_line: u64) -> Partial {
        let key_order = if self.keys.is_empty() {
            KeyOrder::default()
        } else {
            KeyOrder {
                ascending: self.ascending,
                first: self.first_key,
                last: self.prev_key.clone(),
            }
        };
        Partial {
            counts: self.counts,
            rejects: self.rejects,
            keys: self.keys,
            key_order,
            lines: self.line - first_line,
        }
    }
}

/// Appends a key value's canonical bytes (for hashing) and its text (for
/// messages).
pub fn key_bytes(v: &Value<'_>, key: &mut Vec<u8>, text: &mut Vec<u8>) {
    use std::io::Write;
    if !text.is_empty() {
        text.push(b'|');
    }
    match *v {
        Value::Text(s) => {
            key.extend_from_slice(s.as_bytes());
            text.extend_from_slice(s.as_bytes());
        }
        Value::Int(i) => {
            key.extend_from_slice(&ordered(i));
            crate::decode::push_integer(text, i.into());
        }
        Value::Numeric(d) => {
            key.extend_from_slice(&d.mantissa.to_le_bytes());
            key.extend_from_slice(&d.scale.to_le_bytes());
            d.write_text(text);
        }
        Value::Float(f) => {
            key.extend_from_slice(&f.to_bits().to_le_bytes());
            let _ = write!(text, "{f}");
        }
        Value::Bool(b) => {
            key.push(b as u8);
            text.extend_from_slice(if b { b"true" } else { b"false" });
        }
        Value::Date(d) => {
            key.extend_from_slice(&ordered(d.into()));
            let (y, m, dd) = crate::decode::civil(d);
            let _ = write!(text, "{y:04}-{m:02}-{dd:02}");
        }
        Value::Timestamp(t) | Value::Time(t) => {
            key.extend_from_slice(&ordered(t));
            let _ = write!(text, "{t}");
        }
        Value::Null => {}
    }
    // A separator no UTF-8 text contains keeps ("ab","c") ≠ ("a","bc").
    key.push(0xFF);
}

/// `i` as bytes that sort as the numbers do (big-endian, sign bit
/// flipped), so that keys in ascending order are seen to be (see
/// [`KeyOrder`]).
fn ordered(i: i64) -> [u8; 8] {
    ((i as u64) ^ (1 << 63)).to_be_bytes()
}

/// Writes a rejected record's key values (NULL elsewhere) when every key
/// field decodes; otherwise drops the row.
fn rejected_key<S: RowSink>(
    layout: &Layout,
    key_mask: &[bool],
    fields: &Fields,
    record: &[u8],
    scratch: &mut Vec<u8>,
    rows: &mut S,
) {
    for (i, f) in layout.fields.iter().enumerate() {
        if !key_mask[i] {
            rows.value(f.decoder.ty, &Value::Null);
            continue;
        }
        match f.decoder.decode(fields.get(record, i), scratch) {
            Ok(v) => rows.value(f.decoder.ty, &v),
            Err(_) => {
                rows.abort_row();
                return;
            }
        }
    }
    rows.end_row();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SchemaSet;
    use std::path::Path;

    /// What `process_chunk` makes of `data` (records `id,name`, key `id`
    /// of type `ty`).
    fn chunk_of(ty: &str, data: &str) -> ChunkResult<NoRows> {
        let toml = format!(
            "members = [\"x\"]\nformat = \"delimited\"\ndelimiter = \",\"\n\
             quoting = \"none\"\nkey = [\"id\"]\n\
             [[field]]\nname = \"id\"\ntype = \"{ty}\"\n\
             [[field]]\nname = \"name\"\ntype = \"text\"\n"
        );
        let layout =
            SchemaSet::layout_from_str(Path::new("t.toml"), &toml).unwrap();
        let plan = Plan::new(layout);
        let chunk = Chunk {
            seq: 0,
            data: bytes::Bytes::copy_from_slice(data.as_bytes()),
            start_byte: 0,
            first_line: Some(1),
        };
        let name: Arc<str> = Arc::from("x");
        process_chunk(&plan, &name, &name, 0, &chunk, NoRows, Vec::new())
    }

    /// The key order `process_chunk` finds in `data`, and the number of
    /// keys (see [`chunk_of`]).
    fn order_of(ty: &str, data: &str) -> (KeyOrder, usize) {
        let r = chunk_of(ty, data);
        (r.key_order, r.keys.len())
    }

    #[test]
    fn plain_text_keys_are_checked_as_decoding_does() {
        // Trimmed, within the length; a key cannot be blank (NULL); too
        // long is a reject, plain or not.
        let data = " ab ,x\n   ,y\nabcd,z\nab\u{e9}d,w\nabc,v\n";
        let r = chunk_of("varchar(3)", data);
        assert_eq!((r.counts.valid, r.counts.rejected), (2, 3));
        let texts: Vec<&[u8]> = r.keys.iter().map(|k| k.text()).collect();
        assert_eq!(texts, [&b"ab"[..], b"abc"]);
        let rejects: Vec<_> =
            r.rejects.iter().map(|j| (j.at.line, j.reason)).collect();
        assert_eq!(
            rejects,
            [
                (2, Reason::Required),
                (3, Reason::TooLong { len: 4, max: 3 }),
                (4, Reason::TooLong { len: 4, max: 3 }),
            ]
        );
        // The keys' canonical bytes are the decoded values'.
        let mut want = Vec::new();
        key_bytes(&Value::Text("ab"), &mut want, &mut Vec::new());
        assert_eq!(r.key_order.first, want);
        assert_eq!(r.key_order.last, b"abc\xFF");
    }

    #[test]
    fn key_order_of_a_chunk() {
        // Integers compare as numbers, negative ones included.
        let (o, n) = order_of("int", "-300,a\n-2,b\n9,c\n10,d\n70000,e\n");
        assert_eq!(n, 5);
        assert!(o.ascending);
        let mut first = Vec::new();
        key_bytes(&Value::Int(-300), &mut first, &mut Vec::new());
        assert_eq!(o.first, first);
        let mut last = Vec::new();
        key_bytes(&Value::Int(70000), &mut last, &mut Vec::new());
        assert_eq!(o.last, last);
        // Text by its bytes, after trimming; a repeat is not ascending.
        let (o, _) = order_of("text", "0001 ,a\n0002,b\n 0003,c\n");
        assert!(o.ascending);
        assert_eq!(o.last, b"0003\xFF");
        for data in ["1,a\n1,b\n", "2,a\n1,b\n", "1,a\n3,b\n2,c\n"] {
            let (o, n) = order_of("int", data);
            assert!(!o.ascending && n > 1, "{data}");
        }
        // A rejected record's key is not among the keys, nor in the order.
        let (o, n) = order_of("int", "1,a\nx,b\n0,c\n");
        assert_eq!(n, 2);
        assert!(!o.ascending);
        let (o, n) = order_of("int", "1,a\nx,b\n2,c\n");
        assert_eq!(n, 2);
        assert!(o.ascending);
        // No keys: nothing claimed.
        assert_eq!(order_of("int", "x,a\n").0, KeyOrder::default());
    }
}
