//! Change sets: a next-year archive that differs from a base archive by
//! exact shares of updated, deleted and inserted rows, and a manifest of
//! the keys concerned, so tests can assert exactly what a merge must do.
//!
//! Every table is read twice from the base: once to count its valid
//! records (the shares are exact counts of those), once to write the new
//! member. Deleting a parent row deletes its children too (listed in the
//! child's `deleted`; the child's own share is taken from the rest).
//! Records the parser rejects are copied unchanged and never counted.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::plan::Plan as GenPlan;
use super::rng::{Rng, name_hash, seed_of};
use super::value::Datum;
use super::{ArchiveWriter, GenError, format_value, make_row_for, outputs};
use crate::pipeline::{ChunkReader, check_header, key_bytes};
use crate::record::{Fields, Slicer};
use crate::schema::{Format, Layout, SchemaSet};
use crate::source::{self, SourceOptions};
use crate::split::{Ending, Framing, RecordRef, Records};

/// Shares of change, as fractions of each table's valid records.
#[derive(Clone, Debug)]
pub struct ChangeOptions {
    /// Share of rows updated (0.01 = 1%).
    pub update: f64,
    /// Share of rows deleted.
    pub delete: f64,
    /// Rows inserted, as a share of the base rows.
    pub insert: f64,
    /// The seed.
    pub seed: u64,
    /// The data's year.
    pub year: i32,
    /// Deflate level.
    pub level: u32,
}

/// What changed in one table.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TableChanges {
    /// Layout name.
    pub layout: String,
    /// Target table.
    pub table: String,
    /// Valid rows in the base.
    pub rows_base: u64,
    /// Valid rows in the new archive.
    pub rows_new: u64,
    /// Keys whose rows changed (values differ; key the same).
    pub updated: Vec<String>,
    /// Keys no longer present.
    pub deleted: Vec<String>,
    /// Of `deleted`: keys removed because their parent was deleted.
    pub deleted_with_parent: u64,
    /// New keys.
    pub inserted: Vec<String>,
}

/// The manifest of a change set.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChangeManifest {
    /// The base inputs.
    pub base: Vec<String>,
    /// Archives written.
    pub outputs: Vec<String>,
    /// Requested update share.
    pub update: f64,
    /// Requested delete share.
    pub delete: f64,
    /// Requested insert share.
    pub insert: f64,
    /// Per table, in load order.
    pub tables: Vec<TableChanges>,
}

/// Called per base record with its fields and bytes.
type OnRecord<'f> =
    dyn FnMut(&BaseRecord<'_>, &Fields, &[u8]) -> Result<(), GenError> + 'f;

/// One base record: raw bytes with terminator, decoded key (when valid).
struct BaseRecord<'a> {
    bytes: &'a [u8],
    ending: Ending,
    key: Option<(u128, String)>,
    parent: Option<u128>,
}

/// Reads every member of `layout` in `base`, calling `f` per record.
fn scan_base(
    layout: &Layout,
    parent_cols: &[usize],
    base: &[PathBuf],
    header: &mut Option<Vec<u8>>,
    f: &mut OnRecord<'_>,
) -> Result<String, GenError> {
    let framing = Framing::of(layout);
    let slicer = Slicer::new(layout);
    let mut member_name = None;
    let opts = SourceOptions::default();
    for input in source::expand_inputs(base)
        .map_err(|e| GenError::new(e.to_string()))?
    {
        source::read_input::<GenError>(
            &input,
            &opts,
            &|m| layout.matches(m),
            &mut |info, body| {
                member_name.get_or_insert_with(|| info.name.clone());
                let mut reader =
                    ChunkReader::new(body, framing, 4 << 20, 1 << 26);
                let err = |e| {
                    GenError::new(format!("{}:{}: {e}", info.input, info.name))
                };
                if let Format::Delimited(d) = &layout.format
                    && d.header
                    && let Some(h) = reader.take_header().map_err(err)?
                {
                    check_header(layout, &h).map_err(|d| {
                        GenError::new(
                            d.at(&info.input, &info.name).to_string(),
                        )
                    })?;
                    let mut row = h.to_vec();
                    row.extend_from_slice(super::terminator_bytes(layout));
                    header.get_or_insert(row);
                }
                let mut keys = KeyReader::new(layout, &slicer, parent_cols);
                while let Some(chunk) = reader.next_chunk().map_err(err)? {
                    for rec in Records::new(&chunk.data, framing) {
                        let r = keys.read(rec);
                        f(&r, &keys.fields, rec.bytes)?;
                    }
                }
                Ok(Some(reader.finish().0))
            },
        )
        .map_err(|e| GenError::new(e.to_string()))?;
    }
    Ok(member_name.unwrap_or_else(|| super::member_name(layout)))
}

/// Decodes base records' key and parent-key values, reusing its buffers
/// from record to record.
struct KeyReader<'l> {
    layout: &'l Layout,
    slicer: &'l Slicer,
    parent_cols: &'l [usize],
    fields: Fields,
    scratch: Vec<u8>,
    key: Vec<u8>,
    text: Vec<u8>,
    pkey: Vec<u8>,
    ptext: Vec<u8>,
}

impl<'l> KeyReader<'l> {
    /// A reader of `layout`'s records, its parent link's columns
    /// `parent_cols`.
    fn new(
        layout: &'l Layout,
        slicer: &'l Slicer,
        parent_cols: &'l [usize],
    ) -> Self {
        KeyReader {
            layout,
            slicer,
            parent_cols,
            fields: Fields::default(),
            scratch: Vec::new(),
            key: Vec::new(),
            text: Vec::new(),
            pkey: Vec::new(),
            ptext: Vec::new(),
        }
    }

    /// Slices and decodes `rec`: its key and parent key when every field
    /// decodes, none otherwise.
    fn read<'a>(&mut self, rec: RecordRef<'a>) -> BaseRecord<'a> {
        let layout = self.layout;
        let mut valid = !rec.bytes.is_empty()
            && self.slicer.slice(rec.bytes, &mut self.fields).is_ok();
        self.key.clear();
        self.text.clear();
        self.pkey.clear();
        self.ptext.clear();
        if valid {
            for (i, fd) in layout.fields.iter().enumerate() {
                match fd
                    .decoder
                    .decode(self.fields.get(rec.bytes, i), &mut self.scratch)
                {
                    Ok(v) => {
                        if layout.key.contains(&i) {
                            key_bytes(&v, &mut self.key, &mut self.text);
                        }
                        if self.parent_cols.contains(&i) {
                            key_bytes(&v, &mut self.pkey, &mut self.ptext);
                        }
                    }
                    Err(_) => {
                        valid = false;
                        break;
                    }
                }
            }
        }
        BaseRecord {
            bytes: rec.bytes,
            ending: rec.ending,
            key: valid.then(|| {
                (
                    xxhash_rust::xxh3::xxh3_128(&self.key),
                    String::from_utf8_lossy(&self.text).into_owned(),
                )
            }),
            parent: (valid && !self.parent_cols.is_empty())
                .then(|| xxhash_rust::xxh3::xxh3_128(&self.pkey)),
        }
    }
}

impl From<source::SourceError> for GenError {
    fn from(e: source::SourceError) -> Self {
        GenError::new(e.to_string())
    }
}

/// Writes a change set of `base` into `out` and returns its manifest.
///
/// # Errors
/// An unreadable base, a header that does not match, or an output that
/// cannot be written.
pub fn change_set(
    set: &SchemaSet,
    base: &[PathBuf],
    out: &Path,
    opts: &ChangeOptions,
) -> Result<ChangeManifest, GenError> {
    let plan = GenPlan::new(set, 1, opts.seed, opts.year, 0.0)?;
    let main = main_table(set, &plan);
    let mut manifest = ChangeManifest {
        base: base.iter().map(|p| p.display().to_string()).collect(),
        update: opts.update,
        delete: opts.delete,
        insert: opts.insert,
        ..Default::default()
    };
    let mut run = ChangeRun {
        deleted_keys: vec![HashSet::new(); plan.tables.len()],
        inserted_keys: vec![Vec::new(); plan.tables.len()],
        plan,
        main,
        base,
        opts,
    };
    for (path, tables) in outputs(set, out, opts.year) {
        let mut w = ArchiveWriter::create(&path, opts.level)?;
        for t in tables {
            manifest.tables.push(run.table(t, &mut w)?);
        }
        w.finish()?;
        manifest.outputs.push(path.display().to_string());
    }
    Ok(manifest)
}

/// A change set being written, table by table in load order.
struct ChangeRun<'a> {
    plan: GenPlan,
    /// The plan index of the main table.
    main: usize,
    base: &'a [PathBuf],
    opts: &'a ChangeOptions,
    /// Keys deleted per table (hashes of the key values), for children:
    /// deleted parents cascade.
    deleted_keys: Vec<HashSet<u128>>,
    /// Keys inserted per table, for children: inserted parents adopt
    /// children.
    inserted_keys: Vec<Vec<Vec<Datum>>>,
}

/// What the first pass over a table's base records found.
struct BaseCount {
    /// Key → index of the record that wins under the layout's duplicate
    /// policy (the first, or the last for `last`).
    winner: HashMap<u128, u64>,
    /// Winning valid records whose parent stays.
    n_valid: u64,
    /// Winning valid records whose parent was deleted.
    cascaded: u64,
    /// The header row, for a layout that has one.
    header: Option<Vec<u8>>,
}

/// A table's member as rewritten from its base records.
struct Rewritten {
    /// The member's name.
    member: String,
    /// The records kept and updated, without header.
    bytes: Vec<u8>,
    /// Hashes of the keys deleted.
    deleted: HashSet<u128>,
}

/// What becomes of a valid base record.
enum Fate {
    Delete,
    Update,
    Keep,
}

/// Deletes and updates still to make among a table's valid records not
/// yet seen, drawn so that the counts come out exact.
struct Quota {
    left: u64,
    delete: u64,
    update: u64,
}

impl ChangeRun<'_> {
    /// Writes table `t`'s new member into `w`: its base records kept,
    /// updated or deleted, then its inserted rows.
    fn table(
        &mut self,
        t: usize,
        w: &mut ArchiveWriter,
    ) -> Result<TableChanges, GenError> {
        let tp = &self.plan.tables[t];
        let layout = &tp.layout;
        let parent = tp.parent.as_ref();
        let parent_cols: Vec<usize> = parent
            .map(|p| p.map.iter().map(|m| m.0).collect())
            .unwrap_or_default();
        let pdel = parent
            .map(|p| self.deleted_keys[p.table].clone())
            .unwrap_or_default();
        let count = count_base(layout, &parent_cols, self.base, &pdel)?;
        let total = count.n_valid + count.cascaded;
        // Only the main table's tree changes: code tables and other
        // top-level tables (with their children) are carried over.
        let fixed = tp.root != self.main;
        let quota = Quota::new(tp, &count, fixed, self.opts);
        let mut ch = TableChanges {
            layout: layout.name.clone(),
            table: layout.table.clone(),
            rows_base: total,
            ..Default::default()
        };
        let kept =
            self.rewrite(t, &parent_cols, &pdel, &count, quota, &mut ch)?;
        w.begin(&kept.member, kept.bytes.len() as u64)?;
        if let Some(h) = &count.header {
            w.write(h)?;
        }
        w.write(&kept.bytes)?;
        // Inserts: new keys; a child's new rows hang under its
        // parent's new rows (none when the parent got none).
        let orphaned =
            parent.is_some_and(|p| self.inserted_keys[p.table].is_empty());
        let n_ins =
            if orphaned { 0 } else { share(self.opts.insert, total, fixed) };
        let mut taken: HashSet<u128> = count.winner.keys().copied().collect();
        let mut out_buf = Vec::new();
        let ins_keys =
            self.insert(t, n_ins, &mut taken, &mut ch, &mut out_buf)?;
        w.write(&out_buf)?;
        w.end()?;
        ch.rows_new =
            total - ch.deleted.len() as u64 + ch.inserted.len() as u64;
        self.deleted_keys[t] = kept.deleted;
        self.inserted_keys[t] = ins_keys;
        Ok(ch)
    }

    /// The second pass over table `t`'s base records: each winning record
    /// deleted (with its parent, or by `quota`), updated or copied, and
    /// listed in `ch`.
    fn rewrite(
        &self,
        t: usize,
        parent_cols: &[usize],
        pdel: &HashSet<u128>,
        count: &BaseCount,
        mut quota: Quota,
        ch: &mut TableChanges,
    ) -> Result<Rewritten, GenError> {
        let layout = &self.plan.tables[t].layout;
        let mut rng = Rng::new(seed_of(&[
            self.opts.seed,
            name_hash(&layout.name),
            0xC4A6,
        ]));
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut dels = HashSet::new();
        let mut index = 0u64;
        let member = scan_base(
            layout,
            parent_cols,
            self.base,
            &mut count.header.clone(),
            &mut |r, fields, rec| {
                let Some((h, text)) = &r.key else {
                    copy_record(r, &mut buf);
                    return Ok(());
                };
                // Records that lose to another of the same key are
                // left out: the new archive holds each key once.
                let i = index;
                index += 1;
                if count.winner.get(h) != Some(&i) {
                    return Ok(());
                }
                if r.parent.is_some_and(|p| pdel.contains(&p)) {
                    ch.deleted.push(text.clone());
                    ch.deleted_with_parent += 1;
                    dels.insert(*h);
                    return Ok(());
                }
                match quota.draw(&mut rng) {
                    Fate::Delete => {
                        ch.deleted.push(text.clone());
                        dels.insert(*h);
                    }
                    Fate::Update => {
                        update_record(
                            &self.plan, t, rec, fields, r.ending, &mut rng,
                            &mut buf,
                        )?;
                        ch.updated.push(text.clone());
                    }
                    Fate::Keep => copy_record(r, &mut buf),
                }
                Ok(())
            },
        )?;
        Ok(Rewritten { member, bytes: buf, deleted: dels })
    }

    /// Appends `n` rows of table `t` with new keys (none in `taken`, which
    /// gains them) to `out` and lists them in `ch`; returns their keys.
    fn insert(
        &self,
        t: usize,
        n: u64,
        taken: &mut HashSet<u128>,
        ch: &mut TableChanges,
        out: &mut Vec<u8>,
    ) -> Result<Vec<Vec<Datum>>, GenError> {
        let layout = &self.plan.tables[t].layout;
        let mut keys = Vec::new();
        let mut j = 0u64;
        while (keys.len() as u64) < n {
            let key =
                new_key(&self.plan, t, j, &self.inserted_keys, self.opts.seed);
            j += 1;
            let fresh = match key {
                Some(key) => {
                    let (h, text) = key_identity(layout, &key)?;
                    taken.insert(h).then_some((key, text))
                }
                None => None,
            };
            let Some((key, text)) = fresh else {
                if j > n * 50 + 1000 {
                    return Err(GenError::new(format!(
                        "layout {}: cannot find new keys to insert",
                        layout.name
                    )));
                }
                continue;
            };
            make_row_for(
                &self.plan,
                t,
                seed_of(&[self.opts.seed, 0x1A5E, j]),
                &key,
                out,
            )
            .map_err(GenError::new)?;
            ch.inserted.push(text);
            keys.push(key);
        }
        Ok(keys)
    }
}

impl Quota {
    /// The deletes and updates `opts` asks of a table whose base `count`
    /// found; none for a `fixed` table.
    fn new(
        tp: &super::plan::TablePlan,
        count: &BaseCount,
        fixed: bool,
        opts: &ChangeOptions,
    ) -> Quota {
        let (n_valid, total) = (count.n_valid, count.n_valid + count.cascaded);
        // Rows deleted with their parent count towards the table's
        // share, so a small child table is not emptied twice as fast.
        let delete = share(opts.delete, total, fixed)
            .saturating_sub(count.cascaded)
            .min(n_valid);
        // A table whose key is every column cannot have an update
        // (a changed value is another key): none are made there.
        let update = if updatable(tp) && !fixed {
            share(opts.update, total, false).min(n_valid - delete)
        } else {
            0
        };
        Quota { left: n_valid, delete, update }
    }

    /// Draws what becomes of the next valid record.
    fn draw(&mut self, rng: &mut Rng) -> Fate {
        let x = rng.below(self.left.max(1));
        self.left = self.left.saturating_sub(1);
        if x < self.delete {
            self.delete -= 1;
            Fate::Delete
        } else if x < self.delete + self.update {
            self.update -= 1;
            Fate::Update
        } else {
            Fate::Keep
        }
    }
}

/// The share `s` of `total` rows, rounded; none for a `fixed` table.
fn share(s: f64, total: u64, fixed: bool) -> u64 {
    if fixed { 0 } else { (s * total as f64).round() as u64 }
}

/// The first pass over a table's base records: which record wins each
/// key, and how many winners stay or go with a parent in `pdel`.
fn count_base(
    layout: &Layout,
    parent_cols: &[usize],
    base: &[PathBuf],
    pdel: &HashSet<u128>,
) -> Result<BaseCount, GenError> {
    let mut n_valid = 0u64;
    let mut cascaded = 0u64;
    let mut winner: HashMap<u128, u64> = HashMap::new();
    let last_wins = layout.duplicates == crate::schema::DuplicatePolicy::Last;
    let mut index = 0u64;
    let mut header = None;
    scan_base(layout, parent_cols, base, &mut header, &mut |r, _, _| {
        if let Some((h, _)) = &r.key {
            let fresh = !winner.contains_key(h);
            if fresh || last_wins {
                winner.insert(*h, index);
            }
            index += 1;
            if !fresh {
                return Ok(());
            }
            if r.parent.is_some_and(|p| pdel.contains(&p)) {
                cascaded += 1;
            } else {
                n_valid += 1;
            }
        }
        Ok(())
    })?;
    Ok(BaseCount { winner, n_valid, cascaded, header })
}

/// Appends a base record unchanged, with its own terminator.
fn copy_record(r: &BaseRecord<'_>, buf: &mut Vec<u8>) {
    buf.extend_from_slice(r.bytes);
    buf.extend_from_slice(match r.ending {
        Ending::Lf => b"\n",
        Ending::CrLf => b"\r\n",
        Ending::Eof => b"",
    });
}

/// The hash and text of `key` as the key of a record of `layout` reads
/// back (written, then decoded).
fn key_identity(
    layout: &Layout,
    key: &[Datum],
) -> Result<(u128, String), GenError> {
    let mut hk = Vec::new();
    let mut tk = Vec::new();
    let mut scratch = Vec::new();
    for (pos, &kf) in layout.key.iter().enumerate() {
        let mut raw = Vec::new();
        format_value(layout, &layout.fields[kf], &key[pos], &mut raw)
            .map_err(GenError::new)?;
        let v = layout.fields[kf]
            .decoder
            .decode(&raw, &mut scratch)
            .map_err(|e| GenError::new(e.to_string()))?;
        key_bytes(&v, &mut hk, &mut tk);
    }
    Ok((
        xxhash_rust::xxh3::xxh3_128(&hk),
        String::from_utf8_lossy(&tk).into_owned(),
    ))
}

/// The plan index of the dataset's main table (the first top-level table
/// when the dataset names none).
fn main_table(set: &SchemaSet, plan: &GenPlan) -> usize {
    set.dataset
        .as_ref()
        .and_then(|d| d.generate.main.as_deref())
        .and_then(|m| plan.tables.iter().position(|t| t.layout.name == m))
        .or_else(|| plan.tables.iter().position(|t| t.parent.is_none()))
        .unwrap_or(0)
}

/// A key for the `j`-th inserted row of table `t`, or `None` when this
/// attempt has no parent to hang under.
fn new_key(
    plan: &GenPlan,
    t: usize,
    j: u64,
    inserted: &[Vec<Vec<Datum>>],
    seed: u64,
) -> Option<Vec<Datum>> {
    let tp = &plan.tables[t];
    let mut r = Rng::new(seed_of(&[seed, tp.hash, j, 0x4E57]));
    match &tp.parent {
        None => {
            // Far beyond the base's row numbers, scrambled like them.
            let i = 5_000_000_000u64 + r.below(1 << 40);
            Some(plan.root_key(t, i % plan_capacity(plan, t)))
        }
        Some(link) => {
            let parents = &inserted[link.table];
            if parents.is_empty() {
                return None;
            }
            let p = &parents[(j as usize) % parents.len()];
            let key = tp
                .layout
                .key
                .iter()
                .map(|&kf| {
                    if let Some(&(_, ppos)) =
                        link.map.iter().find(|m| m.0 == kf)
                    {
                        p[ppos].clone()
                    } else {
                        tp.gens[kf].non_null(&mut r)
                    }
                })
                .collect();
            Some(key)
        }
    }
}

fn plan_capacity(plan: &GenPlan, t: usize) -> u64 {
    let tp = &plan.tables[t];
    match tp.layout.key.first() {
        Some(&k) => match &tp.layout.fields[k].decoder.ty {
            crate::decode::FieldType::Smallint => i16::MAX as u64 - 1,
            crate::decode::FieldType::Int => i32::MAX as u64 / 2,
            t if t.is_text() => {
                10u64.pow(tp.gens[k].max_chars().min(13) as u32)
            }
            _ => u64::MAX / 4,
        },
        None => u64::MAX / 4,
    }
}

/// Rewrites a record with one to three non-key fields given new values
/// that decode differently from the old ones.
fn update_record(
    plan: &GenPlan,
    t: usize,
    rec: &[u8],
    fields: &Fields,
    ending: Ending,
    rng: &mut Rng,
    out: &mut Vec<u8>,
) -> Result<(), GenError> {
    let tp = &plan.tables[t];
    let layout = &tp.layout;
    let mut raws: Vec<Vec<u8>> = (0..layout.fields.len())
        .map(|i| fields.get(rec, i).to_vec())
        .collect();
    let chosen = change_fields(tp, &mut raws, rng)?;
    match &layout.format {
        Format::Fixed(_) => {
            patch_fixed(layout, rec, &raws, &chosen, ending, out);
        }
        Format::Delimited(_) => {
            let mut buf = Vec::new();
            let mut spans = Vec::new();
            for r in &raws {
                let s = buf.len();
                buf.extend_from_slice(r);
                spans.push((s, buf.len()));
            }
            super::write_record(layout, &buf, &spans, out)
                .map_err(GenError::new)?;
        }
    }
    Ok(())
}

/// Gives one to three of a record's fields (`raws`, one per field) new
/// values that decode differently; returns the fields changed.
fn change_fields(
    tp: &super::plan::TablePlan,
    raws: &mut [Vec<u8>],
    rng: &mut Rng,
) -> Result<Vec<usize>, GenError> {
    let layout = &tp.layout;
    let candidates = update_candidates(tp);

    if candidates.is_empty() {
        return Err(GenError::new(format!(
            "layout {}: no non-key field to update",
            layout.name
        )));
    }
    // Change one to three fields, trying candidates in random order (some
    // hold the same value on every row, such as a tax year).
    let want = rng.range(1, 3.min(candidates.len() as i64)) as usize;
    let mut order = candidates.clone();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut scratch = Vec::new();
    let mut scratch2 = Vec::new();
    let mut chosen = Vec::new();
    for &i in &order {
        if chosen.len() == want {
            break;
        }
        let old = layout.fields[i]
            .decoder
            .decode(&raws[i], &mut scratch)
            .map(|v| v.to_string())
            .unwrap_or_default();
        if let Some(raw) = other_value(tp, i, &old, rng, &mut scratch2) {
            raws[i] = raw;
            chosen.push(i);
        }
    }
    let changed = !chosen.is_empty();
    if !changed {
        return Err(GenError::new(format!(
            "layout {}: could not change a value of a record",
            layout.name
        )));
    }
    Ok(chosen)
}

/// A raw value for field `i` that decodes to other than `old`, or none
/// within 20 draws.
fn other_value(
    tp: &super::plan::TablePlan,
    i: usize,
    old: &str,
    rng: &mut Rng,
    scratch: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    let layout = &tp.layout;
    let f = &layout.fields[i];
    for _ in 0..20 {
        let v = tp.gens[i].non_null(rng);
        let mut raw = Vec::new();
        if format_value(layout, f, &v, &mut raw).is_err() {
            continue;
        }
        let new = f.decoder.decode(&raw, scratch).map(|v| v.to_string());
        if let Ok(new) = new
            && new != old
        {
            return Some(raw);
        }
    }
    None
}

/// Writes fixed-width record `rec` with the `chosen` fields replaced by
/// their `raws`, keeping its other bytes (undeclared gaps included).
fn patch_fixed(
    layout: &Layout,
    rec: &[u8],
    raws: &[Vec<u8>],
    chosen: &[usize],
    ending: Ending,
    out: &mut Vec<u8>,
) {
    let mut r = rec.to_vec();
    for &i in chosen {
        let span = layout.fields[i].span.clone().unwrap_or(0..0);
        if r.len() < span.end {
            r.resize(span.end, b' ');
        }
        r[span.clone()].fill(b' ');
        let raw = &raws[i];
        r[span.start..span.start + raw.len().min(span.len())]
            .copy_from_slice(&raw[..raw.len().min(span.len())]);
    }
    out.extend_from_slice(&r);
    out.extend_from_slice(match ending {
        Ending::Lf => b"\n",
        Ending::CrLf => b"\r\n",
        Ending::Eof => super::terminator_bytes(layout),
    });
}

/// Fields an update may change: not key, lookup or filter fields.
fn update_candidates(tp: &super::plan::TablePlan) -> Vec<usize> {
    let layout = &tp.layout;
    (0..layout.fields.len())
        .filter(|i| {
            !layout.key.contains(i)
                && !tp.lookups.iter().any(|l| l.covers(*i))
                && layout.filters.iter().all(|f| f.field != *i)
        })
        .collect()
}

fn updatable(tp: &super::plan::TablePlan) -> bool {
    !update_candidates(tp).is_empty()
}
