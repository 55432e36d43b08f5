//! The dataset's checks (`[[check]]`): run inside the publish transaction
//! once every table is in and before COMMIT; one that fails rolls the
//! whole load back (exit 1) with the check, the value found and the value
//! expected.
//!
//! - `sql`: a query returning one value, compared by the server, as the
//!   value's type, with `expect` (`= 0`, `<= 100`, `between 1 and 9`);
//!   `{layout}` stands for the layout's target table, `{period}` for the
//!   load's period, `{schema}` for the target schema.
//! - `max_change`: per table, the rows inserted, updated and deleted, and
//!   the difference in rows loaded, against the rows the previous
//!   successful run of the dataset (of the same period) loaded.
//! - `counts`: the records of one layout state how many records each
//!   member holds; every member they name must hold that many.

use std::collections::HashMap;

use postgres::Transaction;
use serde::{Deserialize, Serialize};

use super::period::PeriodValue;
use super::{LoadError, Mode, Staged, TableOutcome, describe};
use crate::schema::{
    Check, CheckKind, Expect, SchemaSet, SqlPiece, quote_ident, sql_pieces,
};

/// The outcome of one check, for the report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// What was found.
    pub found: String,
    /// What was expected.
    pub expected: String,
    /// Whether it passed.
    pub passed: bool,
}

/// Where the checks run: what they need besides the transaction.
pub(super) struct Scope<'a> {
    /// fwload's metadata schema.
    pub meta: &'a str,
    /// The dataset and target schema.
    pub dataset: (&'a str, &'a str),
    /// This run.
    pub run: i64,
    /// The load's period, for a dataset kept by one.
    pub period: Option<&'a PeriodValue>,
    /// The mode.
    pub mode: Mode,
    /// Target table of each layout (qualified, quoted).
    pub targets: &'a HashMap<String, String>,
}

/// The dataset's checks and the counts stated by records published so
/// far.
pub(super) struct Checks<'a> {
    checks: Vec<&'a Check>,
    /// (member, records stated, line of the statement) per counts check
    /// whose layout this load publishes.
    stated: HashMap<String, Vec<Stated>>,
    /// Members of inputs skipped as unchanged (their counts were checked
    /// by the run that loaded them).
    unchanged: &'a [String],
}

/// A member and the records a counts layout states it holds, with the
/// line of the statement (0 when read from the target).
type Stated = (String, i64, i64);

impl<'a> Checks<'a> {
    /// The checks of `set`; `unchanged` are the members of inputs the
    /// load skips as unchanged.
    pub(super) fn new(set: &'a SchemaSet, unchanged: &'a [String]) -> Self {
        Checks {
            checks: set.dataset.iter().flat_map(|d| &d.checks).collect(),
            stated: HashMap::new(),
            unchanged,
        }
    }

    /// Reads the counts `layout`'s staged rows in `table` (still with
    /// fwload's columns) state, for every counts check it serves.
    ///
    /// # Errors
    /// A failed statement.
    pub(super) fn take(
        &mut self,
        tx: &mut Transaction<'_>,
        layout: &str,
        table: &str,
    ) -> Result<(), LoadError> {
        for c in &self.checks {
            let CheckKind::Counts { layout: l, member, records } = &c.kind
            else {
                continue;
            };
            if l != layout {
                continue;
            }
            let rows = tx
                .query(&stated_sql(table, member, records), &[])
                .map_err(|e| {
                    LoadError::db(
                        format!("check '{}': reading {layout}", c.name),
                        e,
                    )
                })?;
            let stated = rows
                .iter()
                .map(|r| {
                    (
                        r.get::<_, Option<String>>(0).unwrap_or_default(),
                        r.get::<_, Option<i64>>(1).unwrap_or(-1),
                        r.get::<_, i64>(2),
                    )
                })
                .collect();
            self.stated.insert(c.name.clone(), stated);
        }
        Ok(())
    }

    /// Runs every check; returns their outcomes when all pass.
    ///
    /// # Errors
    /// A check that fails (refused, naming it, the value found and the
    /// value expected), or a query that does not run (schema error).
    pub(super) fn run(
        &self,
        tx: &mut Transaction<'_>,
        scope: &Scope<'_>,
        tables: &[TableOutcome],
        staged: &[Staged],
    ) -> Result<Vec<CheckResult>, LoadError> {
        let mut out = Vec::new();
        for c in &self.checks {
            let results = match &c.kind {
                CheckKind::Sql { sql, expect } => {
                    vec![sql_check(tx, scope, c, sql, expect)?]
                }
                CheckKind::MaxChange { share, tables: only } => {
                    max_change(tx, scope, c, *share, only, tables)?
                }
                CheckKind::Counts { layout, member, records } => {
                    // Stated by this load, else by the counts the target
                    // holds (the layout's input is unchanged).
                    let from_target;
                    let stated = match self.stated.get(&c.name) {
                        Some(s) => s,
                        None => {
                            from_target = target_counts(
                                tx,
                                scope,
                                c,
                                (layout, member, records),
                            )?;
                            &from_target
                        }
                    };
                    self.counts(c, layout, stated, staged)
                }
            };
            if let Some(failed) = results.iter().find(|r| !r.passed) {
                return Err(LoadError::refused(format!(
                    "check '{}' failed: {}, expected {}; nothing was changed",
                    failed.name, failed.found, failed.expected
                )));
            }
            out.extend(results);
        }
        Ok(out)
    }
}

/// The member and record count each row of `table` states, with its line.
fn stated_sql(table: &str, member: &str, records: &str) -> String {
    format!(
        "SELECT {}::text, {}::bigint, _fw_line FROM {table} WHERE NOT _fw_reject ORDER BY _fw_file, _fw_line",
        quote_ident(member),
        quote_ident(records)
    )
}

/// A check's SQL with its placeholders filled in.
fn fill_sql(
    c: &Check,
    sql: &str,
    scope: &Scope<'_>,
) -> Result<String, LoadError> {
    let pieces = sql_pieces(sql)
        .map_err(|m| LoadError::schema(format!("check '{}': {m}", c.name)))?;
    let mut out = String::with_capacity(sql.len());
    for p in pieces {
        match p {
            SqlPiece::Text(t) => out.push_str(t),
            SqlPiece::Name("period") => out.push_str(
                &scope
                    .period
                    .map_or_else(|| "NULL".into(), |v| v.value.to_string()),
            ),
            SqlPiece::Name("schema") => {
                out.push_str(&quote_ident(scope.dataset.1))
            }
            SqlPiece::Name(n) => match scope.targets.get(n) {
                Some(t) => out.push_str(t),
                None => {
                    return Err(LoadError::schema(format!(
                        "check '{}': {{{n}}} is no layout of the dataset",
                        c.name
                    )));
                }
            },
        }
    }
    Ok(out)
}

/// A SQL literal of `s`, of a type the server infers from what it is
/// compared with.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The statement of a sql check: its value as text, and whether it meets
/// `expect` (NULL meets nothing).
fn sql_check_sql(sql: &str, expect: &Expect) -> String {
    let cond = match expect.operands.as_slice() {
        [a, b] => format!("q.v BETWEEN {} AND {}", literal(a), literal(b)),
        [a] => format!("q.v {} {}", expect.op, literal(a)),
        _ => "false".into(),
    };
    format!(
        "SELECT q.v::text, coalesce({cond}, false) FROM ({}\n) AS q(v)",
        sql.trim().trim_end_matches(';')
    )
}

fn sql_check(
    tx: &mut Transaction<'_>,
    scope: &Scope<'_>,
    c: &Check,
    sql: &str,
    expect: &Expect,
) -> Result<CheckResult, LoadError> {
    let filled = fill_sql(c, sql, scope)?;
    let rows =
        tx.query(&sql_check_sql(&filled, expect), &[]).map_err(|e| {
            LoadError::schema(format!(
                "check '{}' does not run: {}\n  query: {filled}",
                c.name,
                describe(&e)
            ))
        })?;
    let (found, passed) = match rows.as_slice() {
        [] => ("no row".to_owned(), false),
        [r] => (
            r.get::<_, Option<String>>(0).unwrap_or_else(|| "NULL".into()),
            r.get(1),
        ),
        many => {
            (format!("{} rows (a check returns one value)", many.len()), false)
        }
    };
    Ok(CheckResult {
        name: c.name.clone(),
        found,
        expected: expect.show(),
        passed,
    })
}

/// Rows a table's previous successful load loaded (inserted, updated or
/// unchanged), with that run's id: the newest succeeded run of the
/// dataset and target schema before `run`, of the same period, that
/// published layout `$5`. The run's counts are its report (an object
/// with `tables`) or, until that is written, the table outcomes alone.
fn previous_sql(meta: &str) -> String {
    format!(
        "SELECT r.id, (t->>'inserted')::bigint + (t->>'updated')::bigint + (t->>'unchanged')::bigint
           FROM {}.runs r,
                jsonb_array_elements(CASE jsonb_typeof(r.counts) WHEN 'array' THEN r.counts
                                     ELSE coalesce(r.counts->'tables', '[]') END) t
          WHERE r.dataset = $1 AND r.target_schema = $2 AND r.status = 'succeeded'
            AND r.id < $3 AND r.period IS NOT DISTINCT FROM $4 AND t->>'layout' = $5
          ORDER BY r.id DESC LIMIT 1",
        quote_ident(meta)
    )
}

fn max_change(
    tx: &mut Transaction<'_>,
    scope: &Scope<'_>,
    c: &Check,
    share: f64,
    only: &[String],
    tables: &[TableOutcome],
) -> Result<Vec<CheckResult>, LoadError> {
    let mut out = Vec::new();
    let sql = previous_sql(scope.meta);
    for t in
        tables.iter().filter(|t| only.is_empty() || only.contains(&t.layout))
    {
        let row = tx
            .query_opt(
                &sql,
                &[
                    &scope.dataset.0,
                    &scope.dataset.1,
                    &scope.run,
                    &scope.period.map(|p| p.value),
                    &t.layout,
                ],
            )
            .map_err(|e| {
                LoadError::db(
                    format!("check '{}': the previous run", c.name),
                    e,
                )
            })?;
        let expected = format!("at most {}%", share * 100.0);
        let Some(row) = row else {
            out.push(CheckResult {
                name: c.name.clone(),
                found: format!("{}: no previous successful load", t.layout),
                expected,
                passed: true,
            });
            continue;
        };
        let (run, before): (i64, Option<i64>) = (row.get(0), row.get(1));
        let before = before.unwrap_or(0).max(0) as u64;
        let loaded = t.inserted + t.updated + t.unchanged;
        // Replace and append insert every row: only their size compares.
        let changed = match scope.mode {
            Mode::Replace | Mode::Append => 0,
            _ => t.inserted + t.updated + t.deleted,
        };
        let size = loaded.abs_diff(before);
        let moved = changed.max(size);
        let ratio = if before == 0 {
            if moved == 0 { 0.0 } else { f64::INFINITY }
        } else {
            moved as f64 / before as f64
        };
        let what = if size >= changed {
            format!("{loaded} rows loaded against {before} by run {run}")
        } else {
            format!(
                "{} inserted, {} updated, {} deleted of {before} rows loaded by run {run}",
                t.inserted, t.updated, t.deleted
            )
        };
        out.push(CheckResult {
            name: c.name.clone(),
            found: format!("{}: {} ({})", t.layout, show_share(ratio), what),
            expected,
            passed: ratio <= share + 1e-12,
        });
    }
    Ok(out)
}

fn show_share(r: f64) -> String {
    if r.is_infinite() {
        "all new".into()
    } else {
        format!("{:.2}% changed", r * 100.0)
    }
}

impl Checks<'_> {
    /// Compares the counts `stated` with the records this load read of
    /// each member (members of unchanged inputs pass: the run that
    /// loaded them checked them).
    fn counts(
        &self,
        c: &Check,
        layout: &str,
        stated: &[Stated],
        staged: &[Staged],
    ) -> Vec<CheckResult> {
        let same = |a: &str, b: &str| {
            a == b || base_name(a).eq_ignore_ascii_case(base_name(b))
        };
        stated
            .iter()
            .map(|(member, records, line)| {
                let read: Option<u64> = staged
                    .iter()
                    .flat_map(|s| &s.members)
                    .filter(|m| same(&m.member, member))
                    .map(|m| m.counts.read)
                    .reduce(|a, b| a + b);
                let unchanged = self.unchanged.iter().any(|u| same(u, member));
                let found = match read {
                    Some(n) => format!("{member}: {n} records read"),
                    None if unchanged => {
                        format!(
                            "{member}: unchanged since the run that read it"
                        )
                    }
                    None => format!("{member}: not read by this load"),
                };
                let at = if *line > 0 {
                    format!("{layout} line {line}")
                } else {
                    layout.to_owned()
                };
                CheckResult {
                    name: c.name.clone(),
                    found,
                    expected: format!("{records} (as {at} states)"),
                    passed: *records >= 0
                        && (read == Some(*records as u64)
                            || (read.is_none() && unchanged)),
                }
            })
            .collect()
    }
}

/// The last part of a member's path.
fn base_name(m: &str) -> &str {
    m.rsplit(['/', '\\']).next().unwrap_or(m)
}

/// The counts the target of the counts layout holds (of the load's
/// period, for a dataset kept by one).
fn target_counts(
    tx: &mut Transaction<'_>,
    scope: &Scope<'_>,
    c: &Check,
    (layout, member, records): (&str, &str, &str),
) -> Result<Vec<Stated>, LoadError> {
    let Some(target) = scope.targets.get(layout) else {
        return Ok(Vec::new());
    };
    let what = |w: &str| format!("check '{}': {w} {target}", c.name);
    let exists: bool = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[target])
        .map_err(|e| LoadError::db(what("finding"), e))?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let period = scope
        .period
        .map(|p| format!(" WHERE {} = {}", p.quoted(), p.value))
        .unwrap_or_default();
    let sql = format!(
        "SELECT {}::text, {}::bigint FROM {target}{period} ORDER BY 1",
        quote_ident(member),
        quote_ident(records)
    );
    let rows =
        tx.query(&sql, &[]).map_err(|e| LoadError::db(what("reading"), e))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, Option<String>>(0).unwrap_or_default(),
                r.get::<_, Option<i64>>(1).unwrap_or(-1),
                0,
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sql_check_compares_on_the_server_as_the_value_type() {
        let e = Expect { op: "<=".into(), operands: vec!["it's".into()] };
        assert_eq!(
            sql_check_sql("SELECT 1;", &e),
            "SELECT q.v::text, coalesce(q.v <= 'it''s', false) FROM (SELECT 1\n) AS q(v)"
        );
        let e = Expect {
            op: "between".into(),
            operands: vec!["1".into(), "9".into()],
        };
        assert!(
            sql_check_sql("SELECT 1", &e).contains("q.v BETWEEN '1' AND '9'")
        );
    }
}
