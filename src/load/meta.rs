//! fwload's own tables, in a schema of their own (default `fwload`),
//! created and upgraded by numbered migrations: runs, the files each run
//! read, rejects, staged tables (for `--resume`) and the previous
//! generation of replaced tables (for `fwload rollback`).

use postgres::Client;
use postgres::types::Json;
use serde::Serialize;

use super::LoadError;
use crate::schema::quote_ident;

/// Migrations, in order; each runs once, in a transaction.
const MIGRATIONS: &[&str] = &[
    // 1: runs, files, rejects, staged tables, generations.
    "CREATE TABLE {m}.runs (
        id bigserial PRIMARY KEY,
        dataset text NOT NULL,
        target_schema text NOT NULL,
        mode text NOT NULL,
        status text NOT NULL,
        reason text,
        started_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        fwload_version text NOT NULL,
        schema_hash text NOT NULL,
        options jsonb,
        counts jsonb
    );
    CREATE INDEX runs_dataset_idx ON {m}.runs (dataset, target_schema, id);
    CREATE TABLE {m}.run_files (
        run_id bigint NOT NULL REFERENCES {m}.runs (id) ON DELETE CASCADE,
        input text NOT NULL,
        input_size bigint NOT NULL,
        input_sha256 text NOT NULL,
        member text NOT NULL,
        member_size bigint,
        member_sha256 text,
        layout text,
        rows bigint,
        status text NOT NULL,
        PRIMARY KEY (run_id, input, member)
    );
    CREATE TABLE {m}.rejects (
        run_id bigint NOT NULL REFERENCES {m}.runs (id) ON DELETE CASCADE,
        input text NOT NULL,
        member text NOT NULL,
        line bigint NOT NULL,
        byte bigint NOT NULL,
        layout text NOT NULL,
        field text,
        raw text,
        code text NOT NULL,
        reason text NOT NULL
    );
    CREATE INDEX rejects_run_idx ON {m}.rejects (run_id);
    CREATE TABLE {m}.staged (
        dataset text NOT NULL,
        target_schema text NOT NULL,
        layout text NOT NULL,
        staging_table text NOT NULL,
        run_id bigint NOT NULL,
        inputs jsonb NOT NULL,
        counts jsonb NOT NULL,
        staged_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (dataset, target_schema, layout)
    );
    CREATE TABLE {m}.generations (
        dataset text NOT NULL,
        target_schema text NOT NULL,
        table_name text NOT NULL,
        previous text NOT NULL,
        run_id bigint NOT NULL,
        swapped_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (dataset, target_schema, table_name)
    );",
    // 2: the outcomes of the stages before a load (`fwload run`).
    "ALTER TABLE {m}.runs ADD COLUMN stages jsonb;",
    // 3: staging tables named after an id of their own (unique per
    // dataset, target schema and layout by construction); staged state
    // that proves it is complete before --resume reuses it (the table's
    // OID and rows, and a mark in an UNLOGGED table that crash recovery
    // empties together with the staging tables); what decides a run's
    // outcome, for the unchanged-input skip. Staging recorded before
    // this proves nothing: it is dropped.
    "CREATE TABLE {m}.staging_names (
        id bigserial PRIMARY KEY,
        dataset text NOT NULL,
        target_schema text NOT NULL,
        layout text NOT NULL,
        UNIQUE (dataset, target_schema, layout)
    );
    CREATE UNLOGGED TABLE {m}.stage_marks (
        staging_table oid PRIMARY KEY,
        run_id bigint NOT NULL
    );
    ALTER TABLE {m}.staged ADD COLUMN staging_oid oid,
        ADD COLUMN table_rows bigint, ADD COLUMN kind text,
        ADD COLUMN schema_hash text;
    DO $$ DECLARE t text; BEGIN
        FOR t IN SELECT staging_table FROM {m}.staged LOOP
            EXECUTE 'DROP TABLE IF EXISTS ' || t;
        END LOOP;
    END $$;
    DELETE FROM {m}.staged;
    ALTER TABLE {m}.runs ADD COLUMN outcome_key text;",
    // 4: which rollback run undid a generation, so a second rollback
    // does nothing instead of swapping forward again.
    "ALTER TABLE {m}.generations ADD COLUMN rolled_back_by bigint;",
    // 5: what each input's control record stated (year, supplement,
    // export version, no-values flag).
    "ALTER TABLE {m}.runs ADD COLUMN controls jsonb;
    ALTER TABLE {m}.run_files ADD COLUMN version text;",
    // 6: the period a load filled (datasets kept by period) and the year
    // it was given, so runs of different years are told apart.
    "ALTER TABLE {m}.runs ADD COLUMN period integer, ADD COLUMN year integer;",
    // 7: undo of any run: per run, how each table it changed is restored
    // (`how`: created, emptied, rows, appended, history) and, for `rows`,
    // the previous versions of the rows it updated or deleted and the
    // keys it inserted; `undo` on the run says whether that is kept.
    "CREATE TABLE {m}.undo_tables (
        run_id bigint NOT NULL REFERENCES {m}.runs (id) ON DELETE CASCADE,
        seq integer NOT NULL,
        table_name text NOT NULL,
        how text NOT NULL,
        key text[] NOT NULL DEFAULT '{}',
        detail jsonb,
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE {m}.undo_rows (
        run_id bigint NOT NULL,
        seq integer NOT NULL,
        op \"char\" NOT NULL,
        row jsonb NOT NULL
    );
    CREATE INDEX undo_rows_idx ON {m}.undo_rows (run_id, seq);
    ALTER TABLE {m}.runs ADD COLUMN undo text, ADD COLUMN undone_by bigint,
        ADD COLUMN forced_by text;",
];

/// Creates or upgrades the metadata schema `meta`. Concurrent callers
/// serialise on a transaction-level advisory lock.
///
/// # Errors
/// A failed statement.
pub(crate) fn migrate(db: &mut Client, meta: &str) -> Result<(), LoadError> {
    let m = quote_ident(meta);
    let ctx = |e| {
        LoadError::db(format!("creating fwload's metadata schema {meta}"), e)
    };
    let mut tx = db.transaction().map_err(ctx)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('fwload:migrate'))",
        &[],
    )
    .map_err(ctx)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {m};
         CREATE TABLE IF NOT EXISTS {m}.migrations (
             version int PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now())"
    ))
    .map_err(ctx)?;
    let done: i32 = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {m}.migrations"),
            &[],
        )
        .map_err(ctx)?
        .get(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
        tx.batch_execute(&sql.replace("{m}", &m)).map_err(ctx)?;
        tx.execute(
            &format!("INSERT INTO {m}.migrations (version) VALUES ($1)"),
            &[&(i as i32 + 1)],
        )
        .map_err(ctx)?;
    }
    tx.commit().map_err(ctx)
}

/// What a new run record says about itself.
#[derive(Clone, Debug)]
pub(crate) struct NewRun<'a> {
    /// Dataset.
    pub dataset: &'a str,
    /// Target schema.
    pub target_schema: &'a str,
    /// Mode.
    pub mode: &'a str,
    /// sha256 of the schema files.
    pub schema_hash: &'a str,
    /// What decides the outcome besides the inputs (see
    /// [`super::skip::outcome_key`]); `None` for runs that load nothing.
    pub outcome_key: Option<&'a str>,
    /// Options it runs with.
    pub options: serde_json::Value,
    /// Outcomes of earlier stages (`fwload run`), or null.
    pub stages: serde_json::Value,
    /// What the inputs' control records state, or null.
    pub controls: serde_json::Value,
    /// The period value the load fills, for a dataset kept by period.
    pub period: Option<i32>,
    /// The year the load was given (`--year`).
    pub year: Option<i32>,
}

/// Starts a run record (status `running`) and returns its id.
///
/// # Errors
/// A failed statement.
pub(crate) fn start_run<C: postgres::GenericClient>(
    db: &mut C,
    meta: &str,
    run: &NewRun<'_>,
) -> Result<i64, LoadError> {
    let m = quote_ident(meta);
    let stages = (!run.stages.is_null()).then(|| Json(run.stages.clone()));
    let controls =
        (!run.controls.is_null()).then(|| Json(run.controls.clone()));
    let row = db
        .query_one(
            &format!(
                "INSERT INTO {m}.runs (dataset, target_schema, mode, status, fwload_version, schema_hash, options, stages, outcome_key, controls, period, year)
                 VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id"
            ),
            &[
                &run.dataset,
                &run.target_schema,
                &run.mode,
                &env!("CARGO_PKG_VERSION"),
                &run.schema_hash,
                &Json(run.options.clone()),
                &stages,
                &run.outcome_key,
                &controls,
                &run.period,
                &run.year,
            ],
        )
        .map_err(|e| LoadError::db("recording the run", e))?;
    Ok(row.get(0))
}

/// Records the run as succeeded with its per-table outcomes inside the
/// publish transaction, so success and data commit together.
///
/// # Errors
/// A failed statement.
pub(super) fn record_success(
    tx: &mut postgres::Transaction<'_>,
    meta: &str,
    run: i64,
    tables: &[super::TableOutcome],
) -> Result<(), LoadError> {
    let counts = serde_json::to_value(tables).unwrap_or_default();
    tx.execute(
        &finish_sql(meta),
        &[&run, &"succeeded", &None::<String>, &Json(counts)],
    )
    .map_err(|e| LoadError::db("recording the run", e))?;
    Ok(())
}

/// The statement that ends a run record; also used inside the publish
/// transaction so success and data commit together.
pub(super) fn finish_sql(meta: &str) -> String {
    format!(
        "UPDATE {}.runs SET status = $2, reason = $3, counts = $4, finished_at = now() WHERE id = $1",
        quote_ident(meta)
    )
}

/// Ends a run record on its own (failed, refused, dry run, unchanged).
///
/// # Errors
/// A failed statement.
pub(crate) fn finish_run(
    db: &mut Client,
    meta: &str,
    run: i64,
    status: &str,
    reason: Option<&str>,
    counts: &impl Serialize,
) -> Result<(), LoadError> {
    let counts = serde_json::to_value(counts).unwrap_or_default();
    db.execute(&finish_sql(meta), &[&run, &status, &reason, &Json(counts)])
        .map_err(|e| LoadError::db("recording the run's outcome", e))?;
    Ok(())
}

/// One input file as recorded with a run.
#[derive(Clone, Debug, Serialize)]
pub struct RunFile {
    /// Input path.
    pub input: String,
    /// Input size.
    pub input_size: i64,
    /// Input sha256.
    pub input_sha256: String,
    /// Member name.
    pub member: String,
    /// Member size.
    pub member_size: Option<i64>,
    /// Member sha256.
    pub member_sha256: Option<String>,
    /// Layout it fed.
    pub layout: Option<String>,
    /// Records read.
    pub rows: Option<i64>,
    /// `loaded`, `unchanged`, `staged`, `reused`, `no layout`.
    pub status: String,
    /// The layout version it was read with, and why (a versioned
    /// layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Records the files of a run, in one statement (a directory of ten
/// thousand files is one round trip, not ten thousand).
///
/// # Errors
/// A failed statement.
pub(super) fn record_files(
    db: &mut Client,
    meta: &str,
    run: i64,
    files: &[RunFile],
) -> Result<(), LoadError> {
    if files.is_empty() {
        return Ok(());
    }
    // The last record of an input's member wins, as one upsert per file
    // would have it (an upsert cannot touch one row twice).
    let mut last: std::collections::HashMap<(&str, &str), usize> =
        std::collections::HashMap::new();
    for (i, f) in files.iter().enumerate() {
        last.insert((&f.input, &f.member), i);
    }
    let files: Vec<&RunFile> = files
        .iter()
        .enumerate()
        .filter(|(i, f)| last[&(f.input.as_str(), f.member.as_str())] == *i)
        .map(|(_, f)| f)
        .collect();
    let m = quote_ident(meta);
    let col = |f: fn(&RunFile) -> Option<String>| -> Vec<Option<String>> {
        files.iter().map(|x| f(x)).collect()
    };
    let num = |f: fn(&RunFile) -> Option<i64>| -> Vec<Option<i64>> {
        files.iter().map(|x| f(x)).collect()
    };
    db.execute(
        &format!(
            "INSERT INTO {m}.run_files (run_id, input, input_size, input_sha256, member, member_size, member_sha256, layout, rows, status, version)
             SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::bigint[], $10::text[], $11::text[])
             ON CONFLICT (run_id, input, member) DO UPDATE SET member_size = excluded.member_size,
                 member_sha256 = excluded.member_sha256, rows = excluded.rows, status = excluded.status,
                 version = excluded.version"
        ),
        &[
            &run,
            &col(|f| Some(f.input.clone())),
            &num(|f| Some(f.input_size)),
            &col(|f| Some(f.input_sha256.clone())),
            &col(|f| Some(f.member.clone())),
            &num(|f| f.member_size),
            &col(|f| f.member_sha256.clone()),
            &col(|f| f.layout.clone()),
            &num(|f| f.rows),
            &col(|f| Some(f.status.clone())),
            &col(|f| f.version.clone()),
        ],
    )
    .map_err(|e| LoadError::db("recording the run's files", e))?;
    Ok(())
}

/// Marks the dataset's runs into `target_schema` still recorded as
/// `running` as `abandoned`. Called with the dataset's lock held, so none
/// of them is alive: their process was killed, or lost its connection
/// before it could record how it ended. Returns how many.
///
/// # Errors
/// A failed statement.
pub(super) fn abandon_dead_runs(
    db: &mut Client,
    meta: &str,
    dataset: &str,
    target_schema: &str,
) -> Result<u64, LoadError> {
    db.execute(
        &format!(
            "UPDATE {}.runs SET status = 'abandoned', finished_at = now(),
                 reason = 'the process ended without recording an outcome (killed, or its connection was lost); nothing it did was committed'
             WHERE dataset = $1 AND target_schema = $2 AND status = 'running'",
            quote_ident(meta)
        ),
        &[&dataset, &target_schema],
    )
    .map_err(|e| LoadError::db("marking abandoned runs", e))
}

/// Drops the staging tables of the dataset's runs that committed (left
/// behind by a kill between the commit and the cleanup), and staged
/// state recorded before staged tables could prove themselves. Staging
/// of failed or abandoned runs stays for `--resume`.
///
/// # Errors
/// A failed statement.
pub(super) fn drop_spent_staging(
    db: &mut Client,
    meta: &str,
    dataset: &str,
    target_schema: &str,
) -> Result<(), LoadError> {
    let m = quote_ident(meta);
    let ctx = |e| LoadError::db("dropping staging tables left behind", e);
    let rows = db
        .query(
            &format!(
                "SELECT s.layout, s.staging_table FROM {m}.staged s
                 LEFT JOIN {m}.runs r ON r.id = s.run_id
                 WHERE s.dataset = $1 AND s.target_schema = $2
                   AND (r.status IS NULL OR r.status IN ('succeeded', 'dry_run') OR s.staging_oid IS NULL)"
            ),
            &[&dataset, &target_schema],
        )
        .map_err(ctx)?;
    for r in rows {
        let (layout, table): (String, String) = (r.get(0), r.get(1));
        drop_staged(db, meta, (dataset, target_schema), &layout, &table)?;
    }
    Ok(())
}

/// Drops one staging table, its staged record and its mark.
///
/// # Errors
/// A failed statement.
pub(super) fn drop_staged(
    db: &mut Client,
    meta: &str,
    (dataset, target_schema): (&str, &str),
    layout: &str,
    table: &str,
) -> Result<(), LoadError> {
    let m = quote_ident(meta);
    let ctx = |e| LoadError::db(format!("dropping staging table {table}"), e);
    let mut tx = db.transaction().map_err(ctx)?;
    tx.execute(
        &format!(
            "DELETE FROM {m}.stage_marks WHERE staging_table = to_regclass($1)"
        ),
        &[&table],
    )
    .map_err(ctx)?;
    tx.batch_execute(&format!("DROP TABLE IF EXISTS {table}")).map_err(ctx)?;
    tx.execute(
        &format!(
            "DELETE FROM {m}.staged WHERE dataset = $1 AND target_schema = $2 AND layout = $3"
        ),
        &[&dataset, &target_schema, &layout],
    )
    .map_err(ctx)?;
    tx.commit().map_err(ctx)
}
