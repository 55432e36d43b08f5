//! The parallel pipeline of one member: `run_member` over an in-memory
//! member (`fwload::source::slice_body`, the mapped-file path) with the
//! validation sink (`NoRows`), at chunk sizes 256 KiB, 1 MiB, 4 MiB and
//! 16 MiB. This is the measurement behind `pipeline::CHUNK_SIZE`.
//!
//! Inputs: 64 MiB of HCAD real_acct.txt and of PACS
//! APPRAISAL_LAND_DETAIL.TXT made by `fwload::generate` with seed 7. The
//! consumer only counts; validation's duplicate-key index and reject
//! writing are not included. Threads: rayon's global pool (one per CPU
//! unless `RAYON_NUM_THREADS` says otherwise).
//!
//! Run: `cargo bench --bench pipeline` (add `-- --quick` for a short run).

mod common;

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{
    BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use fwload::keys::{KeyEntry, KeyIndex, KeyOrder};
use fwload::pipeline::{
    Chunk, ChunkResult, MemberRun, NoRows, Origin, PipelineOptions, Plan,
    process_chunk, run_member,
};
use fwload::schema::DuplicatePolicy;
use fwload::source::{MemberInfo, slice_body};

use common::size_name;

/// Member size for the pipeline runs.
const MEMBER_MIB: u64 = 64;
/// Chunk sizes compared.
const CHUNKS: [usize; 4] = [256 << 10, 1 << 20, 4 << 20, 16 << 20];

fn run(
    plan: &Arc<Plan>,
    info: &MemberInfo,
    data: &Bytes,
    chunk_size: usize,
) -> MemberRun {
    let opts = PipelineOptions { chunk_size, ..PipelineOptions::default() };
    let make: Arc<dyn Fn() -> NoRows + Send + Sync> = Arc::new(|| NoRows);
    let mut consume = |r: &mut ChunkResult<NoRows>| -> Result<(), Infallible> {
        black_box(&r.keys);
        Ok(())
    };
    run_member(
        plan,
        info,
        Origin::default(),
        slice_body(data.clone()),
        &opts,
        make,
        &mut consume,
    )
    .expect("pipeline run")
}

fn pipeline(c: &mut Criterion) {
    let members = [
        common::hcad_real_acct(MEMBER_MIB * (1 << 20) / 600),
        common::pacs_land_detail(MEMBER_MIB * (1 << 20) / 201),
    ];
    eprintln!(
        "rayon threads: {}, in flight: {}",
        rayon::current_num_threads(),
        PipelineOptions::default().in_flight
    );
    let mut g = c.benchmark_group("run_member");
    g.sample_size(10);
    for m in &members {
        let plan = Arc::new(Plan::new(m.layout.clone()));
        let info = MemberInfo {
            input: Arc::from("bench"),
            name: m.member.clone(),
            declared_size: Some(m.data.len() as u64),
            compressed_size: None,
        };
        let data = Bytes::from(m.data.clone());
        for chunk in CHUNKS {
            let r = run(&plan, &info, &data, chunk);
            assert_eq!(r.counts.read, m.records, "{}: records", m.name);
            assert_eq!(r.rejects, 0, "{}: rejects", m.name);
        }
        g.throughput(Throughput::ElementsAndBytes {
            elements: m.records,
            bytes: m.data.len() as u64,
        });
        for chunk in CHUNKS {
            let id = BenchmarkId::new(
                m.name,
                format!("chunk={}", size_name(chunk)),
            );
            g.bench_with_input(id, &chunk, |b, &chunk| {
                b.iter(|| run(&plan, &info, &data, chunk))
            });
        }
    }
    g.finish();
}

fn one_chunk(c: &mut Criterion) {
    let members = [
        common::hcad_real_acct(common::HCAD_FEW_MIB_ROWS),
        common::pacs_land_detail(common::PACS_FEW_MIB_ROWS),
    ];
    let mut g = c.benchmark_group("process_chunk");
    for m in &members {
        let plan = Plan::new(m.layout.clone());
        let input: Arc<str> = Arc::from("bench");
        let member: Arc<str> = Arc::from(m.member.as_str());
        let chunk = Chunk {
            seq: 0,
            data: Bytes::copy_from_slice(m.body()),
            start_byte: 0,
            first_line: Some(1),
        };
        let run = |chunk: &Chunk| {
            process_chunk(&plan, &input, &member, 0, chunk, NoRows, Vec::new())
        };
        let r = run(&chunk);
        assert_eq!(r.counts.read, m.records, "{}: records", m.name);
        assert_eq!(r.counts.rejected, 0, "{}: rejects", m.name);
        g.throughput(Throughput::ElementsAndBytes {
            elements: m.records,
            bytes: chunk.data.len() as u64,
        });
        let id = BenchmarkId::new(
            m.name,
            format!("fields={}", m.layout.fields.len()),
        );
        g.bench_with_input(id, &chunk, |b, chunk| {
            b.iter(|| run(black_box(chunk)).counts)
        });
    }
    g.finish();
}

/// `n` keys as a worker makes them: a 13-byte key's text, its hash
/// (here a fixed mix of a key number), lines and offsets in input order;
/// every hundredth key repeats an earlier one.
fn keys(n: u64) -> Vec<KeyEntry> {
    let mix = |x: u64| {
        let x = (x ^ (x >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^ (x >> 29)
    };
    (0..n)
        .map(|i| {
            let key = if i % 100 == 99 { i - 50 } else { i };
            let mut text = [0u8; 31];
            let t = format!("{key:013}");
            text[..13].copy_from_slice(t.as_bytes());
            KeyEntry {
                hash: [mix(key), mix(key + n)],
                file: 0,
                line: i + 2,
                byte: 600 * i + 700,
                text,
                text_len: 13,
            }
        })
        .collect()
}

fn key_index(c: &mut Criterion) {
    const N: u64 = 350_000;
    let all = keys(N);
    let pushed = || {
        let mut index = KeyIndex::default();
        for chunk in all.chunks(1700) {
            index.push(chunk, &KeyOrder::default()).expect("push");
        }
        index
    };
    let finish = |index: KeyIndex| {
        let mut dups = 0u64;
        index
            .for_each_duplicate(DuplicatePolicy::Reject, &mut |_| {
                dups += 1;
                Ok(())
            })
            .expect("duplicates");
        dups
    };
    let run = || finish(pushed());
    assert_eq!(run(), N / 100, "duplicates found");
    let mut g = c.benchmark_group("key_index");
    g.sample_size(20);
    g.throughput(Throughput::Elements(N));
    g.bench_function(BenchmarkId::new("push_finish", N), |b| b.iter(run));
    // The final merge alone: what is left to do after the last chunk.
    g.bench_function(BenchmarkId::new("finish", N), |b| {
        b.iter_batched(pushed, finish, criterion::BatchSize::PerIteration)
    });
    // Keys in ascending order, as an export ordered by its key gives
    // them: spilled unsorted, nothing to merge.
    let ascending: Vec<KeyEntry> =
        keys(N).into_iter().filter(|k| k.line % 100 != 1).collect();
    let in_order = || {
        let mut index = KeyIndex::default();
        for chunk in ascending.chunks(1700) {
            let bytes = |k: &KeyEntry| k.text().to_vec();
            let order = KeyOrder {
                ascending: true,
                first: bytes(&chunk[0]),
                last: bytes(&chunk[chunk.len() - 1]),
            };
            index.push(chunk, &order).expect("push");
        }
        finish(index)
    };
    assert_eq!(in_order(), 0, "no duplicates in order");
    g.bench_function(BenchmarkId::new("push_finish_ascending", N), |b| {
        b.iter(in_order)
    });
    g.finish();
}

criterion_group!(chunk, one_chunk, key_index);

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10));
    targets = pipeline
}
criterion_main!(chunk, benches);
