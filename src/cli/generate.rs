//! `fwload gen`: synthetic archives, change sets and faults.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::{CliResult, Exit, Failure, SchemaArgs, write_json};
use crate::generate::{
    ChangeOptions, Corruption, GenOptions, change_set, generate,
};

/// Arguments of `fwload gen`.
#[derive(Args, Debug)]
pub struct GenArgs {
    #[command(flatten)]
    schema: SchemaArgs,
    /// Output: an archive (.zip, .tar, .tar.gz, .gz) holding every member,
    /// or a directory that receives the dataset's own archives.
    #[arg(long, short, value_name = "PATH")]
    out: PathBuf,
    /// Rows of the main table (other tables in the dataset's proportions).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    rows: u64,
    /// Seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// The data's tax year (also `{year}` in archive names).
    #[arg(long, default_value_t = 2025)]
    year: i32,
    /// Share of records made bad ("0.1%" or 0.001), with an answer key.
    #[arg(long, value_name = "SHARE", value_parser = parse_share)]
    faults: Option<f64>,
    /// Where the answer key goes (default: OUT.answers.csv).
    #[arg(long, value_name = "FILE")]
    answer_key: Option<PathBuf>,
    /// Damage the finished archive, for bad-input tests.
    #[arg(long, value_enum)]
    corrupt: Option<CorruptArg>,
    /// Size of the bomb member in bytes (with --corrupt bomb).
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
    bomb_bytes: u64,
    /// Deflate level 0-9.
    #[arg(long, default_value_t = 1)]
    level: u32,
    /// Write each layout that has a version of this name (a `[[variant]]`
    /// or its own `version`) as that version: its record length and
    /// offsets, fields it does not have left blank. Other layouts are
    /// written as usual.
    #[arg(long, value_name = "NAME")]
    layout_version: Option<String>,
    /// Make a change set of this base archive instead of new data.
    #[arg(long, value_name = "INPUT")]
    base: Vec<PathBuf>,
    /// Change set: share of rows updated ("1%").
    #[arg(long, value_parser = parse_share, default_value = "0")]
    update: f64,
    /// Change set: share of rows deleted ("0.5%").
    #[arg(long, value_parser = parse_share, default_value = "0")]
    delete: f64,
    /// Change set: rows inserted, as a share of the base rows ("2%").
    #[arg(long, value_parser = parse_share, default_value = "0")]
    insert: f64,
    /// Where the change manifest goes (default: OUT.manifest.json).
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Write what was generated as JSON.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

/// Archive damage.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum CorruptArg {
    /// Cut the archive at 60%.
    Truncate,
    /// Flip a byte in the first member's data (CRC mismatch).
    Crc,
    /// Make the first member a decompression bomb.
    Bomb,
}

/// Parses "0.1%" or "0.001" into a fraction in 0..=1.
pub(super) fn parse_share(s: &str) -> Result<f64, String> {
    let (num, pct) = match s.strip_suffix('%') {
        Some(n) => (n, true),
        None => (s, false),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a share (like 0.1% or 0.001)"))?;
    let v = if pct { v / 100.0 } else { v };
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{s:?} is not between 0 and 100%"));
    }
    Ok(v)
}

fn sidecar(out: &Path, suffix: &str) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub(super) fn run(a: GenArgs) -> CliResult {
    let set = a.schema.load()?;
    let mut stdout = std::io::stdout().lock();
    if !a.base.is_empty() {
        let opts = ChangeOptions {
            update: a.update,
            delete: a.delete,
            insert: a.insert,
            seed: a.seed,
            year: a.year,
            level: a.level,
        };
        let m = change_set(&set, &a.base, &a.out, &opts)
            .map_err(|e| Failure::new(Exit::Input, e))?;
        let path = a
            .manifest
            .clone()
            .unwrap_or_else(|| sidecar(&a.out, ".manifest.json"));
        write_json(&path, &m)?;
        for t in &m.tables {
            writeln!(
                stdout,
                "{:<28} base {:>10}  new {:>10}  updated {:>8}  deleted {:>8}  inserted {:>8}",
                t.table,
                t.rows_base,
                t.rows_new,
                t.updated.len(),
                t.deleted.len(),
                t.inserted.len()
            )?;
        }
        writeln!(stdout, "manifest: {}", path.display())?;
        return Ok(Exit::Ok);
    }
    let opts = GenOptions {
        rows: a.rows,
        seed: a.seed,
        year: a.year,
        fault_rate: a.faults.unwrap_or(0.0),
        level: a.level,
        corrupt: a.corrupt.map(|c| match c {
            CorruptArg::Truncate => Corruption::Truncate,
            CorruptArg::Crc => Corruption::Crc,
            CorruptArg::Bomb => Corruption::Bomb,
        }),
        bomb_bytes: a.bomb_bytes,
        version: a.layout_version.clone(),
    };
    let r = generate(&set, &a.out, &opts)
        .map_err(|e| Failure::new(Exit::Usage, e))?;
    for t in &r.tables {
        writeln!(
            stdout,
            "{:<44} {:>10} records {:>12} bytes {:>6} faults",
            format!("{}:{}", short(&t.archive), t.member),
            t.records,
            t.bytes,
            t.faults
        )?;
    }
    writeln!(
        stdout,
        "{:.1} MB generated in {:.2} s ({:.0} MB/s)",
        r.bytes as f64 / 1e6,
        r.seconds,
        r.bytes as f64 / 1e6 / r.seconds.max(1e-9)
    )?;
    if a.faults.is_some() {
        let path = a
            .answer_key
            .clone()
            .unwrap_or_else(|| sidecar(&a.out, ".answers.csv"));
        let mut text = String::from("input,member,line,field,reason_code\n");
        for f in &r.faults {
            text.push_str(&format!(
                "{},{},{},{},{}\n",
                f.input, f.member, f.line, f.field, f.code
            ));
        }
        std::fs::write(&path, text).map_err(|e| {
            Failure::msg(
                Exit::Usage,
                format!("cannot write {}: {e}", path.display()),
            )
        })?;
        writeln!(
            stdout,
            "answer key: {} ({} bad records)",
            path.display(),
            r.faults.len()
        )?;
    }
    if let Some(p) = &a.report {
        write_json(p, &r)?;
    }
    Ok(Exit::Ok)
}

fn short(p: &str) -> String {
    Path::new(p)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.to_owned())
}
