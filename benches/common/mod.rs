//! Bench inputs: members generated from the shipped schemas with a fixed
//! seed, written to a temporary archive and read back into memory through
//! the same source code the CLI uses.
//!
//! Each bench file includes this module (`mod common;`) and uses part of
//! it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use fwload::generate::{GenOptions, generate};
use fwload::schema::{Layout, SchemaSet};
use fwload::source::{Body, SourceError, SourceOptions, read_input};

/// The generator seed of every bench input.
pub const SEED: u64 = 7;

/// HCAD real_acct rows for a few MiB (about 600 bytes a record).
pub const HCAD_FEW_MIB_ROWS: u64 = 8_000;
/// PACS APPRAISAL_LAND_DETAIL.TXT records for a few MiB (201 bytes a
/// record with its CRLF).
pub const PACS_FEW_MIB_ROWS: u64 = 24_000;

/// One generated member, whole, in memory.
pub struct Member {
    /// Short name used as the bench id prefix (`hcad_real_acct`).
    pub name: &'static str,
    /// The shipped layout the member was generated from.
    pub layout: Layout,
    /// The member name inside the archive.
    pub member: String,
    /// The member's bytes, header row included.
    pub data: Vec<u8>,
    /// Data records (header row not counted).
    pub records: u64,
    /// Whether the first line is a header row.
    pub header: bool,
}

impl Member {
    /// The data records' bytes: `data` without the header row.
    pub fn body(&self) -> &[u8] {
        if !self.header {
            return &self.data;
        }
        let nl = memchr::memchr(b'\n', &self.data).map_or(0, |i| i + 1);
        &self.data[nl..]
    }

    /// Size in MiB, for messages.
    pub fn mib(&self) -> f64 {
        self.data.len() as f64 / (1 << 20) as f64
    }
}

fn schema_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `rows` records of `layout_file` (a shipped layout, generated alone),
/// read back from a temporary tar.
fn make(name: &'static str, layout_file: &str, rows: u64) -> Member {
    let set = SchemaSet::load(&[schema_path(layout_file)])
        .unwrap_or_else(|e| panic!("loading {layout_file}: {e}"));
    let layout = set.layouts[0].clone();
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("bench.tar");
    let opts = GenOptions { rows, seed: SEED, ..GenOptions::default() };
    let report =
        generate(&set, &out, &opts).unwrap_or_else(|e| panic!("gen: {e}"));
    let table = &report.tables[0];
    let member = table.member.clone();
    let mut data = Vec::with_capacity(table.bytes as usize);
    read_input::<SourceError>(
        &out,
        &SourceOptions::default(),
        &|n| n == member,
        &mut |_, body| {
            match body {
                Body::Slice { data: d, .. } => data.extend_from_slice(&d),
                Body::Stream(r) => {
                    r.read_to_end(&mut data).expect("reading member");
                }
            }
            Ok(None)
        },
    )
    .unwrap_or_else(|e| panic!("reading {}: {e}", out.display()));
    assert_eq!(data.len() as u64, table.bytes, "member size");
    let header = matches!(
        &layout.format,
        fwload::schema::Format::Delimited(d) if d.header
    );
    eprintln!(
        "input {name}: {member}, {} records, {} bytes (seed {SEED})",
        table.records,
        data.len()
    );
    Member { name, layout, member, data, records: table.records, header }
}

/// HCAD real_acct.txt: tab-delimited, header row, about 600 bytes a
/// record, windows-1252.
pub fn hcad_real_acct(rows: u64) -> Member {
    make("hcad_real_acct", "schemas/hcad/real_acct.toml", rows)
}

/// PACS APPRAISAL_LAND_DETAIL.TXT: fixed 199-byte records plus CRLF.
pub fn pacs_land_detail(rows: u64) -> Member {
    make("pacs_land_detail", "schemas/pacs/appraisal_land_detail.toml", rows)
}

/// `n` bytes as `256KiB`, `4MiB`.
pub fn size_name(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{}MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{}KiB", n >> 10)
    } else {
        format!("{n}B")
    }
}
