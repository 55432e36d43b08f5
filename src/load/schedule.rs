//! Staging on `--jobs` connections while one transaction publishes each
//! table as soon as it and those before it are staged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use postgres::Client;

use super::adopt::{adopt, adoptable};
use super::checks::{self, CheckResult};
use super::history::History;
use super::inventory::Work;
use super::period::{self, PeriodValue};
use super::targets::{build_indexes, create_target};
use super::undo::{How, Recorder};
use super::{
    DeletePolicy, LoadError, LoadOptions, MemberRef, PublishOptions,
    Published, Spool, StageContext, Staged, TableOutcome, connect, meta,
    publish, reconcile, stage, target_parts,
};
use crate::pipeline::Plan;
use crate::reject::Counts;
use crate::schema::SchemaSet;

/// What publishing needs besides the staged tables.
pub(super) struct Publishing<'a> {
    pub(super) set: &'a SchemaSet,
    pub(super) targets: &'a HashMap<String, String>,
    /// Layouts whose targets do not exist yet.
    pub(super) missing: &'a [usize],
    pub(super) names: &'a dyn Fn(u32) -> (String, String),
    /// Layouts this load publishes.
    pub(super) loads: &'a [usize],
    /// The period the load fills, for a dataset kept by one.
    pub(super) period: Option<&'a PeriodValue>,
    /// `--mode history`: the version columns and the effective time.
    pub(super) history: Option<&'a History>,
    /// Members of inputs skipped as unchanged.
    pub(super) unchanged: &'a [String],
}

/// Stages every layout of `work` on `--jobs` connections, each in a
/// transaction of its own (the layouts of `built` into tables that can
/// become their targets), while `db` publishes them in one transaction,
/// each table as soon as it and those before it are staged: the serial
/// publish overlaps the staging instead of following it.
///
/// A failed stage stops the others from starting more tables and fails
/// the publish. A failed publish lets the stages finish, so `--resume`
/// finds every table staged. Errors rank: a stage's, then crossed reject
/// thresholds (which only the complete counts show), then the publish's.
pub(super) fn stage_and_publish(
    db: &mut Client,
    opts: &LoadOptions,
    cx: &StageContext<'_>,
    plans: &[Arc<Plan>],
    work: &[Work],
    built: &[usize],
    publish: &Publishing<'_>,
) -> Result<Published, LoadError> {
    let stages = Stages {
        opts,
        cx,
        plans,
        built,
        queue: Mutex::new(stage_order(work, built)),
        stop: AtomicBool::new(false),
    };
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<Done>();
    let jobs = opts.jobs.max(1).min(work.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let done = done_tx.clone();
            let stages = &stages;
            s.spawn(move || stages.run(&done));
        }
        drop(done_tx);
        let mut arrived =
            Arrived { rx: done_rx, staged: HashMap::new(), error: None };
        let in_work = |li: usize| work.iter().any(|w| w.layout == li);
        let published = publish_all(db, cx, publish, opts, &mut |li| {
            if !in_work(li) {
                return Ok(None);
            }
            arrived.wait_for(li, &publish.set.layouts[li].name).map(Some)
        });
        let all = arrived.all()?;
        if published.is_err() {
            refuse_crossed(opts, staged_counts(&all))?;
        }
        published.map(|(tables, checks)| Published {
            tables,
            staged: all,
            checks,
        })
    })
}

/// The order stages start in, as a queue popped from its end: publishing
/// order, so publishing can begin early; when every table is built
/// (publishing them is brief), biggest first, so no connection waits
/// long on the other's last table.
fn stage_order<'w>(work: &'w [Work], built: &[usize]) -> Vec<&'w Work> {
    let mut order: Vec<&Work> = work.iter().rev().collect();
    if work.iter().all(|w| built.contains(&w.layout)) {
        order.sort_by_key(|w| w.bytes);
    }
    order
}

/// A finished stage: its layout (`usize::MAX` when a connection failed)
/// and its result.
type Done = (usize, Result<Staged, LoadError>);

/// What the staging connections share: the work still to start, and
/// whether to stop starting it.
struct Stages<'s, 'a> {
    opts: &'s LoadOptions,
    cx: &'s StageContext<'a>,
    plans: &'s [Arc<Plan>],
    /// Layouts staged into tables that can become their targets.
    built: &'s [usize],
    /// Work not started yet, popped from the end.
    queue: Mutex<Vec<&'s Work>>,
    /// Set by a failed stage: no more are started.
    stop: AtomicBool,
}

impl Stages<'_, '_> {
    /// What layout `li`'s stage fills.
    fn kind(&self, li: usize) -> stage::TableKind {
        if self.built.contains(&li) {
            stage::TableKind::Target {
                soft_delete: self.opts.delete == DeletePolicy::Soft,
            }
        } else {
            stage::TableKind::Staging {
                fingerprint: self.opts.mode == super::Mode::History,
            }
        }
    }

    /// One staging connection: stages work from the queue until it is
    /// empty or a stage failed, sending each result to `done`.
    fn run(&self, done: &crossbeam_channel::Sender<Done>) {
        let mut db = match connect(self.opts) {
            Ok(db) => db,
            Err(e) => {
                self.stop.store(true, Ordering::Relaxed);
                let _ = done.send((usize::MAX, Err(e)));
                return;
            }
        };
        while !self.stop.load(Ordering::Relaxed) {
            let Some(w) = self.queue.lock().expect("queue").pop() else {
                return;
            };
            let staged = self.stage(&mut db, w);
            if staged.is_err() {
                self.stop.store(true, Ordering::Relaxed);
            }
            let _ = done.send((w.layout, staged));
        }
    }

    /// Stages `w`, or with `--resume` reuses a previous run's staging
    /// that proves complete (else saying why it was not reused).
    fn stage(&self, db: &mut Client, w: &Work) -> Result<Staged, LoadError> {
        let plan = &self.plans[w.layout];
        let kind = self.kind(w.layout);
        let reused = if self.opts.resume {
            stage::reusable(db, self.cx, &plan.layout, &w.members, kind)?
        } else {
            Err(stage::NotReused::Different)
        };
        match reused {
            Ok(s) => Ok(s),
            Err(why) => {
                stage_one(db, self.cx, plan, &w.members, kind).map(|s| {
                    Staged {
                        restaged: match why {
                            stage::NotReused::Unproven(w) => Some(w),
                            stage::NotReused::Different => None,
                        },
                        ..s
                    }
                })
            }
        }
    }
}

/// The stages as they arrive on the publishing side.
struct Arrived {
    rx: crossbeam_channel::Receiver<Done>,
    /// Staged layouts, by index.
    staged: HashMap<usize, Staged>,
    /// The first stage error not yet reported.
    error: Option<LoadError>,
}

impl Arrived {
    /// Takes the next finished stage; false once every connection ended.
    fn receive(&mut self) -> bool {
        match self.rx.recv() {
            Ok((li, Ok(s))) => {
                self.staged.insert(li, s);
                true
            }
            Ok((_, Err(e))) => {
                self.error.get_or_insert(e);
                true
            }
            Err(_) => false,
        }
    }

    /// Waits for layout `li` (named `name`) to be staged.
    ///
    /// # Errors
    /// A stage's error, or staging stopped before it.
    fn wait_for(
        &mut self,
        li: usize,
        name: &str,
    ) -> Result<Staged, LoadError> {
        while !self.staged.contains_key(&li) {
            if let Some(e) = self.error.take() {
                return Err(e);
            }
            if !self.receive() {
                return Err(LoadError::input(format!(
                    "staging stopped before layout {name}"
                )));
            }
        }
        Ok(self.staged[&li].clone())
    }

    /// Waits for every stage to finish (or stop after a stage failed),
    /// returning them in layout order.
    ///
    /// # Errors
    /// A stage's error.
    fn all(mut self) -> Result<Vec<Staged>, LoadError> {
        while self.receive() {}
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut all: Vec<(usize, Staged)> = self.staged.into_iter().collect();
        all.sort_by_key(|(li, _)| *li);
        Ok(all.into_iter().map(|(_, s)| s).collect())
    }
}

/// Stages one layout in a transaction of its own.
fn stage_one(
    db: &mut Client,
    cx: &StageContext<'_>,
    plan: &Arc<Plan>,
    members: &[MemberRef],
    kind: stage::TableKind,
) -> Result<Staged, LoadError> {
    let ctx = |e| LoadError::db(format!("staging {}", plan.layout.name), e);
    let mut tx = db.transaction().map_err(ctx)?;
    let dest = stage::Destination::staging(&mut tx, cx, &plan.layout, kind)?;
    let staged = stage::stage(&mut tx, cx, plan, members, &dest)?;
    tx.commit().map_err(ctx)?;
    Ok(staged)
}

/// The counts of every stage together.
fn staged_counts(staged: &[Staged]) -> Counts {
    let mut c = Counts::default();
    for s in staged {
        c += s.counts;
    }
    c
}

/// Refuses a load whose counts `c` (every record of every table, orphans
/// rejected by reference checks among the rejects) cross a reject
/// threshold, unless `--force`.
///
/// # Errors
/// The refusal.
pub(super) fn refuse_crossed(
    opts: &LoadOptions,
    c: Counts,
) -> Result<(), LoadError> {
    if let Some(why) = opts.thresholds.crossed(c.rejected, c.read)
        && !opts.force
    {
        return Err(LoadError::refused(format!(
            "{why}; nothing was changed (use --force to load anyway)"
        )));
    }
    Ok(())
}

/// Publishes staged tables in one transaction, in the layouts' order,
/// taking each from `next` (which waits for its stage; `None` for a
/// layout with nothing to load). The reject thresholds are checked on the
/// complete counts before committing.
fn publish_all(
    db: &mut Client,
    cx: &StageContext<'_>,
    publish: &Publishing<'_>,
    opts: &LoadOptions,
    next: &mut dyn FnMut(usize) -> Result<Option<Staged>, LoadError>,
) -> Result<(Vec<TableOutcome>, Vec<CheckResult>), LoadError> {
    let Publishing {
        set,
        targets,
        missing,
        names,
        loads,
        period,
        history,
        unchanged,
    } = *publish;
    let popts = PublishOptions {
        mode: opts.mode,
        delete: opts.delete,
        max_delete_ratio: opts.max_delete_ratio,
        force: opts.force,
    };
    let mut tx = db
        .transaction()
        .map_err(|e| LoadError::db("starting the publish transaction", e))?;
    let mut spool = Spool::new(cx.run)
        .map_err(|e| LoadError::spill("rejects spool", e))?;
    let mut out = Vec::new();
    let mut staged = Vec::new();
    let loading = |l: &str| loads.iter().any(|&i| set.layouts[i].name == l);
    let mut reconciler = reconcile::Reconciler::new(set, &loading);
    let mut checks = checks::Checks::new(set, unchanged);
    let mut undo = Recorder::new(cx.meta, cx.run, opts.keep_undo);
    let mut orphans_rejected = 0;
    for (li, layout) in set.layouts.iter().enumerate() {
        let Some(s) = next(li)? else {
            continue;
        };
        staged.push(s);
        let s = staged.last().expect("just pushed");
        let t0 = Instant::now();
        let target = targets[&layout.name].clone();
        let build = missing.contains(&li)
            && adoptable(&mut tx, s, layout, cx, opts, set)?;
        let indexes = if missing.contains(&li) && !build {
            create_target(&mut tx, layout, &target, opts, set)?
        } else {
            Vec::new()
        };
        // A load of one period writes to its partition only.
        let partition = match period {
            Some(v) => {
                period::check_field(&mut tx, (layout, &s.table), v, names)?;
                let parts = target_parts(&opts.target_schema, layout);
                Some(period::partition(&mut tx, (&parts.0, &parts.1), v)?)
            }
            None => None,
        };
        let mut p = publish::Publish {
            layout,
            target: partition
                .as_ref()
                .map_or_else(|| target.clone(), |w| w.table.clone()),
            staged: s,
            rows: s.rows,
            period,
            history,
        };
        let mut o = TableOutcome::of_staged(layout, target.clone(), s);
        let orphans_before = spool_rows(&spool);
        o.orphans = publish::check_references(
            &mut tx,
            &p,
            set.dataset.as_ref(),
            targets,
            names,
            cx,
            &mut spool,
        )?;
        let rejected = spool_rows(&spool) - orphans_before;
        o.rejected += rejected;
        p.rows -= rejected;
        orphans_rejected += rejected;
        reconciler.take(&mut tx, &layout.name, &s.table)?;
        checks.take(&mut tx, &layout.name, &s.table)?;
        // A table this load creates is undone by dropping it.
        let created = if missing.contains(&li) {
            Some(&target)
        } else {
            partition.as_ref().filter(|w| w.created).map(|w| &w.table)
        };
        if let (Some(u), Some(t)) = (undo.as_mut(), created) {
            u.table(&mut tx, t, How::Created, &[], None)?;
        }
        if build {
            adopt(&mut tx, s, layout, cx, set)?;
            o.inserted = p.rows;
        } else {
            publish::publish_table(
                &mut tx,
                &p,
                &popts,
                &mut o,
                undo.as_mut(),
            )?;
            if let Some(w) = &partition {
                w.attach(&mut tx)?;
            }
            build_indexes(&mut tx, &target, &indexes)?;
        }
        o.publish_seconds = t0.elapsed().as_secs_f64();
        out.push(o);
    }
    let reconciled = reconciler.finish(&mut tx, opts.force)?;
    TableOutcome::note_reconciled(&mut out, reconciled);
    // Every table is staged now: the counts are complete.
    let mut counts = staged_counts(&staged);
    counts.rejected += orphans_rejected;
    refuse_crossed(opts, counts)?;
    let scope = checks::Scope {
        meta: cx.meta,
        dataset: (cx.dataset, cx.target_schema),
        run: cx.run,
        period,
        mode: opts.mode,
        targets,
    };
    let checked = checks.run(&mut tx, &scope, &out, &staged)?;
    if let Some(u) = &undo {
        u.finish(&mut tx, (cx.dataset, cx.target_schema), opts.keep_undo)?;
    }
    spool.flush_to(&mut tx, cx.meta)?;
    opts.stopped()?;
    meta::record_success(&mut tx, cx.meta, cx.run, &out)?;
    if opts.dry_run {
        tx.rollback()
            .map_err(|e| LoadError::db("rolling back the dry run", e))?;
    } else {
        opts.stopped()?;
        tx.commit().map_err(|e| LoadError::db("committing", e))?;
    }
    Ok((out, checked))
}

fn spool_rows(s: &Spool) -> u64 {
    s.rows()
}
