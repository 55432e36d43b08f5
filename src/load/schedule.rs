//! Staging on `--jobs` connections while one transaction publishes each
//! table as soon as it and those before it are staged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use postgres::Client;

use super::adopt::{adopt, adoptable};
use super::inventory::Work;
use super::targets::create_target;
use super::{
    DeletePolicy, LoadError, LoadOptions, MemberRef, PublishOptions, Spool,
    StageContext, Staged, TableOutcome, connect, meta, publish, reconcile,
    stage,
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
) -> Result<(Vec<TableOutcome>, Vec<Staged>), LoadError> {
    let kind = |li: usize| {
        if built.contains(&li) {
            stage::TableKind::Target {
                soft_delete: opts.delete == DeletePolicy::Soft,
            }
        } else {
            stage::TableKind::Staging
        }
    };
    // Stages start in publishing order, so publishing can begin early;
    // when every table is built (publishing them is brief), biggest
    // first, so no connection waits long on the other's last table. The
    // queue is popped from its end.
    let mut order: Vec<&Work> = work.iter().rev().collect();
    if work.iter().all(|w| built.contains(&w.layout)) {
        order.sort_by_key(|w| w.bytes);
    }
    let queue = Mutex::new(order);
    let stop = AtomicBool::new(false);
    let (done_tx, done_rx) =
        crossbeam_channel::unbounded::<(usize, Result<Staged, LoadError>)>();
    let jobs = opts.jobs.max(1).min(work.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let done = done_tx.clone();
            let (queue, stop) = (&queue, &stop);
            s.spawn(move || {
                let mut db = match connect(opts) {
                    Ok(db) => db,
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        let _ = done.send((usize::MAX, Err(e)));
                        return;
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    let Some(w) = queue.lock().expect("queue").pop() else {
                        return;
                    };
                    let plan = &plans[w.layout];
                    let reused = if opts.resume {
                        stage::reusable(
                            &mut db,
                            cx,
                            &plan.layout,
                            &w.members,
                            kind(w.layout),
                        )
                    } else {
                        Ok(Err(stage::NotReused::Different))
                    };
                    let staged = reused.and_then(|r| match r {
                        Ok(s) => Ok(s),
                        Err(why) => stage_one(
                            &mut db,
                            cx,
                            plan,
                            &w.members,
                            kind(w.layout),
                        )
                        .map(|s| Staged {
                            restaged: match why {
                                stage::NotReused::Unproven(w) => Some(w),
                                stage::NotReused::Different => None,
                            },
                            ..s
                        }),
                    });
                    if staged.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    let _ = done.send((w.layout, staged));
                }
            });
        }
        drop(done_tx);
        let mut staged: HashMap<usize, Staged> = HashMap::new();
        let mut stage_error = None;
        let receive = |staged: &mut HashMap<usize, Staged>,
                       stage_error: &mut Option<LoadError>|
         -> bool {
            match done_rx.recv() {
                Ok((li, Ok(s))) => {
                    staged.insert(li, s);
                    true
                }
                Ok((_, Err(e))) => {
                    stage_error.get_or_insert(e);
                    true
                }
                Err(_) => false,
            }
        };
        let in_work = |li: usize| work.iter().any(|w| w.layout == li);
        let published = publish_all(db, cx, publish, opts, &mut |li| {
            if !in_work(li) {
                return Ok(None);
            }
            while !staged.contains_key(&li) {
                if let Some(e) = stage_error.take() {
                    return Err(e);
                }
                if !receive(&mut staged, &mut stage_error) {
                    return Err(LoadError::input(format!(
                        "staging stopped before layout {}",
                        publish.set.layouts[li].name
                    )));
                }
            }
            Ok(staged.get(&li).cloned())
        });
        // Every stage finishes (or stops after a stage failed).
        while receive(&mut staged, &mut stage_error) {}
        if let Some(e) = stage_error {
            return Err(e);
        }
        let mut all: Vec<(usize, Staged)> = staged.into_iter().collect();
        all.sort_by_key(|(li, _)| *li);
        let all: Vec<Staged> = all.into_iter().map(|(_, s)| s).collect();
        if published.is_err() {
            check_thresholds(opts, &all)?;
        }
        published.map(|tables| (tables, all))
    })
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

fn check_thresholds(
    opts: &LoadOptions,
    staged: &[Staged],
) -> Result<(), LoadError> {
    let mut c = Counts::default();
    for s in staged {
        c += s.counts;
    }
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
) -> Result<Vec<TableOutcome>, LoadError> {
    let Publishing { set, targets, missing, names, loads } = *publish;
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
        if missing.contains(&li) && !build {
            create_target(&mut tx, layout, &target, opts, set)?;
        }
        let mut p = publish::Publish {
            layout,
            target: target.clone(),
            staged: s,
            rows: s.rows,
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
        let orphans_rejected = spool_rows(&spool) - orphans_before;
        o.rejected += orphans_rejected;
        p.rows -= orphans_rejected;
        reconciler.take(&mut tx, &layout.name, &s.table)?;
        if build {
            adopt(&mut tx, s, layout, cx, set)?;
            o.inserted = p.rows;
        } else {
            publish::publish_table(&mut tx, &p, &popts, &mut o)?;
        }
        o.publish_seconds = t0.elapsed().as_secs_f64();
        out.push(o);
    }
    let reconciled = reconciler.finish(&mut tx, opts.force)?;
    TableOutcome::note_reconciled(&mut out, reconciled);
    // Every table is staged now: the counts are complete.
    check_thresholds(opts, &staged)?;
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
    Ok(out)
}

fn spool_rows(s: &Spool) -> u64 {
    s.rows()
}
