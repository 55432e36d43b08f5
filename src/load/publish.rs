//! Publishing staged tables into their targets, all in ONE transaction,
//! in the dataset's dependency order: references checked (orphans counted,
//! rejected or fatal), a set-based `MERGE` (or append, fill), rows missing
//! from a full snapshot deleted or soft-deleted under a guard, counts
//! gathered. The caller commits, or rolls back for a dry run or on any
//! error, so the targets are either fully updated or exactly as before.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{GenericClient, Transaction};
use serde::{Deserialize, Serialize};

use super::LoadError;
use super::ddl::count_sql;
use super::history::History;
use super::period::PeriodValue;
use super::stage::{Spool, StageContext, Staged};
use super::undo::{How, Recorder, UndoTable, current_xid, key_object};
use crate::pipeline::record_offsets;
use crate::reject::Reject;
use crate::reject::{Position, Reason};
use crate::schema::{Dataset, Layout, OrphanPolicy, Reference, quote_ident};

/// How staged rows reach a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Insert new keys, update rows whose values differ.
    Merge,
    /// Insert every row.
    Append,
    /// Insert new keys; of existing rows fill only NULL columns.
    Fill,
    /// Build a new table and swap it in (previous generation kept).
    Replace,
    /// Keep every version: a changed row closes its current version and
    /// opens a new one (`valid_from`, `valid_to`).
    History,
}

impl Mode {
    /// The name used on the command line and in run records.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Merge => "merge",
            Mode::Append => "append",
            Mode::Fill => "fill",
            Mode::Replace => "replace",
            Mode::History => "history",
        }
    }
}

/// What happens to target rows a full snapshot no longer has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletePolicy {
    /// Keep them (the default).
    None,
    /// Delete them.
    Hard,
    /// Set their `deleted_at`.
    Soft,
}

impl DeletePolicy {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            DeletePolicy::None => "none",
            DeletePolicy::Hard => "hard",
            DeletePolicy::Soft => "soft",
        }
    }
}

/// The outcome for one table.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TableOutcome {
    /// Layout name.
    pub layout: String,
    /// Target table (qualified).
    pub table: String,
    /// Records read.
    pub read: u64,
    /// Records rejected (parse, duplicates, orphans).
    pub rejected: u64,
    /// Records filtered (blank, filter rules, duplicates dropped).
    pub filtered: u64,
    /// Rows staged (valid records).
    pub staged: u64,
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
    /// Rows already identical.
    pub unchanged: u64,
    /// Rows deleted (or soft-deleted).
    pub deleted: u64,
    /// Rows whose references found nothing (all policies).
    pub orphans: u64,
    /// Seconds spent staging.
    pub stage_seconds: f64,
    /// Seconds spent publishing.
    pub publish_seconds: f64,
    /// Staging reused from a failed run.
    pub reused: bool,
    /// Why `--resume` staged the table again instead of reusing a failed
    /// run's staging (it could not prove it complete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restaged: Option<String>,
    /// How the table's totals reconciled with the records they sum (a
    /// totals table of the dataset's `[[reconcile]]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciled: Option<String>,
}

impl TableOutcome {
    /// The outcome of `layout`'s table `table` as far as its stage `s`
    /// tells: what was read, rejected, filtered and staged, and how.
    pub fn of_staged(
        layout: &Layout,
        table: String,
        s: &Staged,
    ) -> TableOutcome {
        TableOutcome {
            layout: layout.name.clone(),
            table,
            read: s.counts.read,
            rejected: s.counts.rejected,
            filtered: s.counts.filtered,
            staged: s.rows,
            stage_seconds: s.seconds,
            reused: s.reused,
            restaged: s.restaged.clone(),
            ..Default::default()
        }
    }

    /// Notes each reconciliation's outcome on its totals table.
    pub fn note_reconciled(
        out: &mut [TableOutcome],
        done: Vec<super::reconcile::Reconciled>,
    ) {
        for r in done {
            if let Some(o) = out.iter_mut().find(|o| o.layout == r.totals) {
                o.reconciled = Some(r.message);
            }
        }
    }
}

/// Options of the publish step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PublishOptions {
    /// Mode.
    pub mode: Mode,
    /// Deletes of rows missing from the snapshot.
    pub delete: DeletePolicy,
    /// Largest share of a target deletes may remove without `--force`.
    pub max_delete_ratio: f64,
    /// Override the guards.
    pub force: bool,
}

/// One table to publish.
pub(super) struct Publish<'a> {
    /// Its layout.
    pub layout: &'a Layout,
    /// The target table (qualified, quoted).
    pub target: String,
    /// The staged rows.
    pub staged: &'a Staged,
    /// Staged rows still to publish (orphans rejected by a reference
    /// check are no longer among them).
    pub rows: u64,
    /// The period the rows fill; `target` is then its partition.
    pub period: Option<&'a PeriodValue>,
    /// `--mode history`: the version columns and the effective time.
    pub history: Option<&'a History>,
}

fn cols(layout: &Layout) -> Vec<String> {
    layout.fields.iter().map(|f| quote_ident(&f.name)).collect()
}

/// The columns a publish writes and the values it writes them from, out
/// of a staging table: the layout's fields, then the period column
/// filled with the load's value (staging holds no period: one value
/// serves every row).
pub(super) fn written(
    layout: &Layout,
    period: Option<&PeriodValue>,
) -> (Vec<String>, Vec<String>) {
    let mut names = cols(layout);
    let mut values = names.clone();
    if let Some(p) = period {
        names.push(p.quoted());
        values.push(format!("{} AS {}", p.value, p.quoted()));
    }
    (names, values)
}

pub(super) fn key_match(layout: &Layout, a: &str, b: &str) -> String {
    layout
        .key_names()
        .iter()
        .map(|k| format!("{a}.{q} = {b}.{q}", q = quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The temporary table of a publish's changes (dropped after each
/// table).
pub(super) const CHANGES: &str = "pg_temp._fw_changes";

/// How the staged rows of `p` meet its target's: the join condition of a
/// target row `t` and a staged row `s` (a period's partition: matched on
/// the period too, so its key's index serves), and per non-key column
/// the condition under which it changes and its new value. `fill`
/// changes only NULL columns; else columns whose values differ (and a
/// soft-deleted row that is back is revived).
struct Matching {
    on: String,
    cond: Vec<String>,
    set: Vec<String>,
}

fn matching(p: &Publish<'_>, fill: bool, soft: bool) -> Matching {
    let layout = p.layout;
    let mut on = key_match(layout, "t", "s");
    if let Some(v) = p.period {
        on = format!("t.{c} = s.{c} AND {on}", c = v.quoted());
    }
    let non_key = layout
        .fields
        .iter()
        .enumerate()
        .filter(|(i, _)| !layout.key.contains(i))
        .map(|(_, f)| quote_ident(&f.name));
    let (mut cond, mut set): (Vec<String>, Vec<String>) = non_key
        .map(|c| {
            if fill {
                (
                    format!("(t.{c} IS NULL AND s.{c} IS NOT NULL)"),
                    format!("{c} = coalesce(t.{c}, s.{c})"),
                )
            } else {
                (
                    format!("t.{c} IS DISTINCT FROM s.{c}"),
                    format!("{c} = s.{c}"),
                )
            }
        })
        .unzip();
    if soft && !fill {
        cond.push("t.deleted_at IS NOT NULL".into());
        set.push("deleted_at = NULL".into());
    }
    Matching { on, cond, set }
}

/// Finds, in one join of the staged rows (not rejected) with the target,
/// those that change something: new keys (`_fw_new`) and rows whose
/// values differ (or, `fill`, fill a NULL), with the target row they
/// change as `_fw_old` when `undo` keeps it. Kept in [`CHANGES`], a few
/// percent of a snapshot, so the writes and the undo read it instead of
/// joining again.
fn changes_sql(p: &Publish<'_>, m: &Matching, undo: bool) -> String {
    let (_, values) = written(p.layout, p.period);
    let k0 = quote_ident(p.layout.key_names()[0]);
    let old = if undo {
        format!(
            ", CASE WHEN t.{k0} IS NULL THEN NULL ELSE to_jsonb(t) END AS _fw_old"
        )
    } else {
        String::new()
    };
    let mut changed = format!("t.{k0} IS NULL");
    if !m.cond.is_empty() {
        changed.push_str(&format!(" OR {}", m.cond.join(" OR ")));
    }
    format!(
        "CREATE TEMPORARY TABLE {CHANGES} ON COMMIT DROP AS \
         SELECT s.*, t.{k0} IS NULL AS _fw_new{old} \
         FROM (SELECT {} FROM {} WHERE NOT _fw_reject) s LEFT JOIN {} t ON {} \
         WHERE {changed}; ANALYZE {CHANGES}",
        values.join(", "),
        p.staged.table,
        p.target,
        m.on,
    )
}

/// Updates the target's rows the changes change.
fn update_changed_sql(p: &Publish<'_>, m: &Matching) -> String {
    format!(
        "UPDATE {} t SET {} FROM {CHANGES} s WHERE NOT s._fw_new AND {}",
        p.target,
        m.set.join(", "),
        m.on
    )
}

/// Inserts the changes' new keys.
fn insert_new_sql(p: &Publish<'_>) -> String {
    let (names, _) = written(p.layout, p.period);
    format!(
        "INSERT INTO {} ({}) SELECT {} FROM {CHANGES} s WHERE s._fw_new",
        p.target,
        names.join(", "),
        names.iter().map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", ")
    )
}

/// The undo of the changes: the key of each row inserted, the previous
/// version of each row updated.
fn undo_changes_sql(p: &Publish<'_>, u: &UndoTable) -> String {
    u.insert_sql(&format!(
        "SELECT CASE WHEN s._fw_new THEN 'i' ELSE 'u' END::\"char\", \
         CASE WHEN s._fw_new THEN {} ELSE s._fw_old END FROM {CHANGES} s",
        key_object(&p.layout.key_names(), "s")
    ))
}

fn count(
    tx: &mut Transaction<'_>,
    sql: &str,
    what: &str,
) -> Result<u64, LoadError> {
    let n: i64 = tx
        .query_one(sql, &[])
        .map_err(|e| LoadError::db(what.to_owned(), e))?
        .get(0);
    Ok(n as u64)
}

/// The target of `reference` (qualified, quoted), within `targets`.
fn referenced<'a>(
    reference: &Reference,
    targets: &'a HashMap<String, String>,
) -> Option<&'a String> {
    targets.get(&reference.to)
}

/// Checks one staged table's references; removes and rejects orphans as
/// the dataset says. Returns the number of orphans.
///
/// # Errors
/// A database error, or orphans under `on_orphan = "fail"`.
pub(super) fn check_references(
    tx: &mut Transaction<'_>,
    p: &Publish<'_>,
    dataset: Option<&Dataset>,
    targets: &HashMap<String, String>,
    names: &dyn Fn(u32) -> (String, String),

    cx: &StageContext<'_>,
    spool: &mut Spool,
) -> Result<u64, LoadError> {
    let Some(ds) = dataset else { return Ok(0) };
    let layout = p.layout;
    let mut total = 0;
    for r in ds.references.iter().filter(|r| r.from == layout.name) {
        let Some(parent) = referenced(r, targets) else { continue };
        let check = OrphanCheck {
            layout,
            reference: r,
            staging: &p.staged.table,
            orphan: orphan_condition(r, p, parent),
            what: format!("checking {} → {}", layout.name, r.to),
        };
        total += match r.on_orphan {
            OrphanPolicy::Keep => check.count(tx)?,
            OrphanPolicy::Fail => {
                check.refuse_any(tx)?;
                0
            }
            OrphanPolicy::Reject => check.reject(tx, names, cx, spool)?,
        };
    }
    Ok(total)
}

/// The condition on a staged row `s` of `p` of being an orphan of `r`,
/// whose parent table is `parent`: not rejected, every referencing
/// column present, and no parent row with those values.
fn orphan_condition(r: &Reference, p: &Publish<'_>, parent: &str) -> String {
    let staging = &p.staged.table;
    let present: Vec<String> = r
        .columns
        .iter()
        .map(|c| format!("s.{} IS NOT NULL", quote_ident(c)))
        .collect();
    let matches = |alias: &str| -> String {
        r.columns
            .iter()
            .zip(&r.to_columns)
            .map(|(c, t)| {
                format!("{alias}.{} = s.{}", quote_ident(t), quote_ident(c))
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    // A table that references itself finds parents among its own new
    // rows too (those not rejected), and in the target as it was
    // unless the new rows replace it (replace mode builds the target
    // itself, which may not exist yet).
    let own = r.to == p.layout.name;
    let mut orphan =
        vec![format!("NOT s._fw_reject AND {}", present.join(" AND "))];
    if !(own && *staging == p.target) {
        // The parent of a load of one period is that period's rows; of a
        // history load, its current versions.
        let mut period = p
            .period
            .map(|v| format!("p.{} = {} AND ", v.quoted(), v.value))
            .unwrap_or_default();
        if let Some(h) = p.history {
            period.push_str(&format!(
                "p.{} IS NULL AND ",
                quote_ident(&h.columns.valid_to)
            ));
        }
        orphan.push(format!(
            "NOT EXISTS (SELECT 1 FROM {parent} p WHERE {period}{})",
            matches("p")
        ));
    }
    if own {
        orphan.push(format!(
            "NOT EXISTS (SELECT 1 FROM {staging} o WHERE NOT o._fw_reject AND {})",
            matches("o")
        ));
    }
    orphan.join(" AND ")
}

/// Counts the rows `s` of `staging` that meet `cond`.
fn orphan_count_sql(staging: &str, cond: &str) -> String {
    format!("SELECT count(*) FROM {staging} s WHERE {cond}")
}

/// Whether any row `s` of `staging` meets `cond`: read-only, so the
/// server may run it in parallel (a DELETE never is). Counted rather
/// than `EXISTS`: orphans are rare, so the whole table is read anyway,
/// and `EXISTS` lets the planner bet on finding one early with a nested
/// loop that rescans the parent per row (where the parent's key cannot
/// serve, e.g. a `char` column referencing a `varchar` key), which a
/// count plans as one hash anti-join.
fn orphan_exists_sql(staging: &str, cond: &str) -> String {
    format!("SELECT count(*) > 0 FROM {staging} s WHERE {cond}")
}

/// Deletes the rows `s` of `staging` that meet `cond` and returns, for
/// each, its file, line and the values `shown` joined by `|`: the orphans
/// leave staging and come back to be written as rejects, in one pass.
fn orphan_delete_sql(staging: &str, cond: &str, shown: &[String]) -> String {
    format!(
        "DELETE FROM {staging} s WHERE {cond} RETURNING s._fw_file, s._fw_line, concat_ws('|', {})",
        shown.join(", ")
    )
}

/// One reference of a staged table, checked for orphans.
struct OrphanCheck<'c> {
    /// The referencing layout.
    layout: &'c Layout,
    /// The reference.
    reference: &'c Reference,
    /// The staging table (qualified, quoted).
    staging: &'c str,
    /// The condition of an orphan row `s` ([`orphan_condition`]).
    orphan: String,
    /// What is checked, for errors.
    what: String,
}

impl OrphanCheck<'_> {
    /// How many orphans the staging table holds.
    fn count(&self, tx: &mut Transaction<'_>) -> Result<u64, LoadError> {
        count(tx, &orphan_count_sql(self.staging, &self.orphan), &self.what)
    }

    /// Refuses any orphan (`on_orphan = "fail"`).
    fn refuse_any(&self, tx: &mut Transaction<'_>) -> Result<(), LoadError> {
        let n = self.count(tx)?;
        if n > 0 {
            let r = self.reference;
            return Err(LoadError::refused(format!(
                "{n} rows of {} reference {} ({}) without a match; the dataset says on_orphan = \"fail\"",
                self.layout.name,
                r.to,
                r.columns.join(", ")
            )));
        }
        Ok(())
    }

    /// Removes the orphans from staging and writes them as rejects.
    /// Rejecting a row of a self-referencing table may orphan its own
    /// children in the same load: again until none is left. Returns how
    /// many.
    fn reject(
        &self,
        tx: &mut Transaction<'_>,
        names: &dyn Fn(u32) -> (String, String),
        cx: &StageContext<'_>,
        spool: &mut Spool,
    ) -> Result<u64, LoadError> {
        let own = self.reference.to == self.layout.name;
        let mut total = 0;
        loop {
            // Orphans are rare: a read-only probe first.
            let any: bool = tx
                .query_one(&orphan_exists_sql(self.staging, &self.orphan), &[])
                .map_err(|e| LoadError::db(self.what.clone(), e))?
                .get(0);
            if !any {
                break;
            }
            total += self.delete(tx, names, cx, spool)?;
            if !own {
                break;
            }
        }
        Ok(total)
    }

    /// Deletes the orphans from staging, writing each as a reject (at its
    /// first referencing column, its values as the raw text). Returns
    /// how many.
    fn delete(
        &self,
        tx: &mut Transaction<'_>,
        names: &dyn Fn(u32) -> (String, String),
        cx: &StageContext<'_>,
        spool: &mut Spool,
    ) -> Result<u64, LoadError> {
        let (r, layout) = (self.reference, self.layout);
        let shown: Vec<String> = r
            .columns
            .iter()
            .map(|c| format!("s.{}::text", quote_ident(c)))
            .collect();
        let sql = orphan_delete_sql(self.staging, &self.orphan, &shown);
        let field = layout.field_index(&r.columns[0]).map(|i| i as u16);
        let mut rows = tx
            .query_raw(&sql, std::iter::empty::<i32>())
            .map_err(|e| LoadError::db(self.what.clone(), e))?;
        // file → (line, key) of each orphan.
        let mut orphans: BTreeMap<i32, Vec<(u64, String)>> = BTreeMap::new();
        while let Some(row) =
            rows.next().map_err(|e| LoadError::db(self.what.clone(), e))?
        {
            let line: i64 = row.get(1);
            orphans
                .entry(row.get(0))
                .or_default()
                .push((line as u64, row.get(2)));
        }
        let mut n = 0;
        for (file, found) in orphans {
            let (input, member) = names(file as u32);
            let lines = found.iter().map(|(l, _)| *l).collect();
            let bytes = record_offsets(
                Path::new(&input),
                &member,
                layout,
                &cx.source,
                cx.pipeline.max_record_bytes,
                &lines,
            )?;
            for (line, key) in found {
                let rej = Reject {
                    at: Position {
                        input: input.as_str().into(),
                        member: member.as_str().into(),
                        line,
                        byte: bytes.get(&line).copied().unwrap_or(0),
                        field,
                    },
                    raw: key.into_bytes().into(),
                    raw_truncated: false,
                    reason: Reason::Orphan,
                };
                cx.rejects
                    .write_reject(&rej, layout, spool)
                    .map_err(|e| LoadError::spill("writing rejects", e))?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Publishes one table (merge, append or fill), returning its counts;
/// with `undo`, records how to restore the table as it was.
///
/// # Errors
/// A database error, or the delete guard.
pub(super) fn publish_table(
    tx: &mut Transaction<'_>,
    p: &Publish<'_>,
    opts: &PublishOptions,
    out: &mut TableOutcome,
    mut undo: Option<&mut Recorder>,
) -> Result<(), LoadError> {
    let target = &p.target;
    // An empty target needs no counting and no join: every row is new.
    let empty: bool = tx
        .query_one(&is_empty_sql(target), &[])
        .map_err(db_error("looking into", target))?
        .get(0);
    let undoing = undo.is_some();
    let mut record = |tx: &mut Transaction<'_>, how: How, detail| match undo
        .as_deref_mut()
    {
        Some(u) => {
            u.table(tx, target, how, &p.layout.key_names(), detail).map(Some)
        }
        None => Ok(None),
    };
    let insert_all = insert_all_sql(p);
    let mut before = 0;
    let mut rows_undo = None;
    match opts.mode {
        Mode::Append => {
            if empty {
                record(tx, How::Emptied, None)?;
            } else if undoing {
                let xid = current_xid(tx)?;
                record(
                    tx,
                    How::Appended,
                    Some(serde_json::json!({ "xid": xid })),
                )?;
            }
            out.inserted = tx
                .execute(&insert_all, &[])
                .map_err(db_error("appending to", target))?;
        }
        Mode::Merge | Mode::Fill if empty => {
            record(tx, How::Emptied, None)?;
            out.inserted = tx
                .execute(&insert_all, &[])
                .map_err(db_error("inserting into", target))?;
            analyze_filled(tx, target)?;
        }
        Mode::Merge | Mode::Fill => {
            rows_undo = record(tx, How::Rows, None)?;
            before = merge(tx, p, opts, out, rows_undo.as_ref())?;
        }
        Mode::History => {
            let Some(h) = p.history else {
                return Err(LoadError::config(
                    "history mode without its version columns",
                ));
            };
            record(
                tx,
                How::History,
                Some(serde_json::json!({
                    "as_of": h.as_of,
                    "valid_from": h.columns.valid_from,
                    "valid_to": h.columns.valid_to,
                })),
            )?;
            return super::history::publish(tx, p, h, opts, out);
        }
        Mode::Replace => {
            return Err(LoadError::config(
                "replace mode is published as a whole, not table by table",
            ));
        }
    }
    out.unchanged = p.rows.saturating_sub(out.inserted + out.updated);
    if opts.mode == Mode::Merge && opts.delete != DeletePolicy::None && !empty
    {
        out.deleted = delete_missing(tx, p, opts, before, rows_undo.as_ref())?;
    }
    Ok(())
}

/// Gathers the statistics of `target`, which was empty and now holds
/// every row: without them the statements after it (reference checks of
/// later tables, the next load's joins) are planned for an empty table
/// until autovacuum comes by. Inside the publish transaction, so the
/// statistics commit with the rows.
///
/// # Errors
/// A database error.
pub(super) fn analyze_filled(
    tx: &mut Transaction<'_>,
    target: &str,
) -> Result<(), LoadError> {
    tx.batch_execute(&format!("ANALYZE {target}"))
        .map_err(db_error("analysing", target))
}

/// The error of a statement on `target`: `what`, then its name.
fn db_error(
    what: &str,
    target: &str,
) -> impl FnOnce(postgres::Error) -> LoadError + use<> {
    let what = format!("{what} {target}");
    move |e| LoadError::db(what, e)
}

/// Whether `target` has no row at all (it reads at most one).
fn is_empty_sql(target: &str) -> String {
    format!("SELECT NOT EXISTS (SELECT 1 FROM {target})")
}

/// Inserts every staged row of `p` that was not rejected into its
/// target, by column name (fwload's own columns stay behind).
fn insert_all_sql(p: &Publish<'_>) -> String {
    let (target, staging) = (&p.target, &p.staged.table);
    let (names, values) = written(p.layout, p.period);
    format!(
        "INSERT INTO {target} ({}) SELECT {} FROM {staging} WHERE NOT _fw_reject",
        names.join(", "),
        values.join(", ")
    )
}

/// Deletes from `p`'s target `t` the rows whose key no row of staging
/// has (rejected records' keys are staged too, so their rows stay); when
/// `soft`, sets `deleted_at` on those not soft-deleted yet instead. With
/// `undo`, the deleted rows (soft: their keys) go to the undo.
fn delete_missing_sql(
    p: &Publish<'_>,
    soft: bool,
    undo: Option<&UndoTable>,
) -> String {
    let (target, staging) = (&p.target, &p.staged.table);
    let missing = format!(
        "{}NOT EXISTS (SELECT 1 FROM {staging} s WHERE {})",
        if soft { "t.deleted_at IS NULL AND " } else { "" },
        key_match(p.layout, "s", "t")
    );
    let (change, returning, op) = if soft {
        (
            format!(
                "UPDATE {target} t SET deleted_at = now() WHERE {missing}"
            ),
            key_object(&p.layout.key_names(), "t"),
            's',
        )
    } else {
        (
            format!("DELETE FROM {target} t WHERE {missing}"),
            "to_jsonb(t)".into(),
            'd',
        )
    };
    match undo {
        None => change,
        Some(u) => format!(
            "WITH d AS ({change} RETURNING {returning} AS r) {}",
            u.insert_sql(&format!("SELECT '{op}'::\"char\", d.r FROM d"))
        ),
    }
}

/// Merges (or fills) `p`'s staged rows into its target, which has rows:
/// finds the changes in one join, updates and inserts them (and keeps
/// their undo); sets the rows inserted and updated, and returns the
/// target's live rows before when a snapshot delete follows.
///
/// # Errors
/// A layout without a key, or a database error.
fn merge(
    tx: &mut Transaction<'_>,
    p: &Publish<'_>,
    opts: &PublishOptions,
    out: &mut TableOutcome,
    undo: Option<&UndoTable>,
) -> Result<u64, LoadError> {
    let (layout, target) = (p.layout, &p.target);
    let soft = opts.delete == DeletePolicy::Soft;
    if layout.key.is_empty() {
        return Err(LoadError::config(format!(
            "layout {} has no key, so it cannot be merged: use --mode append or --mode replace",
            layout.name
        )));
    }
    let before =
        if opts.mode == Mode::Merge && opts.delete != DeletePolicy::None {
            count(tx, &count_sql(target, soft), &format!("counting {target}"))?
        } else {
            0
        };
    let m = matching(p, opts.mode == Mode::Fill, soft);
    tx.batch_execute(&changes_sql(p, &m, undo.is_some()))
        .map_err(db_error("finding the changed rows of", target))?;
    // A table of key columns only has nothing to update.
    out.updated = if m.set.is_empty() {
        0
    } else {
        tx.execute(&update_changed_sql(p, &m), &[])
            .map_err(db_error("updating", target))?
    };
    out.inserted = tx
        .execute(&insert_new_sql(p), &[])
        .map_err(db_error("inserting into", target))?;
    if let Some(u) = undo {
        tx.execute(&undo_changes_sql(p, u), &[])
            .map_err(db_error("keeping the undo of", target))?;
    }
    tx.batch_execute(&format!("DROP TABLE {CHANGES}"))
        .map_err(db_error("finding the changed rows of", target))?;
    Ok(before)
}

/// Deletes (or soft-deletes) the target's rows missing from the snapshot
/// `p`, of `before` live rows, under the delete guard; returns how many.
///
/// # Errors
/// A database error, or the delete guard.
fn delete_missing(
    tx: &mut Transaction<'_>,
    p: &Publish<'_>,
    opts: &PublishOptions,
    before: u64,
    undo: Option<&UndoTable>,
) -> Result<u64, LoadError> {
    let target = &p.target;
    let soft = opts.delete == DeletePolicy::Soft;
    let what = if soft { "soft-deleting from" } else { "deleting from" };
    // Delete first and check the guards on the count it returns: a
    // refusal fails the publish transaction, which undoes the delete,
    // and the anti-join runs once instead of twice.
    let n = tx
        .execute(&delete_missing_sql(p, soft, undo), &[])
        .map_err(db_error(what, target))?;
    delete_guard(
        n,
        before,
        p.staged.unkeyed_rejects,
        (target, &p.layout.name),
        opts,
    )?;
    Ok(n)
}

/// Refuses deleting `n` of a table's `before` rows when that is more
/// than `--max-delete-ratio` of it, or when some records were rejected
/// before their key could be read (their rows would be deleted as
/// missing), unless `--force`. Both modes delete: merge the rows missing
/// from a snapshot, replace the rows whose key is gone from the new table.
///
/// # Errors
/// The refusal.
pub(super) fn delete_guard(
    n: u64,
    before: u64,
    unkeyed_rejects: u64,
    (target, layout): (&str, &str),
    opts: &PublishOptions,
) -> Result<(), LoadError> {
    if opts.force || n == 0 {
        return Ok(());
    }
    let ratio = if before == 0 { 0.0 } else { n as f64 / before as f64 };
    if ratio > opts.max_delete_ratio {
        return Err(LoadError::refused(format!(
            "would delete {n} of {before} rows ({:.2}%) from {target}, more than --max-delete-ratio {}; nothing was changed (use --force to allow)",
            ratio * 100.0,
            opts.max_delete_ratio
        )));
    }
    if unkeyed_rejects > 0 {
        return Err(LoadError::refused(format!(
            "{unkeyed_rejects} records of {layout} were rejected before their key could be read, so deleting rows missing from the snapshot could delete theirs; nothing was changed (fix the input, or use --force)"
        )));
    }
    Ok(())
}

/// Whether `table` (qualified, quoted) exists.
///
/// # Errors
/// A database error.
pub(super) fn table_exists<C: GenericClient>(
    db: &mut C,
    table: &str,
) -> Result<bool, LoadError> {
    Ok(db
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .map_err(|e| LoadError::db(format!("looking up {table}"), e))?
        .get(0))
}

/// Rows of `table` right now, for reporting.
///
/// # Errors
/// A database error.
pub(super) fn table_rows<C: GenericClient>(
    db: &mut C,
    table: &str,
) -> Result<u64, LoadError> {
    let n: i64 = db
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .map_err(|e| LoadError::db(format!("counting {table}"), e))?
        .get(0);
    Ok(n as u64)
}
