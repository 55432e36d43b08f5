//! `--mode history` (slowly changing dimension, type 2): every target row
//! is a version of its key, valid from `valid_from` until `valid_to`
//! (NULL while current). A load at effective time T, on the target (or
//! its period's partition):
//!
//! ```text
//!  refuse      when T is not later than every valid_from / valid_to there
//!  close       current versions whose fingerprint differs from the staged row's
//!  open        a version at T for every staged key without a current one
//!              (changed, new, or back after a delete)
//!  close       (--delete hard) current versions whose key the snapshot lacks,
//!              under the delete guard
//! ```
//!
//! An unchanged row is not touched, so a rerun of a snapshot writes
//! nothing. A row's fingerprint is computed as it is staged (`_fw_hash`:
//! the first 16 bytes of the sha256 of its values' binary COPY
//! encodings, see [`CopyRows`](crate::pgcopy::CopyRows)) and kept with
//! each version in `row_hash`, so finding the changed rows compares one
//! uuid per row instead of every column.

use postgres::{GenericClient, Transaction};

use super::period::PeriodValue;
use super::publish::{
    CHANGES, Publish, PublishOptions, TableOutcome, analyze_filled,
    delete_guard, key_match, written,
};
use super::{DeletePolicy, LoadError, LoadOptions};
use crate::schema::{HistoryColumns, Layout, quote_ident, quote_literal};

/// What a history load writes: the version columns, and the time its
/// versions become valid.
#[derive(Clone, Debug)]
pub(crate) struct History {
    /// The version columns.
    pub columns: HistoryColumns,
    /// The effective time, as PostgreSQL prints a `timestamptz`.
    pub as_of: String,
}

impl History {
    /// The effective time as an SQL literal.
    fn at(&self) -> String {
        format!("{}::timestamptz", quote_literal(&self.as_of))
    }
}

/// The effective time of run `run`: `--as-of`, else the run's start.
///
/// # Errors
/// An `--as-of` PostgreSQL does not read as a timestamp, or a database
/// error.
pub(super) fn effective_time<C: GenericClient>(
    db: &mut C,
    opts: &LoadOptions,
    run: i64,
) -> Result<String, LoadError> {
    let sql = format!(
        "SELECT coalesce($1::text::timestamptz, (SELECT started_at FROM {}.runs WHERE id = $2))::text",
        quote_ident(&opts.meta)
    );
    match db.query_one(&sql, &[&opts.as_of, &run]) {
        Ok(r) => Ok(r.get(0)),
        Err(e) if e.code().is_some_and(|c| c.code().starts_with("22")) => {
            Err(LoadError::config(format!(
                "--as-of {}: not a timestamp PostgreSQL reads ({})",
                opts.as_of.as_deref().unwrap_or_default(),
                e.as_db_error().map_or("", |d| d.message())
            )))
        }
        Err(e) => Err(LoadError::db("reading the run's start", e)),
    }
}

/// The condition that `t`'s version is current and of `s`'s key (and of
/// the load's period, so the current-key index serves).
fn current_of(
    layout: &Layout,
    h: &History,
    period: Option<&PeriodValue>,
) -> String {
    let mut cond =
        format!("t.{} IS NULL AND ", quote_ident(&h.columns.valid_to));
    if let Some(p) = period {
        cond.push_str(&format!("t.{} = {} AND ", p.quoted(), p.value));
    }
    cond.push_str(&key_match(layout, "t", "s"));
    cond
}

/// Whether any version of `target` is valid from or until a time not
/// before T, and the newest such time.
fn newest_sql(target: &str, h: &History) -> String {
    let (from, to) =
        (quote_ident(&h.columns.valid_from), quote_ident(&h.columns.valid_to));
    format!(
        "SELECT max(greatest({from}, {to}))::text, coalesce(max(greatest({from}, {to})) >= {}, false) FROM {target}",
        h.at()
    )
}

/// Finds, in one join of staging with the current versions, the staged
/// rows that change something: whose key has no current version (new,
/// or back after a delete) or whose fingerprint differs from it (the
/// replaced version's in `_fw_old`). Kept in [`CHANGES`], a few percent
/// of a snapshot, for closing and opening without joining again.
fn changes_sql(p: &Publish<'_>, h: &History) -> String {
    let row_hash = quote_ident(&h.columns.row_hash);
    format!(
        "CREATE TEMPORARY TABLE {CHANGES} ON COMMIT DROP AS \
         SELECT s.*, t.{row_hash} AS _fw_old FROM {staging} s LEFT JOIN {target} t ON {current} \
         WHERE NOT s._fw_reject AND (t.{row_hash} IS NULL OR t.{row_hash} <> s._fw_hash); \
         ANALYZE {CHANGES}",
        target = p.target,
        staging = p.staged.table,
        current = current_of(p.layout, h, p.period),
    )
}

/// Closes, at T, the current versions the changes replace.
fn close_changed_sql(p: &Publish<'_>, h: &History) -> String {
    format!(
        "UPDATE {target} t SET {to} = {at} FROM {CHANGES} s \
         WHERE s._fw_old IS NOT NULL AND {current} AND t.{row_hash} = s._fw_old",
        target = p.target,
        to = quote_ident(&h.columns.valid_to),
        at = h.at(),
        current = current_of(p.layout, h, p.period),
        row_hash = quote_ident(&h.columns.row_hash),
    )
}

/// Opens, at T, a version for every change (the versions they replace
/// are closed by then).
fn open_sql(p: &Publish<'_>, h: &History) -> String {
    let (mut names, mut values) = written(p.layout, p.period);
    names.push(quote_ident(&h.columns.valid_from));
    values.push(h.at());
    names.push(quote_ident(&h.columns.row_hash));
    values.push("s._fw_hash".into());
    format!(
        "INSERT INTO {target} ({}) SELECT {} FROM {CHANGES} s",
        names.join(", "),
        values.join(", "),
        target = p.target,
    )
}

/// Closes, at T, the current versions whose key no staged row has
/// (rejected records' keys are staged too, so theirs stay open).
fn close_missing_sql(p: &Publish<'_>, h: &History) -> String {
    let to = quote_ident(&h.columns.valid_to);
    format!(
        "UPDATE {target} t SET {to} = {at} WHERE t.{to} IS NULL \
         AND NOT EXISTS (SELECT 1 FROM {staging} s WHERE {})",
        key_match(p.layout, "s", "t"),
        target = p.target,
        at = h.at(),
        staging = p.staged.table,
    )
}

/// Counts the current versions of `target`.
fn current_count_sql(target: &str, h: &History) -> String {
    format!(
        "SELECT count(*) FROM {target} WHERE {} IS NULL",
        quote_ident(&h.columns.valid_to)
    )
}

/// Publishes `p`'s staged rows as versions at T, setting the counts:
/// inserted (new keys, and keys back), updated (changed: a version closed
/// and one opened), deleted (closed as missing), unchanged.
///
/// # Errors
/// A layout without a key, T not later than the table's newest version,
/// the delete guard, or a database error.
pub(super) fn publish(
    tx: &mut Transaction<'_>,
    p: &Publish<'_>,
    h: &History,
    opts: &PublishOptions,
    out: &mut TableOutcome,
) -> Result<(), LoadError> {
    let (layout, target) = (p.layout, &p.target);
    if layout.key.is_empty() {
        return Err(LoadError::config(format!(
            "layout {} has no key, so its versions cannot be told apart: use --mode append or --mode replace",
            layout.name
        )));
    }
    let db = |what: &str| {
        let what = format!("{what} {target}");
        move |e| LoadError::db(what, e)
    };
    let newest = tx
        .query_one(&newest_sql(target, h), &[])
        .map_err(db("reading the newest version of"))?;
    if newest.get::<_, bool>(1) {
        let at: String = newest.get(0);
        return Err(LoadError::refused(format!(
            "{target} holds versions valid from or until {at}, not before this load's effective time {}: history is only ever added to at its end (give a later --as-of); nothing was changed",
            h.as_of
        )));
    }
    let before: i64 = tx
        .query_one(&current_count_sql(target, h), &[])
        .map_err(db("counting the current versions of"))?
        .get(0);
    tx.batch_execute(&changes_sql(p, h))
        .map_err(db("finding the changed rows of"))?;
    let changed = tx
        .execute(&close_changed_sql(p, h), &[])
        .map_err(db("closing changed versions of"))?;
    let opened =
        tx.execute(&open_sql(p, h), &[]).map_err(db("opening versions in"))?;
    tx.batch_execute(&format!("DROP TABLE {CHANGES}"))
        .map_err(db("finding the changed rows of"))?;
    if before == 0 {
        analyze_filled(tx, target)?;
    }
    out.updated = changed;
    out.inserted = opened - changed;
    out.unchanged = p.rows.saturating_sub(opened);
    if opts.delete == DeletePolicy::Hard {
        let n = tx
            .execute(&close_missing_sql(p, h), &[])
            .map_err(db("closing versions missing from the snapshot in"))?;
        delete_guard(
            n,
            before as u64,
            p.staged.unkeyed_rejects,
            (target, &layout.name),
            opts,
        )?;
        out.deleted = n;
    }
    Ok(())
}
