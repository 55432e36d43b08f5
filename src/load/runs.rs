//! Reading past runs: `fwload runs` and `fwload runs show ID`.

use postgres::Client;
use postgres::types::Json;
use serde::Serialize;

use super::LoadError;
use super::meta::RunFile;
use super::publish::table_exists;
use crate::schema::quote_ident;

/// One past run.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// Run id.
    pub id: i64,
    /// Dataset.
    pub dataset: String,
    /// Target schema.
    pub target_schema: String,
    /// Mode.
    pub mode: String,
    /// Outcome.
    pub status: String,
    /// Why, when not succeeded.
    pub reason: Option<String>,
    /// Start, as text.
    pub started_at: String,
    /// Seconds it took, when finished.
    pub seconds: Option<f64>,
    /// fwload version.
    pub fwload_version: String,
}

/// One run with its files and reject counts.
#[derive(Clone, Debug, Serialize)]
pub struct RunDetail {
    /// The run.
    pub run: RunSummary,
    /// Options it ran with.
    pub options: serde_json::Value,
    /// Its report (per-table counts).
    pub counts: serde_json::Value,
    /// What the inputs' control records stated (null: none).
    pub controls: serde_json::Value,
    /// Input files and members.
    pub files: Vec<RunFile>,
    /// Rejects per layout, field and reason code.
    pub rejects: Vec<(String, Option<String>, String, i64)>,
}

const RUN_COLUMNS: &str = "id, dataset, target_schema, mode, status, reason, started_at::text, \
    extract(epoch FROM finished_at - started_at)::float8, fwload_version";

fn summary(r: &postgres::Row) -> RunSummary {
    RunSummary {
        id: r.get(0),
        dataset: r.get(1),
        target_schema: r.get(2),
        mode: r.get(3),
        status: r.get(4),
        reason: r.get(5),
        started_at: r.get(6),
        seconds: r.get(7),
        fwload_version: r.get(8),
    }
}

fn has_meta(db: &mut Client, meta: &str) -> Result<bool, LoadError> {
    table_exists(db, &format!("{}.runs", quote_ident(meta)))
}

/// The newest runs, optionally of one dataset.
///
/// # Errors
/// A database error.
pub fn list_runs(
    db: &mut Client,
    meta: &str,
    dataset: Option<&str>,
    limit: i64,
) -> Result<Vec<RunSummary>, LoadError> {
    if !has_meta(db, meta)? {
        return Ok(Vec::new());
    }
    let rows = db
        .query(
            &format!(
                "SELECT {RUN_COLUMNS} FROM {}.runs WHERE $1::text IS NULL OR dataset = $1 ORDER BY id DESC LIMIT $2",
                quote_ident(meta)
            ),
            &[&dataset, &limit],
        )
        .map_err(|e| LoadError::db("reading runs", e))?;
    Ok(rows.iter().map(summary).collect())
}

/// One run in detail.
///
/// # Errors
/// A database error, or no such run.
pub fn show_run(
    db: &mut Client,
    meta: &str,
    id: i64,
) -> Result<RunDetail, LoadError> {
    if !has_meta(db, meta)? {
        return Err(LoadError::config(format!(
            "no runs recorded in schema {meta}"
        )));
    }
    let m = quote_ident(meta);
    let ctx = |e| LoadError::db(format!("reading run {id}"), e);
    let Some(r) = db
        .query_opt(&format!("SELECT {RUN_COLUMNS}, options, counts, controls FROM {m}.runs WHERE id = $1"), &[&id])
        .map_err(ctx)?
    else {
        return Err(LoadError::config(format!("no run {id} in {meta}.runs")));
    };
    let options: Option<Json<serde_json::Value>> = r.get(9);
    let counts: Option<Json<serde_json::Value>> = r.get(10);
    let controls: Option<Json<serde_json::Value>> = r.get(11);
    let files = db
        .query(
            &format!(
                "SELECT input, input_size, input_sha256, member, member_size, member_sha256, layout, rows, status, version
                 FROM {m}.run_files WHERE run_id = $1 ORDER BY input, member"
            ),
            &[&id],
        )
        .map_err(ctx)?
        .iter()
        .map(|f| RunFile {
            input: f.get(0),
            input_size: f.get(1),
            input_sha256: f.get(2),
            member: f.get(3),
            member_size: f.get(4),
            member_sha256: f.get(5),
            layout: f.get(6),
            rows: f.get(7),
            status: f.get(8),
            version: f.get(9),
        })
        .collect();
    let rejects = db
        .query(
            &format!(
                "SELECT layout, field, code, count(*) FROM {m}.rejects WHERE run_id = $1
                 GROUP BY layout, field, code ORDER BY count(*) DESC, layout, field"
            ),
            &[&id],
        )
        .map_err(ctx)?
        .iter()
        .map(|x| (x.get(0), x.get(1), x.get(2), x.get(3)))
        .collect();
    Ok(RunDetail {
        run: summary(&r),
        options: options.map(|j| j.0).unwrap_or_default(),
        counts: counts.map(|j| j.0).unwrap_or_default(),
        controls: controls.map(|j| j.0).unwrap_or_default(),
        files,
        rejects,
    })
}
