//! Target tables: their names, whether they match their layouts column by
//! column, their creation, and the guard against an export without
//! values.

use std::collections::BTreeMap;

use postgres::Client;

use super::inventory::Planned;
use super::period::{self, PeriodValue};
use super::{DeletePolicy, LoadError, LoadOptions, LoadReport, Mode, publish};
use crate::pipeline::Control;
use crate::schema::{
    HistoryColumns, Layout, SchemaSet, TableShape, create_table_unkeyed,
    history_index, history_views, index_statements, primary_key, quote_ident,
};

/// Column differences between an existing table and a layout, one line
/// each; empty when they agree.
///
/// # Errors
/// A database error.
pub(crate) fn column_report(
    db: &mut Client,
    table: &str,
    layout: &Layout,
    soft: bool,
    (period, history): (Option<&str>, Option<&HistoryColumns>),
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
    if let Some(p) = period {
        match have.get(p) {
            None => out.push(format!(
                "column {p}: missing, the dataset's period column (integer)"
            )),
            Some((got, _, _)) if got != "integer" => out.push(format!(
                "column {p}: type is {got}, the dataset's period column is integer"
            )),
            _ => {}
        }
    }
    let versions: Vec<(&str, &str)> = history
        .map(|h| {
            vec![
                (h.valid_from.as_str(), "timestamp with time zone"),
                (h.valid_to.as_str(), "timestamp with time zone"),
                (h.row_hash.as_str(), "uuid"),
            ]
        })
        .unwrap_or_default();
    for (name, want) in &versions {
        match have.get(*name) {
            None => out.push(format!(
                "column {name}: missing, needed by --mode history ({want})"
            )),
            Some((got, _, _)) if got != want => out.push(format!(
                "column {name}: type is {got}, --mode history needs {want}"
            )),
            _ => {}
        }
    }
    for (name, (ty, not_null, has_default)) in &have {
        if layout.field_index(name).is_some()
            || Some(name.as_str()) == period
            || versions.iter().any(|(v, _)| v == name)
        {
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

/// The schema and name of a layout's target table.
pub(crate) fn target_parts(
    target_schema: &str,
    layout: &Layout,
) -> (String, String) {
    match layout.table.split_once('.') {
        Some((s, t)) => (s.to_owned(), t.to_owned()),
        None => (target_schema.to_owned(), layout.table.clone()),
    }
}

/// `"schema"."table"`.
pub(crate) fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// The qualified, quoted target table of a layout.
pub(crate) fn target_name(target_schema: &str, layout: &Layout) -> String {
    let (schema, table) = target_parts(target_schema, layout);
    qualified(&schema, &table)
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
    period: Option<&PeriodValue>,
) -> Result<(), LoadError> {
    let Some(c) = controls.iter().find(|c| c.no_values) else {
        return Ok(());
    };
    // A load of one period only ever changes that period's rows.
    let scope = period
        .map(|p| format!(" WHERE {} = {}", p.quoted(), p.value))
        .unwrap_or_default();
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
            .query_one(
                &format!("SELECT EXISTS (SELECT FROM {target}{scope})"),
                &[],
            )
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

/// Creates `layout`'s target, without its key and indexes: returns the
/// statements that build them, for [`build_indexes`] once the table is
/// filled (a sort each instead of an index insert per row; the table is
/// new in this transaction, so no one else sees it meanwhile).
///
/// # Errors
/// A database error.
pub(super) fn create_target(
    tx: &mut postgres::Transaction<'_>,
    layout: &Layout,
    target: &str,
    opts: &LoadOptions,
    set: &SchemaSet,
) -> Result<Vec<String>, LoadError> {
    let ctx = |e| LoadError::db(format!("creating {target}"), e);
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        quote_ident(&opts.target_schema)
    ))
    .map_err(ctx)?;
    let history = set.history_columns();
    let shape = TableShape {
        soft_delete: opts.delete == DeletePolicy::Soft
            && opts.mode != Mode::History,
        period: set.period_column(),
        history: (opts.mode == Mode::History).then_some(&history),
    };
    tx.batch_execute(&create_table_unkeyed(layout, target, &shape))
        .map_err(ctx)?;
    for s in history_views(target, &shape) {
        tx.batch_execute(&s).map_err(ctx)?;
    }
    Ok(primary_key(layout, target, &shape)
        .into_iter()
        .chain(index_statements(layout, target, set.references()))
        .chain(history_index(layout, target, &shape))
        .collect())
}

/// Builds the key and indexes [`create_target`] left out of `target`.
///
/// # Errors
/// A database error: a key the rows break among them.
pub(super) fn build_indexes(
    tx: &mut postgres::Transaction<'_>,
    target: &str,
    statements: &[String],
) -> Result<(), LoadError> {
    for s in statements {
        tx.batch_execute(s).map_err(|e| {
            LoadError::db(
                format!("building the key and indexes of {target}"),
                e,
            )
        })?;
    }
    Ok(())
}

/// Checks the targets before anything changes: an export without values
/// over targets holding rows (unless `--force`), and every target of the
/// work existing (or to be created) with its layout's columns. Returns
/// the layouts whose targets do not exist yet. A dataset kept by period
/// needs every target partitioned by list on its period column.
///
/// # Errors
/// A guard, every target problem at once, or a failed statement.
pub(super) fn check(
    db: &mut Client,
    set: &SchemaSet,
    planned: &Planned,
    report: &LoadReport,
    opts: &LoadOptions,
    period: Option<&PeriodValue>,
) -> Result<Vec<usize>, LoadError> {
    if !opts.force {
        no_values_guard(db, set, &report.controls, opts, period)?;
    }
    let column = period.map(|p| p.column.as_str());
    let versions = set.history_columns();
    let history = (opts.mode == Mode::History).then_some(&versions);
    let soft = opts.delete == DeletePolicy::Soft;
    let mut missing = Vec::new();
    let mut problems = Vec::new();
    for w in &planned.work {
        let layout = &set.layouts[w.layout];
        let target = target_name(&opts.target_schema, layout);
        if !publish::table_exists(db, &target)? {
            missing.push(w.layout);
            if !opts.create {
                problems.push(format!(
                    "{target}: does not exist (use --create to create it)"
                ));
            }
            continue;
        }
        if let Some(c) = column
            && !period::partitioned_by(db, &target, c)?
        {
            problems.push(format!(
                "{target}: not partitioned by list on {c}, the dataset's period (see README, Years and history, to migrate a table)"
            ));
            continue;
        }
        problems.extend(
            column_report(db, &target, layout, soft, (column, history))?
                .into_iter()
                .map(|p| format!("{target}: {p}")),
        );
    }
    if !problems.is_empty() {
        return Err(LoadError::schema(format!(
            "target tables do not match the schema; nothing was changed:\n  {}",
            problems.join("\n  ")
        )));
    }
    Ok(missing)
}
