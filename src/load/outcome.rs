//! How a load ends: its report, and the run record written on every
//! path (succeeded, dry run, unchanged, refused, failed, interrupted).

use std::time::Instant;

use postgres::Client;
use serde::Serialize;

use super::options::RunOptions;
use super::{
    CheckResult, LoadError, LoadErrorKind, LoadOptions, Mode, Published,
    RunFile, Staged, TableOutcome, meta,
};
use crate::pipeline::Control;
use crate::reject::Counts;
use crate::report::{Missing, RejectGroup};
use crate::schema::SchemaSet;

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
    /// The period the load filled (a dataset kept by period).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<i32>,
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
    /// The dataset's checks (`[[check]]`), all passed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
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

impl LoadReport {
    /// A report of a load that is starting.
    pub(super) fn new(dataset: &str, opts: &LoadOptions) -> LoadReport {
        LoadReport {
            dataset: dataset.to_owned(),
            target_schema: opts.target_schema.clone(),
            mode: opts.mode.as_str().into(),
            status: "running".into(),
            ..Default::default()
        }
    }
}

/// A recorded run: every way it ends is written to its record.
pub(super) struct Run<'a> {
    /// The run's id.
    pub(super) id: i64,
    opts: &'a LoadOptions,
    started: Instant,
}

impl<'a> Run<'a> {
    /// Records a new run (status `running`).
    ///
    /// # Errors
    /// A failed statement.
    pub(super) fn start(
        db: &mut Client,
        set: &SchemaSet,
        opts: &'a LoadOptions,
        report: &LoadReport,
        outcome_key: &str,
        started: Instant,
    ) -> Result<Run<'a>, LoadError> {
        let id = meta::start_run(
            db,
            &opts.meta,
            &meta::NewRun {
                dataset: &report.dataset,
                target_schema: &opts.target_schema,
                mode: opts.mode.as_str(),
                schema_hash: &set.hash,
                outcome_key: Some(outcome_key),
                options: serde_json::to_value(RunOptions::of(opts))
                    .unwrap_or_default(),
                stages: opts.stages.clone(),
                controls: serde_json::to_value(&report.controls)
                    .unwrap_or_default(),
                period: report.period,
                year: opts.year,
            },
        )?;
        Ok(Run { id, opts, started })
    }

    /// Ends a run that had nothing to load: every input unchanged.
    ///
    /// # Errors
    /// A failed statement.
    pub(super) fn unchanged(
        &self,
        db: &mut Client,
        mut report: LoadReport,
    ) -> Result<LoadReport, LoadFailure> {
        report.status = "unchanged".into();
        report.seconds = self.started.elapsed().as_secs_f64();
        meta::record_files(db, &self.opts.meta, self.id, &report.files)?;
        meta::finish_run(
            db,
            &self.opts.meta,
            self.id,
            "unchanged",
            None,
            &report,
        )?;
        Ok(report)
    }

    /// Ends a run that published (or rolled back a dry run): the files
    /// and the final report recorded, the spent staging dropped.
    ///
    /// # Errors
    /// A failed statement.
    pub(super) fn succeeded(
        &self,
        db: &mut Client,
        mut report: LoadReport,
        published: Published,
        dataset: &str,
    ) -> Result<LoadReport, LoadFailure> {
        let opts = self.opts;
        let Published { tables, staged, checks } = published;
        let staged = &staged[..];
        report.checks = checks;
        for s in staged {
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
        // The success itself was recorded inside the publish transaction;
        // this stores the final report.
        let status = if opts.dry_run { "dry_run" } else { "succeeded" };
        report.status = status.into();
        report.seconds = self.started.elapsed().as_secs_f64();
        meta::record_files(db, &opts.meta, self.id, &report.files)?;
        meta::finish_run(db, &opts.meta, self.id, status, None, &report)?;
        if opts.mode != Mode::Replace {
            drop_staging(db, &opts.meta, dataset, &opts.target_schema, staged);
        }
        Ok(report)
    }

    /// Ends a run that failed, was refused or interrupted: the reason
    /// recorded (on a new connection when the load's own is what failed;
    /// when that fails too, the next run of the dataset marks this one
    /// abandoned).
    pub(super) fn fail(
        &self,
        db: &mut Client,
        mut report: LoadReport,
        error: LoadError,
    ) -> LoadFailure {
        let opts = self.opts;
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
        report.reason = Some(error.line());
        report.seconds = self.started.elapsed().as_secs_f64();
        let record = |db: &mut Client| {
            meta::finish_run(
                db,
                &opts.meta,
                self.id,
                status,
                report.reason.as_deref(),
                &report,
            )
            .and_then(|()| {
                meta::record_files(db, &opts.meta, self.id, &report.files)
            })
        };
        if record(db).is_err()
            && let Ok(mut fresh) = opts.database.connect()
        {
            let _ = record(&mut fresh);
        }
        LoadFailure { error, report: Some(Box::new(report)) }
    }
}
