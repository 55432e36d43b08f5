//! What a load is asked to do: the options, how they are recorded with
//! the run, and the session settings of fwload's own connections.

use postgres::Client;
use serde::Serialize;

use std::path::PathBuf;
use std::sync::Arc;

use super::{Database, DeletePolicy, Interrupt, LoadError, Mode};
use crate::pipeline::PipelineOptions;
use crate::report::{Progress, Thresholds};
use crate::schema::SchemaSet;
use crate::source::SourceOptions;

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
    /// Undo kept: of the dataset's newest this many runs (0: none
    /// recorded).
    pub keep_undo: u32,
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
    /// Progress and waiting, shown by the caller.
    pub events: LoadEvents,
    /// Outcomes of stages before the load (`fwload run`), kept with the
    /// run record.
    pub stages: serde_json::Value,
    /// `work_mem` and `maintenance_work_mem` for fwload's own sessions
    /// (a PostgreSQL size such as `256MB`); `None` keeps the server's.
    pub work_mem: Option<String>,
    /// Raised to stop the load (SIGINT, SIGTERM): nothing is committed.
    pub interrupt: Interrupt,
    /// `--mode history`: when the load's versions become valid (a
    /// PostgreSQL timestamp); `None`: the run's start.
    pub as_of: Option<String>,
}

impl LoadOptions {
    /// The dataset's name: `--dataset-name`, else the dataset file's, else
    /// the first layout's.
    pub(super) fn dataset_name(&self, set: &SchemaSet) -> String {
        self.dataset
            .clone()
            .or_else(|| set.dataset.as_ref().map(|d| d.name.clone()))
            .unwrap_or_else(|| {
                set.layouts.first().map(|l| l.name.clone()).unwrap_or_default()
            })
    }

    /// An interrupted load's error, when a stop was raised.
    pub(super) fn stopped(&self) -> Result<(), LoadError> {
        match self.interrupt.raised() {
            Some(signal) => Err(LoadError::interrupted(signal)),
            None => Ok(()),
        }
    }
}

/// Connects and sets the session's memory for joins, sorts and index
/// builds.
pub(super) fn connect(opts: &LoadOptions) -> Result<Client, LoadError> {
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

#[derive(Serialize)]
pub(super) struct RunOptions {
    mode: Mode,
    delete: DeletePolicy,
    max_delete_ratio: f64,
    thresholds: Thresholds,
    force: bool,
    keep_undo: u32,
    force_reload: bool,
    dry_run: bool,
    resume: bool,
    create: bool,
    jobs: usize,
    database: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    as_of: Option<String>,
}

impl RunOptions {
    pub(super) fn of(o: &LoadOptions) -> RunOptions {
        RunOptions {
            mode: o.mode,
            delete: o.delete,
            max_delete_ratio: o.max_delete_ratio,
            thresholds: o.thresholds,
            force: o.force,
            keep_undo: o.keep_undo,
            force_reload: o.force_reload,
            dry_run: o.dry_run,
            resume: o.resume,
            create: o.create,
            jobs: o.jobs,
            database: o.database.to_string(),
            as_of: o.as_of.clone(),
        }
    }
}

/// Makes a progress bar for a number of bytes.
pub type MakeProgress = Arc<dyn Fn(u64) -> Progress + Send + Sync>;

/// Shows a message.
pub type Notify = Arc<dyn Fn(&str) + Send + Sync>;

/// What a load tells its caller while it runs; the caller shows it (the
/// library prints nothing).
#[derive(Clone, Default)]
pub struct LoadEvents {
    /// Makes the bar the load advances by the bytes it stages, given how
    /// many it will read (none: no bar).
    pub progress: Option<MakeProgress>,
    /// Called with a message when another load holds the dataset's lock
    /// and this one waits.
    pub waiting: Option<Notify>,
}

impl std::fmt::Debug for LoadEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadEvents")
            .field("progress", &self.progress.is_some())
            .field("waiting", &self.waiting.is_some())
            .finish_non_exhaustive()
    }
}
