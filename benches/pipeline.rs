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
use fwload::pipeline::{
    ChunkResult, MemberRun, NoRows, PipelineOptions, Plan, run_member,
};
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
        0,
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

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10));
    targets = pipeline
}
criterion_main!(benches);
