//! `fwload run`: fetch → validate → load, stage by stage, each stage's
//! outcome kept with the run record. Nothing touches the target tables
//! unless the downloads succeeded and validation passed its thresholds;
//! nothing is loaded when every input is unchanged since the last
//! successful run.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::fetch::{Bars, FetchTuning, print_summary, setup_exit};
use super::load::{DbArgs, LoadTuning, failure};
use super::{CliResult, Exit, Failure, ReadArgs};
use crate::fetch::{Source, Status, fetch_all_blocking};
use crate::load::{
    LoadOptions, NewRun, finish_run, load, migrate, outcome_key, start_run,
    unchanged_inputs,
};
use crate::report::{Progress, incomplete};
use crate::schema::SchemaSet;
use crate::validate::{ValidateError, ValidateOptions, validate};

/// Arguments of `fwload run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Schema directory of the dataset; its dataset.toml lists the
    /// archives to download.
    #[arg(long = "dataset", short = 's', value_name = "PATH")]
    dataset: PathBuf,
    /// The year, replacing `{year}` in archive names and URLs.
    #[arg(long, value_name = "YEAR")]
    year: Option<String>,
    /// Download folder (default: data/<dataset>/<year>).
    #[arg(long, short = 'd', value_name = "DIR")]
    dir: Option<PathBuf>,
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
    load: LoadTuning,
    #[command(flatten)]
    read: ReadArgs,
}

/// Records a run that ended before the load stage (best effort: when the
/// database cannot be reached the exit code still tells what happened).
fn record(
    opts: &LoadOptions,
    set: &SchemaSet,
    dataset: &str,
    status: &str,
    reason: Option<&str>,
    stages: &serde_json::Value,
) {
    let Ok(mut db) = opts.database.connect() else { return };
    if migrate(&mut db, &opts.meta).is_err() {
        return;
    }
    let new = NewRun {
        dataset,
        target_schema: &opts.target_schema,
        mode: opts.mode.as_str(),
        schema_hash: &set.hash,
        outcome_key: None,
        options: json!({}),
        stages: stages.clone(),
        controls: serde_json::Value::Null,
    };
    if let Ok(run) = start_run(&mut db, &opts.meta, &new) {
        let _ = finish_run(&mut db, &opts.meta, run, status, reason, stages);
    }
}

pub(super) fn run(a: RunArgs) -> CliResult {
    let set =
        SchemaSet::load(std::slice::from_ref(&a.dataset)).map_err(|e| {
            Failure::msg(Exit::Usage, format!("schema errors:\n{e}"))
        })?;
    let Some(ds) = set.dataset.clone() else {
        return Err(Failure::msg(
            Exit::Usage,
            format!("{}: no dataset.toml", a.dataset.display()),
        ));
    };
    let mut opts = a.load.options(&a.db, &a.read)?;
    opts.strict = !a.no_strict;
    // A four-digit --year is also the export year a control record must
    // state.
    opts.year = a.year.as_deref().and_then(|y| y.parse().ok());
    let dataset = opts.dataset.clone().unwrap_or_else(|| ds.name.clone());
    let dir = a.dir.clone().unwrap_or_else(|| {
        PathBuf::from("data")
            .join(&ds.name)
            .join(a.year.as_deref().unwrap_or("current"))
    });
    let sources = Source::from_dataset(&ds, a.year.as_deref())
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
        &a.fetch.options(&dir, a.refetch),
        &Bars::new(!a.load.quiet),
    )
    .map_err(|e| Failure::new(setup_exit(&e), e))?;
    print_summary(&outcomes)?;
    let fetched: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| match &o.result {
            Ok(f) => json!({"file": o.source.name, "url": o.source.url, "status": f.status.as_str(), "size": f.size, "sha256": f.sha256, "attempts": o.attempts}),
            Err(e) => json!({"file": o.source.name, "url": o.source.url, "status": "failed", "error": e.to_string(), "attempts": o.attempts}),
        })
        .collect();
    let mut stages = json!({ "fetch": fetched });
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
        record(&opts, &set, &dataset, "failed", Some(&reason), &stages);
        return Err(Failure::msg(Exit::Fetch, reason));
    }
    let inputs: Vec<PathBuf> =
        outcomes.iter().map(|o| o.path.clone()).collect();
    let digests: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().map(|f| f.sha256.clone()))
        .collect();
    // 2. unchanged since the last success?
    let mut db = opts.database.connect().map_err(failure)?;
    migrate(&mut db, &opts.meta).map_err(failure)?;
    let previous = unchanged_inputs(
        &mut db,
        &opts.meta,
        &set,
        (&dataset, &opts.target_schema),
        &outcome_key(&set, opts.mode, opts.delete),
    )
    .map_err(failure)?;
    drop(db);
    if !opts.force_reload && digests.iter().all(|d| previous.contains(d)) {
        writeln!(
            stdout,
            "\nevery input is unchanged since the last successful run: nothing to validate or load"
        )?;
        record(&opts, &set, &dataset, "unchanged", None, &stages);
        return Ok(Exit::Ok);
    }
    // 3. validate
    writeln!(stdout, "\n== validate")?;
    let total: u64 = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().map(|f| f.size))
        .sum();
    let progress = Progress::new(total, "validate", !a.load.quiet);
    let summary = validate(
        &set,
        &inputs,
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
            stages["validate"] = json!({ "error": error });
            record(&opts, &set, &dataset, "failed", Some(&error), &stages);
            return Err(Failure::new(code, e));
        }
    };
    summary.write_text(&mut stdout)?;
    stages["validate"] = json!({
        "totals": summary.totals,
        "reject_groups": summary.reject_groups,
        "seconds": summary.seconds,
    });
    if let Some(why) = opts
        .strict
        .then(|| incomplete(&summary.unmatched, &summary.missing))
        .flatten()
    {
        let reason =
            format!("{why}\nnothing was loaded (--no-strict loads anyway)");
        record(&opts, &set, &dataset, "refused", Some(&reason), &stages);
        return Err(Failure::msg(Exit::Usage, reason));
    }
    if let Some(why) =
        opts.thresholds.crossed(summary.totals.rejected, summary.totals.read)
        && !opts.force
    {
        let reason = format!(
            "validation failed: {why}; nothing was loaded (use --force to load anyway)"
        );
        record(&opts, &set, &dataset, "refused", Some(&reason), &stages);
        return Err(Failure::msg(Exit::Data, reason));
    }
    // 4. load
    writeln!(stdout, "\n== load")?;
    drop(stdout);
    opts.stages = stages;
    a.load.finish(load(&set, &inputs, &opts))
}
