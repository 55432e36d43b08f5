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

use super::checks::{self, Checks};
use super::ddl::{self, Naming};
use super::period::{self, PeriodValue};
use super::publish::{DeletePolicy, TableOutcome};
use super::reconcile::Reconciler;
use super::stage::{
    Destination, MemberRef, Spool, StageContext, Staged, TableKind, stage,
    staging_ddl,
};
use super::targets::{build_indexes, create_target};
use super::{
    LoadError, LoadOptions, Published, meta, publish, qualified, target_parts,
};
use crate::pipeline::Plan;
use crate::reject::Counts;
use crate::schema::{Layout, SchemaSet, quote_ident};

/// Suffix of a table being built.
const NEW: &str = "__fwnew";
/// Suffix of the previous generation.
const PREV: &str = "__fwprev";

/// What a replace builds from, besides its transaction: the stage
/// context, the dataset and its plans, the targets and the load's
/// options.
pub(super) struct Replacing<'r, 'a> {
    /// The stages' context.
    pub(super) cx: &'r StageContext<'a>,
    /// The dataset's layouts.
    pub(super) set: &'r SchemaSet,
    /// Each layout's plan, by index.
    pub(super) plans: &'r [Arc<Plan>],
    /// Each layout's target (qualified, quoted), by layout name.
    pub(super) targets: &'r HashMap<String, String>,
    /// The input and member of a file number.
    pub(super) names: &'r dyn Fn(u32) -> (String, String),
    /// The load's options.
    pub(super) opts: &'r LoadOptions,
    /// The period the load replaces, for a dataset kept by one: its
    /// partition is what is replaced.
    pub(super) period: Option<&'r PeriodValue>,
    /// Members of inputs skipped as unchanged.
    pub(super) unchanged: &'r [String],
}

/// The new tables of a replace as they are built: their outcomes and
/// stages, the rejects they add, and what references resolve to
/// meanwhile.
struct NewTables<'s> {
    /// Rejects bound for `{meta}.rejects` (orphans).
    spool: Spool,
    /// The table of each layout references resolve to: the new table of
    /// a layout built already, else its target.
    live: HashMap<String, String>,
    /// The dataset's reconciliations.
    reconciler: Reconciler<'s>,
    /// The dataset's checks.
    checks: Checks<'s>,
    /// Per table built.
    out: Vec<TableOutcome>,
    /// Per table built.
    staged: Vec<Staged>,
    /// The stages' counts, summed.
    totals: Counts,
}

/// A live table a replace swaps its new table in for.
struct Swap {
    /// The layout.
    li: usize,
    /// The target's schema.
    schema: String,
    /// The target's name.
    table: String,
    /// The target (qualified, quoted).
    live: String,
    /// Whether the target exists.
    exists: bool,
    /// For a period's partition: the partitioned table (qualified,
    /// quoted) it is attached to, and the period's value.
    parent: Option<(String, i32)>,
}

/// Builds, checks and swaps in new tables for every layout of `work`, in
/// one transaction on `db`.
///
/// # Errors
/// A database or input error, orphans under `fail`, or crossed reject
/// thresholds; nothing is changed then.
pub(super) fn publish_replace(
    db: &mut Client,
    rp: &Replacing<'_, '_>,
    work: &[(usize, Vec<MemberRef>)],
) -> Result<Published, LoadError> {
    let (cx, opts) = (rp.cx, rp.opts);
    let mut tx = db
        .transaction()
        .map_err(|e| LoadError::db("starting the replace transaction", e))?;
    let loading =
        |l: &str| work.iter().any(|(li, _)| rp.set.layouts[*li].name == l);
    let mut new = NewTables {
        spool: Spool::new(cx.run)
            .map_err(|e| LoadError::spill("rejects spool", e))?,
        // While building, references resolve to the new tables.
        live: rp.targets.clone(),
        reconciler: Reconciler::new(rp.set, &loading),
        checks: Checks::new(rp.set, rp.unchanged),
        out: Vec::new(),
        staged: Vec::new(),
        totals: Counts::default(),
    };
    for (li, members) in work {
        rp.build(&mut tx, &mut new, *li, members)?;
    }
    let reconciled = new.reconciler.finish(&mut tx, opts.force)?;
    TableOutcome::note_reconciled(&mut new.out, reconciled);
    super::schedule::refuse_crossed(opts, new.totals)?;
    let swaps = rp.lock_swaps(&mut tx, work)?;
    rp.swap_all(&mut tx, &swaps, &mut new.out, &new.staged)?;
    // The new tables are the targets now.
    let scope = checks::Scope {
        meta: cx.meta,
        dataset: (cx.dataset, cx.target_schema),
        run: cx.run,
        period: rp.period,
        mode: opts.mode,
        targets: rp.targets,
    };
    let checks = new.checks.run(&mut tx, &scope, &new.out, &new.staged)?;
    new.spool.flush_to(&mut tx, cx.meta)?;
    finish(tx, cx, &new.out, opts.dry_run)?;
    Ok(Published { tables: new.out, staged: new.staged, checks })
}

/// Creates the schema `schema` if need be and the new table `new` afresh
/// (a leftover of an earlier try dropped first) by `ddl`, in the replace
/// transaction, so the `COPY` into it can `FREEZE`.
fn create_new_sql(schema: &str, new: &str, ddl: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {}; DROP TABLE IF EXISTS {new}; {}",
        quote_ident(schema),
        ddl
    )
}

/// `ANALYZE` of the whole of a built table, so the statements after it
/// and the readers after the swap are planned on its real statistics.
fn analyze_sql(table: &str) -> String {
    format!("ANALYZE {table}")
}

/// Moves the live table `live` aside as the previous generation `prev`
/// (in `schema`), dropping an older one of that name first: `prev` is
/// then exactly the table that was live.
fn retire_sql(live: &str, schema: &str, prev: &str) -> String {
    format!(
        "DROP TABLE IF EXISTS {}; ALTER TABLE {live} RENAME TO {}",
        qualified(schema, prev),
        quote_ident(prev)
    )
}

/// Records the previous generation ($4) of a table (dataset $1, target
/// schema $2, table $3) swapped by run $5 in `{meta}.generations`: one row
/// per table, the newest swap replacing an older one's and clearing its
/// rollback mark.
fn record_generation_sql(meta: &str) -> String {
    format!(
        "INSERT INTO {}.generations (dataset, target_schema, table_name, previous, run_id)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (dataset, target_schema, table_name)
                     DO UPDATE SET previous = excluded.previous, run_id = excluded.run_id,
                         swapped_at = now(), rolled_back_by = NULL",
        quote_ident(meta)
    )
}

/// Adds the period column to the new table `new` of a period's
/// partition, filled with the period's value for every row the `COPY`
/// writes, and checked to hold it: attaching the table as the partition
/// then needs no scan to prove its rows belong there.
fn period_column_sql(new: &str, p: &PeriodValue) -> String {
    format!(
        "; ALTER TABLE {new} ADD COLUMN {c} integer NOT NULL DEFAULT {v} CHECK ({c} = {v})",
        c = p.quoted(),
        v = p.value
    )
}

/// Detaches the partition `live` from `parent` (no longer part of the
/// partitioned table, it can be renamed aside).
fn detach_sql(parent: &str, live: &str) -> String {
    format!("ALTER TABLE {parent} DETACH PARTITION {live}")
}

/// Takes the default off the period column of a new partition `table`:
/// it served the `COPY`; rows come through the parent now.
fn drop_default_sql(table: &str, p: &PeriodValue) -> String {
    format!("ALTER TABLE {table} ALTER COLUMN {} DROP DEFAULT", p.quoted())
}

/// Gives the table `from` (qualified, quoted) the name `to` in its own
/// schema.
fn rename_sql(from: &str, to: &str) -> String {
    format!("ALTER TABLE {from} RENAME TO {}", quote_ident(to))
}

impl Replacing<'_, '_> {
    /// Builds the new table of layout `li` from `members`: staged into
    /// it, its references checked, its totals taken for reconciling,
    /// fwload's columns dropped, analysed and counted.
    fn build(
        &self,
        tx: &mut Transaction<'_>,
        new: &mut NewTables<'_>,
        li: usize,
        members: &[MemberRef],
    ) -> Result<(), LoadError> {
        let cx = self.cx;
        let layout = &self.set.layouts[li];
        let (schema, table) = self.live_of(tx, layout)?;
        let built = qualified(&schema, &format!("{table}{NEW}"));
        let t0 = Instant::now();
        let dest = self.destination(layout, (&schema, &table), &built);
        let mut s = stage(tx, cx, &self.plans[li], members, &dest)?;
        new.totals += s.counts;
        let p = publish::Publish {
            layout,
            target: built.clone(),
            staged: &s,
            rows: s.rows,
            period: self.period,
            history: None,
        };
        let mut o = TableOutcome::of_staged(
            layout,
            self.targets[&layout.name].clone(),
            &s,
        );
        let before = new.spool.rows();
        o.orphans = publish::check_references(
            tx,
            &p,
            self.set.dataset.as_ref(),
            &new.live,
            self.names,
            cx,
            &mut new.spool,
        )?;
        let orphans = new.spool.rows() - before;
        o.rejected += orphans;
        new.totals.rejected += orphans;
        if let Some(v) = self.period {
            period::check_field(tx, (layout, &built), v, self.names)?;
        }
        new.reconciler.take(tx, &layout.name, &built)?;
        new.checks.take(tx, &layout.name, &built)?;
        ddl::drop_fwload_columns(tx, &built)?;
        tx.batch_execute(&analyze_sql(&built))
            .map_err(|e| LoadError::db(format!("analysing {built}"), e))?;
        o.inserted = publish::table_rows(tx, &built)?;
        o.publish_seconds = t0.elapsed().as_secs_f64();
        s.rows = o.inserted;
        new.live.insert(layout.name.clone(), built);
        new.out.push(o);
        new.staged.push(s);
        Ok(())
    }

    /// The new table `new` of `layout`, to become `table` in `schema`:
    /// created with the target's columns, its key and indexes named for
    /// this run (so they do not clash with the live table's).
    fn destination(
        &self,
        layout: &Layout,
        (schema, table): (&str, &str),
        new: &str,
    ) -> Destination {
        let kind = TableKind::Target {
            soft_delete: self.opts.delete == DeletePolicy::Soft,
        };
        let mut create =
            create_new_sql(schema, new, &staging_ddl(layout, new, kind));
        if let Some(p) = self.period {
            create.push_str(&period_column_sql(new, p));
        }
        Destination {
            table: new.to_owned(),
            kind,
            create,
            build: ddl::key_and_indexes(
                layout,
                new,
                (
                    self.set.references(),
                    self.period.map(|p| p.column.as_str()),
                ),
                Naming::Run(table, self.cx.run),
            ),
            staging: false,
        }
    }

    /// The schema and name of the live table a new table of `layout`
    /// replaces: its target, or for a load of one period that period's
    /// partition of it (which may not exist yet). A partitioned target
    /// that does not exist yet is created (`--create`).
    fn live_of(
        &self,
        tx: &mut Transaction<'_>,
        layout: &Layout,
    ) -> Result<(String, String), LoadError> {
        let parts = target_parts(self.cx.target_schema, layout);
        let Some(p) = self.period else { return Ok(parts) };
        let target = qualified(&parts.0, &parts.1);
        if !publish::table_exists(tx, &target)? {
            let indexes =
                create_target(tx, layout, &target, self.opts, self.set)?;
            build_indexes(tx, &target, &indexes)?;
        }
        period::partition_of(tx, (&parts.0, &parts.1), p)
    }

    /// The swaps of `work`, with the tables they rename locked: all at
    /// once and with a bounded wait, so readers queue behind the swap for
    /// no longer than `--lock-timeout`.
    fn lock_swaps(
        &self,
        tx: &mut Transaction<'_>,
        work: &[(usize, Vec<MemberRef>)],
    ) -> Result<Vec<Swap>, LoadError> {
        let mut swaps = Vec::new();
        let mut lock = Vec::new();
        for (li, _) in work {
            let layout = &self.set.layouts[*li];
            let (schema, table) = self.live_of(tx, layout)?;
            let live = qualified(&schema, &table);
            let exists = publish::table_exists(tx, &live)?;
            let parent = self
                .period
                .map(|p| (self.targets[&layout.name].clone(), p.value));
            // Detaching a partition locks its parent too.
            if let Some((t, _)) = &parent {
                lock.push(t.clone());
            }
            swaps.push(Swap { li: *li, schema, table, live, exists, parent });
        }
        for s in &swaps {
            let prev = qualified(&s.schema, &format!("{}{PREV}", s.table));
            if s.exists {
                lock.push(s.live.clone());
            }
            if publish::table_exists(tx, &prev)? {
                lock.push(prev);
            }
        }
        lock_tables(tx, &lock, self.opts.lock_timeout)?;
        Ok(swaps)
    }

    /// Swaps every new table in, each under the delete guard.
    fn swap_all(
        &self,
        tx: &mut Transaction<'_>,
        swaps: &[Swap],
        out: &mut [TableOutcome],
        staged: &[Staged],
    ) -> Result<(), LoadError> {
        let guard = publish::PublishOptions {
            mode: self.opts.mode,
            delete: self.opts.delete,
            max_delete_ratio: self.opts.max_delete_ratio,
            force: self.opts.force,
        };
        for (sw, (o, s)) in swaps.iter().zip(out.iter_mut().zip(staged)) {
            self.swap(tx, sw, o, s, &guard)?;
        }
        Ok(())
    }

    /// Swaps one new table in: the live table, if any, becomes the
    /// previous generation (replacing an older one) once the rows the new
    /// table no longer has pass the delete guard; the new table takes its
    /// name.
    fn swap(
        &self,
        tx: &mut Transaction<'_>,
        sw: &Swap,
        o: &mut TableOutcome,
        s: &Staged,
        guard: &publish::PublishOptions,
    ) -> Result<(), LoadError> {
        let cx = self.cx;
        let layout = &self.set.layouts[sw.li];
        let Swap { schema, table, live, .. } = sw;
        let new = qualified(schema, &format!("{table}{NEW}"));
        let prev = format!("{table}{PREV}");
        let ctx = |e| LoadError::db(format!("swapping in {live}"), e);
        if sw.exists {
            let before = publish::table_rows(tx, live)?;
            o.deleted = gone_rows(tx, layout, live, &new, before, o.inserted)?;
            publish::delete_guard(
                o.deleted,
                before,
                s.unkeyed_rejects,
                (live, &layout.name),
                guard,
            )?;
            if let Some((parent, _)) = &sw.parent {
                tx.batch_execute(&detach_sql(parent, live)).map_err(ctx)?;
            }
            tx.batch_execute(&retire_sql(live, schema, &prev)).map_err(ctx)?;
            tx.execute(
                &record_generation_sql(cx.meta),
                &[&cx.dataset, schema, table, &prev, &cx.run],
            )
            .map_err(ctx)?;
        }
        tx.batch_execute(&rename_sql(&new, table)).map_err(ctx)?;
        if let (Some((parent, value)), Some(p)) = (&sw.parent, self.period) {
            tx.batch_execute(&drop_default_sql(live, p)).map_err(ctx)?;
            tx.batch_execute(&period::attach_sql(
                parent,
                live,
                &period::bound(*value),
            ))
            .map_err(ctx)?;
        }
        Ok(())
    }
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
    (dataset, target_schema, year): (&str, &str, Option<i32>),
    force: bool,
    lock_timeout: Duration,
) -> Result<Rollback, LoadError> {
    let u =
        Undo { meta: meta_schema, dataset, target_schema, year, lock_timeout };
    meta::migrate(db, meta_schema)?;
    super::lock::lock(
        db,
        &super::lock::lock_key(dataset, target_schema),
        false,
        &|_| {},
    )?;
    meta::abandon_dead_runs(db, meta_schema, dataset, target_schema)?;
    let newest = u.newest(db)?;
    let undone = newest.run;
    if let Some(by) = newest.rolled_back_by {
        return Ok(Rollback::AlreadyDone { undone, by });
    }
    u.refuse_later_runs(db, undone, force)?;
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
            period: year,
            year,
        },
    )?;
    match u.swap_back(db, &newest, run) {
        Ok(tables) => Ok(Rollback::Done { run, undone, tables }),
        Err(e) => Err(u.record_failure(db, run, e)),
    }
}

/// A rollback of one dataset in one target schema.
struct Undo<'a> {
    /// The metadata schema.
    meta: &'a str,
    /// The dataset.
    dataset: &'a str,
    /// The target schema.
    target_schema: &'a str,
    /// Only the replace runs of this period (a dataset kept by year).
    year: Option<i32>,
    /// The longest wait for the swap's locks, each try.
    lock_timeout: Duration,
}

/// What the newest replace run of a dataset swapped in.
struct Newest {
    /// The replace run.
    run: i64,
    /// The rollback run that undid it, if one did.
    rolled_back_by: Option<i64>,
    /// Each table it swapped in, and the name of its previous generation.
    tables: Vec<(String, String)>,
}

/// The generations (table, previous, run, rolling-back run) of the newest
/// replace run of dataset $1 in target schema $2 (of period $3, when
/// given), by table: every table that run swapped, and only those.
fn newest_generations_sql(m: &str) -> String {
    format!(
        "SELECT table_name, previous, run_id, rolled_back_by FROM {m}.generations
                 WHERE dataset = $1 AND target_schema = $2
                   AND run_id = (SELECT max(g.run_id) FROM {m}.generations g
                                 JOIN {m}.runs r ON r.id = g.run_id
                                 WHERE g.dataset = $1 AND g.target_schema = $2
                                   AND ($3::int IS NULL OR r.period = $3))
                 ORDER BY table_name"
    )
}

/// The succeeded runs of dataset $1 in target schema $2 after run $3, as
/// `<id> (<mode>)`, oldest first: the runs a rollback of $3 would undo.
/// A run of another period than $3's changed none of its tables.
fn later_runs_sql(m: &str) -> String {
    format!(
        "SELECT r.id::text || ' (' || r.mode || ')' FROM {m}.runs r, {m}.runs u
                 WHERE u.id = $3 AND r.dataset = $1 AND r.target_schema = $2 AND r.id > $3
                   AND r.status = 'succeeded'
                   AND (r.period IS NULL OR u.period IS NULL OR r.period = u.period)
                 ORDER BY r.id"
    )
}

/// Swaps the live table `live` (named `table`) and its previous
/// generation `old` (named `prev`) in `schema` through the free name
/// `tmp`: afterwards each has the other's name.
fn swap_back_sql(
    (live, table): (&str, &str),
    (old, prev): (&str, &str),
    schema: &str,
    tmp: &str,
) -> String {
    format!(
        "ALTER TABLE {live} RENAME TO {};
                 ALTER TABLE {old} RENAME TO {};
                 ALTER TABLE {} RENAME TO {};",
        quote_ident(tmp),
        quote_ident(table),
        qualified(schema, tmp),
        quote_ident(prev),
    )
}

/// Marks the generations of run $3 (dataset $1, target schema $2) rolled
/// back by run $4, so a second rollback finds them done.
fn mark_rolled_back_sql(m: &str) -> String {
    format!(
        "UPDATE {m}.generations SET rolled_back_by = $4
                 WHERE dataset = $1 AND target_schema = $2 AND run_id = $3"
    )
}

impl Undo<'_> {
    /// A database error of the rollback.
    fn db_error(&self, e: postgres::Error) -> LoadError {
        LoadError::db(format!("rolling back {}", self.dataset), e)
    }

    /// The tables of the newest replace run.
    ///
    /// # Errors
    /// A database error, or no replace run that kept a previous
    /// generation.
    fn newest(&self, db: &mut Client) -> Result<Newest, LoadError> {
        let (dataset, target_schema) = (self.dataset, self.target_schema);
        let rows = db
            .query(
                &newest_generations_sql(&quote_ident(self.meta)),
                &[&dataset, &target_schema, &self.year],
            )
            .map_err(|e| self.db_error(e))?;
        let Some(first) = rows.first() else {
            let of = self.year.map(|y| format!(" of {y}")).unwrap_or_default();
            return Err(LoadError::refused(format!(
                "dataset {dataset} has no previous generation{of} in {target_schema} (only replace loads keep one)"
            )));
        };
        Ok(Newest {
            run: first.get(2),
            rolled_back_by: first.get(3),
            tables: rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
        })
    }

    /// Refuses, unless `force`, when a run succeeded after replace run
    /// `undone`: rolling back would undo it too.
    fn refuse_later_runs(
        &self,
        db: &mut Client,
        undone: i64,
        force: bool,
    ) -> Result<(), LoadError> {
        let (dataset, target_schema) = (self.dataset, self.target_schema);
        let later: Vec<String> = db
            .query(
                &later_runs_sql(&quote_ident(self.meta)),
                &[&dataset, &target_schema, &undone],
            )
            .map_err(|e| self.db_error(e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !later.is_empty() && !force {
            return Err(LoadError::refused(format!(
                "run {} changed {dataset} in {target_schema} after replace run {undone}, and rolling back would undo it too; nothing was changed (use --force to roll back anyway)",
                later.join(", ")
            )));
        }
        Ok(())
    }

    /// Swaps the tables of `newest` back to their previous generation in
    /// one transaction that also marks the generations rolled back and
    /// records run `run` succeeded. Returns the tables swapped.
    fn swap_back(
        &self,
        db: &mut Client,
        newest: &Newest,
        run: i64,
    ) -> Result<Vec<String>, LoadError> {
        let target_schema = self.target_schema;
        let ctx = |e| self.db_error(e);
        let mut tx = db.transaction().map_err(ctx)?;
        let mut pairs = Vec::new();
        let mut lock = Vec::new();
        for (table, prev) in &newest.tables {
            let live = qualified(target_schema, table);
            let old = qualified(target_schema, prev);
            if !publish::table_exists(&mut tx, &old)? {
                return Err(LoadError::refused(format!(
                    "{live}: the previous generation {prev} is gone; nothing was changed"
                )));
            }
            // A period's partition goes back as that period's partition.
            let parent = period::parent_of(&mut tx, &live)?;
            lock.extend(parent.iter().map(|(p, _)| p.clone()));
            lock.extend([live.clone(), old.clone()]);
            pairs.push((table, prev, live, old, parent));
        }
        lock_tables(&mut tx, &lock, self.lock_timeout)?;
        let mut swapped = Vec::new();
        for (table, prev, live, old, parent) in pairs {
            if let Some((p, _)) = &parent {
                tx.batch_execute(&detach_sql(p, &live)).map_err(ctx)?;
            }
            let tmp = format!("{table}__fwswap");
            tx.batch_execute(&swap_back_sql(
                (&live, table),
                (&old, prev),
                target_schema,
                &tmp,
            ))
            .map_err(ctx)?;
            if let Some((p, bound)) = &parent {
                tx.batch_execute(&period::attach_sql(p, &live, bound))
                    .map_err(ctx)?;
            }
            swapped.push(live);
        }
        tx.execute(
            &mark_rolled_back_sql(&quote_ident(self.meta)),
            &[&self.dataset, &target_schema, &newest.run, &run],
        )
        .map_err(ctx)?;
        let counts =
            serde_json::json!({ "undo_run": newest.run, "tables": swapped });
        tx.execute(
            &meta::finish_sql(self.meta),
            &[&run, &"succeeded", &None::<String>, &Json(counts)],
        )
        .map_err(ctx)?;
        tx.commit().map_err(ctx)?;
        Ok(swapped)
    }

    /// Records run `run` refused or failed by `e`, and returns `e`: the
    /// failure is what the caller needs; recording it is best effort (the
    /// connection may be gone).
    fn record_failure(
        &self,
        db: &mut Client,
        run: i64,
        e: LoadError,
    ) -> LoadError {
        let status = match e.kind() {
            super::LoadErrorKind::Refused(_) => "refused",
            _ => "failed",
        };
        let reason = e.line();
        let _ = meta::finish_run(
            db,
            self.meta,
            run,
            status,
            Some(&reason),
            &serde_json::Value::Null,
        );
        e
    }
}
