//! Record boundaries: the reader's sequential pass over a member
//! (`last_boundary` once per chunk, `count_lines` for line numbers) and a
//! worker's walk over the records of a chunk (`Records`).
//!
//! Inputs: a few MiB of HCAD real_acct.txt (tab-delimited, ~600 bytes a
//! record) and PACS APPRAISAL_LAND_DETAIL.TXT (199 bytes + CRLF), made by
//! `fwload::generate` with seed 7. The `hcad_real_acct_quoted` rows frame
//! the same bytes with quote tracking on (no shipped layout does this),
//! to show what quote-aware framing costs the sequential pass.
//!
//! Run: `cargo bench --bench split` (add `-- --quick` for a short run).

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use fwload::split::{Framing, Records, count_lines, last_boundary};

use common::{Member, size_name};

/// Cuts `buf` into chunks as the chunk reader does for a whole slice: a
/// window of `chunk` bytes cut at its last record boundary (doubling the
/// window when it holds none), the tail whole once it fits. Returns the
/// number of chunks.
fn cut_all(framing: Framing, buf: &[u8], chunk: usize) -> usize {
    let mut pos = 0;
    let mut chunks = 0;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let n = if rest.len() <= chunk {
            rest.len()
        } else {
            let mut window = chunk;
            loop {
                if let Some(b) = last_boundary(framing, &rest[..window]) {
                    break b;
                }
                if window == rest.len() {
                    break rest.len();
                }
                window = (window * 2).min(rest.len());
            }
        };
        pos += n;
        chunks += 1;
    }
    chunks
}

/// Walks every record, touching its length so nothing is optimised away.
fn walk(framing: Framing, buf: &[u8]) -> (u64, usize) {
    let mut n = 0u64;
    let mut bytes = 0usize;
    for r in Records::new(buf, framing) {
        n += 1;
        bytes += r.bytes.len();
    }
    (n, bytes)
}

/// The members and framings measured.
fn cases() -> Vec<(String, Framing, Member)> {
    let hcad = common::hcad_real_acct(common::HCAD_FEW_MIB_ROWS);
    let pacs = common::pacs_land_detail(common::PACS_FEW_MIB_ROWS);
    let quoted = Member {
        name: "hcad_real_acct_quoted",
        layout: hcad.layout.clone(),
        member: hcad.member.clone(),
        data: hcad.data.clone(),
        records: hcad.records,
        header: hcad.header,
    };
    vec![
        (hcad.name.to_owned(), Framing::of(&hcad.layout), hcad),
        (pacs.name.to_owned(), Framing::of(&pacs.layout), pacs),
        (
            quoted.name.to_owned(),
            Framing::Lines { quoted: Some(b'\t') },
            quoted,
        ),
    ]
}

fn split(c: &mut Criterion) {
    let cases = cases();

    let mut g = c.benchmark_group("last_boundary");
    for (name, framing, m) in &cases {
        g.throughput(Throughput::Bytes(m.data.len() as u64));
        for chunk in [256 << 10, 4 << 20] {
            let id =
                BenchmarkId::new(name, format!("chunk={}", size_name(chunk)));
            g.bench_with_input(id, &m.data[..], |b, data| {
                b.iter(|| cut_all(*framing, black_box(data), chunk))
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("count_lines");
    for (name, _, m) in cases.iter().take(2) {
        g.throughput(Throughput::Bytes(m.data.len() as u64));
        g.bench_with_input(
            BenchmarkId::new(name, format!("{:.1}MiB", m.mib())),
            &m.data[..],
            |b, data| b.iter(|| count_lines(black_box(data))),
        );
    }
    g.finish();

    let mut g = c.benchmark_group("records");
    for (name, framing, m) in &cases {
        let (n, _) = walk(*framing, &m.data);
        assert_eq!(n, m.records + m.header as u64, "{name}: records");
        g.throughput(Throughput::ElementsAndBytes {
            elements: n,
            bytes: m.data.len() as u64,
        });
        g.bench_with_input(
            BenchmarkId::new(name, format!("{:.1}MiB", m.mib())),
            &m.data[..],
            |b, data| b.iter(|| walk(*framing, black_box(data))),
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = split
}
criterion_main!(benches);
