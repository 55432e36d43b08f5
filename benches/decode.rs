//! Slicing and decoding: the worker's hot loop without threads (records →
//! `Slicer::slice` → `Decoder::decode` for every field), and single-field
//! decoders on values taken from generated data.
//!
//! Inputs: a few MiB of HCAD real_acct.txt and PACS
//! APPRAISAL_LAND_DETAIL.TXT made by `fwload::generate` with seed 7,
//! decoded with the shipped layouts' own decoders.
//!
//! - `slice/*`: records and field ranges only; `one_pass` rows use the
//!   single scan for records and fields of unquoted delimited layouts
//!   (`DelimitedRecords`, what validation uses for HCAD).
//! - `slice_decode/*`: records, field ranges and every field decoded (what
//!   `process_chunk` does for validation, minus counters and keys).
//! - `field/*`: one decoder over 4096 non-blank values of one column,
//!   with the shipped decoder of that column: `int` = PACS `prop_id`
//!   (bigint, 12 zero-padded digits), `implied_decimal` = PACS
//!   `size_acres` (numeric(14,4), 4 implied places), `date` = HCAD
//!   `splt_dt` (`MM/DD/YYYY`), `latin1_text` = HCAD `mailto` declared
//!   latin-1 instead of windows-1252, as generated (`ascii`, values with
//!   non-ASCII bytes left out) and with one byte of each value made
//!   non-ASCII (`non_ascii`, which takes the transcoding path).
//!
//! Run: `cargo bench --bench decode` (add `-- --quick` for a short run).

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use fwload::decode::{Decoder, Encoding, Trim};
use fwload::record::{DelimitedRecords, Fields, Slicer};
use fwload::schema::{Format, Layout, Quoting};
use fwload::split::{Framing, Records};

use common::Member;

/// Values per `field/*` iteration.
const VALUES: usize = 4096;

/// Slices every record; returns records sliced and fields seen.
fn slice_all(
    slicer: &Slicer,
    framing: Framing,
    body: &[u8],
    fields: &mut Fields,
) -> (u64, u64) {
    let (mut recs, mut n) = (0u64, 0u64);
    for rec in Records::new(body, framing) {
        if slicer.slice(rec.bytes, fields).is_ok() {
            recs += 1;
            n += fields.len() as u64;
        }
    }
    (recs, n)
}

/// As [`slice_all`], records and fields found in one pass.
fn one_pass_all(
    delim: u8,
    nfields: usize,
    body: &[u8],
    fields: &mut Fields,
) -> (u64, u64) {
    let (mut recs, mut n) = (0u64, 0u64);
    let mut it = DelimitedRecords::new(body, delim, nfields);
    while let Some((_, sliced)) = it.next_record(fields) {
        if sliced.is_ok() {
            recs += 1;
            n += fields.len() as u64;
        }
    }
    (recs, n)
}

/// Slices and decodes every field of every record; returns (valid,
/// rejected) records.
fn decode_all(
    layout: &Layout,
    slicer: &Slicer,
    framing: Framing,
    body: &[u8],
    fields: &mut Fields,
    scratch: &mut Vec<u8>,
) -> (u64, u64) {
    let (mut valid, mut rejected) = (0u64, 0u64);
    'records: for rec in Records::new(body, framing) {
        if slicer.slice(rec.bytes, fields).is_err() {
            rejected += 1;
            continue;
        }
        for (i, f) in layout.fields.iter().enumerate() {
            match f.decoder.decode(fields.get(rec.bytes, i), scratch) {
                Ok(v) => {
                    black_box(v);
                }
                Err(_) => {
                    rejected += 1;
                    continue 'records;
                }
            }
        }
        valid += 1;
    }
    (valid, rejected)
}

/// Up to [`VALUES`] raw values of `field` (as sliced, untrimmed) that are
/// not blank, cycling through the records again if there are fewer.
fn column(m: &Member, field: &str) -> (Decoder, Vec<Box<[u8]>>) {
    let i = m.layout.field_index(field).expect("field in layout");
    let slicer = Slicer::new(&m.layout);
    let mut fields = Fields::default();
    let mut values: Vec<Box<[u8]>> = Vec::new();
    for rec in Records::new(m.body(), Framing::of(&m.layout)) {
        slicer.slice(rec.bytes, &mut fields).expect("generated record");
        let raw = fields.get(rec.bytes, i);
        if !Trim::Both.apply(raw).is_empty() {
            values.push(raw.into());
        }
    }
    assert!(!values.is_empty(), "{}: no values of {field}", m.name);
    let mut all = values.clone();
    while all.len() < VALUES {
        all.extend(values.iter().cloned());
    }
    all.truncate(VALUES);
    (m.layout.fields[i].decoder.clone(), all)
}

/// The values with one byte each made non-ASCII: the first `E` becomes
/// `É` (0xC9), else the first letter becomes `Ñ` (0xD1).
fn with_non_ascii(values: &[Box<[u8]>]) -> Vec<Box<[u8]>> {
    values
        .iter()
        .map(|v| {
            let mut v = v.to_vec();
            if let Some(p) = v.iter().position(|&b| b == b'E') {
                v[p] = 0xC9;
            } else if let Some(p) = v.iter().position(u8::is_ascii_alphabetic)
            {
                v[p] = 0xD1;
            } else {
                v.push(0xD1);
            }
            v.into_boxed_slice()
        })
        .collect()
}

fn decode(c: &mut Criterion) {
    let hcad = common::hcad_real_acct(common::HCAD_FEW_MIB_ROWS);
    let pacs = common::pacs_land_detail(common::PACS_FEW_MIB_ROWS);

    let mut g = c.benchmark_group("slice");
    for m in [&hcad, &pacs] {
        let slicer = Slicer::new(&m.layout);
        let framing = Framing::of(&m.layout);
        let body = m.body();
        let mut fields = Fields::default();
        let (recs, _) = slice_all(&slicer, framing, body, &mut fields);
        assert_eq!(recs, m.records, "{}: records sliced", m.name);
        g.throughput(Throughput::ElementsAndBytes {
            elements: m.records,
            bytes: body.len() as u64,
        });
        let id = BenchmarkId::new(
            m.name,
            format!("fields={}", m.layout.fields.len()),
        );
        g.bench_with_input(id, body, |b, body| {
            b.iter(|| {
                slice_all(&slicer, framing, black_box(body), &mut fields)
            })
        });
        if let Format::Delimited(d) = &m.layout.format
            && d.quoting == Quoting::None
        {
            let n = m.layout.fields.len();
            let whole = slice_all(&slicer, framing, body, &mut fields);
            let one = one_pass_all(d.delimiter, n, body, &mut fields);
            assert_eq!(one, whole, "{}: one pass", m.name);
            let id = BenchmarkId::new(m.name, format!("fields={n}/one_pass"));
            g.bench_with_input(id, body, |b, body| {
                b.iter(|| {
                    one_pass_all(d.delimiter, n, black_box(body), &mut fields)
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("slice_decode");
    for m in [&hcad, &pacs] {
        let slicer = Slicer::new(&m.layout);
        let framing = Framing::of(&m.layout);
        let body = m.body();
        let mut fields = Fields::default();
        let mut scratch = Vec::new();
        let counts = decode_all(
            &m.layout,
            &slicer,
            framing,
            body,
            &mut fields,
            &mut scratch,
        );
        assert_eq!(counts, (m.records, 0), "{}: valid, rejected", m.name);
        g.throughput(Throughput::ElementsAndBytes {
            elements: m.records,
            bytes: body.len() as u64,
        });
        let id = BenchmarkId::new(
            m.name,
            format!("fields={}", m.layout.fields.len()),
        );
        g.bench_with_input(id, body, |b, body| {
            b.iter(|| {
                decode_all(
                    &m.layout,
                    &slicer,
                    framing,
                    black_box(body),
                    &mut fields,
                    &mut scratch,
                )
            })
        });
    }
    g.finish();

    let (int, ints) = column(&pacs, "prop_id");
    let (num, nums) = column(&pacs, "size_acres");
    let (lit, lits) = column(&hcad, "land_val");
    let (date, dates) = column(&hcad, "splt_dt");
    let (mut text, ascii) = column(&hcad, "mailto");
    text.text.encoding = Encoding::Latin1;
    let ascii: Vec<_> = ascii.into_iter().filter(|v| v.is_ascii()).collect();
    let latin1 = with_non_ascii(&ascii);
    let cases = [
        ("int", "bigint/width=12", &int, ints.as_slice()),
        ("implied_decimal", "numeric(14,4)/width=14", &num, nums.as_slice()),
        ("literal_decimal", "numeric(15,2)", &lit, lits.as_slice()),
        ("date", "format=MM_DD_YYYY", &date, dates.as_slice()),
        ("latin1_text", "ascii", &text, ascii.as_slice()),
        ("latin1_text", "non_ascii", &text, latin1.as_slice()),
    ];
    let mut g = c.benchmark_group("field");
    for (kind, param, dec, values) in cases {
        let mut scratch = Vec::new();
        for v in values {
            dec.decode(v, &mut scratch).unwrap_or_else(|r| {
                panic!("{kind} {param}: {:?}: {r}", String::from_utf8_lossy(v))
            });
        }
        let bytes: usize = values.iter().map(|v| v.len()).sum();
        g.throughput(Throughput::ElementsAndBytes {
            elements: values.len() as u64,
            bytes: bytes as u64,
        });
        let id = BenchmarkId::new(kind, param);
        g.bench_with_input(id, values, |b, values| {
            b.iter(|| {
                for v in values {
                    let _ = black_box(dec.decode(black_box(v), &mut scratch));
                }
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = decode
}
criterion_main!(benches);
