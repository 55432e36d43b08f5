//! The unchanged-input skip: an input identical to one the dataset's last
//! effective run loaded, under everything else that decides the outcome
//! unchanged, would change nothing, so it is not read again.
//!
//! What decides the outcome is the run's *outcome key* (the schema files'
//! sha256, the mode and the delete policy) and the targets' state. The
//! skip compares against the newest succeeded run of the dataset and
//! target schema, whatever its kind: a later load of other inputs, a load
//! under another key, or a rollback (recorded as a run with no key) ends
//! it. Failed, refused, dry and abandoned runs changed nothing and are
//! passed over. An input is skipped only while every target it fed still
//! exists: a target dropped by hand is loaded again.

use std::collections::{HashMap, HashSet};

use postgres::Client;

use super::publish::table_exists;
use super::{DeletePolicy, LoadError, Mode, target_name};
use crate::schema::{SchemaSet, quote_ident};

/// What decides a load's outcome besides its inputs and the targets'
/// state.
pub(crate) fn outcome_key(
    set: &SchemaSet,
    mode: Mode,
    delete: DeletePolicy,
    period: Option<i32>,
) -> String {
    let mut key = format!(
        "schema {}; mode {}; delete {}",
        set.hash,
        mode.as_str(),
        delete.as_str()
    );
    if let Some(p) = period {
        key.push_str(&format!("; period {p}"));
    }
    key
}

/// The sha256 digests of inputs that need not be read again: loaded (or
/// skipped as unchanged) by the newest succeeded run of `dataset` into
/// `target_schema`, when that run had outcome key `key` and every target
/// its members fed still exists. A load of one `period` looks only at
/// the runs of that period (and at those of none, such as a rollback):
/// a load of another year changed nothing of this one's.
///
/// # Errors
/// A failed statement.
pub(crate) fn unchanged_inputs(
    db: &mut Client,
    meta: &str,
    set: &SchemaSet,
    place: (&str, &str),
    key: &str,
    period: Option<i32>,
) -> Result<HashSet<String>, LoadError> {
    let last = LastRun {
        pick: "($4::int IS NULL OR period IS NULL OR period = $4)",
        since: "true",
        what: "reading the last successful run",
    };
    last.inputs(db, meta, set, place, key, period)
}

/// The sha256 digests of the inputs of the newest succeeded run of
/// `dataset` into `target_schema` given `year`, when that run had outcome
/// key `key`, no succeeded run since is of an earlier year or of none (a
/// load given no year, a rollback), and every target its members fed
/// still exists; none otherwise. For a dataset kept without a period,
/// whose years all load into the same tables: the year's inputs are
/// still in place only while no older data was written over them.
///
/// # Errors
/// A failed statement.
pub(crate) fn year_inputs(
    db: &mut Client,
    meta: &str,
    set: &SchemaSet,
    place: (&str, &str),
    key: &str,
    year: i32,
) -> Result<HashSet<String>, LoadError> {
    let last = LastRun {
        pick: "year = $4",
        since: "NOT EXISTS (
                    SELECT FROM {m}.runs r
                    WHERE r.dataset = $1 AND r.target_schema = $2
                      AND r.status = 'succeeded' AND r.id > last.id
                      AND (r.year IS NULL OR r.year < $4))",
        what: "reading the year's last successful run",
    };
    last.inputs(db, meta, set, place, key, Some(year))
}

/// Which succeeded run's inputs a skip compares with: the newest of the
/// dataset and target schema that `pick` accepts, provided `since` holds
/// (SQL over `{m}.runs` and `last`, the run; `$4` is the year or
/// period).
struct LastRun {
    pick: &'static str,
    since: &'static str,
    what: &'static str,
}

impl LastRun {
    /// The digests of the run's inputs every target of which still
    /// exists, when the run had outcome key `key`.
    fn inputs(
        &self,
        db: &mut Client,
        meta: &str,
        set: &SchemaSet,
        (dataset, target_schema): (&str, &str),
        key: &str,
        value: Option<i32>,
    ) -> Result<HashSet<String>, LoadError> {
        let m = quote_ident(meta);
        let since = self.since.replace("{m}", &m);
        let rows = db
            .query(
                &format!(
                    "WITH last AS (
                         SELECT id, outcome_key FROM {m}.runs
                         WHERE dataset = $1 AND target_schema = $2 AND status = 'succeeded'
                           AND {pick}
                         ORDER BY id DESC LIMIT 1)
                     SELECT f.input_sha256, f.layout
                     FROM last JOIN {m}.run_files f ON f.run_id = last.id
                     WHERE last.outcome_key = $3 AND {since}",
                    pick = self.pick,
                ),
                &[&dataset, &target_schema, &key, &value],
            )
            .map_err(|e| LoadError::db(self.what, e))?;
        still_fed(db, set, target_schema, &rows)
    }
}

/// The digests of `rows` (input sha256, layout fed) every target of
/// which still exists.
///
/// # Errors
/// A failed statement.
fn still_fed(
    db: &mut Client,
    set: &SchemaSet,
    target_schema: &str,
    rows: &[postgres::Row],
) -> Result<HashSet<String>, LoadError> {
    let mut fed: HashMap<String, Vec<String>> = HashMap::new();
    for r in rows {
        let layouts = fed.entry(r.get(0)).or_default();
        if let Some(l) = r.get::<_, Option<String>>(1) {
            layouts.push(l);
        }
    }
    let mut out = HashSet::new();
    for (sha, layouts) in fed {
        let mut all_there = true;
        for name in &layouts {
            let Some(layout) = set.layouts.iter().find(|l| &l.name == name)
            else {
                all_there = false;
                break;
            };
            if !table_exists(db, &target_name(target_schema, layout))? {
                all_there = false;
                break;
            }
        }
        if all_there {
            out.insert(sha);
        }
    }
    Ok(out)
}
