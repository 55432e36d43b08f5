//! `fwload load`, `fwload runs`, `fwload rollback`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::fetch::parse_timeout;
use super::{CliResult, Exit, Failure, ReadArgs, SchemaArgs, write_json};
use crate::load::{
    Database, DeletePolicy, Interrupt, LoadError, LoadErrorKind, LoadOptions,
    LoadReport, Mode, Rollback, RunDetail, RunSummary, list_runs, load,
    rollback, rollback_runs, show_run,
};
use crate::report::Thresholds;

/// Where the database is.
#[derive(Args, Debug, Clone)]
pub(super) struct DbArgs {
    /// PostgreSQL connection URL or `key=value` string (else DATABASE_URL,
    /// else the PG* variables). `sslmode` may be disable, prefer, require,
    /// verify-ca or verify-full; `sslrootcert` names a CA file.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Schema holding fwload's own tables (runs, files, rejects).
    #[arg(long, default_value = "fwload", value_name = "NAME")]
    pub meta_schema: String,
}

impl DbArgs {
    fn resolve(&self) -> Result<Database, Failure> {
        Database::resolve(self.database_url.as_deref()).map_err(failure)
    }
}

/// Load modes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum ModeArg {
    /// Insert new keys, update rows whose values differ (default).
    Merge,
    /// Insert every row.
    Append,
    /// Insert new keys; only fill NULL columns of existing rows.
    Fill,
    /// Build new tables with COPY FREEZE and swap them in.
    Replace,
    /// Keep every version of every row (valid_from, valid_to).
    History,
}

/// Snapshot deletes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum DeleteArg {
    /// Keep rows missing from the input (default).
    None,
    /// Delete rows missing from the input.
    Hard,
    /// Set deleted_at on rows missing from the input.
    Soft,
}

/// Arguments of `fwload load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    #[command(flatten)]
    schema: SchemaArgs,
    #[command(flatten)]
    db: DbArgs,
    /// Input files: zip, tar, tar.gz, gz, plain files or directories.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// The export year: an export whose control record states another
    /// year is refused (exit 1); also which year-dependent members to
    /// expect.
    #[arg(long, value_name = "YEAR")]
    year: Option<i32>,
    #[command(flatten)]
    tuning: LoadTuning,
    #[command(flatten)]
    read: ReadArgs,
}

/// How a load behaves (shared by `load` and `run`).
#[derive(Args, Debug, Clone)]
pub(super) struct LoadTuning {
    /// Schema of the target tables.
    #[arg(long, default_value = "public", value_name = "NAME")]
    pub target_schema: String,
    /// Dataset name for run records and the lock (default: the dataset
    /// file's name).
    #[arg(long = "dataset-name", value_name = "NAME")]
    pub dataset_name: Option<String>,
    /// How rows reach the targets.
    #[arg(long, value_enum, default_value = "merge")]
    pub mode: ModeArg,
    /// What happens to target rows the input no longer has (merge only;
    /// the input must be a full snapshot).
    #[arg(long, value_enum, default_value = "none")]
    pub delete: DeleteArg,
    /// Refuse when deletes would remove more than this share of a table.
    #[arg(long, default_value_t = 0.05, value_name = "RATIO")]
    pub max_delete_ratio: f64,
    /// Refuse when more records than this are rejected (without either
    /// threshold, any reject refuses).
    #[arg(long, value_name = "N")]
    pub max_rejects: Option<u64>,
    /// Refuse when the share of rejected records exceeds this.
    #[arg(long, value_name = "RATIO")]
    pub max_reject_ratio: Option<f64>,
    /// Load despite the guards: deletes, rejects, totals that do not
    /// reconcile, a "no values" export over targets with values.
    #[arg(long)]
    pub force: bool,
    /// Keep what undoes a run (`fwload rollback --run ID`) for the
    /// dataset's newest N runs; 0 records none.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub keep_undo: u32,
    /// Load inputs even when identical to the last successful run's.
    #[arg(long)]
    pub force_reload: bool,
    /// Do everything, print what would change, roll back.
    #[arg(long)]
    pub dry_run: bool,
    /// Reuse the staged tables of a failed run whose inputs still match.
    #[arg(long)]
    pub resume: bool,
    /// Create missing target tables (with keys and indexes).
    #[arg(long)]
    pub create: bool,
    /// --mode history: when the load's versions become valid (a
    /// PostgreSQL timestamp such as `2025-04-01` or
    /// `2025-04-01 06:00+00`; default: the run's start).
    #[arg(long, value_name = "TIMESTAMP")]
    pub as_of: Option<String>,
    /// Fail at once (exit 6) when another load of the dataset is running.
    #[arg(long)]
    pub no_wait: bool,
    /// Refuse (exit 2, before connecting) when a member matches no layout,
    /// or an input that is one of the dataset's archives lacks a member
    /// for a layout it holds (`run` is strict unless `--no-strict`).
    #[arg(long)]
    pub strict: bool,
    /// Longest wait for the target tables' locks when `--mode replace`
    /// swaps them in (tried 5 times, letting go in between, so readers
    /// are never held up for longer); exit 6 when they stay in use.
    #[arg(long, default_value = "5", value_name = "SECS", value_parser = parse_timeout)]
    pub lock_timeout: Duration,
    /// Tables staged at once, each on its own connection.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub jobs: usize,
    /// work_mem and maintenance_work_mem of fwload's sessions, for the
    /// MERGE's joins and key and index builds; `server` keeps the
    /// server's settings.
    #[arg(long, default_value = "256MB", value_name = "SIZE",
          value_parser = parse_work_mem)]
    pub work_mem: WorkMem,
    /// Write every reject to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Write the run's report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}

impl LoadTuning {
    /// Resolved load options.
    ///
    /// # Errors
    /// A bad database setting or option combination.
    /// The load's progress bar and waiting notes (none under `-q`).
    fn events(&self) -> crate::load::LoadEvents {
        use crate::load::{MakeProgress, Notify};
        let show = !self.quiet;
        let bar: MakeProgress = std::sync::Arc::new(|total| {
            crate::report::Progress::new(total, "load", true)
        });
        let note: Notify =
            std::sync::Arc::new(|m: &str| eprintln!("fwload: {m}"));
        crate::load::LoadEvents {
            progress: show.then_some(bar),
            waiting: show.then_some(note),
        }
    }

    pub(super) fn options(
        &self,
        db: &DbArgs,
        read: &ReadArgs,
    ) -> Result<LoadOptions, Failure> {
        let (source, pipeline) = read.resolve();
        let opts = LoadOptions {
            database: db.resolve()?,
            meta: db.meta_schema.clone(),
            target_schema: self.target_schema.clone(),
            dataset: self.dataset_name.clone(),
            mode: match self.mode {
                ModeArg::Merge => Mode::Merge,
                ModeArg::Append => Mode::Append,
                ModeArg::Fill => Mode::Fill,
                ModeArg::Replace => Mode::Replace,
                ModeArg::History => Mode::History,
            },
            delete: match self.delete {
                DeleteArg::None => DeletePolicy::None,
                DeleteArg::Hard => DeletePolicy::Hard,
                DeleteArg::Soft => DeletePolicy::Soft,
            },
            max_delete_ratio: self.max_delete_ratio,
            thresholds: Thresholds::new(
                self.max_rejects,
                self.max_reject_ratio,
            ),
            force: self.force,
            keep_undo: self.keep_undo,
            force_reload: self.force_reload,
            dry_run: self.dry_run,
            resume: self.resume,
            create: self.create,
            no_wait: self.no_wait,
            strict: self.strict,
            year: None,
            lock_timeout: self.lock_timeout,
            jobs: self.jobs,
            source,
            pipeline,
            rejects_file: self.rejects.clone(),
            events: self.events(),
            stages: serde_json::Value::Null,
            work_mem: self.work_mem.0.clone(),
            as_of: self.as_of.clone(),
            interrupt: stop_on_signals(),
        };
        match (opts.mode, opts.delete) {
            (_, DeletePolicy::None) | (Mode::Merge, _) => {}
            (Mode::History, DeletePolicy::Hard) => {}
            (Mode::History, DeletePolicy::Soft) => {
                return Err(Failure::msg(
                    Exit::Usage,
                    "--mode history closes the versions of rows missing from the input: use --delete hard",
                ));
            }
            _ => {
                return Err(Failure::msg(
                    Exit::Usage,
                    "--delete applies to --mode merge and history only",
                ));
            }
        }
        if opts.as_of.is_some() && opts.mode != Mode::History {
            return Err(Failure::msg(
                Exit::Usage,
                "--as-of applies to --mode history only",
            ));
        }
        Ok(opts)
    }

    /// Prints the summary and writes the JSON report of a load's outcome.
    ///
    /// # Errors
    /// The load's failure, or an output error.
    pub(super) fn finish(
        &self,
        outcome: Result<LoadReport, crate::load::LoadFailure>,
    ) -> CliResult {
        self.finish_report(outcome).map(|_| Exit::Ok)
    }

    /// [`LoadTuning::finish`], handing back the report of a load that
    /// succeeded.
    ///
    /// # Errors
    /// The load's failure, or an output error.
    pub(super) fn finish_report(
        &self,
        outcome: Result<LoadReport, crate::load::LoadFailure>,
    ) -> Result<LoadReport, Failure> {
        match outcome {
            Ok(r) => {
                self.write_report(&r)?;
                Ok(r)
            }
            Err(f) => {
                if let Some(r) = &f.report {
                    self.write_report(r)?;
                }
                Err(failure(f.error))
            }
        }
    }

    /// Prints a load's summary and writes its JSON report (`--report`).
    fn write_report(&self, r: &LoadReport) -> Result<(), Failure> {
        write_summary(&mut std::io::stdout().lock(), r)?;
        if let Some(p) = &self.report {
            write_json(p, r)?;
        }
        Ok(())
    }
}

/// `fwload runs …`
#[derive(Args, Debug)]
pub struct RunsArgs {
    #[command(subcommand)]
    command: Option<RunsCommand>,
    #[command(flatten)]
    db: DbArgs,
    /// Only runs of this dataset.
    #[arg(long, value_name = "NAME")]
    dataset: Option<String>,
    /// How many runs to list.
    #[arg(long, default_value_t = 20)]
    limit: i64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `fwload runs show ID`
#[derive(Subcommand, Debug)]
pub(super) enum RunsCommand {
    /// One run with its files and reject counts.
    Show {
        /// The run id.
        id: i64,
    },
}

/// Arguments of `fwload rollback`.
#[derive(Args, Debug)]
pub struct RollbackArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Undo this run: its tables go back to exactly what they were
    /// before it (repeat to undo several runs together, newest first).
    #[arg(long, value_name = "ID", required_unless_present = "dataset")]
    run: Vec<i64>,
    /// Without --run: the dataset whose replaced tables go back one
    /// generation.
    #[arg(long, value_name = "NAME")]
    dataset: Option<String>,
    /// Schema of the target tables.
    #[arg(long, default_value = "public", value_name = "NAME")]
    target_schema: String,
    /// Roll back even though later runs changed the tables (their
    /// changes are undone too).
    #[arg(long)]
    force: bool,
    /// A dataset kept by year: roll back the newest replace of this year.
    #[arg(long, value_name = "YEAR")]
    year: Option<i32>,
    /// Longest wait for the tables' locks, per try (see `load`).
    #[arg(long, default_value = "5", value_name = "SECS", value_parser = parse_timeout)]
    lock_timeout: Duration,
}

/// A stop request raised by the first SIGINT or SIGTERM: the load stops,
/// rolls back and records the run as interrupted. A second signal ends
/// the process at once (the server rolls back what was not committed).
fn stop_on_signals() -> Interrupt {
    let stop = Interrupt::new();
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) else {
        return stop;
    };
    let raise = stop.clone();
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if raise.raised().is_some() {
                std::process::exit(128 + signal);
            }
            let name = if signal == SIGTERM { "SIGTERM" } else { "SIGINT" };
            eprintln!(
                "fwload: {name}: stopping, nothing will be committed (again to exit at once)"
            );
            raise.raise(signal);
        }
    });
    stop
}

/// The exit code of a load error.
pub(super) fn exit_of(e: &LoadError) -> Exit {
    match e.kind() {
        LoadErrorKind::Config(_) | LoadErrorKind::Schema(_) => Exit::Usage,
        LoadErrorKind::Source(_)
        | LoadErrorKind::Input(_)
        | LoadErrorKind::Spill { .. } => Exit::Input,
        LoadErrorKind::Refused(_) => Exit::Data,
        LoadErrorKind::Busy(_) => Exit::Busy,
        LoadErrorKind::Interrupted(signal) if *signal == SIGTERM => {
            Exit::Terminate
        }
        LoadErrorKind::Interrupted(_) => Exit::Interrupt,
        _ => Exit::Database,
    }
}

pub(super) fn failure(e: LoadError) -> Failure {
    Failure::new(exit_of(&e), e)
}

/// Writes the per-table summary.
pub(super) fn write_summary(
    w: &mut dyn Write,
    r: &LoadReport,
) -> std::io::Result<()> {
    writeln!(
        w,
        "{:<32} {:>10} {:>9} {:>10} {:>10} {:>10} {:>9} {:>8}",
        "table",
        "read",
        "rejected",
        "inserted",
        "updated",
        "unchanged",
        "deleted",
        "seconds"
    )?;
    for t in &r.tables {
        writeln!(
            w,
            "{:<32} {:>10} {:>9} {:>10} {:>10} {:>10} {:>9} {:>8.2}{}",
            t.table,
            t.read,
            t.rejected,
            t.inserted,
            t.updated,
            t.unchanged,
            t.deleted,
            t.stage_seconds + t.publish_seconds,
            if t.reused { "  (staging reused)" } else { "" }
        )?;
        if let Some(why) = &t.restaged {
            writeln!(w, "  staged again, not reused: {why}")?;
        }
        if t.orphans > 0 {
            writeln!(
                w,
                "{:<32} {} rows reference keys their parent table lacks",
                "", t.orphans
            )?;
        }
        if let Some(m) = &t.reconciled {
            writeln!(w, "  reconciled: {m}")?;
        }
    }
    for c in &r.controls {
        writeln!(w, "{}", crate::report::control_line(c))?;
    }
    for f in &r.files {
        if let Some(v) = &f.version {
            writeln!(w, "{}:{} read as version {v}", f.input, f.member)?;
        }
    }
    for c in &r.checks {
        writeln!(
            w,
            "check '{}' passed: {} (expected {})",
            c.name, c.found, c.expected
        )?;
    }
    for u in &r.unchanged_inputs {
        writeln!(w, "unchanged since the last successful run: {u}")?;
    }
    for f in r.files.iter().filter(|f| f.layout.is_none()) {
        writeln!(
            w,
            "note: {}:{} matches no layout and was not read",
            f.input, f.member
        )?;
    }
    for m in &r.missing {
        writeln!(w, "note: {m}")?;
    }
    if !r.reject_groups.is_empty() {
        writeln!(w, "\nrejects by field and reason:")?;
        for g in &r.reject_groups {
            writeln!(
                w,
                "  {:>10}  {}.{}  {}",
                g.count,
                g.layout,
                g.field.as_deref().unwrap_or("(record)"),
                g.reason
            )?;
            writeln!(w, "              first: {}", g.first)?;
        }
    }
    let what = match r.status.as_str() {
        "dry_run" => "dry run: nothing was changed (rolled back)",
        "unchanged" => {
            "every input is unchanged since the last successful run: nothing to load"
        }
        "succeeded" => "committed",
        other => other,
    };
    let period = r.period.map(|p| format!(", period {p}")).unwrap_or_default();
    writeln!(
        w,
        "\nrun {} of dataset {}{period}: {what} in {:.2} s",
        r.run_id, r.dataset, r.seconds
    )
}

pub(super) fn run(a: LoadArgs) -> CliResult {
    let set = a.schema.load()?;
    let mut opts = a.tuning.options(&a.db, &a.read)?;
    opts.year = a.year;
    a.tuning.finish(load(&set, &a.inputs, &opts))
}

pub(super) fn runs(a: RunsArgs) -> CliResult {
    let mut db = a.db.resolve()?.connect().map_err(failure)?;
    let mut out = std::io::stdout().lock();
    match a.command {
        None => {
            let runs = list_runs(
                &mut db,
                &a.db.meta_schema,
                a.dataset.as_deref(),
                a.limit,
            )
            .map_err(failure)?;
            if a.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&runs).unwrap_or_default()
                )?;
                return Ok(Exit::Ok);
            }
            write_runs(&mut out, &runs)?;
        }
        Some(RunsCommand::Show { id }) => {
            let d =
                show_run(&mut db, &a.db.meta_schema, id).map_err(failure)?;
            if a.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&d).unwrap_or_default()
                )?;
                return Ok(Exit::Ok);
            }
            write_run(&mut out, &d)?;
        }
    }
    Ok(Exit::Ok)
}

/// Writes the list of runs, one line each (and the first line of why,
/// when a run did not succeed).
fn write_runs(
    out: &mut dyn Write,
    runs: &[RunSummary],
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>6}  {:<12} {:<10} {:<8} {:<10} {:<30} {:>9}",
        "id", "dataset", "schema", "mode", "status", "started", "seconds"
    )?;
    for r in runs {
        writeln!(
            out,
            "{:>6}  {:<12} {:<10} {:<8} {:<10} {:<30} {:>9}",
            r.id,
            r.dataset,
            r.target_schema,
            r.mode,
            r.status,
            r.started_at,
            r.seconds.map(|s| format!("{s:.2}")).unwrap_or_default()
        )?;
        if let Some(why) = &r.reason {
            writeln!(out, "        {}", why.lines().next().unwrap_or(""))?;
        }
    }
    Ok(())
}

/// Writes one run: what it was, its control records, files, tables and
/// rejects.
fn write_run(out: &mut dyn Write, d: &RunDetail) -> std::io::Result<()> {
    let r = &d.run;
    writeln!(
        out,
        "run {}: dataset {} into {}, mode {}, {}",
        r.id, r.dataset, r.target_schema, r.mode, r.status
    )?;
    writeln!(
        out,
        "started {}, {} s, fwload {}",
        r.started_at,
        r.seconds.map(|s| format!("{s:.2}")).unwrap_or("-".into()),
        r.fwload_version
    )?;
    if let Some(why) = &r.reason {
        writeln!(out, "reason: {why}")?;
    }
    let controls: Vec<crate::pipeline::Control> =
        serde_json::from_value(d.controls.clone()).unwrap_or_default();
    for c in &controls {
        writeln!(out, "{}", crate::report::control_line(c))?;
    }
    write_run_files(out, d)?;
    write_run_tables(out, d)?;
    write_run_rejects(out, d)
}

/// Writes a run's input files and members.
fn write_run_files(out: &mut dyn Write, d: &RunDetail) -> std::io::Result<()> {
    writeln!(out, "\nfiles:")?;
    for f in &d.files {
        writeln!(
            out,
            "  {}:{}  {}  {} rows  member sha256 {}  input sha256 {}",
            f.input,
            f.member,
            f.status,
            f.rows.map(|n| n.to_string()).unwrap_or("-".into()),
            f.member_sha256.as_deref().unwrap_or("-"),
            f.input_sha256
        )?;
        if let Some(v) = &f.version {
            writeln!(out, "    read as version {v}")?;
        }
    }
    Ok(())
}

/// Writes a run's per-table counts, when its report has them.
fn write_run_tables(
    out: &mut dyn Write,
    d: &RunDetail,
) -> std::io::Result<()> {
    let Some(tables) = d.counts.get("tables").and_then(|t| t.as_array())
    else {
        return Ok(());
    };
    writeln!(out, "\ntables:")?;
    for t in tables {
        writeln!(
            out,
            "  {}  read {} rejected {} inserted {} updated {} unchanged {} deleted {}",
            t["table"].as_str().unwrap_or("?"),
            t["read"],
            t["rejected"],
            t["inserted"],
            t["updated"],
            t["unchanged"],
            t["deleted"]
        )?;
    }
    Ok(())
}

/// Writes a run's rejects per layout, field and reason code.
fn write_run_rejects(
    out: &mut dyn Write,
    d: &RunDetail,
) -> std::io::Result<()> {
    writeln!(out, "\nrejects:")?;
    if d.rejects.is_empty() {
        writeln!(out, "  none")?;
    }
    for (layout, field, code, n) in &d.rejects {
        writeln!(
            out,
            "  {n:>10}  {layout}.{}  {code}",
            field.as_deref().unwrap_or("(record)")
        )?;
    }
    Ok(())
}

pub(super) fn rollback_cmd(a: RollbackArgs) -> CliResult {
    let mut db = a.db.resolve()?.connect().map_err(failure)?;
    let mut out = std::io::stdout().lock();
    if !a.run.is_empty() {
        let done = rollback_runs(&mut db, &a.db.meta_schema, &a.run)
            .map_err(failure)?;
        for (run, tables) in &done.runs {
            for t in tables {
                writeln!(out, "{t}: as before run {run}")?;
            }
        }
        writeln!(out, "recorded as run {}", done.run)?;
        return Ok(Exit::Ok);
    }
    let dataset = a.dataset.as_deref().unwrap_or_default();
    let done = rollback(
        &mut db,
        &a.db.meta_schema,
        (dataset, &a.target_schema, a.year),
        a.force,
        a.lock_timeout,
    )
    .map_err(failure)?;
    match done {
        Rollback::Done { run, undone, tables } => {
            for t in tables {
                writeln!(
                    out,
                    "{t}: back to the generation before run {undone}"
                )?;
            }
            writeln!(out, "recorded as run {run}")?;
        }
        Rollback::AlreadyDone { undone, by } => writeln!(
            out,
            "nothing to roll back: run {undone} was already rolled back by run {by}"
        )?,
    }
    Ok(Exit::Ok)
}

/// A `--work-mem` value: a PostgreSQL memory size, or `None` for the
/// server's own setting.
#[derive(Clone, Debug)]
pub(super) struct WorkMem(pub Option<String>);

/// Parses `--work-mem`: digits with a unit of `kB`, `MB` or `GB` (as
/// PostgreSQL spells them; `k`, `M`, `G` are accepted too), at least
/// 64kB, or `server`.
fn parse_work_mem(s: &str) -> Result<WorkMem, String> {
    if s == "server" {
        return Ok(WorkMem(None));
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (n, unit) = s.split_at(digits);
    let kib: u64 = match unit {
        "kB" | "k" => 1,
        "MB" | "M" => 1024,
        "GB" | "G" => 1024 * 1024,
        _ => {
            return Err(format!(
                "{s:?}: expected a size such as 64MB or 1GB (kB, MB or GB), or server"
            ));
        }
    };
    let total = n
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(kib))
        .filter(|&k| (64..=2_147_483_647).contains(&k))
        .ok_or_else(|| format!("{s:?}: must be between 64kB and 2047GB"))?;
    Ok(WorkMem(Some(format!("{total}kB"))))
}

#[cfg(test)]
mod tests {
    use super::{exit_of, failure, parse_work_mem};
    use crate::cli::exit::Exit;
    use crate::load::LoadError;
    use std::io;

    /// A `COPY` write that fails without a server error (the connection
    /// closed under it) is a database failure, exit 4: not an unreadable
    /// input (exit 3), and not the closed standard output that ends
    /// `fwload … | head` quietly (exit 0).
    #[test]
    fn a_failed_copy_write_is_a_database_error() {
        let closed = io::Error::new(io::ErrorKind::BrokenPipe, "closed");
        let e = LoadError::copy("recording rejects", closed);
        assert_eq!(exit_of(&e), Exit::Database);
        assert_eq!(e.to_string(), "recording rejects");
        assert_eq!(e.line(), "recording rejects: closed");
        let f = failure(e);
        assert!(!f.is_closed_stdout());
        assert_eq!(f.error.chain().count(), 2, "the write error is its cause");
    }

    #[test]
    fn work_mem_sizes() {
        let kb = |s| parse_work_mem(s).unwrap().0;
        assert_eq!(kb("256MB"), Some("262144kB".into()));
        assert_eq!(kb("1G"), Some("1048576kB".into()));
        assert_eq!(kb("64kB"), Some("64kB".into()));
        assert_eq!(kb("server"), None);
        for bad in ["", "MB", "12", "1.5GB", "-1MB", "63kB", "9999999GB"] {
            assert!(parse_work_mem(bad).is_err(), "{bad}");
        }
    }
}
