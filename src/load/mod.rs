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

mod connect;
mod error;
mod interrupt;
mod meta;
mod publish;
mod reconcile;
mod replace;
mod runs;
mod skip;
mod stage;

pub use connect::{Database, SslMode};
pub use error::{LoadError, LoadErrorKind, describe};
pub use interrupt::Interrupt;
pub use meta::{
    NewRun, RunFile, finish_run, latest_version, migrate, start_run,
};
pub use publish::{
    DeletePolicy, Mode, PublishOptions, TableOutcome, merge_sql,
};
pub use replace::{Rollback, rollback};
pub use runs::{RunDetail, RunSummary, list_runs, show_run};
pub use skip::{outcome_key, unchanged_inputs};
pub use stage::{
    MemberRef, RejectSinks, Spool, StageContext, Staged, staging_columns,
    staging_ddl,
};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use postgres::Client;
use serde::Serialize;

use crate::pipeline::{
    Control, ControlError, Counts, PipelineOptions, Plan, input_year,
    layout_for, read_control,
};
use crate::report::{
    Missing, Progress, RejectGroup, RejectGroups, RejectWriter, Thresholds,
    Unmatched, incomplete,
};
use crate::schema::{
    Layout, SchemaSet, create_table, index_statements, quote_ident,
};
use crate::source::{self, HashingReader, SourceOptions};

/// Everything a load needs besides the schemas and inputs.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The database.
    pub database: Database,
    /// fwload's own schema.
    pub meta: String,
    /// Schema of the target tables.
    pub target_schema: String,
    /// Dataset name (default: the dataset file's, else the first layout's).
    pub dataset: Option<String>,
    /// How rows reach the targets.
    pub mode: Mode,
    /// Deletes of rows missing from a full snapshot (merge only).
    pub delete: DeletePolicy,
    /// Largest share of a target deletes may remove.
    pub max_delete_ratio: f64,
    /// Reject thresholds.
    pub thresholds: Thresholds,
    /// Override the guards (deletes, rejects).
    pub force: bool,
    /// Load inputs even when unchanged since the last success.
    pub force_reload: bool,
    /// Do everything, report, roll back.
    pub dry_run: bool,
    /// Reuse staged tables of a failed run whose inputs match.
    pub resume: bool,
    /// Create missing target tables.
    pub create: bool,
    /// Fail at once when another load holds the lock.
    pub no_wait: bool,
    /// Refuse inputs that are not the dataset's complete archives.
    pub strict: bool,
    /// The export year (`--year`): a control record stating another is
    /// refused; it also says which year-dependent members are expected.
    pub year: Option<i32>,
    /// Longest wait, per try, for the locks of a replace swap.
    pub lock_timeout: std::time::Duration,
    /// Staging connections.
    pub jobs: usize,
    /// Input reading.
    pub source: SourceOptions,
    /// Chunking.
    pub pipeline: PipelineOptions,
    /// The rejects file.
    pub rejects_file: Option<PathBuf>,
    /// Show progress bars.
    pub progress: bool,
    /// Outcomes of stages before the load (`fwload run`), kept with the
    /// run record.
    pub stages: serde_json::Value,
    /// `work_mem` and `maintenance_work_mem` for fwload's own sessions
    /// (a PostgreSQL size such as `256MB`); `None` keeps the server's.
    pub work_mem: Option<String>,
    /// Raised to stop the load (SIGINT, SIGTERM): nothing is committed.
    pub interrupt: Interrupt,
}

impl LoadOptions {
    /// An interrupted load's error, when a stop was raised.
    fn stopped(&self) -> Result<(), LoadError> {
        match self.interrupt.raised() {
            Some(signal) => Err(LoadError::interrupted(signal)),
            None => Ok(()),
        }
    }
}

/// Connects and sets the session's memory for joins, sorts and index
/// builds.
fn connect(opts: &LoadOptions) -> Result<Client, LoadError> {
    let mut db = opts.database.connect()?;
    opts.interrupt.watch(&opts.database, &db);
    opts.stopped()?;
    if let Some(m) = &opts.work_mem {
        db.execute(
            "SELECT set_config('work_mem', $1, false), \
             set_config('maintenance_work_mem', $1, false)",
            &[m],
        )
        .map_err(|e| LoadError::db(format!("setting work_mem to {m}"), e))?;
    }
    Ok(db)
}

/// What a load did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// The run's id in `{meta}.runs` (0 when none was recorded).
    pub run_id: i64,
    /// Dataset.
    pub dataset: String,
    /// Target schema.
    pub target_schema: String,
    /// Mode.
    pub mode: String,
    /// `succeeded`, `dry_run`, `unchanged`, `failed` or `refused`.
    pub status: String,
    /// Why, when not succeeded.
    pub reason: Option<String>,
    /// Per table, in load order.
    pub tables: Vec<TableOutcome>,
    /// Input files and members.
    pub files: Vec<RunFile>,
    /// Inputs skipped as unchanged since the last successful run.
    pub unchanged_inputs: Vec<String>,
    /// Members the inputs' archives should have and have not.
    pub missing: Vec<Missing>,
    /// What the inputs' control records state.
    pub controls: Vec<Control>,
    /// Rejects by layout, field and reason.
    pub reject_groups: Vec<RejectGroup>,
    /// Parse totals.
    pub counts: Counts,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// A failed load, with what was learned before it failed.
#[derive(Debug)]
pub struct LoadFailure {
    /// Why.
    pub error: LoadError,
    /// The report so far (status `failed` or `refused`).
    pub report: Option<Box<LoadReport>>,
}

impl From<LoadError> for LoadFailure {
    fn from(error: LoadError) -> Self {
        LoadFailure { error, report: None }
    }
}

/// The advisory lock key of a dataset.
pub(super) fn lock_key(dataset: &str, target_schema: &str) -> String {
    format!("fwload:{dataset}:{target_schema}")
}

/// Takes the dataset's advisory lock on `db` (held until it closes).
pub(super) fn lock(
    db: &mut Client,
    key: &str,
    no_wait: bool,
    on_wait: &dyn Fn(Option<i32>),
) -> Result<(), LoadError> {
    let ctx = |e| LoadError::db("taking the dataset lock", e);
    let got: bool = db
        .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&key])
        .map_err(ctx)?
        .get(0);
    if got {
        return Ok(());
    }
    let holder: Option<i32> = db
        .query_opt(
            "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
               AND l.objid = (hashtext($1)::bigint & 4294967295)::oid LIMIT 1",
            &[&key],
        )
        .map_err(ctx)?
        .map(|r| r.get(0));
    if no_wait {
        return Err(LoadError::busy(format!(
            "another load of {key} is running (server pid {}); not waiting (--no-wait)",
            holder.map_or("?".into(), |p| p.to_string())
        )));
    }
    on_wait(holder);
    db.execute("SELECT pg_advisory_lock(hashtext($1))", &[&key])
        .map_err(ctx)?;
    Ok(())
}

fn hash_file(path: &std::path::Path) -> Result<(u64, String), LoadError> {
    let f = std::fs::File::open(path)
        .map_err(|e| LoadError::input(format!("{}: {e}", path.display())))?;
    let (sha, n) =
        HashingReader::new(std::io::BufReader::with_capacity(1 << 20, f))
            .finish()
            .map_err(|e| {
                LoadError::input(format!("{}: {e}", path.display()))
            })?;
    Ok((n, sha))
}

/// Column differences between an existing table and a layout, one line
/// each; empty when they agree.
///
/// # Errors
/// A database error.
pub fn column_report(
    db: &mut Client,
    table: &str,
    layout: &Layout,
    soft: bool,
) -> Result<Vec<String>, LoadError> {
    let rows = db
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef
             FROM pg_attribute a WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum",
            &[&table],
        )
        .map_err(|e| LoadError::db(format!("reading the columns of {table}"), e))?;
    let have: BTreeMap<String, (String, bool, bool)> = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    let mut out = Vec::new();
    for f in &layout.fields {
        let want = f.decoder.ty.pg_format_type();
        match have.get(&f.name) {
            None => out.push(format!(
                "column {}: missing (the layout has {want})",
                f.name
            )),
            Some((got, _, _)) if *got != want => out.push(format!(
                "column {}: type is {got}, the layout has {want}",
                f.name
            )),
            _ => {}
        }
    }
    for (name, (ty, not_null, has_default)) in &have {
        if layout.field_index(name).is_some() {
            continue;
        }
        if name == "deleted_at" && soft {
            continue;
        }
        if *not_null && !*has_default {
            out.push(format!("column {name} ({ty}): not in the layout and NOT NULL without a default, so no row can be inserted"));
        }
    }
    if soft && !have.contains_key("deleted_at") {
        out.push("column deleted_at: missing, needed by --delete soft (timestamp with time zone)".into());
    }
    Ok(out)
}

/// Refuses inputs that feed no layout: a file given on the command line
/// none of whose members matches a layout (a nested zip, a tar of links,
/// a wrong archive), or inputs none of whose members match at all. As in
/// `validate`, loading nothing is an error, never an "unchanged" success.
fn nothing_to_load(
    inputs: &[PathBuf],
    files: &[PathBuf],
    listed: &[(usize, Vec<Listed>)],
) -> Result<(), LoadError> {
    let seen = |v: &[Listed]| {
        let names: Vec<&str> =
            v.iter().take(5).map(|(n, _, _)| n.as_str()).collect();
        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
    };
    for (i, v) in listed {
        if inputs.contains(&files[*i]) && v.iter().all(|m| m.2.is_none()) {
            return Err(LoadError::schema(format!(
                "{}: no member matches a layout of the schema, so nothing would be loaded (members seen: {})",
                files[*i].display(),
                seen(v)
            )));
        }
    }
    if listed.iter().all(|(_, v)| v.iter().all(|m| m.2.is_none())) {
        let all: Vec<Listed> =
            listed.iter().flat_map(|(_, v)| v.iter().cloned()).collect();
        return Err(LoadError::schema(format!(
            "no member of the inputs matches a layout of the schema, so nothing would be loaded (members seen: {})",
            seen(&all)
        )));
    }
    Ok(())
}

/// A member found in an input: name, declared size, layout index.
type Listed = (String, Option<u64>, Option<usize>);

struct Work {
    layout: usize,
    members: Vec<MemberRef>,
    /// Uncompressed bytes of the members, where the input says.
    bytes: u64,
}

/// Loads `inputs` into the targets of `set`.
///
/// # Errors
/// A [`LoadFailure`]; the targets are then exactly as before.
pub fn load(
    set: &SchemaSet,
    inputs: &[PathBuf],
    opts: &LoadOptions,
) -> Result<LoadReport, LoadFailure> {
    let started = Instant::now();
    let dataset = opts
        .dataset
        .clone()
        .or_else(|| set.dataset.as_ref().map(|d| d.name.clone()))
        .unwrap_or_else(|| {
            set.layouts.first().map(|l| l.name.clone()).unwrap_or_default()
        });
    let mut report = LoadReport {
        dataset: dataset.clone(),
        target_schema: opts.target_schema.clone(),
        mode: opts.mode.as_str().into(),
        status: "running".into(),
        ..Default::default()
    };
    // Inputs: digests first (they decide what is unchanged), then members.
    let files = source::expand_inputs(inputs)
        .map_err(|e| LoadError::input(e.to_string()))?;
    let digests: Vec<(u64, String)> = {
        use rayon::prelude::*;
        files.par_iter().map(|p| hash_file(p)).collect::<Result<_, _>>()?
    };
    let mut work: Vec<Work> = Vec::new();
    let mut file_no = 0u32;
    let mut names: HashMap<u32, (String, String)> = HashMap::new();
    let mut listed: Vec<(usize, Vec<Listed>)> = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let (members, _) = source::list_members(path, &opts.source)
            .map_err(|e| LoadError::input(e.to_string()))?;
        let mut v = Vec::new();
        for m in members {
            let li =
                layout_for(set, &m.name).map_err(LoadError::schema)?.and_then(
                    |l| set.layouts.iter().position(|x| x.name == l.name),
                );
            v.push((m.name, m.declared_size, li));
        }
        listed.push((i, v));
    }
    nothing_to_load(inputs, &files, &listed)?;
    let controls = read_controls(set, &files, opts)?;
    report.controls = controls.iter().flatten().cloned().collect();
    report.missing = listed
        .iter()
        .flat_map(|(i, v)| {
            let year = input_year(opts.year, controls[*i].as_ref());
            Missing::of_input(set, &files[*i], year, |l| {
                v.iter()
                    .any(|m| m.2.is_some_and(|li| set.layouts[li].name == l))
            })
        })
        .collect();
    if opts.strict {
        let unmatched: Vec<Unmatched> = listed
            .iter()
            .flat_map(|(i, v)| {
                v.iter().filter(|m| m.2.is_none()).map(|m| Unmatched {
                    input: files[*i].display().to_string(),
                    member: m.0.clone(),
                    size: m.1,
                })
            })
            .collect();
        if let Some(why) = incomplete(&unmatched, &report.missing) {
            return Err(LoadError::schema(format!(
                "{why}\nnothing was loaded"
            ))
            .into());
        }
    }
    let mut db = connect(opts)?;
    migrate(&mut db, &opts.meta)?;
    let key = lock_key(&dataset, &opts.target_schema);
    let show_wait = |pid: Option<i32>| {
        if opts.progress {
            eprintln!(
                "fwload: waiting for another load of dataset {dataset} into {} to finish (server pid {})",
                opts.target_schema,
                pid.map_or("?".into(), |p| p.to_string())
            );
        }
    };
    lock(&mut db, &key, opts.no_wait, &show_wait)?;
    // With the lock held, no other run of the dataset is alive: runs still
    // `running` were killed, and staging of committed runs is left over.
    meta::abandon_dead_runs(
        &mut db,
        &opts.meta,
        &dataset,
        &opts.target_schema,
    )?;
    meta::drop_spent_staging(
        &mut db,
        &opts.meta,
        &dataset,
        &opts.target_schema,
    )?;
    let outcome = outcome_key(set, opts.mode, opts.delete);
    let previous = if opts.force_reload {
        Default::default()
    } else {
        unchanged_inputs(
            &mut db,
            &opts.meta,
            set,
            (&dataset, &opts.target_schema),
            &outcome,
        )?
    };
    let mut total_bytes = 0u64;
    for (i, members) in &listed {
        let path = files[*i].display().to_string();
        let (size, sha) = &digests[*i];
        let unchanged = previous.contains(sha);
        if unchanged {
            report.unchanged_inputs.push(path.clone());
        }
        for (name, declared, li) in members {
            let status = match (li, unchanged) {
                (None, _) => "no layout",
                (Some(_), true) => "unchanged",
                (Some(_), false) => "loaded",
            };
            report.files.push(RunFile {
                input: path.clone(),
                input_size: *size as i64,
                input_sha256: sha.clone(),
                member: name.clone(),
                member_size: declared.map(|d| d as i64),
                member_sha256: None,
                layout: li.map(|l| set.layouts[l].name.clone()),
                rows: None,
                status: status.into(),
                version: None,
            });
            let (Some(li), false) = (li, unchanged) else { continue };
            names.insert(file_no, (path.clone(), name.clone()));
            let m = MemberRef {
                input: path.clone(),
                input_sha256: sha.clone(),
                member: name.clone(),
                file: file_no,
            };
            file_no += 1;
            let bytes = declared.unwrap_or(0);
            total_bytes += bytes;
            match work.iter_mut().find(|w| w.layout == *li) {
                Some(w) => {
                    w.members.push(m);
                    w.bytes += bytes;
                }
                None => {
                    work.push(Work { layout: *li, members: vec![m], bytes })
                }
            }
        }
    }
    work.sort_by_key(|w| w.layout);
    let run = meta::start_run(
        &mut db,
        &opts.meta,
        &meta::NewRun {
            dataset: &dataset,
            target_schema: &opts.target_schema,
            mode: opts.mode.as_str(),
            schema_hash: &set.hash,
            outcome_key: Some(&outcome),
            options: serde_json::to_value(RunOptions::of(opts))
                .unwrap_or_default(),
            stages: opts.stages.clone(),
            controls: serde_json::to_value(&report.controls)
                .unwrap_or_default(),
        },
    )?;

    report.run_id = run;
    let fail = |db: &mut Client,
                mut report: LoadReport,
                error: LoadError|
     -> LoadFailure {
        // A statement cancelled by the stop fails with the server's
        // "canceling statement": the stop is the reason.
        let error = match opts.interrupt.raised() {
            Some(signal) => LoadError::interrupted(signal),
            None => error,
        };
        let status = match error.kind() {
            LoadErrorKind::Refused(_) => "refused",
            LoadErrorKind::Interrupted(_) => "interrupted",
            _ => "failed",
        };
        report.status = status.into();
        report.reason = Some(error.to_string());
        report.seconds = started.elapsed().as_secs_f64();
        // The load's connection may be what failed: record the outcome on
        // a new one then (when that fails too, the next run of the
        // dataset marks this one abandoned).
        let record = |db: &mut Client| {
            meta::finish_run(
                db,
                &opts.meta,
                run,
                status,
                report.reason.as_deref(),
                &report,
            )
            .and_then(|()| {
                meta::record_files(db, &opts.meta, run, &report.files)
            })
        };
        if record(db).is_err()
            && let Ok(mut fresh) = opts.database.connect()
        {
            let _ = record(&mut fresh);
        }
        LoadFailure { error, report: Some(Box::new(report)) }
    };
    if work.is_empty() {
        report.status = "unchanged".into();
        report.seconds = started.elapsed().as_secs_f64();
        meta::record_files(&mut db, &opts.meta, run, &report.files)?;
        meta::finish_run(
            &mut db,
            &opts.meta,
            run,
            "unchanged",
            None,
            &report,
        )?;
        return Ok(report);
    }
    if !opts.force
        && let Err(e) = no_values_guard(&mut db, set, &report.controls, opts)
    {
        return Err(fail(&mut db, report, e));
    }
    // Targets: every one must exist (or be created) and match its layout.
    let soft = opts.delete == DeletePolicy::Soft;
    let mut missing = Vec::new();
    let mut problems = Vec::new();
    for w in &work {
        let layout = &set.layouts[w.layout];
        let target = target_name(&opts.target_schema, layout);
        let exists = match publish::table_exists(&mut db, &target) {
            Ok(b) => b,
            Err(e) => {
                return Err(fail(&mut db, report, e));
            }
        };
        if !exists {
            missing.push(w.layout);
            if !opts.create {
                problems.push(format!(
                    "{target}: does not exist (use --create to create it)"
                ));
            }
            continue;
        }
        match column_report(&mut db, &target, layout, soft) {
            Ok(v) => problems
                .extend(v.into_iter().map(|p| format!("{target}: {p}"))),
            Err(e) => return Err(fail(&mut db, report, e)),
        }
    }
    if !problems.is_empty() {
        let e = LoadError::schema(format!(
            "target tables do not match the schema; nothing was changed:\n  {}",
            problems.join("\n  ")
        ));
        return Err(fail(&mut db, report, e));
    }
    let rejects = RejectSinks {
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
    };
    let progress = Progress::new(total_bytes, "load", opts.progress);
    let export_versions: HashMap<String, String> = report
        .controls
        .iter()
        .filter_map(|c| Some((c.input.clone(), c.export_version.clone()?)))
        .collect();
    let cx = StageContext {
        meta: &opts.meta,
        dataset: &dataset,
        target_schema: &opts.target_schema,
        run,
        schema_hash: &set.hash,
        interrupt: &opts.interrupt,
        // The inputs were hashed above; each stage reads one member.
        source: SourceOptions { skip_archive_hash: true, ..opts.source },
        pipeline: PipelineOptions {
            // The --jobs pipelines share the workers: together they keep
            // about as many chunks alive as one would alone.
            in_flight: opts
                .pipeline
                .in_flight
                .div_ceil(opts.jobs.max(1))
                .max(3),
            ..opts.pipeline
        },

        references: set.references(),
        rejects: &rejects,
        progress: &progress,
        export_versions: &export_versions,
    };
    // Targets this load creates are built in place from their staging
    // tables: one write of the rows instead of two.
    let built = if opts.create && opts.mode != Mode::Replace {
        missing.clone()
    } else {
        Vec::new()
    };
    let plans: Vec<Arc<Plan>> =
        set.layouts.iter().map(|l| Arc::new(Plan::new(l.clone()))).collect();
    let targets: HashMap<String, String> = set
        .layouts
        .iter()
        .map(|l| (l.name.clone(), target_name(&opts.target_schema, l)))
        .collect();
    let names_of = |f: u32| names.get(&f).cloned().unwrap_or_default();
    let outcome = if opts.mode == Mode::Replace {
        replace::publish_replace(
            &mut db,
            &cx,
            set,
            &plans,
            &work_refs(&work),
            &targets,
            &names_of,
            opts,
        )
    } else {
        let loads: Vec<usize> = work.iter().map(|w| w.layout).collect();
        let publish = Publishing {
            set,
            targets: &targets,
            missing: &missing,
            names: &names_of,
            loads: &loads,
        };
        stage_and_publish(&mut db, opts, &cx, &plans, &work, &built, &publish)
    };
    progress.finish();
    report.reject_groups = rejects
        .groups
        .into_inner()
        .map(|g| g.into_groups())
        .unwrap_or_default();
    if let Some(f) = rejects.file
        && let Ok(w) = f.into_inner()
    {
        let _ = w.finish();
    }
    match outcome {
        Ok((tables, staged)) => {
            for s in &staged {
                for m in &s.members {
                    if let Some(f) = report
                        .files
                        .iter_mut()
                        .find(|f| f.input == m.input && f.member == m.member)
                    {
                        f.member_size = Some(m.bytes as i64);
                        f.member_sha256 = Some(m.sha256.clone());
                        f.rows = Some(m.counts.read as i64);
                        f.version.clone_from(&m.version);
                    }
                }
                report.counts += s.counts;
            }
            report.tables = tables;
            report.status = if opts.dry_run {
                "dry_run".into()
            } else {
                "succeeded".into()
            };
            report.seconds = started.elapsed().as_secs_f64();
            meta::record_files(&mut db, &opts.meta, run, &report.files)?;
            if opts.dry_run {
                meta::finish_run(
                    &mut db, &opts.meta, run, "dry_run", None, &report,
                )?;
            } else {
                // The success itself was recorded inside the publish
                // transaction; store the final report.
                meta::finish_run(
                    &mut db,
                    &opts.meta,
                    run,
                    "succeeded",
                    None,
                    &report,
                )?;
            }
            if opts.mode != Mode::Replace {
                drop_staging(
                    &mut db,
                    &opts.meta,
                    &dataset,
                    &opts.target_schema,
                    &staged,
                );
            }
            Ok(report)
        }
        Err(e) => Err(fail(&mut db, report, e)),
    }
}

fn work_refs(work: &[Work]) -> Vec<(usize, Vec<MemberRef>)> {
    work.iter().map(|w| (w.layout, w.members.clone())).collect()
}

/// The schema and name of a layout's target table.
pub fn target_parts(target_schema: &str, layout: &Layout) -> (String, String) {
    match layout.table.split_once('.') {
        Some((s, t)) => (s.to_owned(), t.to_owned()),
        None => (target_schema.to_owned(), layout.table.clone()),
    }
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// The qualified, quoted target table of a layout.
pub fn target_name(target_schema: &str, layout: &Layout) -> String {
    let (schema, table) = target_parts(target_schema, layout);
    qualified(&schema, &table)
}

#[derive(Serialize)]
struct RunOptions {
    mode: Mode,
    delete: DeletePolicy,
    max_delete_ratio: f64,
    thresholds: Thresholds,
    force: bool,
    force_reload: bool,
    dry_run: bool,
    resume: bool,
    create: bool,
    jobs: usize,
    database: String,
}

impl RunOptions {
    fn of(o: &LoadOptions) -> RunOptions {
        RunOptions {
            mode: o.mode,
            delete: o.delete,
            max_delete_ratio: o.max_delete_ratio,
            thresholds: o.thresholds,
            force: o.force,
            force_reload: o.force_reload,
            dry_run: o.dry_run,
            resume: o.resume,
            create: o.create,
            jobs: o.jobs,
            database: o.database.to_string(),
        }
    }
}

/// What publishing needs besides the staged tables.
struct Publishing<'a> {
    set: &'a SchemaSet,
    targets: &'a HashMap<String, String>,
    /// Layouts whose targets do not exist yet.
    missing: &'a [usize],
    names: &'a dyn Fn(u32) -> (String, String),
    /// Layouts this load publishes.
    loads: &'a [usize],
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
fn stage_and_publish(
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
        .map_err(|e| LoadError::input(format!("rejects spool: {e}")))?;
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
        let mut o = TableOutcome {
            layout: layout.name.clone(),
            table: target.clone(),
            read: s.counts.read,
            rejected: s.counts.rejected,
            filtered: s.counts.filtered,
            staged: s.rows,
            stage_seconds: s.seconds,
            reused: s.reused,
            restaged: s.restaged.clone(),
            ..Default::default()
        };
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
    let counts = serde_json::to_value(&out).unwrap_or_default();
    opts.stopped()?;
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
    if opts.dry_run {
        tx.rollback()
            .map_err(|e| LoadError::db("rolling back the dry run", e))?;
    } else {
        opts.stopped()?;
        tx.commit().map_err(|e| LoadError::db("committing", e))?;
    }
    Ok(out)
}

/// Reads every input's control record (see [`read_control`]) and checks
/// its year against `--year`.
///
/// # Errors
/// An input that cannot be read, or a control record that does not
/// decode or states another year (refused).
fn read_controls(
    set: &SchemaSet,
    files: &[PathBuf],
    opts: &LoadOptions,
) -> Result<Vec<Option<Control>>, LoadError> {
    files
        .iter()
        .map(|path| {
            let c = read_control(
                set,
                path,
                &opts.source,
                opts.pipeline.max_record_bytes,
            )
            .map_err(|e| match e {
                ControlError::Source(e) => LoadError::input(e.to_string()),
                ControlError::Refused(m) => LoadError::refused(m),
            })?;
            if let Some(c) = &c {
                c.check_year(opts.year).map_err(LoadError::refused)?;
            }
            Ok(c)
        })
        .collect()
}

/// Refuses an export whose control record says it carries no values when
/// a target of the dataset already holds rows (their values would be
/// overwritten with none); `--force` loads it anyway.
///
/// # Errors
/// The refusal, naming the input and the table; or a failed statement.
fn no_values_guard(
    db: &mut Client,
    set: &SchemaSet,
    controls: &[Control],
    opts: &LoadOptions,
) -> Result<(), LoadError> {
    let Some(c) = controls.iter().find(|c| c.no_values) else {
        return Ok(());
    };
    let control = set.dataset.as_ref().and_then(|d| d.control.as_ref());
    for l in &set.layouts {
        if control.is_some_and(|x| x.layout == l.name) {
            continue;
        }
        let target = target_name(&opts.target_schema, l);
        if !publish::table_exists(db, &target)? {
            continue;
        }
        let any: bool = db
            .query_one(&format!("SELECT EXISTS (SELECT FROM {target})"), &[])
            .map_err(|e| LoadError::db(format!("looking at {target}"), e))?
            .get(0);
        if any {
            return Err(LoadError::refused(format!(
                "{}:{}: the control record says this export carries no values, and {target} already holds rows with values; loading it would overwrite them (use --force to load it anyway); nothing was changed",
                c.input, c.member
            )));
        }
    }
    Ok(())
}

fn spool_rows(s: &Spool) -> u64 {
    s.rows()
}

/// Whether `s`'s staging table can become `layout`'s new target: a logged
/// table with the target's columns, whose final name is free in the
/// metadata schema it is renamed in, and no reference of the layout to
/// itself (which the target must exist for).
fn adoptable(
    tx: &mut postgres::Transaction<'_>,
    s: &Staged,
    layout: &Layout,
    cx: &StageContext<'_>,
    opts: &LoadOptions,
    set: &SchemaSet,
) -> Result<bool, LoadError> {
    if set.dataset.as_ref().is_some_and(|d| {
        d.references.iter().any(|r| r.from == layout.name && r.to == r.from)
    }) {
        return Ok(false);
    }
    let (_, table) = target_parts(cx.target_schema, layout);
    let soft = opts.delete == DeletePolicy::Soft;
    let row = tx
        .query_opt(
            "SELECT c.relpersistence = 'p'
                AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                            AND a.attname = 'deleted_at' AND NOT a.attisdropped) = $2
                AND to_regclass($3) IS NULL
             FROM pg_class c WHERE c.oid = to_regclass($1)",
            &[&s.table, &soft, &qualified(cx.meta, &table)],
        )
        .map_err(|e| LoadError::db(format!("looking at {}", s.table), e))?;
    Ok(row.is_some_and(|r| r.get(0)))
}

/// Makes `s`'s staging table `layout`'s target: renamed, moved to the
/// target schema, fwload's columns dropped, and its key and indexes (built
/// by the stage) given their standard names.
fn adopt(
    tx: &mut postgres::Transaction<'_>,
    s: &Staged,
    layout: &Layout,
    cx: &StageContext<'_>,
    set: &SchemaSet,
) -> Result<(), LoadError> {
    let (schema, table) = target_parts(cx.target_schema, layout);
    let target = qualified(&schema, &table);
    let ctx = |e| LoadError::db(format!("creating {target}"), e);
    let mut sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {}; ALTER TABLE {} RENAME TO {};",
        quote_ident(&schema),
        s.table,
        quote_ident(&table)
    );
    if schema != cx.meta {
        sql.push_str(&format!(
            "ALTER TABLE {} SET SCHEMA {};",
            qualified(cx.meta, &table),
            quote_ident(&schema)
        ));
    }
    tx.batch_execute(&sql).map_err(ctx)?;
    publish::drop_fwload_columns(tx, &target)?;
    publish::standard_names(tx, layout, (&schema, &table), set.references())
}

/// Creates a missing target table with its key and indexes (and the
/// target schema), inside the publish transaction.
fn create_target(
    tx: &mut postgres::Transaction<'_>,
    layout: &Layout,
    target: &str,
    opts: &LoadOptions,
    set: &SchemaSet,
) -> Result<(), LoadError> {
    let ctx = |e| LoadError::db(format!("creating {target}"), e);
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        quote_ident(&opts.target_schema)
    ))
    .map_err(ctx)?;
    tx.batch_execute(&create_table(
        layout,
        target,
        opts.delete == DeletePolicy::Soft,
    ))
    .map_err(ctx)?;
    for s in index_statements(layout, target, set.references()) {
        tx.batch_execute(&s).map_err(ctx)?;
    }
    Ok(())
}

/// Drops staging tables and their records after a finished run (best
/// effort: what is left is dropped by the dataset's next run).
fn drop_staging(
    db: &mut Client,
    meta: &str,
    dataset: &str,
    target_schema: &str,
    staged: &[Staged],
) {
    for s in staged {
        let _ = meta::drop_staged(
            db,
            meta,
            (dataset, target_schema),
            &s.layout,
            &s.table,
        );
    }
}
