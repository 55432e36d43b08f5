//! `fwload run`: fetch → validate → load, stage by stage, each stage's
//! outcome kept with the run record. Nothing touches the target tables
//! unless the downloads succeeded and validation passed its thresholds;
//! nothing is loaded when every input is unchanged since the last
//! successful run.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::fetch::{Bars, FetchTuning, print_summary, setup_exit};
use super::load::{DbArgs, LoadTuning, failure};
use super::{CliResult, Exit, Failure, ReadArgs};
use crate::fetch::{FetchOutcome, Source, Status, fetch_all_blocking};
use crate::load::{
    LoadOptions, LoadReport, NewRun, finish_run, load, migrate, outcome_key,
    resolve_period, start_run, unchanged_inputs, year_inputs,
};
use crate::report::{Progress, incomplete};
use crate::schema::{Dataset, SchemaSet};
use crate::validate::{ValidateError, ValidateOptions, validate};

/// Arguments of `fwload run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    flags: RunFlags,
    /// The year, replacing `{year}` in archive names and URLs.
    #[arg(long, value_name = "YEAR")]
    year: Option<String>,
    /// Download folder (default: data/<dataset>/<year>).
    #[arg(long, short = 'd', value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// What `run` and `backfill` share: the dataset, how its archives are
/// fetched and how they are loaded.
#[derive(Args, Debug)]
pub(super) struct RunFlags {
    /// Schema directory of the dataset; its dataset.toml lists the
    /// archives to download.
    #[arg(
        long = "dataset",
        visible_alias = "schema",
        short = 's',
        value_name = "PATH"
    )]
    dataset: PathBuf,
    /// Download again even when the server says a file has not changed.
    #[arg(long)]
    refetch: bool,
    #[command(flatten)]
    fetch: FetchTuning,
    #[command(flatten)]
    db: DbArgs,
    /// Load even when a member matches no layout or an archive lacks a
    /// member (`run` is otherwise strict: see `load --strict`).
    #[arg(long)]
    no_strict: bool,
    #[command(flatten)]
    pub(super) load: LoadTuning,
    #[command(flatten)]
    read: ReadArgs,
}

/// A dataset ready to run for one year after another: its schemas and
/// the load's options (their year set per run).
pub(super) struct Prepared {
    set: SchemaSet,
    ds: Dataset,
    opts: LoadOptions,
    dataset: String,
}

impl Prepared {
    /// The dataset's name, as run records give it.
    pub(super) fn name(&self) -> &str {
        &self.dataset
    }

    /// Whether the dataset keeps its targets by period (years side by
    /// side).
    pub(super) fn has_period(&self) -> bool {
        self.set.period().is_some()
    }

    /// The signal that stopped the process's loads, if one came.
    pub(super) fn interrupted(&self) -> Option<i32> {
        self.opts.interrupt.raised()
    }
}

impl RunFlags {
    /// Loads the dataset's schemas and resolves the load's options.
    ///
    /// # Errors
    /// Schema errors, no dataset file, bad options.
    pub(super) fn prepare(&self) -> Result<Prepared, Failure> {
        let set = SchemaSet::load(std::slice::from_ref(&self.dataset))
            .map_err(|e| {
                Failure::msg(Exit::Usage, format!("schema errors:\n{e}"))
            })?;
        let Some(ds) = set.dataset.clone() else {
            return Err(Failure::msg(
                Exit::Usage,
                format!("{}: no dataset.toml", self.dataset.display()),
            ));
        };
        let mut opts = self.load.options(&self.db, &self.read)?;
        opts.strict = !self.no_strict;
        let dataset = opts.dataset.clone().unwrap_or_else(|| ds.name.clone());
        Ok(Prepared { set, ds, opts, dataset })
    }
}

/// What one year's run did.
pub(super) enum Ran {
    /// The inputs were validated and loaded (the load's report).
    Loaded(Box<LoadReport>),
    /// Every input was unchanged since the last successful load: nothing
    /// was validated or loaded.
    Unchanged,
    /// The run stopped: its exit code and reason.
    Failed(Failure),
}

/// How a run decides that its inputs are unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unchanged {
    /// Against the last successful load of the dataset (of the same
    /// period, for a dataset kept by period).
    SinceLast,
    /// Also against the last successful load of the same year, when no
    /// older data was loaded since (see `year_inputs`): a backfill of a
    /// dataset whose years share the targets.
    SinceYear,
}

/// A `run` under way: the dataset, the load's options, and each stage's
/// outcome so far (kept with the run record).
struct Run<'a> {
    set: &'a SchemaSet,
    opts: LoadOptions,
    dataset: String,
    stages: serde_json::Value,
}

impl Run<'_> {
    /// Records a run that ended before the load stage (best effort: when
    /// the database cannot be reached the exit code still tells what
    /// happened).
    fn record(&self, status: &str, reason: Option<&str>) {
        let opts = &self.opts;
        let Ok(mut db) = opts.database.connect() else { return };
        if migrate(&mut db, &opts.meta).is_err() {
            return;
        }
        let new = NewRun {
            dataset: &self.dataset,
            target_schema: &opts.target_schema,
            mode: opts.mode.as_str(),
            schema_hash: &self.set.hash,
            outcome_key: None,
            options: json!({}),
            stages: self.stages.clone(),
            controls: serde_json::Value::Null,
            period: None,
            year: opts.year,
        };
        if let Ok(run) = start_run(&mut db, &opts.meta, &new) {
            let _ = finish_run(
                &mut db,
                &opts.meta,
                run,
                status,
                reason,
                &self.stages,
            );
        }
    }

    /// Ends the run before the load: recorded with `status`, failing
    /// with `code`.
    fn stop(&self, status: &str, code: Exit, reason: String) -> Failure {
        self.record(status, Some(&reason));
        Failure::msg(code, reason)
    }

    /// Whether every downloaded input is one the last successful run with
    /// the same outcome key loaded (or, under [`Unchanged::SinceYear`],
    /// exactly the inputs the year's last successful load loaded).
    fn unchanged(
        &self,
        outcomes: &[FetchOutcome],
        how: Unchanged,
    ) -> Result<bool, Failure> {
        let opts = &self.opts;
        let digests: HashSet<&String> = outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().ok().map(|f| &f.sha256))
            .collect();
        let paths: Vec<PathBuf> =
            outcomes.iter().map(|o| o.path.clone()).collect();
        let period = resolve_period(self.set, &paths, &[], opts)
            .map_err(failure)?
            .map(|p| p.value);
        let mut db = opts.database.connect().map_err(failure)?;
        migrate(&mut db, &opts.meta).map_err(failure)?;
        let place = (self.dataset.as_str(), opts.target_schema.as_str());
        let key = outcome_key(self.set, opts.mode, opts.delete, period);
        if let (Unchanged::SinceYear, Some(year)) = (how, opts.year) {
            let loaded =
                year_inputs(&mut db, &opts.meta, self.set, place, &key, year)
                    .map_err(failure)?;
            if !loaded.is_empty()
                && loaded.len() == digests.len()
                && digests.iter().all(|d| loaded.contains(*d))
            {
                return Ok(true);
            }
        }
        let previous = unchanged_inputs(
            &mut db, &opts.meta, self.set, place, &key, period,
        )
        .map_err(failure)?;
        Ok(digests.iter().all(|d| previous.contains(*d)))
    }

    /// Validates the inputs with no database; refuses to go on when the
    /// inputs are incomplete (strict) or rejects cross a threshold.
    fn validate(
        &mut self,
        inputs: &[PathBuf],
        total: u64,
        quiet: bool,
        out: &mut impl Write,
    ) -> Result<(), Failure> {
        let opts = &self.opts;
        let progress = Progress::new(total, "validate", !quiet);
        let summary = validate(
            self.set,
            inputs,
            &ValidateOptions {
                source: opts.source,
                pipeline: opts.pipeline,
                year: opts.year,
            },
            None,
            &progress,
        );
        progress.finish();
        let summary = match summary {
            Ok(s) => s,
            Err(e) => {
                let code = match e {
                    ValidateError::Source(_) | ValidateError::Input(_) => {
                        Exit::Input
                    }
                    ValidateError::Control(_) => Exit::Data,
                    _ => Exit::Usage,
                };
                let error = crate::report::one_line(&e);
                self.stages["validate"] = json!({ "error": error });
                self.record("failed", Some(&error));
                return Err(Failure::new(code, e));
            }
        };
        summary.write_text(out)?;
        self.stages["validate"] = json!({
            "totals": summary.totals,
            "reject_groups": summary.reject_groups,
            "seconds": summary.seconds,
        });
        let opts = &self.opts;
        if let Some(why) = opts
            .strict
            .then(|| incomplete(&summary.unmatched, &summary.missing))
            .flatten()
        {
            let reason = format!(
                "{why}\nnothing was loaded (--no-strict loads anyway)"
            );
            return Err(self.stop("refused", Exit::Usage, reason));
        }
        if let Some(why) = opts
            .thresholds
            .crossed(summary.totals.rejected, summary.totals.read)
            && !opts.force
        {
            let reason = format!(
                "validation failed: {why}; nothing was loaded (use --force to load anyway)"
            );
            return Err(self.stop("refused", Exit::Data, reason));
        }
        Ok(())
    }
}

/// Each download's outcome, as the run record keeps it.
fn fetch_stage(outcomes: &[FetchOutcome]) -> serde_json::Value {
    outcomes
        .iter()
        .map(|o| match &o.result {
            Ok(f) => json!({
                "file": o.source.name,
                "url": o.source.url,
                "status": f.status.as_str(),
                "size": f.size,
                "sha256": f.sha256,
                "attempts": o.attempts,
            }),
            Err(e) => json!({
                "file": o.source.name,
                "url": o.source.url,
                "status": "failed",
                "error": e.to_string(),
                "attempts": o.attempts,
            }),
        })
        .collect()
}

pub(super) fn run(a: RunArgs) -> CliResult {
    let prepared = a.flags.prepare()?;
    let year = a.year.as_deref();
    match run_year(&a.flags, &prepared, year, a.dir, Unchanged::SinceLast) {
        Ran::Loaded(_) | Ran::Unchanged => Ok(Exit::Ok),
        Ran::Failed(f) => Err(f),
    }
}

/// One run of the dataset for `year` (`None`: archives with no
/// `{year}`): fetch into `dir` (default data/<dataset>/<year>), skip
/// when every input is unchanged, validate, load; printing as it goes.
pub(super) fn run_year(
    flags: &RunFlags,
    prepared: &Prepared,
    year: Option<&str>,
    dir: Option<PathBuf>,
    how: Unchanged,
) -> Ran {
    match run_year_impl(flags, prepared, year, dir, how) {
        Ok(ran) => ran,
        Err(f) => Ran::Failed(f),
    }
}

fn run_year_impl(
    flags: &RunFlags,
    prepared: &Prepared,
    year: Option<&str>,
    dir: Option<PathBuf>,
    how: Unchanged,
) -> Result<Ran, Failure> {
    let Prepared { set, ds, opts, dataset } = prepared;
    let mut opts = opts.clone();
    // A four-digit --year is also the export year a control record must
    // state.
    opts.year = year.and_then(|y| y.parse().ok());
    let dir = dir.unwrap_or_else(|| {
        PathBuf::from("data").join(&ds.name).join(year.unwrap_or("current"))
    });
    let sources = Source::from_dataset(ds, year)
        .map_err(|e| Failure::new(Exit::Usage, e))?;
    if sources.is_empty() {
        return Err(Failure::msg(
            Exit::Usage,
            format!("dataset {} lists no archive with a url", ds.name),
        ));
    }
    let mut stdout = std::io::stdout().lock();
    // 1. fetch
    writeln!(stdout, "== fetch into {}", dir.display())?;
    let outcomes = fetch_all_blocking(
        sources,
        &flags.fetch.options(&dir, flags.refetch),
        &Bars::new(!flags.load.quiet),
    )
    .map_err(|e| Failure::new(setup_exit(&e), e))?;
    print_summary(&outcomes)?;
    let mut run = Run {
        set,
        opts,
        dataset: dataset.clone(),
        stages: json!({ "fetch": fetch_stage(&outcomes) }),
    };
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| o.status() == Status::Failed)
        .map(|o| match &o.result {
            Err(e) => e.to_string(),
            Ok(_) => o.source.name.clone(),
        })
        .collect();
    if !failed.is_empty() {
        let reason = format!(
            "fetch failed, nothing was loaded:\n  {}",
            failed.join("\n  ")
        );
        return Err(run.stop("failed", Exit::Fetch, reason));
    }
    // 2. unchanged since the last success?
    // (The database is reached here even under --force-reload, so that a
    // wrong URL fails before the inputs are validated.)
    if run.unchanged(&outcomes, how)? && !run.opts.force_reload {
        writeln!(
            stdout,
            "\nevery input is unchanged since the last successful run: nothing to validate or load"
        )?;
        run.record("unchanged", None);
        return Ok(Ran::Unchanged);
    }
    // 3. validate
    writeln!(stdout, "\n== validate")?;
    let inputs: Vec<PathBuf> =
        outcomes.iter().map(|o| o.path.clone()).collect();
    let total: u64 = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().map(|f| f.size))
        .sum();
    run.validate(&inputs, total, flags.load.quiet, &mut stdout)?;
    // 4. load
    writeln!(stdout, "\n== load")?;
    drop(stdout);
    let Run { mut opts, stages, .. } = run;
    opts.stages = stages;
    let report = flags.load.finish_report(load(set, &inputs, &opts))?;
    Ok(Ran::Loaded(Box::new(report)))
}
