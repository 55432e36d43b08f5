//! Change sets: a next-year archive that differs from a base archive by
//! exact shares of updated, deleted and inserted rows, and a manifest of
//! the keys concerned, so tests can assert exactly what a merge must do.
//!
//! Every table is read twice from the base: once to count its valid
//! records (the shares are exact counts of those), once to write the new
//! member. Deleting a parent row deletes its children too (listed in the
//! child's `deleted`; the child's own share is taken from the rest).
//! Records the parser rejects are copied unchanged and never counted.

use std::collections::HashSet;
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
use crate::split::{Ending, Framing, Records};

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
                let mut fields = Fields::default();
                let mut scratch = Vec::new();
                let mut key = Vec::new();
                let mut text = Vec::new();
                let mut pkey = Vec::new();
                let mut ptext = Vec::new();
                while let Some(chunk) = reader.next_chunk().map_err(err)? {
                    for rec in Records::new(&chunk.data, framing) {
                        let mut valid = !rec.bytes.is_empty()
                            && slicer.slice(rec.bytes, &mut fields).is_ok();
                        key.clear();
                        text.clear();
                        pkey.clear();
                        ptext.clear();
                        if valid {
                            for (i, fd) in layout.fields.iter().enumerate() {
                                match fd.decoder.decode(
                                    fields.get(rec.bytes, i),
                                    &mut scratch,
                                ) {
                                    Ok(v) => {
                                        if layout.key.contains(&i) {
                                            key_bytes(&v, &mut key, &mut text);
                                        }
                                        if parent_cols.contains(&i) {
                                            key_bytes(
                                                &v, &mut pkey, &mut ptext,
                                            );
                                        }
                                    }
                                    Err(_) => {
                                        valid = false;
                                        break;
                                    }
                                }
                            }
                        }
                        let r = BaseRecord {
                            bytes: rec.bytes,
                            ending: rec.ending,
                            key: valid.then(|| {
                                (
                                    xxhash_rust::xxh3::xxh3_128(&key),
                                    String::from_utf8_lossy(&text)
                                        .into_owned(),
                                )
                            }),
                            parent: (valid && !parent_cols.is_empty())
                                .then(|| xxhash_rust::xxh3::xxh3_128(&pkey)),
                        };
                        f(&r, &fields, rec.bytes)?;
                    }
                }
                Ok(Some(reader.finish().0))
            },
        )
        .map_err(|e| GenError::new(e.to_string()))?;
    }
    Ok(member_name.unwrap_or_else(|| super::member_name(layout)))
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
    // Keys deleted and inserted per table (hashes of the key values), for
    // children: deleted parents cascade, inserted parents adopt children.
    let mut deleted_keys: Vec<HashSet<u128>> =
        vec![HashSet::new(); plan.tables.len()];
    let mut inserted_keys: Vec<Vec<Vec<Datum>>> =
        vec![Vec::new(); plan.tables.len()];
    for (path, tables) in outputs(set, out, opts.year) {
        let mut w = ArchiveWriter::create(&path, opts.level)?;
        for t in tables {
            let tp = &plan.tables[t];
            let layout = &tp.layout;
            let parent = tp.parent.clone();
            let parent_cols: Vec<usize> = parent
                .as_ref()
                .map(|p| p.map.iter().map(|m| m.0).collect())
                .unwrap_or_default();
            // Pass 1: count, collect keys.
            let mut n_valid = 0u64;
            let mut cascaded = 0u64;
            // Key → index of the record that wins under the layout's
            // duplicate policy (the first, or the last for `last`).
            let mut winner: std::collections::HashMap<u128, u64> =
                std::collections::HashMap::new();
            let last_wins =
                layout.duplicates == crate::schema::DuplicatePolicy::Last;
            let mut index = 0u64;
            let mut header = None;
            let pdel = parent
                .as_ref()
                .map(|p| deleted_keys[p.table].clone())
                .unwrap_or_default();
            scan_base(
                layout,
                &parent_cols,
                base,
                &mut header,
                &mut |r, _, _| {
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
                },
            )?;
            let mut base_keys: HashSet<u128> =
                winner.keys().copied().collect();
            let total = n_valid + cascaded;
            // Only the main table's tree changes: code tables and other
            // top-level tables (with their children) are carried over.
            let fixed = tp.root != main;
            let share = |s: f64| {
                if fixed { 0 } else { (s * total as f64).round() as u64 }
            };
            // Rows deleted with their parent count towards the table's
            // share, so a small child table is not emptied twice as fast.
            let mut left_del = share(opts.delete).saturating_sub(cascaded);
            left_del = left_del.min(n_valid);
            // A table whose key is every column cannot have an update
            // (a changed value is another key): none are made there.
            let mut left_upd = if updatable(tp) && !fixed {
                ((opts.update * total as f64).round() as u64)
                    .min(n_valid - left_del)
            } else {
                0
            };
            let mut left = n_valid;
            let mut rng = Rng::new(seed_of(&[
                opts.seed,
                name_hash(&layout.name),
                0xC4A6,
            ]));
            let mut ch = TableChanges {
                layout: layout.name.clone(),
                table: layout.table.clone(),
                rows_base: total,
                ..Default::default()
            };
            // Pass 2: write.
            let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
            let mut dels = HashSet::new();
            let mut index2 = 0u64;
            let member = scan_base(
                layout,
                &parent_cols,
                base,
                &mut header.clone(),
                &mut |r, fields, rec| {
                    let copy = |buf: &mut Vec<u8>| {
                        buf.extend_from_slice(r.bytes);
                        buf.extend_from_slice(match r.ending {
                            Ending::Lf => b"\n",
                            Ending::CrLf => b"\r\n",
                            Ending::Eof => b"",
                        });
                    };
                    let Some((h, text)) = &r.key else {
                        copy(&mut buf);
                        return Ok(());
                    };
                    // Records that lose to another of the same key are
                    // left out: the new archive holds each key once.
                    let i = index2;
                    index2 += 1;
                    if winner.get(h) != Some(&i) {
                        return Ok(());
                    }

                    if r.parent.is_some_and(|p| pdel.contains(&p)) {
                        ch.deleted.push(text.clone());
                        ch.deleted_with_parent += 1;
                        dels.insert(*h);
                        return Ok(());
                    }
                    let x = rng.below(left.max(1));
                    left = left.saturating_sub(1);
                    if x < left_del {
                        left_del -= 1;
                        ch.deleted.push(text.clone());
                        dels.insert(*h);
                    } else if x < left_del + left_upd {
                        left_upd -= 1;
                        update_record(
                            &plan, t, rec, fields, r.ending, &mut rng,
                            &mut buf,
                        )?;
                        ch.updated.push(text.clone());
                    } else {
                        copy(&mut buf);
                    }
                    Ok(())
                },
            )?;
            w.begin(&member, buf.len() as u64)?;
            if let Some(h) = &header {
                w.write(h)?;
            }
            w.write(&buf)?;
            // Inserts: new keys; a child's new rows hang under its
            // parent's new rows (none when the parent got none).
            let orphaned = parent
                .as_ref()
                .is_some_and(|p| inserted_keys[p.table].is_empty());
            let n_ins = if orphaned { 0 } else { share(opts.insert) };
            let mut out_buf = Vec::new();
            let mut ins_keys = Vec::new();
            let mut j = 0u64;
            while (ins_keys.len() as u64) < n_ins {
                let key = new_key(&plan, t, j, &inserted_keys, opts.seed);
                j += 1;
                let Some(key) = key else {
                    if j > n_ins * 50 + 1000 {
                        return Err(GenError::new(format!(
                            "layout {}: cannot find new keys to insert",
                            layout.name
                        )));
                    }
                    continue;
                };
                let mut hk = Vec::new();
                let mut tk = Vec::new();
                let mut scratch = Vec::new();
                for (pos, &kf) in layout.key.iter().enumerate() {
                    let mut raw = Vec::new();
                    format_value(
                        layout,
                        &layout.fields[kf],
                        &key[pos],
                        &mut raw,
                    )
                    .map_err(GenError::new)?;
                    let v = layout.fields[kf]
                        .decoder
                        .decode(&raw, &mut scratch)
                        .map_err(|e| GenError::new(e.to_string()))?;
                    key_bytes(&v, &mut hk, &mut tk);
                }
                let h = xxhash_rust::xxh3::xxh3_128(&hk);
                if base_keys.contains(&h) || !base_keys.insert(h) {
                    if j > n_ins * 50 + 1000 {
                        return Err(GenError::new(format!(
                            "layout {}: cannot find new keys to insert",
                            layout.name
                        )));
                    }
                    continue;
                }
                make_row_for(
                    &plan,
                    t,
                    seed_of(&[opts.seed, 0x1A5E, j]),
                    &key,
                    &mut out_buf,
                )
                .map_err(GenError::new)?;
                ch.inserted.push(String::from_utf8_lossy(&tk).into_owned());
                ins_keys.push(key);
            }
            w.write(&out_buf)?;
            w.end()?;
            ch.rows_new =
                total - ch.deleted.len() as u64 + ch.inserted.len() as u64;
            deleted_keys[t] = dels;
            inserted_keys[t] = ins_keys;
            manifest.tables.push(ch);
        }
        w.finish()?;
        manifest.outputs.push(path.display().to_string());
    }
    Ok(manifest)
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
    let mut raws: Vec<Vec<u8>> = (0..layout.fields.len())
        .map(|i| fields.get(rec, i).to_vec())
        .collect();
    let mut scratch = Vec::new();
    let mut scratch2 = Vec::new();
    let mut chosen = Vec::new();
    for &i in &order {
        if chosen.len() == want {
            break;
        }
        let f = &layout.fields[i];
        let old = f
            .decoder
            .decode(&raws[i], &mut scratch)
            .map(|v| v.to_string())
            .unwrap_or_default();
        for _ in 0..20 {
            let v = tp.gens[i].non_null(rng);
            let mut raw = Vec::new();
            if format_value(layout, f, &v, &mut raw).is_err() {
                continue;
            }
            let new =
                f.decoder.decode(&raw, &mut scratch2).map(|v| v.to_string());
            if let Ok(new) = new
                && new != old
            {
                raws[i] = raw;
                chosen.push(i);
                break;
            }
        }
    }
    let changed = !chosen.is_empty();
    if !changed {
        return Err(GenError::new(format!(
            "layout {}: could not change a value of a record",
            layout.name
        )));
    }
    match &layout.format {
        Format::Fixed(_) => {
            // Keep the record's other bytes (undeclared gaps included).
            let mut r = rec.to_vec();
            for &i in &chosen {
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
