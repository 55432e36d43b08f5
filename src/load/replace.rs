//! `replace`: new tables filled with `COPY … FREEZE` inside the one
//! publish transaction (frozen rows, no staging copy), keys and indexes
//! built afterwards, then swapped in by renaming, the previous generation
//! kept as `<table>__fwprev` for `fwload rollback`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use postgres::{Client, Transaction};

use super::publish::{DeletePolicy, Naming, TableOutcome};
use super::stage::{
    Destination, MemberRef, Spool, StageContext, Staged, TableKind, stage,
    staging_ddl,
};
use super::{LoadError, LoadOptions, meta, publish, qualified, target_parts};
use crate::pipeline::{Counts, Plan};
use crate::schema::{SchemaSet, quote_ident};

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
        .map_err(|e| LoadError::input(format!("rejects spool: {e}")))?;
    // While building, references resolve to the new tables.
    let mut live: HashMap<String, String> = targets.clone();
    let mut out = Vec::new();
    let mut staged_all = Vec::new();
    let mut totals = Counts::default();
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
            build: publish::key_and_indexes(
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
        publish::drop_fwload_columns(&mut tx, &new)?;
        tx.batch_execute(&format!("ANALYZE {new}"))
            .map_err(|e| LoadError::db(format!("analysing {new}"), e))?;
        o.inserted = publish::table_rows(&mut tx, &new)?;
        o.publish_seconds = t0.elapsed().as_secs_f64();
        s.rows = o.inserted;
        live.insert(layout.name.clone(), new.clone());
        out.push(o);
        staged_all.push(s);
    }
    if let Some(why) = opts.thresholds.crossed(totals.rejected, totals.read)
        && !opts.force
    {
        return Err(LoadError::refused(format!(
            "{why}; nothing was changed (use --force to load anyway)"
        )));
    }
    // Swap: the live table becomes the previous generation (replacing an
    // older one), the new table takes its name.
    for ((li, _), o) in work.iter().zip(out.iter_mut()) {
        let layout = &set.layouts[*li];
        let (schema, table) = target_parts(cx.target_schema, layout);
        let live_name = qualified(&schema, &table);
        let prev = format!("{table}{PREV}");
        let ctx = |e| LoadError::db(format!("swapping in {live_name}"), e);
        let exists: bool = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&live_name])
            .map_err(ctx)?
            .get(0);
        if exists {
            o.deleted = publish::table_rows(&mut tx, &live_name)?;
            tx.batch_execute(&format!(
                "DROP TABLE IF EXISTS {}; ALTER TABLE {live_name} RENAME TO {}",
                qualified(&schema, &prev),
                quote_ident(&prev)
            ))
            .map_err(ctx)?;
            tx.execute(
                &format!(
                    "INSERT INTO {}.generations (dataset, target_schema, table_name, previous, run_id)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (dataset, target_schema, table_name)
                     DO UPDATE SET previous = excluded.previous, run_id = excluded.run_id, swapped_at = now()",
                    quote_ident(cx.meta)
                ),
                &[&cx.dataset, &schema, &table, &prev, &cx.run],
            )
            .map_err(ctx)?;
        }
        tx.batch_execute(&format!(
            "ALTER TABLE {} RENAME TO {}",
            qualified(&schema, &format!("{table}{NEW}")),
            quote_ident(&table)
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
    let counts = serde_json::to_value(out).unwrap_or_default();
    tx.execute(
        &meta::finish_sql(cx.meta),
        &[
            &cx.run,
            &"succeeded",
            &None::<String>,
            &postgres::types::Json(counts),
        ],
    )
    .map_err(|e| LoadError::db("recording the run", e))?;
    if dry_run {
        tx.rollback().map_err(|e| LoadError::db("rolling back the dry run", e))
    } else {
        if let Some(signal) = cx.interrupt.raised() {
            return Err(LoadError::interrupted(signal));
        }
        tx.commit().map_err(|e| LoadError::db("committing", e))
    }
}

/// Swaps every replaced table of `dataset` in `target_schema` with its
/// previous generation, in one transaction (running it again swaps back).
/// Returns the tables swapped.
///
/// # Errors
/// A database error, or no previous generation to go back to.
pub fn rollback(
    db: &mut Client,
    meta_schema: &str,
    dataset: &str,
    target_schema: &str,
) -> Result<Vec<String>, LoadError> {
    meta::migrate(db, meta_schema)?;
    let ctx = |e| LoadError::db(format!("rolling back {dataset}"), e);
    db.execute(
        "SELECT pg_advisory_lock(hashtext($1))",
        &[&format!("fwload:{dataset}:{target_schema}")],
    )
    .map_err(ctx)?;
    let mut tx = db.transaction().map_err(ctx)?;
    let rows = tx
        .query(
            &format!(
                "SELECT target_schema, table_name, previous FROM {}.generations WHERE dataset = $1 AND target_schema = $2 ORDER BY table_name",
                quote_ident(meta_schema)
            ),
            &[&dataset, &target_schema],
        )
        .map_err(ctx)?;
    if rows.is_empty() {
        return Err(LoadError::refused(format!(
            "dataset {dataset} has no previous generation in {target_schema} (only replace loads keep one)"
        )));
    }
    let mut swapped = Vec::new();
    for r in rows {
        let (schema, table, prev): (String, String, String) =
            (r.get(0), r.get(1), r.get(2));
        let exists: bool = tx
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&qualified(&schema, &prev)],
            )
            .map_err(ctx)?
            .get(0);
        if !exists {
            return Err(LoadError::refused(format!(
                "{}: the previous generation {prev} is gone",
                qualified(&schema, &table)
            )));
        }
        let tmp = format!("{table}__fwswap");
        tx.batch_execute(&format!(
            "ALTER TABLE {} RENAME TO {};
             ALTER TABLE {} RENAME TO {};
             ALTER TABLE {} RENAME TO {};",
            qualified(&schema, &table),
            quote_ident(&tmp),
            qualified(&schema, &prev),
            quote_ident(&table),
            qualified(&schema, &tmp),
            quote_ident(&prev),
        ))
        .map_err(ctx)?;
        swapped.push(qualified(&schema, &table));
    }
    tx.commit().map_err(ctx)?;
    Ok(swapped)
}
