//! Field slicing of one record.
//!
//! Arbitrary record bytes are sliced by `Slicer`s of three layouts built
//! from TOML with `SchemaSet::layout_from_str`: delimited without quoting,
//! delimited with standard quoting, and fixed width. Slicing must never
//! panic, and:
//!
//! - no quoting: the fields joined with the delimiter give back the
//!   record; a wrong field count reports the count the record has; the
//!   workers' one-pass splitter (`DelimitedRecords`), given the bytes
//!   LFs and all, finds the records, fields and field offsets a split at
//!   LF and at the delimiter finds, and which of them hold only bytes
//!   0x01-0x7F, scanning its usual 32 KiB at a time or 64-192 bytes (so
//!   that records cross window ends);
//! - standard quoting: sliced fields, quoted again (every field quoted,
//!   inner quotes doubled, and as `write_record` quotes them) slice to the
//!   same fields; a record without quotes slices as without quoting; an
//!   unterminated quote is reported only for a record the record framing
//!   (`split`) sees ending inside quotes, and such a record never slices;
//! - fixed width: the fields are the declared byte ranges (cut at the end
//!   of a short record), length errors follow the layout's policies, and a
//!   full-length record written back by `write_record` slices the same.
#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

use fwload::reject::Reason;
use fwload::decode::plain_ascii;
use fwload::generate::{terminator_bytes, write_record};
use fwload::record::{DelimitedRecords, Fields, Slicer};
use fwload::schema::{Layout, SchemaSet};

/// Most fields a delimited test layout gets.
const MAX_FIELDS: usize = 64;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Picks the delimiter.
    delim: u8,
    /// Fields of the delimited layouts: 0 means as many as the record
    /// holds, else `n % 8`.
    count: u8,
    fixed: FixedSpec,
    record: Vec<u8>,
}

#[derive(Arbitrary, Clone, Debug, Hash, PartialEq, Eq)]
struct FixedSpec {
    /// `1 + n % 32`.
    record_length: u8,
    /// `(gap before, width)` of each field, in order.
    fields: Vec<(u8, u8)>,
    longer_reject: bool,
    shorter_pad: bool,
    /// Write ranges as 1-based `from`/`to` instead of `start`/`width`.
    from_to: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Key {
    Delimited { delim: u8, quoted: bool, count: usize },
    Fixed(FixedSpec),
}

type Built = Rc<(Layout, Slicer)>;

thread_local! {
    static LAYOUTS: RefCell<HashMap<Key, Built>> =
        RefCell::new(HashMap::new());
}

fn delimited_toml(delim: u8, quoted: bool, count: usize) -> String {
    let mut s = format!(
        "members = [\"x.txt\"]\nformat = \"delimited\"\n\
         delimiter = \"\\u{delim:04X}\"\nquoting = \"{}\"\n",
        if quoted { "standard" } else { "none" }
    );
    for i in 0..count {
        s.push_str(&format!(
            "\n[[field]]\nname = \"f{i}\"\ntype = \"text\"\n"
        ));
    }
    s
}

/// The field ranges of a fixed spec, and the record length.
fn fixed_spans(spec: &FixedSpec) -> (usize, Vec<(usize, usize)>) {
    let rl = 1 + spec.record_length as usize % 32;
    let mut spans = Vec::new();
    let mut at = 0;
    for &(gap, width) in spec.fields.iter().take(8) {
        let start = at + gap as usize % 4;
        if start >= rl {
            break;
        }
        let end = (start + 1 + width as usize % 8).min(rl);
        spans.push((start, end));
        at = end;
    }
    if spans.is_empty() {
        spans.push((0, rl));
    }
    (rl, spans)
}

fn fixed_toml(spec: &FixedSpec) -> String {
    let (rl, spans) = fixed_spans(spec);
    let mut s = format!(
        "members = [\"x.txt\"]\nformat = \"fixed\"\nrecord_length = {rl}\n\
         longer = \"{}\"\nshorter = \"{}\"\n",
        if spec.longer_reject { "reject" } else { "ignore" },
        if spec.shorter_pad { "pad" } else { "reject" },
    );
    for (i, (a, b)) in spans.iter().enumerate() {
        s.push_str(&format!(
            "\n[[field]]\nname = \"f{i}\"\ntype = \"text\"\n"
        ));
        if spec.from_to {
            s.push_str(&format!("from = {}\nto = {b}\n", a + 1));
        } else {
            s.push_str(&format!("start = {a}\nwidth = {}\n", b - a));
        }
    }
    s
}

fn built(key: Key) -> Built {
    LAYOUTS.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() > 4096 {
            m.clear();
        }
        m.entry(key.clone())
            .or_insert_with(|| {
                let text = match &key {
                    Key::Delimited { delim, quoted, count } => {
                        delimited_toml(*delim, *quoted, *count)
                    }
                    Key::Fixed(spec) => fixed_toml(spec),
                };
                let layout =
                    SchemaSet::layout_from_str(Path::new("x.toml"), &text)
                        .unwrap_or_else(|e| panic!("{text}\n{e}"));
                let slicer = Slicer::new(&layout);
                Rc::new((layout, slicer))
            })
            .clone()
    })
}

fn slice(
    s: &Slicer,
    rec: &[u8],
    f: &mut Fields,
) -> Result<Vec<Vec<u8>>, Reason> {
    s.slice(rec, f)?;
    Ok((0..f.len()).map(|i| f.get(rec, i).to_vec()).collect())
}

/// `write_record` of `fields`, without the terminator.
fn written(layout: &Layout, fields: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let raw: Vec<u8> = fields.concat();
    let mut spans = Vec::new();
    let mut at = 0;
    for f in fields {
        spans.push((at, at + f.len()));
        at += f.len();
    }
    let mut out = Vec::new();
    write_record(layout, &raw, &spans, &mut out)?;
    let t = terminator_bytes(layout);
    assert!(out.ends_with(t), "write_record left off the terminator");
    out.truncate(out.len() - t.len());
    Ok(out)
}

/// The workers' one-pass splitter on `buf` (LFs included) gives the
/// records a split at LF gives, the fields the delimiter separates, and
/// says exactly which records hold only bytes 0x01-0x7F.
fn check_one_pass(buf: &[u8], d: u8, count: usize) {
    if d == b'\n' || d == b'\r' {
        return;
    }
    // The default window (32 KiB) and windows short inputs cross.
    for window in [None, Some(64), Some(128), Some(192)] {
        check_one_pass_in(buf, d, count, window);
    }
}

fn check_one_pass_in(buf: &[u8], d: u8, count: usize, window: Option<usize>) {
    let mut lines: Vec<&[u8]> = buf.split(|&b| b == b'\n').collect();
    if buf.is_empty() || buf.ends_with(b"\n") {
        lines.pop();
    }
    let last = lines.len().saturating_sub(1);
    let mut f = Fields::default();
    let mut it = match window {
        Some(w) => DelimitedRecords::with_window(buf, d, count, w),
        None => DelimitedRecords::new(buf, d, count),
    };
    for (k, line) in lines.iter().enumerate() {
        let terminated = k < last || buf.ends_with(b"\n");
        let body = match line.strip_suffix(b"\r") {
            Some(b) if terminated => b,
            _ => line,
        };
        let (r, res) = it.next_record(&mut f).expect("a record per line");
        assert_eq!(r.bytes, body, "record {k}");
        assert_eq!(it.plain(), plain_ascii(body), "record {k} plain");
        let want: Vec<&[u8]> = body.split(|&b| b == d).collect();
        assert_eq!(res.is_ok(), want.len() == count, "record {k} count");
        if res.is_ok() {
            let mut at = 0;
            for (i, w) in want.iter().enumerate() {
                assert_eq!(f.get(r.bytes, i), *w, "record {k} field {i}");
                assert_eq!(f.offset(i) as usize, at, "record {k} offset {i}");
                at += w.len() + 1;
            }
        }
    }
    assert!(it.next_record(&mut f).is_none(), "records beyond the lines");
}

fn check_unquoted(rec: &[u8], d: u8, count: usize, f: &mut Fields) {
    check_one_pass(rec, d, count);
    let (layout, slicer) =
        &*built(Key::Delimited { delim: d, quoted: false, count });
    let delims = rec.iter().filter(|&&b| b == d).count();
    match slice(slicer, rec, f) {
        Ok(fields) => {
            assert_eq!(fields.len(), count);
            assert_eq!(
                fields.join(&d),
                rec,
                "fields do not join to the record"
            );
            for (i, v) in fields.iter().enumerate() {
                let at = f.offset(i) as usize;
                assert_eq!(&rec[at..at + v.len()], &v[..], "field {i} offset");
            }
            match written(layout, &fields) {
                Ok(out) => assert_eq!(out, rec, "write_record"),
                Err(_) => assert!(rec.contains(&b'\n')),
            }
        }
        Err(Reason::FieldCount { found, expected }) => {
            assert_eq!(found as usize, delims + 1);
            assert_eq!(expected as usize, count);
            assert_ne!(delims + 1, count);
        }
        Err(r) => panic!("unquoted slicing failed with {r:?}"),
    }
}

/// Whether `rec` ends inside a quoted field under the framing rules:
/// `"` opens a quoted field only at the start of a field, `""` inside it
/// is a quote, any other `"` closes it.
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

fn check_quoted(rec: &[u8], d: u8, count: usize, f: &mut Fields) {
    let b = built(Key::Delimited { delim: d, quoted: true, count });
    let mut res = slice(&b.1, rec, f);
    if let Err(Reason::FieldCount { found, expected }) = res {
        assert_eq!(expected as usize, count);
        assert_ne!(found as usize, count);
        let found = found as usize;
        if found > MAX_FIELDS {
            return;
        }
        let b2 =
            built(Key::Delimited { delim: d, quoted: true, count: found });
        res = slice(&b2.1, rec, f);
        assert!(
            res.is_ok(),
            "a count mismatch of {found} then {res:?} with {found} fields"
        );
    }
    // The slicer and the record framing agree on where quotes open.
    let open = open_at_end(rec, d);
    let fields = match res {
        Ok(v) => {
            assert!(!open, "a record ending inside quotes sliced");
            v
        }
        Err(Reason::UnterminatedQuote) => {
            assert!(open, "unterminated quote, yet all quotes close");
            return;
        }
        Err(Reason::StrayQuote) => {
            assert!(rec.contains(&b'"'), "quote error without a quote");
            return;
        }
        Err(r) => panic!("quoted slicing failed with {r:?}"),
    };
    let n = fields.len();
    let (layout, slicer) =
        &*built(Key::Delimited { delim: d, quoted: true, count: n });
    if !rec.contains(&b'"') {
        assert_eq!(fields.join(&d), rec, "no quotes, yet fields changed");
    }
    // Every field quoted.
    let mut requoted = Vec::new();
    let mut starts = Vec::new();
    for (i, v) in fields.iter().enumerate() {
        if i > 0 {
            requoted.push(d);
        }
        requoted.push(b'"');
        starts.push(requoted.len());
        for &c in v {
            if c == b'"' {
                requoted.push(b'"');
            }
            requoted.push(c);
        }
        requoted.push(b'"');
    }
    assert_eq!(
        slice(slicer, &requoted, f).as_ref(),
        Ok(&fields),
        "requoted record {requoted:?}"
    );
    // Offsets are where each field's text starts in the record, escaped
    // quotes or not (rejects report them).
    for (i, &at) in starts.iter().enumerate() {
        assert_eq!(f.offset(i) as usize, at, "field {i} offset");
    }
    // Quoted as the generator quotes.
    let out = written(layout, &fields).expect("write_record with quoting");
    assert_eq!(
        slice(slicer, &out, f).as_ref(),
        Ok(&fields),
        "write_record gave {out:?}"
    );
}

fn check_fixed(rec: &[u8], spec: &FixedSpec, f: &mut Fields) {
    let (layout, slicer) = &*built(Key::Fixed(spec.clone()));
    let (rl, spans) = fixed_spans(spec);
    let len = rec.len();
    let res = slice(slicer, rec, f);
    if len < rl && !spec.shorter_pad {
        assert_eq!(
            res,
            Err(Reason::RecordTooShort {
                len: len as u32,
                expected: rl as u32
            })
        );
        return;
    }
    if len > rl && spec.longer_reject {
        assert_eq!(
            res,
            Err(Reason::RecordTooLong {
                len: len as u32,
                expected: rl as u32
            })
        );
        return;
    }
    let fields = res.expect("fixed slicing failed");
    let want: Vec<Vec<u8>> = spans
        .iter()
        .map(|&(a, b)| rec[a.min(len)..b.min(len)].to_vec())
        .collect();
    assert_eq!(fields, want);
    for (i, &(a, _)) in spans.iter().enumerate() {
        assert_eq!(f.offset(i) as usize, a.min(len), "field {i} offset");
    }
    if len >= rl {
        let out = written(layout, &fields).expect("write_record, fixed");
        assert_eq!(out.len(), rl);
        for (i, &(a, b)) in spans.iter().enumerate() {
            assert_eq!(out[a..b], rec[a..b], "field {i} written back");
        }
        assert_eq!(slice(slicer, &out, f), Ok(fields));
    }
}

fuzz_target!(|input: Input| {
    let rec = &input.record[..];
    let d = match input.delim % 6 {
        0 => b',',
        1 => b'\t',
        2 => b'|',
        3 => b';',
        4 => b' ',
        // Any other byte a schema accepts as a delimiter.
        _ => match input.delim & 0x7f {
            b'\n' | b'\r' | b'"' => b',',
            b => b,
        },
    };
    let count = if input.count == 0 {
        (1 + rec.iter().filter(|&&b| b == d).count()).min(MAX_FIELDS)
    } else {
        1 + input.count as usize % 8
    };
    // One `Fields` for all, as a worker reuses it record to record.
    let mut f = Fields::default();
    check_unquoted(rec, d, count, &mut f);
    check_quoted(rec, d, count, &mut f);
    check_fixed(rec, &input.fixed, &mut f);
});
