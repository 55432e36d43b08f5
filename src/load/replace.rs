//! `replace`: new tables filled with `COPY … FREEZE` inside the one
//! publish transaction (frozen rows, no staging copy), keys and indexes
//! built afterwards, then swapped in by renaming, the previous generation
//! kept as `<table>__fwprev` for `fwload rollback`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::types::Json;
use postgres::{Client, Transaction};

use super::ddl::{self, Naming};
use super::publish::{DeletePolicy, TableOutcome};
use super::reconcile::Reconciler;
use super::stage::{
    Destination, MemberRef, Spool, StageContext, Staged, TableKind, stage,
    staging_ddl,
};
use super::{LoadError, LoadOptions, meta, publish, qualified, target_parts};
use crate::pipeline::Plan;
use crate::reject::Counts;
use crate::schema::{Layout, SchemaSet, quote_ident};

/// Suffix of a table being built.
const NEW: &str = "__fwnew";
/// Suffix of the previous generation.
const PREV: &str = "__fwprev";

/// Builds, checks and swaps in new tables for every layout of `work`, in
/// one transaction on `db`.
///
/// # Errors
/// A database or input error, orphans under `fail`, or crossed reject
/// thresholds; nothing is changed then.
#[allow(clippy::too_many_arguments)]
pub fn publish_replace(
    db: &mut Client,
    cx: &StageContext<'_>,
    set: &SchemaSet,
    plans: &[Arc<Plan>],
    work: &[(usize, Vec<MemberRef>)],
    targets: &HashMap<String, String>,
    names: &dyn Fn(u32) -> (String, String),
    opts: &LoadOptions,
) -> Result<(Vec<TableOutcome>, Vec<Staged>), LoadError> {
    let mut tx = db
        .transaction()
        .map_err(|e| LoadError::db("starting the replace transaction", e))?;
    let mut spool = Spool::new(cx.run)
        .map_err(|e| LoadError::spill("rejects spool", e))?;
    // While building, references resolve to the new tables.
    let mut live: HashMap<String, String> = targets.clone();
    let mut out = Vec::new();
    let mut staged_all = Vec::new();
    let mut totals = Counts::default();
    let loading =
        |l: &str| work.iter().any(|(li, _)| set.layouts[*li].name == l);
    let mut reconciler = Reconciler::new(set, &loading);
    for (li, members) in work {
        let layout = &set.layouts[*li];
        let (schema, table) = target_parts(cx.target_schema, layout);
        let new = qualified(&schema, &format!("{table}{NEW}"));
        let t0 = Instant::now();
        let create = format!(
            "CREATE SCHEMA IF NOT EXISTS {}; DROP TABLE IF EXISTS {new}; {}",
            quote_ident(&schema),
            staging_ddl(
                layout,
                &new,
                TableKind::Target {
                    soft_delete: opts.delete == DeletePolicy::Soft
                }
            )
        );
        let kind = TableKind::Target {
            soft_delete: opts.delete == DeletePolicy::Soft,
        };
        let dest = Destination {
            table: new.clone(),
            kind,
            create,
            build: ddl::key_and_indexes(
                layout,
                &new,
                set.references(),
                Naming::Run(&table, cx.run),
            ),
            staging: false,
        };
        let mut s = stage(&mut tx, cx, &plans[*li], members, &dest)?;
        totals += s.counts;
        let p = publish::Publish {
            layout,
            target: new.clone(),
            staged: &s,
            rows: s.rows,
        };

        let mut o = TableOutcome {
            layout: layout.name.clone(),
            table: targets[&layout.name].clone(),
            read: s.counts.read,
            rejected: s.counts.rejected,
            filtered: s.counts.filtered,
            staged: s.rows,
            stage_seconds: s.seconds,
            ..Default::default()
        };
        let before = spool.rows();
        o.orphans = publish::check_references(
            &mut tx,
            &p,
            set.dataset.as_ref(),
            &live,
            names,
            cx,
            &mut spool,
        )?;
        o.rejected += spool.rows() - before;
        reconciler.take(&mut tx, &layout.name, &new)?;
        ddl::drop_fwload_columns(&mut tx, &new)?;
        tx.batch_execute(&format!("ANALYZE {new}"))
            .map_err(|e| LoadError::db(format!("analysing {new}"), e))?;
        o.inserted = publish::table_rows(&mut tx, &new)?;
        o.publish_seconds = t0.elapsed().as_secs_f64();
        s.rows = o.inserted;
        live.insert(layout.name.clone(), new.clone());
        out.push(o);
        staged_all.push(s);
    }
    let reconciled = reconciler.finish(&mut tx, opts.force)?;
    TableOutcome::note_reconciled(&mut out, reconciled);
    if let Some(why) = opts.thresholds.crossed(totals.rejected, totals.read)
        && !opts.force
    {
        return Err(LoadError::refused(format!(
            "{why}; nothing was changed (use --force to load anyway)"
        )));
    }
    // Swap: the live table becomes the previous generation (replacing an
    // older one), the new table takes its name. The locks come first, all
    // at once and with a bounded wait, so readers queue behind the swap
    // for no longer than `--lock-timeout`.
    let mut swaps = Vec::new();
    for (li, _) in work {
        let (schema, table) =
            target_parts(cx.target_schema, &set.layouts[*li]);
        let live = qualified(&schema, &table);
        let exists = publish::table_exists(&mut tx, &live)?;
        swaps.push((*li, schema, table, live, exists));
    }
    let mut lock = Vec::new();
    for (_, schema, table, live, exists) in &swaps {
        let prev = qualified(schema, &format!("{table}{PREV}"));
        if *exists {
            lock.push(live.clone());
        }
        if publish::table_exists(&mut tx, &prev)? {
            lock.push(prev);
        }
    }
    lock_tables(&mut tx, &lock, opts.lock_timeout)?;
    let guard = publish::PublishOptions {
        mode: opts.mode,
        delete: opts.delete,
        max_delete_ratio: opts.max_delete_ratio,
        force: opts.force,
    };
    for ((li, schema, table, live, exists), (o, s)) in
        swaps.iter().zip(out.iter_mut().zip(&staged_all))
    {
        let layout = &set.layouts[*li];
        let new = qualified(schema, &format!("{table}{NEW}"));
        let prev = format!("{table}{PREV}");
        let ctx = |e| LoadError::db(format!("swapping in {live}"), e);
        if *exists {
            let before = publish::table_rows(&mut tx, live)?;
            o.deleted =
                gone_rows(&mut tx, layout, live, &new, before, o.inserted)?;
            publish::delete_guard(
                o.deleted,
                before,
                s.unkeyed_rejects,
                (live, &layout.name),
                &guard,
            )?;
            tx.batch_execute(&format!(
                "DROP TABLE IF EXISTS {}; ALTER TABLE {live} RENAME TO {}",
                qualified(schema, &prev),
                quote_ident(&prev)
            ))
            .map_err(ctx)?;
            tx.execute(
                &format!(
                    "INSERT INTO {}.generations (dataset, target_schema, table_name, previous, run_id)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (dataset, target_schema, table_name)
                     DO UPDATE SET previous = excluded.previous, run_id = excluded.run_id,
                         swapped_at = now(), rolled_back_by = NULL",
                    quote_ident(cx.meta)
                ),
                &[&cx.dataset, schema, table, &prev, &cx.run],
            )
            .map_err(ctx)?;
        }
        tx.batch_execute(&format!(
            "ALTER TABLE {new} RENAME TO {}",
            quote_ident(table)
        ))
        .map_err(ctx)?;
    }
    spool.flush_to(&mut tx, cx.meta)?;
    finish(tx, cx, &out, opts.dry_run)?;
    Ok((out, staged_all))
}

fn finish(
    mut tx: Transaction<'_>,
    cx: &StageContext<'_>,
    out: &[TableOutcome],
    dry_run: bool,
) -> Result<(), LoadError> {
    meta::record_success(&mut tx, cx.meta, cx.run, out)?;
    if dry_run {
        tx.rollback().map_err(|e| LoadError::db("rolling back the dry run", e))
    } else {
        if let Some(signal) = cx.interrupt.raised() {
            return Err(LoadError::interrupted(signal));
        }
        tx.commit().map_err(|e| LoadError::db("committing", e))
    }
}

/// Rows of the live table `live` (of `before` rows) that the new table
/// `new` (of `after` rows) no longer has: by key, or by count for a
/// layout without one.
fn gone_rows(
    tx: &mut Transaction<'_>,
    layout: &Layout,
    live: &str,
    new: &str,
    before: u64,
    after: u64,
) -> Result<u64, LoadError> {
    if layout.key_names().is_empty() {
        return Ok(before.saturating_sub(after));
    }
    let n: i64 = tx
        .query_one(
            &format!(
                "SELECT count(*) FROM {live} t WHERE NOT EXISTS (SELECT 1 FROM {new} s WHERE {})",
                publish::key_match(layout, "s", "t")
            ),
            &[],
        )
        .map_err(|e| {
            LoadError::db(format!("counting rows of {live} gone from {new}"), e)
        })?
        .get(0);
    Ok(n as u64)
}

/// How many times a swap tries for its locks.
const LOCK_TRIES: u32 = 5;

/// Takes `ACCESS EXCLUSIVE` locks on `tables` in `tx`, all in one
/// statement that waits at most `timeout`; on a timeout it lets go and
/// tries again after a growing pause, so the load never stands in the lock
/// queue (where it would hold up every new reader) for longer than
/// `timeout` at a time.
///
/// # Errors
/// A database error, or the locks still held by others after
/// [`LOCK_TRIES`] tries ([`LoadError::busy`], naming their server pids).
fn lock_tables(
    tx: &mut Transaction<'_>,
    tables: &[String],
    timeout: Duration,
) -> Result<(), LoadError> {
    if tables.is_empty() {
        return Ok(());
    }
    let list = tables.join(", ");
    let ctx = |e| LoadError::db(format!("locking {list}"), e);
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
    tx.batch_execute(&format!("SET LOCAL lock_timeout = {ms}"))
        .map_err(ctx)?;
    let mut pause = Duration::from_millis(250);
    for attempt in 1..=LOCK_TRIES {
        tx.batch_execute("SAVEPOINT fwload_lock").map_err(ctx)?;
        match tx.batch_execute(&format!(
            "LOCK TABLE {list} IN ACCESS EXCLUSIVE MODE"
        )) {
            Ok(()) => {
                return tx
                    .batch_execute(
                        "RELEASE SAVEPOINT fwload_lock; SET LOCAL lock_timeout = DEFAULT",
                    )
                    .map_err(ctx);
            }
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT fwload_lock")
                    .map_err(ctx)?;
                if attempt == LOCK_TRIES {
                    let holders: Vec<String> = tx
                        .query(
                            "SELECT DISTINCT l.pid::text FROM pg_locks l
                             WHERE l.granted AND l.pid <> pg_backend_pid()
                               AND l.relation IN (SELECT to_regclass(t) FROM unnest($1::text[]) t)",
                            &[&tables],
                        )
                        .map_err(ctx)?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    return Err(LoadError::busy(format!(
                        "could not lock {list} to swap tables: still in use after {LOCK_TRIES} waits of --lock-timeout {:.3}s (server pids holding them: {}); nothing was changed",
                        timeout.as_secs_f64(),
                        if holders.is_empty() {
                            "?".into()
                        } else {
                            holders.join(", ")
                        }
                    )));
                }
                std::thread::sleep(pause);
                pause *= 2;
            }
            Err(e) => return Err(ctx(e)),
        }
    }
    unreachable!("the last try returns")
}

/// What `fwload rollback` did.
#[derive(Clone, Debug)]
pub enum Rollback {
    /// The tables of run `undone` went back one generation, recorded as
    /// run `run`.
    Done {
        /// The rollback's own run id.
        run: i64,
        /// The replace run it undid.
        undone: i64,
        /// The tables swapped back.
        tables: Vec<String>,
    },
    /// The newest replace run was already rolled back: nothing was done.
    AlreadyDone {
        /// The replace run.
        undone: i64,
        /// The rollback run that undid it.
        by: i64,
    },
}

/// Undoes the newest replace run of `dataset` in `target_schema`: its
/// tables go back to their previous generation, in one transaction,
/// recorded as a run of mode `rollback` (which ends the unchanged-input
/// skip). Running it again does nothing and says so. A succeeded run of
/// the dataset after the replace run is undone with it, so it refuses
/// unless `force`.
///
/// # Errors
/// A database error, no previous generation, a later run (without
/// `force`), or tables still in use after the lock waits.
pub fn rollback(
    db: &mut Client,
    meta_schema: &str,
    (dataset, target_schema): (&str, &str),
    force: bool,
    lock_timeout: Duration,
) -> Result<Rollback, LoadError> {
    meta::migrate(db, meta_schema)?;
    let m = quote_ident(meta_schema);
    let ctx = |e| LoadError::db(format!("rolling back {dataset}"), e);
    super::lock::lock(
        db,
        &super::lock::lock_key(dataset, target_schema),
        false,
        &|_| {},
    )?;
    meta::abandon_dead_runs(db, meta_schema, dataset, target_schema)?;
    let rows = db
        .query(
            &format!(
                "SELECT table_name, previous, run_id, rolled_back_by FROM {m}.generations
                 WHERE dataset = $1 AND target_schema = $2
                   AND run_id = (SELECT max(run_id) FROM {m}.generations WHERE dataset = $1 AND target_schema = $2)
                 ORDER BY table_name"
            ),
            &[&dataset, &target_schema],
        )
        .map_err(ctx)?;
    let Some(first) = rows.first() else {
        return Err(LoadError::refused(format!(
            "dataset {dataset} has no previous generation in {target_schema} (only replace loads keep one)"
        )));
    };
    let undone: i64 = first.get(2);
    if let Some(by) = first.get::<_, Option<i64>>(3) {
        return Ok(Rollback::AlreadyDone { undone, by });
    }
    let later: Vec<String> = db
        .query(
            &format!(
                "SELECT id::text || ' (' || mode || ')' FROM {m}.runs
                 WHERE dataset = $1 AND target_schema = $2 AND id > $3 AND status = 'succeeded'
                 ORDER BY id"
            ),
            &[&dataset, &target_schema, &undone],
        )
        .map_err(ctx)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !later.is_empty() && !force {
        return Err(LoadError::refused(format!(
            "run {} changed {dataset} in {target_schema} after replace run {undone}, and rolling back would undo it too; nothing was changed (use --force to roll back anyway)",
            later.join(", ")
        )));
    }
    let run = meta::start_run(
        db,
        meta_schema,
        &meta::NewRun {
            dataset,
            target_schema,
            mode: "rollback",
            schema_hash: "",
            outcome_key: None,
            options: serde_json::json!({ "undo_run": undone, "force": force }),
            stages: serde_json::Value::Null,
            controls: serde_json::Value::Null,
        },
    )?;
    let swap = |db: &mut Client| -> Result<Vec<String>, LoadError> {
        let mut tx = db.transaction().map_err(ctx)?;
        let mut pairs = Vec::new();
        for r in &rows {
            let (table, prev): (String, String) = (r.get(0), r.get(1));
            let live = qualified(target_schema, &table);
            let old = qualified(target_schema, &prev);
            if !publish::table_exists(&mut tx, &old)? {
                return Err(LoadError::refused(format!(
                    "{live}: the previous generation {prev} is gone; nothing was changed"
                )));
            }
            pairs.push((table, prev, live, old));
        }
        let lock: Vec<String> = pairs
            .iter()
            .flat_map(|(_, _, live, old)| [live.clone(), old.clone()])
            .collect();
        lock_tables(&mut tx, &lock, lock_timeout)?;
        let mut swapped = Vec::new();
        for (table, prev, live, old) in pairs {
            let tmp = format!("{table}__fwswap");
            tx.batch_execute(&format!(
                "ALTER TABLE {live} RENAME TO {};
                 ALTER TABLE {old} RENAME TO {};
                 ALTER TABLE {} RENAME TO {};",
                quote_ident(&tmp),
                quote_ident(&table),
                qualified(target_schema, &tmp),
                quote_ident(&prev),
            ))
            .map_err(ctx)?;
            swapped.push(live);
        }
        tx.execute(
            &format!(
                "UPDATE {m}.generations SET rolled_back_by = $4
                 WHERE dataset = $1 AND target_schema = $2 AND run_id = $3"
            ),
            &[&dataset, &target_schema, &undone, &run],
        )
        .map_err(ctx)?;
        let counts =
            serde_json::json!({ "undo_run": undone, "tables": swapped });
        tx.execute(
            &meta::finish_sql(meta_schema),
            &[&run, &"succeeded", &None::<String>, &Json(counts)],
        )
        .map_err(ctx)?;
        tx.commit().map_err(ctx)?;
        Ok(swapped)
    };
    match swap(db) {
        Ok(tables) => Ok(Rollback::Done { run, undone, tables }),
        Err(e) => {
            let status = match e.kind() {
                super::LoadErrorKind::Refused(_) => "refused",
                _ => "failed",
            };
            let reason = e.line();
            // The failure is what the caller needs; recording it is best
            // effort (the connection may be gone).
            let _ = meta::finish_run(
                db,
                meta_schema,
                run,
                status,
                Some(&reason),
                &serde_json::Value::Null,
            );
            Err(e)
        }
    }
}
