//! Synthetic data from the same schema files the parser and loader use,
//! so the three can never disagree about a layout.
//!
//! [`generate`] writes archives shaped like the real ones (member names,
//! encodings, delimiters, header rows, line endings, record lengths) with
//! consistent keys across tables, realistic values and quirks, optional
//! bad records with an answer key, and optional archive-level damage.
//! [`change_set`] derives a next-year archive from a base one with exact
//! shares of updated, deleted and inserted rows and a manifest of the keys.
//! Output is byte-for-byte the same for the same seed; writing is streamed.

mod archive;
mod change;
mod format;
mod plan;
mod reconcile;
mod rng;
mod value;

pub use archive::{ArchiveWriter, BackgroundWriter, OutKind};
pub use change::{ChangeManifest, ChangeOptions, TableChanges, change_set};
pub use format::{
    encode_text, format_value, header_row, terminator_bytes, write_record,
};
pub use plan::{FaultKind, Plan, RowId};
pub use rng::Rng;
pub use value::{Datum, FieldGen, Role};

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::decode::{FieldType, Trim};
use crate::schema::{Format, Layout, SchemaSet};
use plan::bad_byte;
use rng::seed_of;

/// Root rows per parallel block.
const BLOCK_ROOTS: u64 = 2048;

/// Damage done to a finished archive, for bad-input tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// Cut the file at 60% of its length.
    Truncate,
    /// Flip a byte inside the first member's compressed data (checksum
    /// mismatch).
    Crc,
    /// Replace the first member by a run of spaces that compresses about
    /// 1000:1 (a decompression bomb).
    Bomb,
}

/// How to generate.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Rows of the main table.
    pub rows: u64,
    /// The seed.
    pub seed: u64,
    /// The data's year (tax years, `{year}` in archive names).
    pub year: i32,
    /// Share of rows made bad (0.001 = 0.1%).
    pub fault_rate: f64,
    /// Deflate level (0–9) for zip, tar.gz and gz outputs.
    pub level: u32,
    /// Archive damage to apply.
    pub corrupt: Option<Corruption>,
    /// Size of the bomb member, in bytes.
    pub bomb_bytes: u64,
    /// Write every layout that has a version of this name as that version
    /// (its record length and offsets); others as usual.
    pub version: Option<String>,
}

impl Default for GenOptions {
    fn default() -> GenOptions {
        GenOptions {
            rows: 1000,
            seed: 7,
            year: 2025,
            fault_rate: 0.0,
            level: 1,
            corrupt: None,
            bomb_bytes: 256 << 20,
            version: None,
        }
    }
}

/// A bad record the generator wrote: what validate must report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub struct Fault {
    /// The archive (or directory) path.
    pub input: String,
    /// The member.
    pub member: String,
    /// Line, from 1.
    pub line: u64,
    /// The field named by the reject (empty for record-level).
    pub field: String,
    /// The reject code.
    pub code: String,
}

/// One generated member.
#[derive(Clone, Debug, Serialize)]
pub struct GenTable {
    /// Layout name.
    pub layout: String,
    /// The archive it went into.
    pub archive: String,
    /// The member name.
    pub member: String,
    /// Records written (bad ones and quirk duplicates included).
    pub records: u64,
    /// Bad records among them.
    pub faults: u64,
    /// Extra records repeating a key (the first/last duplicate quirk).
    pub duplicates: u64,
    /// Member size in bytes.
    pub bytes: u64,
}

/// What [`generate`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct GenReport {
    /// Per member.
    pub tables: Vec<GenTable>,
    /// Archives (or files) written.
    pub archives: Vec<PathBuf>,
    /// The answer key: every bad record.
    pub faults: Vec<Fault>,
    /// Uncompressed bytes generated.
    pub bytes: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// A generation failure.
#[derive(Debug)]
pub struct GenError {
    msg: String,
}

impl GenError {
    /// An error with a message.
    pub fn new(msg: impl Into<String>) -> GenError {
        GenError { msg: msg.into() }
    }
}

impl fmt::Display for GenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for GenError {}

impl From<io::Error> for GenError {
    fn from(e: io::Error) -> Self {
        GenError::new(format!("writing output: {e}"))
    }
}

/// The member name a layout's data is written under: its first glob
/// without wildcards, or the glob with leading wildcards removed.
pub fn member_name(layout: &Layout) -> String {
    let meta = |s: &str| s.contains(['*', '?', '[', '{']);
    if let Some(m) = layout.members.iter().find(|m| !meta(m)) {
        return m.clone();
    }
    for m in &layout.members {
        let s = m
            .trim_start_matches("**/")
            .trim_start_matches("*/")
            .trim_start_matches("*_")
            .trim_start_matches('*');
        if s.starts_with('.') && !meta(s) {
            return format!("{}{s}", layout.name);
        }
        if !s.is_empty() && !meta(s) {
            return s.to_owned();
        }
    }
    format!("{}.txt", layout.name)
}

/// Which archive each table goes into: one archive when `out` names a
/// file, else the dataset's archives inside the directory `out` (tables
/// of no archive as plain files there).
pub fn outputs(
    set: &SchemaSet,
    out: &Path,
    year: i32,
) -> Vec<(PathBuf, Vec<usize>)> {
    let all: Vec<usize> = (0..set.layouts.len()).collect();
    if OutKind::of(out) != OutKind::Dir {
        return vec![(out.to_owned(), all)];
    }
    let mut v = Vec::new();
    let mut used = vec![false; set.layouts.len()];
    if let Some(ds) = &set.dataset {
        for a in &ds.archives {
            let tables: Vec<usize> = all
                .iter()
                .copied()
                .filter(|&i| a.layouts.contains(&set.layouts[i].name))
                .collect();
            if tables.is_empty() {
                continue;
            }
            for &t in &tables {
                used[t] = true;
            }
            v.push((
                out.join(a.name.replace("{year}", &year.to_string())),
                tables,
            ));
        }
    }
    let rest: Vec<usize> = all.into_iter().filter(|&i| !used[i]).collect();
    if !rest.is_empty() {
        v.push((out.to_owned(), rest));
    }
    v
}

struct BlockOut {
    bytes: Vec<u8>,
    records: u64,
    faults: Vec<(u64, FaultKind)>,
    duplicates: u64,
}

/// Generates `set` into `out`.
///
/// # Errors
/// A layout the generator cannot fill, or an output that cannot be
/// written.
pub fn generate(
    set: &SchemaSet,
    out: &Path,
    opts: &GenOptions,
) -> Result<GenReport, GenError> {
    let started = Instant::now();
    let as_version = match &opts.version {
        Some(v) => Some(reconcile::versioned(set, v)?),
        None => None,
    };
    let written = as_version.as_ref().unwrap_or(set);
    let mut plan =
        Plan::new(written, opts.rows, opts.seed, opts.year, opts.fault_rate)?;
    let extras = reconcile::prepare(set, &mut plan, opts)?;
    let mut report = GenReport {
        tables: Vec::new(),
        archives: Vec::new(),
        faults: Vec::new(),
        bytes: 0,
        seconds: 0.0,
    };
    let mut first_member = true;
    for (path, tables) in outputs(set, out, opts.year) {
        // A bomb wants the best ratio deflate can give (about 1000:1).
        let level = if opts.corrupt == Some(Corruption::Bomb) {
            9
        } else {
            opts.level
        };
        let mut w = BackgroundWriter::create(&path, level)?;

        for &t in &tables {
            let layout = &plan.tables[t].layout;
            let member = member_name(layout);
            let bomb = opts.corrupt == Some(Corruption::Bomb) && first_member;
            first_member = false;
            let table = if bomb {
                write_bomb(&mut w, layout, &member, opts.bomb_bytes)?;
                GenTable {
                    layout: layout.name.clone(),
                    archive: path.display().to_string(),
                    member,
                    records: 0,
                    faults: 0,
                    duplicates: 0,
                    bytes: opts.bomb_bytes,
                }
            } else {
                write_table(
                    &plan,
                    t,
                    &extras[t],
                    &mut w,
                    &path,
                    &member,
                    &mut report.faults,
                )?
            };
            report.bytes += table.bytes;
            report.tables.push(table);
        }
        w.finish()?;
        report.archives.push(path);
    }
    match opts.corrupt {
        Some(Corruption::Truncate) => {
            for p in &report.archives {
                let f = OpenOptions::new().write(true).open(p)?;
                let len = f.metadata()?.len();
                f.set_len(len * 6 / 10)?;
            }
        }
        Some(Corruption::Crc) => {
            if let Some(p) = report.archives.first() {
                flip_member_byte(p)?;
            }
        }
        _ => {}
    }
    report.faults.sort();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn write_bomb(
    w: &mut BackgroundWriter,
    layout: &Layout,
    member: &str,
    bytes: u64,
) -> Result<(), GenError> {
    w.begin(member, bytes)?;
    // It looks right up front: a proper header row, then the flood.
    if let Some(h) = header_row(layout) {
        w.write(h)?;
    }

    let mut line = vec![b' '; 1 << 20];
    *line.last_mut().unwrap_or(&mut 0) = b'\n';
    let mut left = bytes;
    while left > 0 {
        let n = left.min(line.len() as u64) as usize;
        w.write(line[..n].to_vec())?;
        left -= n as u64;
    }
    w.end()?;
    Ok(())
}

/// Flips a byte in the middle of the first member's compressed data (or of
/// the file, for outputs other than zip).
fn flip_member_byte(path: &Path) -> io::Result<()> {
    let at = match OutKind::of(path) {
        OutKind::Zip => {
            let f = std::fs::File::open(path)?;
            let mut z = zip::ZipArchive::new(f).map_err(io::Error::other)?;
            let file = z.by_index_raw(0).map_err(io::Error::other)?;
            let start = file.data_start().unwrap_or(0);
            start + file.compressed_size() / 2
        }
        _ => std::fs::metadata(path)?.len() / 2,
    };
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(&mut b)?;
    b[0] ^= 0x55;
    f.seek(SeekFrom::Start(at))?;
    f.write_all(&b)
}

fn write_table(
    plan: &Plan,
    t: usize,
    extra: &reconcile::TableExtra,
    w: &mut BackgroundWriter,
    path: &Path,
    member: &str,
    faults: &mut Vec<Fault>,
) -> Result<GenTable, GenError> {
    let tp = &plan.tables[t];
    let layout = &tp.layout;
    // A totals table has one record per group, in place of top-level rows.
    let roots = match &extra.groups {
        Some(g) => g.len() as u64,
        None => plan.tables[tp.root].rows,
    };
    let blocks = roots.div_ceil(BLOCK_ROOTS);
    let width = match &layout.format {
        Format::Fixed(f) => f.record_length as u64 + 2,
        Format::Delimited(_) => 16 * layout.fields.len() as u64,
    };
    w.begin(member, roots * width)?;
    let mut table = GenTable {
        layout: layout.name.clone(),
        archive: path.display().to_string(),
        member: member.to_owned(),
        records: 0,
        faults: 0,
        duplicates: 0,
        bytes: 0,
    };
    let mut line = 1u64;
    if let Some(h) = header_row(layout) {
        table.bytes += h.len() as u64;
        w.write(h)?;
        line += 1;
    }
    let batch = (rayon::current_num_threads() * 4).max(4) as u64;
    let mut b = 0;
    while b < blocks {
        let ids: Vec<u64> = (b..(b + batch).min(blocks)).collect();
        b += batch;
        let outs: Vec<Result<BlockOut, GenError>> = ids
            .par_iter()
            .map(|&i| {
                block(
                    plan,
                    t,
                    extra,
                    i * BLOCK_ROOTS..((i + 1) * BLOCK_ROOTS).min(roots),
                )
            })
            .collect();
        for o in outs {
            let o = o?;
            for &(rec, kind) in &o.faults {
                faults.push(Fault {
                    input: path.display().to_string(),
                    member: member.to_owned(),
                    line: line + rec,
                    field: kind
                        .field(layout)
                        .map(|i| layout.fields[i].name.clone())
                        .unwrap_or_default(),
                    code: kind.code(layout).to_owned(),
                });
            }
            line += o.records;
            table.records += o.records;
            table.faults += o.faults.len() as u64;
            table.duplicates += o.duplicates;
            table.bytes += o.bytes.len() as u64;
            w.write(o.bytes)?;
        }
    }
    w.end()?;
    Ok(table)
}

/// The rows of table `t` under top-level rows `roots`.
fn block(
    plan: &Plan,
    t: usize,
    extra: &reconcile::TableExtra,
    roots: std::ops::Range<u64>,
) -> Result<BlockOut, GenError> {
    let tp = &plan.tables[t];
    let layout = &tp.layout;
    let mut out = BlockOut {
        bytes: Vec::with_capacity(64 * 1024),
        records: 0,
        faults: Vec::new(),
        duplicates: 0,
    };
    let mut prev_key: Option<Vec<Datum>> = None;
    let mut err = None;
    let mut row = RowBuf::default();
    let mut visit = |id: &RowId| {
        if err.is_some() {
            return;
        }
        let states = match &extra.groups {
            Some(g) => &g[id.uid as usize].1[..],
            None => &extra.fixed[..],
        };
        let mut fault = plan.fault(t, id.uid);
        if fault == Some(FaultKind::DuplicateKey) && prev_key.is_none() {
            fault = Some(FaultKind::MissingKey);
        }
        let key = match (fault, &prev_key) {
            (Some(FaultKind::DuplicateKey), Some(k)) => k.clone(),
            _ => id.key.clone(),
        };
        if let Err(e) = make_row(
            plan,
            t,
            id.uid,
            &key,
            fault,
            states,
            &mut row,
            &mut out.bytes,
        ) {
            err = Some(GenError::new(format!("layout {}: {e}", layout.name)));
            return;
        }
        if let Some(k) = fault {
            out.faults.push((out.records, k));
        }
        out.records += 1;
        if fault.is_none() {
            // The first/last duplicate quirk: now and then the same key
            // again with other values.
            if dup_quirk(plan, t, id.uid) {
                if let Err(e) = make_row(
                    plan,
                    t,
                    id.uid ^ 0xD0B,
                    &key,
                    None,
                    states,
                    &mut row,
                    &mut out.bytes,
                ) {
                    err = Some(GenError::new(format!(
                        "layout {}: {e}",
                        layout.name
                    )));
                    return;
                }
                out.records += 1;
                out.duplicates += 1;
            }
            prev_key = Some(key);
        } else {
            prev_key = None;
        }
    };
    match &extra.groups {
        Some(g) => {
            for i in roots {
                visit(&RowId { uid: i, key: g[i as usize].0.clone() });
            }
        }
        None => plan.walk(t, roots, &mut visit),
    }
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Whether row `uid` of table `t` is written twice (the first/last
/// duplicate quirk).
fn dup_quirk(plan: &Plan, t: usize, uid: u64) -> bool {
    plan.tables[t].dup_quirk
        && rng::Rng::new(seed_of(&[
            plan.seed,
            plan.tables[t].hash,
            uid,
            0xD0B,
        ]))
        .chance(0.004)
}

/// The value field `field` of row `r` of top-level table `t` is written
/// with (what a lookup into a column other than the key copies).
pub(crate) fn row_value(plan: &Plan, t: usize, r: u64, field: usize) -> Datum {
    let key = plan.root_key(t, r);
    let mut buf = RowBuf::default();
    let mut out = Vec::new();
    if make_row(plan, t, r, &key, None, &[], &mut buf, &mut out).is_err() {
        return Datum::Null;
    }
    match buf.values.swap_remove(field) {
        Datum::Text(s) => Datum::Text(s.trim_end().to_string()),
        v => v,
    }
}

/// Reused per-row buffers.
#[derive(Default)]
pub(crate) struct RowBuf {
    pub(crate) values: Vec<Datum>,
    raw: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

/// Generates and writes one record of table `t` with `key` (and `fault`),
/// stating the (field, value) pairs of `states`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_row(
    plan: &Plan,
    t: usize,
    uid: u64,
    key: &[Datum],
    fault: Option<FaultKind>,
    states: &[(usize, Datum)],
    buf: &mut RowBuf,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let tp = &plan.tables[t];
    let mut row = RowMaker {
        plan,
        tp,
        uid,
        fault,
        states,
        rng: Rng::new(seed_of(&[plan.seed, tp.hash, uid])),
    };
    row.values(key, buf);
    row.bad_values(buf);
    row.format(buf)?;
    let rec_start = out.len();
    write_record(&tp.layout, &buf.raw, &buf.spans, out)?;
    if fault == Some(FaultKind::RecordLength) {
        wrong_length(&tp.layout, rec_start, out);
    }
    Ok(())
}

/// One record being made: its table, row id, fault and stated values,
/// and the generator its values are drawn from, in field order.
struct RowMaker<'a> {
    plan: &'a Plan,
    tp: &'a plan::TablePlan,
    uid: u64,
    fault: Option<FaultKind>,
    states: &'a [(usize, Datum)],
    rng: Rng,
}

impl RowMaker<'_> {
    /// Fills `buf.values`: the key, looked-up and drawn values, then the
    /// stated ones, NULL where the layout's version has no field.
    fn values(&mut self, key: &[Datum], buf: &mut RowBuf) {
        let tp = self.tp;
        let layout = &tp.layout;
        buf.values.clear();
        for (i, f) in layout.fields.iter().enumerate() {
            let v = if let Some(pos) = layout.key.iter().position(|&k| k == i)
            {
                key[pos].clone()
            } else if let Some(lk) = tp.lookups.iter().find(|l| l.covers(i)) {
                self.looked_up(lk, i)
            } else {
                let mut v = shrunk(tp, i, tp.gens[i].value(&mut self.rng));
                if let Datum::Text(s) = &mut v {
                    quirks(
                        layout,
                        i,
                        tp.gens[i].role(),
                        s,
                        &mut self.rng,
                        tp.gens[i].max_chars(),
                    );
                }
                v
            };
            buf.values.push(pad_untrimmed(f, v));
        }
        for (i, v) in self.states {
            buf.values[*i] = pad_untrimmed(&layout.fields[*i], v.clone());
        }
        // A field the layout's version does not have is not written (NULL).
        if layout.is_fixed() {
            for (i, f) in layout.fields.iter().enumerate() {
                if f.span.is_none() {
                    buf.values[i] = Datum::Null;
                }
            }
        }
    }

    /// Field `i`'s value from the row of lookup `lk`'s table this record
    /// names.
    fn looked_up(&self, lk: &plan::Lookup, i: usize) -> Datum {
        let plan = self.plan;
        let n = plan.tables[lk.table].rows.max(1);
        // One looked-up row per record (the same for every column of
        // the lookup), never a bad one.
        let mut lr = Rng::new(seed_of(&[
            plan.seed,
            self.tp.hash,
            self.uid,
            lk.table as u64,
            0x100C,
        ]));
        let mut r = lr.below(n);
        let mut tries = 0;
        // Nor one written twice (the duplicate quirk), whose values
        // the load may replace.
        while (plan.fault(lk.table, r).is_some()
            || dup_quirk(plan, lk.table, r))
            && tries < 64
        {
            r = (r + 1) % n;
            tries += 1;
        }
        let there = lk.map.iter().find(|m| m.0 == i).map_or(0, |m| m.1);
        plan.lookup_value(lk, r, there)
    }

    /// Bad values that still format (too long text, a NULL that must not
    /// be).
    fn bad_values(&mut self, buf: &mut RowBuf) {
        let layout = &self.tp.layout;
        match self.fault {
            Some(FaultKind::TooLong(i)) => {
                if let FieldType::Varchar(n) | FieldType::Char(n) =
                    layout.fields[i].decoder.ty
                {
                    let mut s = String::from("OVERLONG ");
                    while s.chars().count() <= n as usize {
                        s.push('X');
                    }
                    buf.values[i] = Datum::Text(s);
                }
            }
            Some(FaultKind::BadNumber(i))
            | Some(FaultKind::BadEncoding(i))
                if buf.values[i] == Datum::Null =>
            {
                buf.values[i] = self.tp.gens[i].non_null(&mut self.rng);
            }
            _ => {}
        }
        if let Some(FaultKind::BadEncoding(i)) = self.fault
            && let Datum::Text(s) = &mut buf.values[i]
        {
            while s.chars().count() < 3 {
                s.push('X');
            }
        }
    }

    /// Writes every field's text into `buf.raw`, its range into
    /// `buf.spans`.
    fn format(&mut self, buf: &mut RowBuf) -> Result<(), String> {
        let layout = &self.tp.layout;
        buf.raw.clear();
        buf.spans.clear();
        for (i, f) in layout.fields.iter().enumerate() {
            let start = buf.raw.len();
            if f.span.is_none() && layout.is_fixed() {
                buf.spans.push((start, start));
                continue;
            }
            self.format_field(i, buf)?;
            match self.fault {
                Some(FaultKind::BadNumber(b)) if b == i => {
                    if let Some(c) = buf.raw.get_mut(start) {
                        *c = b'O';
                    }
                }
                Some(FaultKind::BadEncoding(b)) if b == i => {
                    let mid = start + (buf.raw.len() - start) / 2;
                    buf.raw[mid] = bad_byte(layout.encoding);
                }
                _ => {}
            }
            if buf.values[i] != Datum::Null && self.fault.is_none() {
                self.text_quirks(i, start, buf);
            }
            buf.spans.push((start, buf.raw.len()));
        }
        Ok(())
    }

    /// Appends field `i`'s text to `buf.raw`: none for a missing key, an
    /// impossible date for that fault, else its value formatted.
    fn format_field(
        &mut self,
        i: usize,
        buf: &mut RowBuf,
    ) -> Result<(), String> {
        let tp = self.tp;
        let layout = &tp.layout;
        let f = &layout.fields[i];
        let start = buf.raw.len();
        match self.fault {
            Some(FaultKind::MissingKey) if layout.key.first() == Some(&i) => {}
            Some(FaultKind::ImpossibleDate(d)) if d == i => {
                let fmt =
                    f.decoder.format.as_ref().ok_or("date without format")?;
                fmt.write_parts([2024, 2, 30], [0, 0, 0], 0, &mut buf.raw);
            }
            _ => {
                // A value whose text is also a null marker (0 as `0000`)
                // cannot be written: draw another (never for a key, whose
                // value other tables share).
                let mut tries = 0;
                while let Err(e) =
                    format_value(layout, f, &buf.values[i], &mut buf.raw)
                {
                    tries += 1;
                    if tries > 16
                        || layout.key.contains(&i)
                        || self.states.iter().any(|s| s.0 == i)
                    {
                        return Err(format!("field {}: {e}", f.name));
                    }
                    buf.raw.truncate(start);
                    buf.values[i] =
                        shrunk(tp, i, tp.gens[i].non_null(&mut self.rng));
                }
            }
        }
        Ok(())
    }

    /// Quirks that do not change field `i`'s decoded value, in its text
    /// at `buf.raw[start..]`: a padded key, an inner double space.
    fn text_quirks(&mut self, i: usize, start: usize, buf: &mut RowBuf) {
        let layout = &self.tp.layout;
        let f = &layout.fields[i];
        if layout.key.first() == Some(&i)
            && !layout.is_fixed()
            && matches!(f.decoder.trim, Trim::Both | Trim::Right)
            && self.rng.chance(0.25)
        {
            // A key right-padded with spaces.
            let n = self.rng.range(1, 12) as usize;
            buf.raw.extend(std::iter::repeat_n(b' ', n));
        } else if f.decoder.text.collapse_spaces && self.rng.chance(0.08) {
            // An inner double space, which collapsing removes.
            let field = &buf.raw[start..];
            let room =
                f.span.as_ref().is_none_or(|s| s.end - s.start > field.len());
            if room && let Some(p) = field.iter().position(|&c| c == b' ') {
                buf.raw.insert(start + p, b' ');
            }
        }
    }
}

/// Makes the record written at `out[rec_start..]` the wrong length: a
/// fixed-width one cut short or too long, a delimited one with an extra
/// field.
fn wrong_length(layout: &Layout, rec_start: usize, out: &mut Vec<u8>) {
    let term = terminator_bytes(layout).len();
    let body_end = out.len() - term;
    match &layout.format {
        Format::Fixed(fx) if fx.shorter == crate::schema::Shorter::Reject => {
            let keep = (fx.record_length / 2).max(1);
            out.drain(rec_start + keep..body_end);
        }
        Format::Fixed(_) => {
            out.splice(body_end..body_end, *b"XXXXX");
        }
        Format::Delimited(d) => {
            out.splice(body_end..body_end, [d.delimiter, b'X']);
        }
    }
}

/// Writes one valid record of table `t` with `key` (row id `uid` seeds its
/// other values).
///
/// # Errors
/// A value the layout cannot represent.
pub(crate) fn make_row_for(
    plan: &Plan,
    t: usize,
    uid: u64,
    key: &[Datum],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    make_row(plan, t, uid, key, None, &[], &mut RowBuf::default(), out)
}

/// Valid records of table `t` for top-level rows `roots` (of its tree's
/// root), as source bytes (no header), with the values each record must
/// decode to: the round-trip property the parser is tested against.
///
/// # Errors
/// A value the layout cannot represent.
pub fn sample_records(
    plan: &Plan,
    t: usize,
    roots: std::ops::Range<u64>,
) -> Result<(Vec<u8>, Vec<Vec<Datum>>), GenError> {
    let mut bytes = Vec::new();
    let mut values = Vec::new();
    let mut buf = RowBuf::default();
    let mut err = None;
    plan.walk(t, roots, &mut |id| {
        if err.is_none() {
            match make_row(
                plan,
                t,
                id.uid,
                &id.key,
                None,
                &[],
                &mut buf,
                &mut bytes,
            ) {
                Ok(()) => values.push(buf.values.clone()),
                Err(e) => err = Some(GenError::new(e)),
            }
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok((bytes, values)),
    }
}

/// `v` made smaller where the plan shrinks field `i` (summed values whose
/// totals would not fit otherwise).
fn shrunk(tp: &plan::TablePlan, i: usize, v: Datum) -> Datum {
    let Some(&(_, e)) = tp.shrink.iter().find(|s| s.0 == i) else {
        return v;
    };
    let d = 10i128.pow(e.min(30));
    match v {
        Datum::Int(x) => Datum::Int((x as i128 / d) as i64),
        Datum::Numeric(x) => Datum::Numeric(crate::decode::Decimal {
            mantissa: x.mantissa / d,
            scale: x.scale,
        }),
        other => other,
    }
}

/// Text in a fixed field that keeps trailing spaces must hold them.
fn pad_untrimmed(f: &crate::schema::Field, v: Datum) -> Datum {
    match (&v, &f.span) {
        (Datum::Text(s), Some(span))
            if matches!(f.decoder.trim, Trim::None | Trim::Left)
                && s.is_ascii() =>
        {
            let w = span.end - span.start;
            Datum::Text(format!("{s:<w$}"))
        }
        _ => v,
    }
}

/// Value quirks real files carry: a stray `"` in an address.
fn quirks(
    layout: &Layout,
    _i: usize,
    role: Role,
    s: &mut String,
    rng: &mut Rng,
    max: usize,
) {
    if role == Role::Street
        && value::quotes_are_plain(layout)
        && s.len() + 1 < max
        && rng.chance(0.01)
    {
        // `200 OAK "AVE`: an unbalanced quote before the last word.
        if let Some(p) = s.rfind(' ') {
            s.insert(p + 1, '"');
        }
    }
}
