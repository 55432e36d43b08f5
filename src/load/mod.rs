//! The main job: validated records into PostgreSQL as fast as it can take
//! them, all-or-nothing.
//!
//! ```text
//!  inputs ─sha256─▶ unchanged since the last success? ─yes─▶ skip
//!    │ (advisory lock per dataset held throughout)
//!    ▼
//!  stage: per layout, one UNLOGGED table, one binary COPY from the
//!         pipeline; layouts in parallel on --jobs connections; duplicates
//!         removed; staged state recorded (resumable). A target this load
//!         creates is staged as the target itself (logged, NOT NULLs, key
//!         and indexes built once filled) and renamed into place.
//!    ▼  (each table as soon as it and those before it are staged)
//!  publish: ONE transaction, dependency order — references (orphans),
//!           MERGE / append / fill, snapshot deletes under a guard, the
//!           reject thresholds, the run record — then COMMIT (or
//!           ROLLBACK: dry run, any error)
//! ```
//!
//! Publishing runs on its own connection while later tables still stage,
//! so the serial publish overlaps the parallel staging.
//!
//! `replace` builds new tables with `COPY … FREEZE` inside the one
//! transaction and swaps them in, keeping the previous generation for
//! `fwload rollback`.

mod adopt;
mod checks;
mod connect;
mod ddl;
mod error;
mod history;
mod interrupt;
mod inventory;
mod lock;
mod meta;
mod options;
mod outcome;
mod period;
mod publish;
mod reconcile;
mod replace;
mod runs;
mod schedule;
mod skip;
mod stage;
mod targets;
mod undo;

pub use checks::CheckResult;
pub use connect::{Database, SslMode};
pub use error::{LoadError, LoadErrorKind, describe};
pub use interrupt::Interrupt;
pub(crate) use meta::{NewRun, RunFile, finish_run, migrate, start_run};
pub use options::{LoadEvents, LoadOptions, MakeProgress, Notify};
pub use outcome::{LoadFailure, LoadReport};
pub(crate) use period::{PeriodValue, resolve as resolve_period};
pub(crate) use publish::{DeletePolicy, Mode, PublishOptions, TableOutcome};
pub use replace::{Rollback, rollback};
pub use runs::{RunDetail, RunSummary, list_runs, show_run};
pub(crate) use skip::{outcome_key, unchanged_inputs, year_inputs};
pub(crate) use stage::{MemberRef, RejectSinks, Spool, StageContext, Staged};
pub(crate) use targets::{qualified, target_name, target_parts};
pub use undo::{Undone, rollback_runs};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use postgres::Client;

use crate::pipeline::{PipelineOptions, Plan};
use crate::report::{Progress, RejectGroup, RejectGroups, RejectWriter};
use crate::schema::SchemaSet;
use crate::source::SourceOptions;
use history::History;
use inventory::{Inventory, Planned};
use options::connect;
use outcome::Run;

/// Loads `inputs` into the targets of `set`: the steps below, each in a
/// file of its own.
///
/// # Errors
/// A [`LoadFailure`]; the targets are then exactly as before.
pub fn load(
    set: &SchemaSet,
    inputs: &[PathBuf],
    opts: &LoadOptions,
) -> Result<LoadReport, LoadFailure> {
    let started = Instant::now();
    let dataset = opts.dataset_name(set);
    let mut report = LoadReport::new(&dataset, opts);
    // 1. The inputs, before any database work: hashed, listed, their
    //    control records read; an incomplete dataset refused (--strict).
    let inv = Inventory::take(set, inputs, opts)?;
    report.controls = inv.controls.iter().flatten().cloned().collect();
    report.missing = inv.missing(set, opts);
    if opts.strict {
        inv.refuse_incomplete(&report.missing)?;
    }
    //    The period the load fills, for a dataset kept by one.
    let period = period::resolve(set, inputs, &report.controls, opts)?;
    report.period = period.as_ref().map(|p| p.value);
    // 2. The database: fwload's schema, the dataset's lock, what dead
    //    runs left behind.
    let mut db = connect(opts)?;
    meta::migrate(&mut db, &opts.meta)?;
    lock::take(&mut db, &dataset, opts)?;
    // 3. What to load: inputs unchanged since the last success are
    //    skipped.
    let outcome = outcome_key(set, opts.mode, opts.delete, report.period);
    let previous = if opts.force_reload {
        Default::default()
    } else {
        unchanged_inputs(
            &mut db,
            &opts.meta,
            set,
            (&dataset, &opts.target_schema),
            &outcome,
            report.period,
        )?
    };
    let planned = inv.plan(set, &previous, &mut report);
    // 4. The run record; from here on every ending is recorded.
    let run = Run::start(&mut db, set, opts, &report, &outcome, started)?;
    report.run_id = run.id;
    //    History: the time the load's versions become valid.
    let history = match history_of(&mut db, set, opts, run.id) {
        Ok(h) => h,
        Err(e) => return Err(run.fail(&mut db, report, e)),
    };
    if planned.work.is_empty() {
        return run.unchanged(&mut db, report);
    }
    // 5. Guards and targets, before anything changes.
    let checked =
        targets::check(&mut db, set, &planned, &report, opts, period.as_ref());
    let missing = match checked {
        Ok(m) => m,
        Err(e) => return Err(run.fail(&mut db, report, e)),
    };
    // 6. Stage and publish.
    let outcome = stage_and_publish(
        &mut db,
        set,
        opts,
        &planned,
        &missing,
        &mut report,
        (run.id, period.as_ref(), history.as_ref()),
    );
    // 7. The outcome.
    match outcome {
        Ok(published) => run.succeeded(&mut db, report, published, &dataset),
        Err(e) => Err(run.fail(&mut db, report, e)),
    }
}

/// Stages and publishes the planned work (replace mode: builds and swaps
/// the new tables), writing rejects to their file and groups.
fn stage_and_publish(
    db: &mut Client,
    set: &SchemaSet,
    opts: &LoadOptions,
    planned: &Planned,
    missing: &[usize],
    report: &mut LoadReport,
    (run, period, history): (i64, Option<&PeriodValue>, Option<&History>),
) -> Result<Published, LoadError> {
    let rejects = reject_sinks(opts)?;
    let progress = match &opts.events.progress {
        Some(make) => make(planned.total_bytes),
        None => Progress::hidden(),
    };
    let progress = &progress;
    let export_versions = export_versions(report);
    let cx = StageContext {
        meta: &opts.meta,
        dataset: &report.dataset,
        target_schema: &opts.target_schema,
        run,
        schema_hash: &set.hash,
        interrupt: &opts.interrupt,
        // The inputs were hashed above; each stage reads one member.
        source: SourceOptions { skip_archive_hash: true, ..opts.source },
        pipeline: stage_pipeline(opts),
        references: set.references(),
        rejects: &rejects,
        progress,
        export_versions: &export_versions,
    };
    let outcome =
        publish_work(db, &cx, set, opts, planned, (missing, period, history));
    progress.finish();
    report.reject_groups = close_rejects(rejects);
    outcome
}

/// What a publish did: per table, the stages, and the dataset's checks.
pub(crate) struct Published {
    /// Per table, in publishing order.
    pub tables: Vec<TableOutcome>,
    /// The stages, in layout order.
    pub staged: Vec<Staged>,
    /// The dataset's checks, all passed.
    pub checks: Vec<CheckResult>,
}

/// The version columns and effective time of a `--mode history` load.
fn history_of(
    db: &mut Client,
    set: &SchemaSet,
    opts: &LoadOptions,
    run: i64,
) -> Result<Option<History>, LoadError> {
    if opts.mode != Mode::History {
        return Ok(None);
    }
    Ok(Some(History {
        columns: set.history_columns(),
        as_of: history::effective_time(db, opts, run)?,
    }))
}

/// The reject outputs: the `--rejects` file, created now, and the
/// summary's groups.
fn reject_sinks(opts: &LoadOptions) -> Result<RejectSinks, LoadError> {
    Ok(RejectSinks {
        file: match &opts.rejects_file {
            Some(p) => {
                Some(Mutex::new(RejectWriter::create(p).map_err(|e| {
                    LoadError::config(format!(
                        "cannot create rejects file {}: {e}",
                        p.display()
                    ))
                })?))
            }
            None => None,
        },
        groups: Mutex::new(RejectGroups::default()),
    })
}

/// Finishes the `--rejects` file, returning the summary's groups.
fn close_rejects(rejects: RejectSinks) -> Vec<RejectGroup> {
    let groups = rejects
        .groups
        .into_inner()
        .map(|g| g.into_groups())
        .unwrap_or_default();
    if let Some(f) = rejects.file
        && let Ok(w) = f.into_inner()
    {
        let _ = w.finish();
    }
    groups
}

/// The export version each input's control record states, by input.
fn export_versions(report: &LoadReport) -> HashMap<String, String> {
    report
        .controls
        .iter()
        .filter_map(|c| Some((c.input.clone(), c.export_version.clone()?)))
        .collect()
}

/// The pipeline options of one stage.
fn stage_pipeline(opts: &LoadOptions) -> PipelineOptions {
    PipelineOptions {
        // The --jobs pipelines share the workers: together they keep
        // about as many chunks alive as one would alone.
        in_flight: opts.pipeline.in_flight.div_ceil(opts.jobs.max(1)).max(3),
        ..opts.pipeline
    }
}

/// Stages and publishes every layout of the planned work: in replace
/// mode by building and swapping new tables, else staged on `--jobs`
/// connections while one transaction publishes.
fn publish_work(
    db: &mut Client,
    cx: &StageContext<'_>,
    set: &SchemaSet,
    opts: &LoadOptions,
    planned: &Planned,
    (missing, period, history): (
        &[usize],
        Option<&PeriodValue>,
        Option<&History>,
    ),
) -> Result<Published, LoadError> {
    let plans: Vec<Arc<Plan>> =
        set.layouts.iter().map(|l| Arc::new(Plan::new(l.clone()))).collect();
    let targets: HashMap<String, String> = set
        .layouts
        .iter()
        .map(|l| (l.name.clone(), target_name(&opts.target_schema, l)))
        .collect();
    let names_of = |f: u32| planned.names.get(&f).cloned().unwrap_or_default();
    if opts.mode == Mode::Replace {
        let replacing = replace::Replacing {
            cx,
            set,
            plans: &plans,
            targets: &targets,
            names: &names_of,
            opts,
            period,
            unchanged: &planned.unchanged,
        };
        return replace::publish_replace(
            db,
            &replacing,
            &inventory::work_refs(&planned.work),
        );
    }
    // Targets this load creates are built in place from their staging
    // tables: one write of the rows instead of two. (A target kept by
    // period is created partitioned, and the period's partition filled.)
    let built = if opts.create && period.is_none() && history.is_none() {
        missing.to_vec()
    } else {
        Vec::new()
    };
    let loads: Vec<usize> = planned.work.iter().map(|w| w.layout).collect();
    let publish = schedule::Publishing {
        set,
        targets: &targets,
        missing,
        names: &names_of,
        loads: &loads,
        period,
        history,
        unchanged: &planned.unchanged,
    };
    schedule::stage_and_publish(
        db,
        opts,
        cx,
        &plans,
        &planned.work,
        &built,
        &publish,
    )
}
