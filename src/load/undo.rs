//! Undo of any run. Every publish records, in fwload's metadata and in
//! its own transaction, how to restore each table it changed exactly as it
//! was before it, at a cost proportional to the change:
//!
//! | how | when | undone by |
//! | --- | --- | --- |
//! | `created` | the run created the table (or the period's partition) | dropping it |
//! | `emptied` | the table was empty before the run | deleting every row |
//! | `rows` | merge or fill into rows: previous versions of updated (`u`) and deleted (`d`) rows, keys inserted (`i`) and soft-deleted (`s`) | deleting, updating back, inserting back |
//! | `appended` | append into rows: the run's transaction id | deleting the rows it wrote |
//! | `history` | the effective time T | deleting versions valid from T, reopening those valid until T |
//!
//! `fwload rollback --run ID` replays them, newest table first, in one
//! transaction, and refuses when a later run (not rolled back, not in the
//! same rollback) changed one of the tables. `--keep-undo N` keeps the
//! undo of a dataset's newest N runs.

use std::collections::BTreeSet;

use postgres::types::Json;
use postgres::{Client, GenericClient, Transaction};

use super::{LoadError, meta};
use crate::schema::quote_ident;

/// How a run's table is undone (see the module's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum How {
    Created,
    Emptied,
    Rows,
    Appended,
    History,
}

impl How {
    fn as_str(self) -> &'static str {
        match self {
            How::Created => "created",
            How::Emptied => "emptied",
            How::Rows => "rows",
            How::Appended => "appended",
            How::History => "history",
        }
    }
}

/// The undo a publish is recording: fwload's metadata schema (quoted),
/// the run, and the next table's number.
#[derive(Debug)]
pub(super) struct Recorder {
    meta: String,
    run: i64,
    seq: i32,
}

/// Where one table's undo rows go.
#[derive(Clone, Debug)]
pub(super) struct UndoTable {
    /// fwload's metadata schema, quoted.
    pub meta: String,
    /// The run.
    pub run: i64,
    /// The table's number in the run.
    pub seq: i32,
}

impl UndoTable {
    /// `INSERT` of undo rows: `op` and `row` come from `select`, a query
    /// giving those two columns.
    pub(super) fn insert_sql(&self, select: &str) -> String {
        format!(
            "INSERT INTO {}.undo_rows (run_id, seq, op, row) SELECT {}, {}, u.op, u.row FROM ({select}) AS u(op, row)",
            self.meta, self.run, self.seq
        )
    }
}

impl Recorder {
    /// A recorder for run `run`, or `None` when undo is off.
    pub(super) fn new(meta: &str, run: i64, keep: u32) -> Option<Recorder> {
        (keep > 0).then(|| Recorder { meta: quote_ident(meta), run, seq: 0 })
    }

    /// Records that `table` (qualified, quoted) is undone as `how` (with
    /// key columns `key` and `detail`), returning where its undo rows go.
    ///
    /// # Errors
    /// A database error.
    pub(super) fn table(
        &mut self,
        tx: &mut Transaction<'_>,
        table: &str,
        how: How,
        key: &[&str],
        detail: Option<serde_json::Value>,
    ) -> Result<UndoTable, LoadError> {
        self.seq += 1;
        tx.execute(
            &format!(
                "INSERT INTO {}.undo_tables (run_id, seq, table_name, how, key, detail) VALUES ($1, $2, $3, $4, $5, $6)",
                self.meta
            ),
            &[&self.run, &self.seq, &table, &how.as_str(), &key, &detail.map(Json)],
        )
        .map_err(|e| LoadError::db(format!("recording the undo of {table}"), e))?;
        Ok(UndoTable { meta: self.meta.clone(), run: self.run, seq: self.seq })
    }

    /// Marks the run's undo as kept, and prunes the undo of the dataset's
    /// runs older than its newest `keep`.
    ///
    /// # Errors
    /// A database error.
    pub(super) fn finish(
        &self,
        tx: &mut Transaction<'_>,
        (dataset, target_schema): (&str, &str),
        keep: u32,
    ) -> Result<(), LoadError> {
        let m = &self.meta;
        let ctx = |e| LoadError::db("keeping the run's undo", e);
        tx.execute(
            &format!("UPDATE {m}.runs SET undo = 'kept' WHERE id = $1"),
            &[&self.run],
        )
        .map_err(ctx)?;
        let old: Vec<i64> = tx
            .query(
                &format!(
                    "SELECT id FROM {m}.runs WHERE dataset = $1 AND target_schema = $2 AND undo = 'kept'
                     ORDER BY id DESC OFFSET $3"
                ),
                &[&dataset, &target_schema, &i64::from(keep)],
            )
            .map_err(ctx)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !old.is_empty() {
            tx.batch_execute(&format!(
                "DELETE FROM {m}.undo_rows WHERE run_id = ANY('{{{ids}}}'::bigint[]);
                 DELETE FROM {m}.undo_tables WHERE run_id = ANY('{{{ids}}}'::bigint[]);
                 UPDATE {m}.runs SET undo = 'pruned' WHERE id = ANY('{{{ids}}}'::bigint[]);",
                ids = old.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            ))
            .map_err(ctx)?;
        }
        Ok(())
    }
}

/// `jsonb_build_object` of the key columns `key` of the row `alias`.
pub(super) fn key_object(key: &[&str], alias: &str) -> String {
    let pairs: Vec<String> = key
        .iter()
        .map(|k| {
            format!("'{}', {alias}.{}", k.replace('\'', "''"), quote_ident(k))
        })
        .collect();
    format!("jsonb_build_object({})", pairs.join(", "))
}

/// The transaction id rows written now carry in `xmin`.
pub(super) fn current_xid(tx: &mut Transaction<'_>) -> Result<i64, LoadError> {
    Ok(tx
        .query_one(
            "SELECT (pg_current_xact_id()::text::bigint % 4294967296)",
            &[],
        )
        .map_err(|e| LoadError::db("reading the transaction id", e))?
        .get(0))
}

/// What `fwload rollback --run` did.
#[derive(Clone, Debug)]
pub struct Undone {
    /// The rollback's own run.
    pub run: i64,
    /// The runs undone, newest first, each with the tables it restored.
    pub runs: Vec<(i64, Vec<String>)>,
}

/// One table of a run to undo.
struct Step {
    run: i64,
    seq: i32,
    table: String,
    how: String,
    key: Vec<String>,
    detail: Option<serde_json::Value>,
}

/// Restores the tables runs `ids` changed as they were before them, in
/// one transaction, newest run first; recorded as a run of mode
/// `rollback`.
///
/// # Errors
/// A run that is unknown, not a successful load, already undone, without
/// undo (pruned, or `--keep-undo 0`), or followed by a run that changed
/// one of its tables and is neither undone nor among `ids`; a database
/// error. Nothing changes then.
pub fn rollback_runs(
    db: &mut Client,
    meta_schema: &str,
    ids: &[i64],
) -> Result<Undone, LoadError> {
    meta::migrate(db, meta_schema)?;
    let m = quote_ident(meta_schema);
    let ids: BTreeSet<i64> = ids.iter().copied().collect();
    let Some(&newest) = ids.last() else {
        return Err(LoadError::config("name a run to roll back (--run ID)"));
    };
    let row = db
        .query_opt(
            &format!("SELECT dataset, target_schema, period FROM {m}.runs WHERE id = $1"),
            &[&newest],
        )
        .map_err(|e| LoadError::db("reading the run", e))?
        .ok_or_else(|| LoadError::config(format!("there is no run {newest}")))?;
    let (dataset, target_schema, period): (String, String, Option<i32>) =
        (row.get(0), row.get(1), row.get(2));
    super::lock::lock(
        db,
        &super::lock::lock_key(&dataset, &target_schema),
        false,
        &|_| {},
    )?;
    meta::abandon_dead_runs(db, meta_schema, &dataset, &target_schema)?;
    let mut tx = db
        .transaction()
        .map_err(|e| LoadError::db("starting the rollback", e))?;
    for &id in &ids {
        check_undoable(&mut tx, &m, id, (&dataset, &target_schema))?;
    }
    refuse_later_runs(&mut tx, &m, &ids, (&dataset, &target_schema))?;
    let run = meta::start_run(
        &mut tx,
        meta_schema,
        &meta::NewRun {
            dataset: &dataset,
            target_schema: &target_schema,
            mode: "rollback",
            schema_hash: "",
            outcome_key: None,
            options: serde_json::json!({ "undo_runs": ids, "by": std::env::var("USER").ok() }),
            stages: serde_json::Value::Null,
            controls: serde_json::Value::Null,
            period,
            year: period,
        },
    )?;
    let mut done = Vec::new();
    for &id in ids.iter().rev() {
        let steps = steps(&mut tx, &m, id)?;
        let mut tables = Vec::new();
        for s in steps.iter().rev() {
            restore(&mut tx, &m, s)?;
            if !tables.contains(&s.table) {
                tables.push(s.table.clone());
            }
        }
        tx.execute(
            &format!("UPDATE {m}.runs SET undone_by = $2, undo = 'undone' WHERE id = $1"),
            &[&id, &run],
        )
        .map_err(|e| LoadError::db("recording the rollback", e))?;
        tx.batch_execute(&format!(
            "DELETE FROM {m}.undo_rows WHERE run_id = {id}; DELETE FROM {m}.undo_tables WHERE run_id = {id};"
        ))
        .map_err(|e| LoadError::db("recording the rollback", e))?;
        done.push((id, tables));
    }
    tx.execute(
        &meta::finish_sql(meta_schema),
        &[
            &run,
            &"succeeded",
            &None::<String>,
            &Json(serde_json::json!({ "undone": ids })),
        ],
    )
    .map_err(|e| LoadError::db("recording the rollback", e))?;
    tx.commit().map_err(|e| LoadError::db("committing the rollback", e))?;
    Ok(Undone { run, runs: done })
}

/// Refuses a run `id` that cannot be undone.
fn check_undoable(
    tx: &mut Transaction<'_>,
    m: &str,
    id: i64,
    (dataset, target_schema): (&str, &str),
) -> Result<(), LoadError> {
    let row = tx
        .query_opt(
            &format!(
                "SELECT dataset, target_schema, mode, status, undo, undone_by FROM {m}.runs WHERE id = $1"
            ),
            &[&id],
        )
        .map_err(|e| LoadError::db("reading the run", e))?
        .ok_or_else(|| LoadError::config(format!("there is no run {id}")))?;
    let (ds, ts, mode, status): (String, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let (undo, undone_by): (Option<String>, Option<i64>) =
        (row.get(4), row.get(5));
    if (ds.as_str(), ts.as_str()) != (dataset, target_schema) {
        return Err(LoadError::config(format!(
            "run {id} loaded dataset {ds} into {ts}, not {dataset} into {target_schema}: roll back runs of one dataset and target schema together"
        )));
    }
    if let Some(by) = undone_by {
        return Err(LoadError::refused(format!(
            "run {id} was already rolled back by run {by}"
        )));
    }
    if status != "succeeded" || mode == "rollback" {
        return Err(LoadError::refused(format!(
            "run {id} is a {mode} run that {status}: only a successful load changed anything to undo"
        )));
    }
    match undo.as_deref() {
        Some("kept") => Ok(()),
        Some("pruned") => Err(LoadError::refused(format!(
            "the undo of run {id} was pruned (--keep-undo keeps the newest runs' only)"
        ))),
        _ if mode == "replace" => Err(LoadError::refused(format!(
            "run {id} replaced its tables: `fwload rollback --dataset {ds}` swaps the previous generation back"
        ))),
        _ => Err(LoadError::refused(format!(
            "run {id} recorded no undo (it ran with --keep-undo 0, or before fwload kept undo)"
        ))),
    }
}

/// The tables a run changed, from its report (every mode) or, until that
/// is written, its table outcomes.
fn tables_sql(m: &str) -> String {
    format!(
        "SELECT DISTINCT t->>'table' FROM {m}.runs r,
                jsonb_array_elements(CASE jsonb_typeof(r.counts) WHEN 'array' THEN r.counts
                                     ELSE coalesce(r.counts->'tables', '[]') END) t
          WHERE r.id = $1"
    )
}

/// Refuses when a run after the oldest of `ids`, not among them, not
/// undone and not a rollback, changed a table one of them changed.
fn refuse_later_runs(
    tx: &mut Transaction<'_>,
    m: &str,
    ids: &BTreeSet<i64>,
    (dataset, target_schema): (&str, &str),
) -> Result<(), LoadError> {
    let oldest = *ids.first().expect("at least one run");
    let mut tables = BTreeSet::new();
    for &id in ids {
        for r in tx
            .query(&tables_sql(m), &[&id])
            .map_err(|e| LoadError::db("reading the run", e))?
        {
            if let Some(t) = r.get::<_, Option<String>>(0) {
                tables.insert(t);
            }
        }
    }
    let later = tx
        .query(
            &format!(
                "SELECT id FROM {m}.runs WHERE dataset = $1 AND target_schema = $2 AND id > $3
                   AND status = 'succeeded' AND mode <> 'rollback' AND undone_by IS NULL ORDER BY id"
            ),
            &[&dataset, &target_schema, &oldest],
        )
        .map_err(|e| LoadError::db("reading later runs", e))?;
    let mut blocking = Vec::new();
    for r in later {
        let id: i64 = r.get(0);
        if ids.contains(&id) {
            continue;
        }
        let theirs = tx
            .query(&tables_sql(m), &[&id])
            .map_err(|e| LoadError::db("reading later runs", e))?;
        let shared: Vec<String> = theirs
            .iter()
            .filter_map(|r| r.get::<_, Option<String>>(0))
            .filter(|t| tables.contains(t))
            .collect();
        if !shared.is_empty() {
            blocking.push(format!("run {id} ({})", shared.join(", ")));
        }
    }
    if blocking.is_empty() {
        return Ok(());
    }
    Err(LoadError::refused(format!(
        "later runs changed the same tables: {}; roll them back first, or together (--run for each); nothing was changed",
        blocking.join("; ")
    )))
}

/// The tables run `id` recorded undo for, in the order it changed them.
fn steps(
    tx: &mut Transaction<'_>,
    m: &str,
    id: i64,
) -> Result<Vec<Step>, LoadError> {
    Ok(tx
        .query(
            &format!("SELECT seq, table_name, how, key, detail FROM {m}.undo_tables WHERE run_id = $1 ORDER BY seq"),
            &[&id],
        )
        .map_err(|e| LoadError::db("reading the run's undo", e))?
        .iter()
        .map(|r| Step {
            run: id,
            seq: r.get(0),
            table: r.get(1),
            how: r.get(2),
            key: r.get(3),
            detail: r.get::<_, Option<Json<serde_json::Value>>>(4).map(|j| j.0),
        })
        .collect())
}

/// The columns of `table` (qualified, quoted) a row restores, quoted.
fn columns<C: GenericClient>(
    db: &mut C,
    table: &str,
) -> Result<Vec<String>, LoadError> {
    Ok(db
        .query(
            "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = $1::text::regclass
               AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
            &[&table],
        )
        .map_err(|e| LoadError::db(format!("reading the columns of {table}"), e))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Undoes one table of a run.
fn restore(
    tx: &mut Transaction<'_>,
    m: &str,
    s: &Step,
) -> Result<(), LoadError> {
    let t = &s.table;
    let ctx =
        |e| LoadError::db(format!("restoring {t} as before run {}", s.run), e);
    let exists: bool = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[t])
        .map_err(ctx)?
        .get(0);
    if !exists {
        // Dropped since (by a later run's `created` undo, or by hand).
        return if s.how == "created" {
            Ok(())
        } else {
            Err(LoadError::refused(format!(
                "{t} no longer exists, so run {}'s changes to it cannot be undone; nothing was changed",
                s.run
            )))
        };
    }
    let rows = |op: char| {
        format!(
            "(SELECT (jsonb_populate_record(NULL::{t}, r.row)).* FROM {m}.undo_rows r WHERE r.run_id = {} AND r.seq = {} AND r.op = '{op}') o",
            s.run, s.seq
        )
    };
    let on: String = s
        .key
        .iter()
        .map(|k| format!("t.{q} = o.{q}", q = quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let detail = |name: &str| -> String {
        s.detail
            .as_ref()
            .and_then(|d| d.get(name))
            .map(|v| match v {
                serde_json::Value::String(x) => x.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    let sql = match s.how.as_str() {
        "created" => format!("DROP TABLE {t}"),
        "emptied" => format!("DELETE FROM {t}"),
        "appended" => format!(
            "DELETE FROM {t} WHERE xmin::text::bigint = {}",
            detail("xid").parse::<i64>().unwrap_or(-1)
        ),
        "history" => {
            let at = format!(
                "'{}'::timestamptz",
                detail("as_of").replace('\'', "''")
            );
            let (from, to) = (
                quote_ident(&detail("valid_from")),
                quote_ident(&detail("valid_to")),
            );
            format!(
                "DELETE FROM {t} WHERE {from} = {at}; UPDATE {t} SET {to} = NULL WHERE {to} = {at}"
            )
        }
        "rows" => {
            let cols = columns(tx, t)?;
            let set: Vec<String> =
                cols.iter().map(|c| format!("{c} = o.{c}")).collect();
            let mut sql =
                format!("DELETE FROM {t} t USING {} WHERE {on};", rows('i'));
            sql.push_str(&format!(
                "UPDATE {t} t SET {} FROM {} WHERE {on};",
                set.join(", "),
                rows('u')
            ));
            sql.push_str(&format!(
                "INSERT INTO {t} ({c}) SELECT {c} FROM {};",
                rows('d'),
                c = cols.join(", ")
            ));
            if cols.iter().any(|c| c == "deleted_at") {
                sql.push_str(&format!(
                    "UPDATE {t} t SET deleted_at = NULL FROM {} WHERE {on};",
                    rows('s')
                ));
            }
            sql
        }
        other => {
            return Err(LoadError::config(format!(
                "run {} recorded an undo fwload does not know ({other}); nothing was changed",
                s.run
            )));
        }
    };
    tx.batch_execute(&sql).map_err(ctx)
}
