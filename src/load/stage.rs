//! Staging: one UNLOGGED table per layout, filled by one binary `COPY`
//! streamed from the parallel pipeline in input order; duplicate keys are
//! then removed by the layout's policy, and the staged state is recorded
//! so a failed run can resume without reading the input again.

use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use postgres::{Client, GenericClient};

use postgres::types::Json;
use serde::{Deserialize, Serialize};

use super::LoadError;

use super::ddl::{Naming, clip, key_and_indexes};
use crate::keys::KeyIndex;
use crate::pgcopy::{self, CopyRows};
use crate::pipeline::{
    ChunkResult, Origin, PipelineError, PipelineOptions, Plan, run_member,
};
use crate::reject::{Counts, Reject};
use crate::report::{
    MemberReport, Progress, RejectGroups, RejectWriter, render_raw,
};
use crate::schema::{Layout, Reference, column, quote_ident};
use crate::source::{self, MemberInfo, SourceOptions};
use crate::validate::apply_duplicates;

/// One member to stage.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct MemberRef {
    /// Input path.
    pub input: String,
    /// sha256 of the input.
    pub input_sha256: String,
    /// Member name.
    pub member: String,
    /// File number in the run.
    pub file: u32,
}

/// A layout's staging result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Staged {
    /// Layout name.
    pub layout: String,
    /// The staging table (qualified, quoted).
    pub table: String,
    /// Per member.
    pub members: Vec<MemberReport>,
    /// Totals (duplicates applied).
    pub counts: Counts,
    /// Rows in the staging table.
    pub rows: u64,
    /// Rejected records whose key could not be read (so a snapshot delete
    /// cannot tell whether their row should go).
    pub unkeyed_rejects: u64,

    /// Rows in the table as its stage committed them (valid rows and the
    /// keys of rejected records), the proof of a complete stage.
    #[serde(default)]
    pub table_rows: u64,
    /// Whether a previous run's staging was reused (`--resume`).
    pub reused: bool,
    /// Why a previous run's staging was not reused (`--resume`).
    #[serde(skip)]
    pub restaged: Option<String>,
    /// Seconds spent staging.
    pub seconds: f64,
}

/// Where rejects go: the rejects file, the summary groups, and the
/// metadata table (through a spool per job, copied in after staging).
pub(crate) struct RejectSinks {
    /// The `--rejects` file.
    pub file: Option<Mutex<RejectWriter>>,
    /// Groups for the summary.
    pub groups: Mutex<RejectGroups>,
}

impl RejectSinks {
    /// Sends one reject to every output.
    ///
    /// # Errors
    /// Writing the rejects file or the spool failed.
    pub(crate) fn write_reject(
        &self,
        r: &Reject,
        layout: &Layout,
        spool: &mut Spool,
    ) -> std::io::Result<()> {
        self.groups.lock().expect("reject groups").add(r, layout);
        if let Some(f) = &self.file {
            f.lock().expect("rejects file").write(r, layout)?;
        }
        spool.add(r, layout)
    }
}

/// Rejects encoded as binary COPY rows for `{meta}.rejects`, spooled to a
/// temporary file so memory stays flat however many there are.
pub(crate) struct Spool {
    file: std::io::BufWriter<std::fs::File>,
    run: i64,
    buf: Vec<u8>,
    rows: u64,
}

impl Spool {
    /// A spool for run `run`.
    ///
    /// # Errors
    /// The temporary file cannot be created.
    pub(crate) fn new(run: i64) -> std::io::Result<Spool> {
        Ok(Spool {
            file: std::io::BufWriter::new(tempfile::tempfile()?),
            run,
            buf: Vec::new(),
            rows: 0,
        })
    }

    fn add(&mut self, r: &Reject, layout: &Layout) -> std::io::Result<()> {
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(&10i16.to_be_bytes());
        pgcopy::int8(b, self.run);
        pgcopy::text(b, &r.at.input);
        pgcopy::text(b, &r.at.member);
        pgcopy::int8(b, r.at.line as i64);
        pgcopy::int8(b, r.at.byte as i64);
        pgcopy::text(b, &layout.name);
        match r.at.field {
            Some(i) => pgcopy::text(b, &layout.fields[i as usize].name),
            None => pgcopy::null(b),
        }
        pgcopy::text(b, &render_raw(&r.raw, layout.encoding));
        pgcopy::text(b, r.reason.code());
        pgcopy::text(b, &r.reason.to_string());
        self.file.write_all(b)?;
        self.rows += 1;
        Ok(())
    }

    /// Rejects spooled so far.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Copies the spooled rejects into `{meta}.rejects`.
    ///
    /// # Errors
    /// Reading the spool or the COPY failed.
    pub(crate) fn flush_to<C: GenericClient>(
        self,
        db: &mut C,
        meta: &str,
    ) -> Result<u64, LoadError> {
        if self.rows == 0 {
            return Ok(0);
        }
        let mut f = self
            .file
            .into_inner()
            .map_err(|e| LoadError::spill("rejects spool", e.into_error()))?;
        f.rewind().map_err(|e| LoadError::spill("rejects spool", e))?;
        let ctx = |e| LoadError::db("recording rejects", e);
        let mut w = db
            .copy_in(&format!(
                "COPY {}.rejects (run_id, input, member, line, byte, layout, field, raw, code, reason) FROM STDIN (FORMAT binary)",
                quote_ident(meta)
            ))
            .map_err(ctx)?;
        let copy = |e| LoadError::copy("recording rejects", e);
        w.write_all(pgcopy::HEADER).map_err(copy)?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| LoadError::spill("rejects spool", e))?;
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n]).map_err(copy)?;
        }
        w.write_all(pgcopy::TRAILER).map_err(copy)?;
        w.finish().map_err(ctx)
    }
}

/// The staging table of a layout: in the metadata schema, named
/// `stg_<id>_<table>` after an id `{meta}.staging_names` holds for the
/// (dataset, target schema, layout), so two datasets or target schemas
/// never share one, whatever their names (the id's digits end at the
/// first `_`, so the name is unique by construction). The table part is
/// cut on a character boundary to fit PostgreSQL's 63 bytes.
///
/// # Errors
/// A database error.
pub(super) fn staging_table<C: GenericClient>(
    db: &mut C,
    cx: &StageContext<'_>,
    layout: &Layout,
) -> Result<String, LoadError> {
    let m = quote_ident(cx.meta);
    let id: i64 = db
        .query_one(
            &format!(
                "INSERT INTO {m}.staging_names (dataset, target_schema, layout)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (dataset, target_schema, layout)
                 DO UPDATE SET layout = excluded.layout RETURNING id"
            ),
            &[&cx.dataset, &cx.target_schema, &layout.name],
        )
        .map_err(|e| {
            LoadError::db(
                format!("naming the staging table of {}", layout.name),
                e,
            )
        })?
        .get(0);
    Ok(format!("{m}.{}", quote_ident(&staging_name(id, &layout.table))))
}

/// `stg_<id>_<table>` in at most 63 bytes, `.` of a qualified table
/// written `_`.
fn staging_name(id: i64, table: &str) -> String {
    let head = format!("stg_{id}_");
    let table = table.replace('.', "_");
    format!("{head}{}", clip(&table, 63 - head.len()))
}

/// The column list of a stage's table of kind `kind`, in COPY order.
pub(crate) fn staging_columns(layout: &Layout, kind: TableKind) -> String {
    let mut cols = vec![
        "_fw_file".to_owned(),
        "_fw_line".to_owned(),
        "_fw_reject".to_owned(),
    ];
    cols.extend(layout.fields.iter().map(|f| quote_ident(&f.name)));
    if kind.fingerprinted() {
        cols.push("_fw_hash".to_owned());
    }
    cols.join(", ")
}

/// What a stage's table becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TableKind {
    /// A staging table, published into its target by a join (UNLOGGED:
    /// it is written once and read once).
    Staging {
        /// Each row ends with its fingerprint, `_fw_hash` (for
        /// `--mode history`).
        fingerprint: bool,
    },
    /// A table that becomes the target itself once published (a target
    /// created by this load, or a `replace` generation): logged, and with
    /// the target's `deleted_at` column when soft deletes are wanted.
    Target {
        /// Add `deleted_at`.
        soft_delete: bool,
    },
}

impl TableKind {
    /// Whether rows end with their fingerprint.
    pub(crate) fn fingerprinted(self) -> bool {
        matches!(self, TableKind::Staging { fingerprint: true })
    }

    /// Whether the table is a staging table (not one that becomes a
    /// target).
    pub(crate) fn is_staging(self) -> bool {
        matches!(self, TableKind::Staging { .. })
    }

    /// The kind as recorded with staged state.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TableKind::Staging { fingerprint: false } => "staging",
            TableKind::Staging { fingerprint: true } => {
                "staging, fingerprinted"
            }
            TableKind::Target { soft_delete: false } => "target",
            TableKind::Target { soft_delete: true } => "target, soft delete",
        }
    }
}

/// `CREATE TABLE` for a stage's table: fwload's own columns, then the
/// layout's typed columns. A staging table has no constraints (rejected
/// records' keys sit in it with NULL elsewhere); a table that becomes a
/// target has the target's `NOT NULL`s, and its key and indexes once
/// filled ([`Destination::build`]).
pub(crate) fn staging_ddl(
    layout: &Layout,
    table: &str,
    kind: TableKind,
) -> String {
    let mut cols = vec![
        "_fw_file integer NOT NULL".to_owned(),
        "_fw_line bigint NOT NULL".to_owned(),
        "_fw_reject boolean NOT NULL".to_owned(),
    ];
    cols.extend((0..layout.fields.len()).map(|i| match kind {
        TableKind::Staging { .. } => {
            let f = &layout.fields[i];
            format!("{} {}", quote_ident(&f.name), f.decoder.ty.sql())
        }
        TableKind::Target { .. } => column(layout, i),
    }));
    let unlogged = match kind {
        TableKind::Staging { fingerprint } => {
            if fingerprint {
                cols.push("_fw_hash uuid".into());
            }
            "UNLOGGED "
        }
        TableKind::Target { soft_delete } => {
            if soft_delete {
                cols.push("deleted_at timestamp with time zone".into());
            }
            ""
        }
    };
    format!("CREATE {unlogged}TABLE {table} ({})", cols.join(", "))
}

/// The columns whose statistics matter to publishing: the key and the
/// columns of references from and to the layout.
pub(super) fn analyze_columns(
    layout: &Layout,
    references: &[Reference],
) -> Vec<String> {
    let mut cols: Vec<String> =
        layout.key_names().iter().map(|k| k.to_string()).collect();
    for r in references {
        let mine = if r.from == layout.name {
            &r.columns
        } else if r.to == layout.name {
            &r.to_columns
        } else {
            continue;
        };
        for c in mine {
            if !cols.contains(c) {
                cols.push(c.clone());
            }
        }
    }
    cols
}

/// What a stage job needs.
pub(crate) struct StageContext<'a> {
    /// Metadata schema.
    pub meta: &'a str,
    /// Dataset name.
    pub dataset: &'a str,
    /// Target schema.
    pub target_schema: &'a str,
    /// The run.
    pub run: i64,
    /// sha256 of the schema files (staged state is reused only under the
    /// same schema).
    pub schema_hash: &'a str,
    /// A stop request: reading stops at the next chunk.
    pub interrupt: &'a super::Interrupt,
    /// Input reading.
    pub source: SourceOptions,
    /// Chunking.
    pub pipeline: PipelineOptions,
    /// The dataset's references (for statistics).
    pub references: &'a [Reference],
    /// Reject outputs.
    pub rejects: &'a RejectSinks,
    /// Progress.
    pub progress: &'a Progress,
    /// The export version of each input (by path) whose control record
    /// states one.
    pub export_versions: &'a std::collections::HashMap<String, String>,
}

/// Why a previous run's staging of a layout is not reused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum NotReused {
    /// Nothing was staged, or from other inputs, another schema or
    /// another kind of table.
    Different,
    /// The staging table exists but cannot prove it holds every row its
    /// stage committed: emptied by the server's crash recovery (staging
    /// tables are UNLOGGED), truncated, or replaced.
    Unproven(String),
}

/// A previous run's staging of the same inputs, when it proves it is
/// complete: the same inputs, schema and kind of table; the very table the
/// stage created (its OID); the stage's mark, kept in an UNLOGGED table
/// that crash recovery empties together with the staging tables; and as
/// many rows as the stage committed. Existence alone proves nothing.
///
/// # Errors
/// A failed statement.
pub(super) fn reusable(
    db: &mut Client,
    cx: &StageContext<'_>,
    layout: &Layout,
    members: &[MemberRef],
    kind: TableKind,
) -> Result<Result<Staged, NotReused>, LoadError> {
    let m = quote_ident(cx.meta);
    let ctx = |e| LoadError::db("reading staged state", e);
    let row = db
        .query_opt(
            &format!(
                "SELECT s.inputs, s.counts, s.table_rows, s.kind, s.schema_hash,
                        s.staging_table,
                        to_regclass(s.staging_table) IS NOT DISTINCT FROM s.staging_oid::regclass,
                        EXISTS (SELECT 1 FROM {m}.stage_marks k
                                WHERE k.staging_table = s.staging_oid AND k.run_id = s.run_id)
                 FROM {m}.staged s
                 WHERE s.dataset = $1 AND s.target_schema = $2 AND s.layout = $3
                   AND s.staging_oid IS NOT NULL"
            ),
            &[&cx.dataset, &cx.target_schema, &layout.name],
        )
        .map_err(ctx)?;
    let Some(row) = row else { return Ok(Err(NotReused::Different)) };
    let Json(inputs): Json<Vec<MemberRef>> = row.get(0);
    let Json(staged): Json<Staged> = row.get(1);
    let rows: i64 = row.get(2);
    let (was, hash): (String, String) = (row.get(3), row.get(4));
    let table: String = row.get(5);
    let (same_table, marked): (bool, bool) = (row.get(6), row.get(7));
    let same = inputs.len() == members.len()
        && inputs.iter().zip(members).all(|(x, y)| {
            x.input_sha256 == y.input_sha256
                && x.member == y.member
                && x.file == y.file
        });
    if !same || was != kind.as_str() || hash != cx.schema_hash {
        return Ok(Err(NotReused::Different));
    }
    if !same_table {
        return Ok(Err(NotReused::Unproven(format!(
            "{table} is gone or was replaced"
        ))));
    }
    if !marked {
        return Ok(Err(NotReused::Unproven(format!(
            "the mark of {table} is gone: the server restarted after a crash and emptied it"
        ))));
    }
    let have: i64 = db
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .map_err(ctx)?
        .get(0);
    if have != rows {
        return Ok(Err(NotReused::Unproven(format!(
            "{table} holds {have} rows, its stage committed {rows}"
        ))));
    }
    Ok(Ok(Staged { reused: true, ..staged }))
}

/// The table a stage fills. It is (re)created by the stage, in the stage's
/// transaction, so the `COPY` can use `FREEZE`.
pub(super) struct Destination {
    /// Qualified, quoted table name.
    pub table: String,
    /// What the table becomes.
    pub kind: TableKind,
    /// Statements that (re)create it.
    pub create: String,
    /// Statements run once it is filled and its duplicates are gone: the
    /// key and indexes of a table that becomes a target, built in the
    /// stage's own transaction (so in parallel with other stages).
    pub build: Vec<String>,
    /// A resumable staging table: analysed and recorded in
    /// `{meta}.staged`.
    pub staging: bool,
}

impl Destination {
    /// The layout's staging table.
    ///
    /// # Errors
    /// A database error naming it.
    pub(super) fn staging<C: GenericClient>(
        db: &mut C,
        cx: &StageContext<'_>,
        layout: &Layout,
        kind: TableKind,
    ) -> Result<Destination, LoadError> {
        let table = staging_table(db, cx, layout)?;
        let create = format!(
            "DROP TABLE IF EXISTS {table}; {}",
            staging_ddl(layout, &table, kind)
        );
        let build = match kind {
            TableKind::Staging { .. } => Vec::new(),
            TableKind::Target { .. } => key_and_indexes(
                layout,
                &table,
                (cx.references, None),
                Naming::Chosen,
            ),
        };
        Ok(Destination { table, kind, create, build, staging: true })
    }
}

/// Stages `layout` from `members` into `dest`. `db` must be in a
/// transaction (the table is created and filled with `COPY … FREEZE`
/// in it).
///
/// # Errors
/// An unreadable input, a header that does not match, or a database error.
pub(super) fn stage<C: GenericClient>(
    db: &mut C,
    cx: &StageContext<'_>,
    plan: &Arc<Plan>,
    members: &[MemberRef],
    dest: &Destination,
) -> Result<Staged, LoadError> {
    let started = Instant::now();
    let job = StageJob { cx, plan, members, dest };
    db.batch_execute(&dest.create)
        .map_err(job.db_error("creating the staging table of"))?;
    let mut got = Gathered {
        spool: Spool::new(cx.run)
            .map_err(|e| LoadError::spill("rejects spool", e))?,
        keys: KeyIndex::default(),
        unkeyed: 0,
        reports: Vec::new(),
    };
    // Rows the table holds once staged: those the COPY wrote less the
    // duplicates removed (the proof of a complete stage, for --resume).
    let copied = job.copy(db, &mut got)?;
    let Gathered { mut spool, keys, unkeyed, mut reports } = got;
    let removed = job.remove_duplicates(db, keys, &mut reports, &mut spool)?;
    job.build(db)?;
    spool.flush_to(db, cx.meta)?;
    if dest.staging {
        job.analyze(db)?;
    }
    let staged = job.staged(reports, unkeyed, copied - removed, started);
    if !dest.staging {
        return Ok(staged);
    }
    record_staged(db, cx, members, dest, &staged)?;
    Ok(staged)
}

/// One stage: what it stages, and into which table.
struct StageJob<'j, 'a> {
    cx: &'j StageContext<'a>,
    plan: &'j Arc<Plan>,
    members: &'j [MemberRef],
    dest: &'j Destination,
}

/// What a stage's `COPY` gathers besides the rows it writes.
struct Gathered {
    /// Rejects bound for `{meta}.rejects`.
    spool: Spool,
    /// Every key, for finding duplicates.
    keys: KeyIndex,
    /// Rejected records whose key could not be read.
    unkeyed: u64,
    /// Per member, in order.
    reports: Vec<MemberReport>,
}

/// Duplicate records deleted from staging by one statement.
const DELETE_BATCH: usize = 8192;

/// `COPY` of a stage's rows into `table`: binary, in the column order
/// of [`staging_columns`], and with `FREEZE` (the table was created in
/// the same transaction), so the rows are written once, already frozen.
fn copy_in_sql(table: &str, layout: &Layout, kind: TableKind) -> String {
    format!(
        "COPY {table} ({}) FROM STDIN (FORMAT binary, FREEZE)",
        staging_columns(layout, kind)
    )
}

/// Deletes the rows of `table` at the (`_fw_file`, `_fw_line`) pairs
/// given as two parallel arrays (`$1` int4[], `$2` int8[]): exactly the
/// records named, whatever else the table holds.
fn delete_lines_sql(table: &str) -> String {
    format!(
        "DELETE FROM {table} WHERE (_fw_file, _fw_line) IN (SELECT * FROM unnest($1::int4[], $2::int8[]))"
    )
}

/// `ANALYZE` of the columns `cols` (quoted) of `table` only: row counts
/// and the statistics of the columns publishing joins on.
fn analyze_sql(table: &str, cols: &[String]) -> String {
    format!("ANALYZE {table} ({})", cols.join(", "))
}

impl StageJob<'_, '_> {
    /// The error of a statement on this stage's table: `what`, then the
    /// layout's name.
    fn db_error(
        &self,
        what: &str,
    ) -> impl FnOnce(postgres::Error) -> LoadError {
        let what = format!("{what} {}", self.plan.layout.name);
        move |e| LoadError::db(what, e)
    }

    /// Streams every member, in order, into the table with one binary
    /// `COPY`, returning the rows it wrote.
    fn copy<C: GenericClient>(
        &self,
        db: &mut C,
        got: &mut Gathered,
    ) -> Result<u64, LoadError> {
        let layout = &self.plan.layout;
        let mut w = db
            .copy_in(&copy_in_sql(&self.dest.table, layout, self.dest.kind))
            .map_err(self.db_error("starting COPY into staging for"))?;
        let io = |e: std::io::Error| {
            LoadError::copy(format!("staging {}", layout.name), e)
        };
        w.write_all(pgcopy::HEADER).map_err(io)?;
        for m in self.members {
            let report = self.copy_member(&mut w, m, got)?;
            got.reports.push(report);
        }
        w.write_all(pgcopy::TRAILER).map_err(io)?;
        w.finish().map_err(self.db_error("finishing COPY into staging for"))
    }

    /// Runs member `m` through the pipeline into the `COPY` stream `w`,
    /// returning its report.
    fn copy_member<W: Write + Send>(
        &self,
        w: &mut W,
        m: &MemberRef,
        got: &mut Gathered,
    ) -> Result<MemberReport, LoadError> {
        let cx = self.cx;
        let layout = &self.plan.layout;
        let t0 = Instant::now();
        let mut outcome: Option<MemberReport> = None;
        let want = |name: &str| name == m.member;
        let path = PathBuf::from(&m.input);
        source::read_input::<LoadError>(
            &path,
            &cx.source,
            &want,
            &mut |info, body| {
                cx.progress
                    .message(&format!("{} → {}", info.name, layout.table));
                // Which sink failed decides the error: the COPY stream
                // (the server's or the connection's), a stop request, or
                // the rejects outputs.
                let copy_failed = AtomicBool::new(false);
                let mut consume =
                    |r: &mut ChunkResult<CopyRows>| -> std::io::Result<()> {
                        self.consume(r, w, got, &copy_failed)
                    };
                let origin = Origin {
                    file: m.file,
                    export_version: cx
                        .export_versions
                        .get(&m.input)
                        .map(String::as_str),
                };
                let run = run_member(
                    self.plan,
                    info,
                    origin,
                    body,
                    &cx.pipeline,
                    self.make_rows(),
                    &mut consume,
                )
                .map_err(|e| self.pipeline_error(e, info, &copy_failed))?;
                let seconds = t0.elapsed().as_secs_f64();
                outcome =
                    Some(MemberReport::of_run(info, layout, &run, seconds));
                Ok(Some(run.sha256))
            },
        )?;
        outcome.ok_or_else(|| {
            LoadError::input(format!(
                "{}: member {} not found",
                m.input, m.member
            ))
        })
    }

    /// Makes the pipeline's row sinks for this stage's table.
    fn make_rows(&self) -> Arc<dyn Fn() -> CopyRows + Send + Sync> {
        let cap =
            self.cx.pipeline.chunk_size + self.cx.pipeline.chunk_size / 2;
        // Rejected records' keys protect target rows from a snapshot's
        // deletes; a table that becomes a new target has none to protect.
        let skip_rejected_keys = !self.dest.kind.is_staging();
        let fingerprint = self.dest.kind.fingerprinted();
        Arc::new(move || {
            let mut rows = CopyRows::with_capacity(cap);
            rows.skip_rejected_keys = skip_rejected_keys;
            rows.fingerprint = fingerprint;
            rows
        })
    }

    /// Takes one chunk's result: its rows into the `COPY` stream `w`, its
    /// rejects to their outputs, its keys into the index.
    fn consume(
        &self,
        r: &mut ChunkResult<CopyRows>,
        w: &mut impl Write,
        got: &mut Gathered,
        copy_failed: &AtomicBool,
    ) -> std::io::Result<()> {
        let cx = self.cx;
        if cx.interrupt.raised().is_some() {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        cx.progress.inc(r.len as u64);
        w.write_all(&r.rows.buf).inspect_err(|_| {
            copy_failed.store(true, Ordering::Relaxed);
        })?;
        for rej in &r.rejects {
            cx.rejects.write_reject(rej, &self.plan.layout, &mut got.spool)?;
        }
        got.unkeyed += r.rejects.len() as u64 - r.rows.rejected_keys;
        got.keys.push(&r.keys, &r.key_order)
    }

    /// The load error of a member whose pipeline failed; a failed sink is
    /// a stop request, the `COPY` stream (`copy_failed`) or the rejects
    /// outputs.
    fn pipeline_error(
        &self,
        e: PipelineError<std::io::Error>,
        info: &MemberInfo,
        copy_failed: &AtomicBool,
    ) -> LoadError {
        match e {
            PipelineError::Header(_) | PipelineError::Version(_) => {
                LoadError::schema(e.to_string())
            }
            PipelineError::Sink(io) => {
                if let Some(signal) = self.cx.interrupt.raised() {
                    LoadError::interrupted(signal)
                } else if copy_failed.load(Ordering::Relaxed) {
                    LoadError::copy(
                        format!("staging {}:{}", info.input, info.name),
                        io,
                    )
                } else {
                    LoadError::spill(
                        format!("staging {}:{}", info.input, info.name),
                        io,
                    )
                }
            }
            PipelineError::Source(e) => LoadError::from(e),
            other => LoadError::input(other.to_string()),
        }
    }

    /// Duplicate keys: the policy decides which records stay; the others
    /// leave staging in batches (memory stays flat however many). Returns
    /// the rows deleted.
    fn remove_duplicates<C: GenericClient>(
        &self,
        db: &mut C,
        keys: KeyIndex,
        reports: &mut [MemberReport],
        spool: &mut Spool,
    ) -> Result<u64, LoadError> {
        let layout = &self.plan.layout;
        let members = self.members;
        let index_of = |file: u32| {
            members.iter().position(|m| m.file == file).unwrap_or(0)
        };
        let delete = delete_lines_sql(&self.dest.table);
        let mut files: Vec<i32> = Vec::new();
        let mut lines: Vec<i64> = Vec::new();
        let mut removed = 0u64;
        let mut failed = None;
        let mut flush = |db: &mut C,
                         files: &mut Vec<i32>,
                         lines: &mut Vec<i64>|
         -> Result<(), LoadError> {
            if !files.is_empty() {
                removed += db.execute(&delete, &[&*files, &*lines]).map_err(
                    self.db_error("removing duplicate keys from staging for"),
                )?;
                files.clear();
                lines.clear();
            }
            Ok(())
        };
        keys.for_each_duplicate(layout.duplicates, &mut |d| {
            files.push(d.entry.file as i32);
            lines.push(d.entry.line as i64);
            apply_duplicates(&[d], layout, &index_of, reports, &mut |r| {
                self.cx.rejects.write_reject(r, layout, spool)
            })?;
            if files.len() >= DELETE_BATCH
                && let Err(e) = flush(db, &mut files, &mut lines)
            {
                failed = Some(e);
                return Err(std::io::Error::other("stopped"));
            }
            Ok(())
        })
        .or_else(|e| if failed.is_some() { Ok(()) } else { Err(e) })
        .map_err(|e| LoadError::spill("key index", e))?;
        if let Some(e) = failed {
            return Err(e);
        }
        flush(db, &mut files, &mut lines)?;
        Ok(removed)
    }

    /// Builds the key and indexes of a table that becomes a target.
    fn build<C: GenericClient>(&self, db: &mut C) -> Result<(), LoadError> {
        for sql in &self.dest.build {
            db.batch_execute(sql)
                .map_err(self.db_error("building the key and indexes of"))?;
        }
        Ok(())
    }

    /// Analyses a staging table: row counts and the statistics of the
    /// joined columns let the planner join staging to the target
    /// sensibly.
    fn analyze<C: GenericClient>(&self, db: &mut C) -> Result<(), LoadError> {
        let cols: Vec<String> =
            analyze_columns(&self.plan.layout, self.cx.references)
                .iter()
                .map(|c| quote_ident(c))
                .collect();
        if cols.is_empty() {
            return Ok(());
        }
        db.batch_execute(&analyze_sql(&self.dest.table, &cols))
            .map_err(self.db_error("analysing the staging table of"))
    }

    /// The stage's result: the members' counts summed, and the rows its
    /// table holds.
    fn staged(
        &self,
        reports: Vec<MemberReport>,
        unkeyed: u64,
        table_rows: u64,
        started: Instant,
    ) -> Staged {
        let mut counts = Counts::default();
        for r in &reports {
            counts += r.counts;
        }
        Staged {
            layout: self.plan.layout.name.clone(),
            table: self.dest.table.clone(),
            members: reports,
            counts,
            rows: counts.valid,
            unkeyed_rejects: unkeyed,
            table_rows,
            reused: false,
            restaged: None,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// Records a committed stage in `{meta}.staged`, in the stage's own
/// transaction, with what proves it complete later: the table's OID, its
/// rows, and a mark in the UNLOGGED `{meta}.stage_marks` that the
/// server's crash recovery empties together with the staging table.
fn record_staged<C: GenericClient>(
    db: &mut C,
    cx: &StageContext<'_>,
    members: &[MemberRef],
    dest: &Destination,
    staged: &Staged,
) -> Result<(), LoadError> {
    let m = quote_ident(cx.meta);
    let ctx = |e| {
        LoadError::db(
            format!("recording the staged state of {}", staged.layout),
            e,
        )
    };
    db.execute(
        &format!(
            "INSERT INTO {m}.staged (dataset, target_schema, layout, staging_table, run_id, inputs, counts,
                                     staging_oid, table_rows, kind, schema_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $4::text::regclass::oid, $8, $9, $10)
             ON CONFLICT (dataset, target_schema, layout) DO UPDATE SET staging_table = excluded.staging_table,
                 run_id = excluded.run_id, inputs = excluded.inputs, counts = excluded.counts, staged_at = now(),
                 staging_oid = excluded.staging_oid, table_rows = excluded.table_rows,
                 kind = excluded.kind, schema_hash = excluded.schema_hash;
             "
        ),
        &[
            &cx.dataset,
            &cx.target_schema,
            &staged.layout,
            &dest.table,
            &cx.run,
            &Json(serde_json::to_value(members).unwrap_or_default()),
            &Json(serde_json::to_value(staged).unwrap_or_default()),
            &(staged.table_rows as i64),
            &dest.kind.as_str(),
            &cx.schema_hash,
        ],
    )
    .map_err(ctx)?;
    db.execute(
        &format!(
            "INSERT INTO {m}.stage_marks (staging_table, run_id) VALUES ($1::text::regclass::oid, $2)
             ON CONFLICT (staging_table) DO UPDATE SET run_id = excluded.run_id"
        ),
        &[&dest.table, &cx.run],
    )
    .map_err(ctx)?;
    Ok(())
}
