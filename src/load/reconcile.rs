//! Reconciliation: a dataset's totals table (PACS entity totals) must
//! agree, group by group, with the records it sums (entity info) before
//! the publish commits.
//!
//! Each side is summed when its table's turn comes in the publish (its
//! staged rows, orphans already rejected) into a temporary table dropped
//! at commit; once both are in, the sums are compared and every group that
//! differs is reported with the stated and the summed numbers.

use postgres::{Row, Transaction};

use super::LoadError;
use super::ddl::count_sql;
use crate::schema::{Mismatch, Reconcile, SchemaSet, quote_ident};

/// Most differing groups a message shows.
const SHOWN: usize = 5;

/// The dataset's reconciliations and what the publish has summed so far.
pub(super) struct Reconciler<'a> {
    checks: Vec<Check<'a>>,
}

struct Check<'a> {
    spec: &'a Reconcile,
    n: usize,
    totals: bool,
    of: bool,
}

/// The outcome of one reconciliation.
#[derive(Clone, Debug)]
pub struct Reconciled {
    /// The totals layout.
    pub totals: String,
    /// What was found, for the report.
    pub message: String,
    /// Whether the totals disagree.
    pub differs: bool,
}

impl<'a> Reconciler<'a> {
    /// The reconciliations of `set` between two layouts this load
    /// publishes (`loaded` says which).
    pub(super) fn new(
        set: &'a SchemaSet,
        loaded: &dyn Fn(&str) -> bool,
    ) -> Self {
        let checks = set
            .dataset
            .iter()
            .flat_map(|d| &d.reconcile)
            .filter(|r| loaded(&r.totals) && loaded(&r.of))
            .enumerate()
            .map(|(n, spec)| Check { spec, n, totals: false, of: false })
            .collect();
        Reconciler { checks }
    }

    /// Sums `layout`'s staged rows in `table` (still with fwload's
    /// columns) for every reconciliation it takes part in.
    ///
    /// # Errors
    /// A failed statement.
    pub(super) fn take(
        &mut self,
        tx: &mut Transaction<'_>,
        layout: &str,
        table: &str,
    ) -> Result<(), LoadError> {
        for c in &mut self.checks {
            let r = c.spec;
            let side = if r.totals == layout {
                c.totals = true;
                't'
            } else if r.of == layout {
                c.of = true;
                'o'
            } else {
                continue;
            };
            let (group, values): (&[String], Vec<String>) = if side == 't' {
                let mut v: Vec<String> = r.count.iter().cloned().collect();
                v.extend(r.sums.iter().map(|(t, _)| t.clone()));
                (&r.columns, v)
            } else {
                (
                    &r.of_columns,
                    r.sums.iter().map(|(_, o)| o.clone()).collect(),
                )
            };
            // Groups as text, NULL as chr(1) (no text holds it): the
            // comparison joins them with `=`, which a FULL JOIN needs.
            let mut select: Vec<String> = group
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    format!(
                        "coalesce({}::text, chr(1)) AS g{i}",
                        quote_ident(g)
                    )
                })
                .collect();
            let count = if side == 'o' {
                "count(*)".to_owned()
            } else {
                match &r.count {
                    Some(cn) => format!("sum({})", quote_ident(cn)),
                    None => "0".into(),
                }
            };
            select.push(format!("{count}::numeric AS n"));
            let skip = usize::from(side == 't' && r.count.is_some());
            for (i, v) in values.iter().skip(skip).enumerate() {
                select.push(format!(
                    "coalesce(sum({}), 0)::numeric AS s{i}",
                    quote_ident(v)
                ));
            }
            let by: Vec<String> =
                (1..=group.len()).map(|i| i.to_string()).collect();
            let tmp = temp_name(c.n, side);
            tx.batch_execute(&format!(
                "DROP TABLE IF EXISTS {tmp}; CREATE TEMP TABLE {tmp} ON COMMIT DROP AS SELECT {} FROM {table} WHERE NOT _fw_reject GROUP BY {}",
                select.join(", "),
                by.join(", ")
            ))
            .map_err(|e| {
                LoadError::db(format!("summing {layout} to reconcile"), e)
            })?;
        }
        Ok(())
    }

    /// Compares every reconciliation both of whose sides were taken.
    ///
    /// # Errors
    /// Totals that disagree under `on_mismatch = "fail"` without `force`
    /// (refused, with the numbers), or a failed statement.
    pub(super) fn finish(
        &self,
        tx: &mut Transaction<'_>,
        force: bool,
    ) -> Result<Vec<Reconciled>, LoadError> {
        let mut out = Vec::new();
        for c in self.checks.iter().filter(|c| c.totals && c.of) {
            let r = c.spec;
            let ctx =
                |e| LoadError::db(format!("reconciling {}", r.totals), e);
            let rows = tx.query(&c.differences_sql(), &[]).map_err(ctx)?;
            let groups: i64 = tx
                .query_one(&count_sql(&temp_name(c.n, 't'), false), &[])
                .map_err(ctx)?
                .get(0);
            if rows.is_empty() {
                out.push(c.agrees(groups));
                continue;
            }
            let message = c.disagrees(&rows, groups);
            if r.on_mismatch == Mismatch::Fail && !force {
                return Err(LoadError::refused(format!(
                    "{message}\nnothing was changed (the dataset says on_mismatch = \"fail\"; use --force to load anyway)"
                )));
            }
            out.push(Reconciled {
                totals: r.totals.clone(),
                message,
                differs: true,
            });
        }
        Ok(out)
    }
}

impl Check<'_> {
    /// The compared values of each side's temporary table: the count `n`,
    /// then each sum.
    fn values(&self) -> Vec<String> {
        let mut values = vec!["n".to_owned()];
        values.extend((0..self.spec.sums.len()).map(|i| format!("s{i}")));
        values
    }

    /// The groups whose sums differ between the two sides (a group one
    /// side lacks counts as zeros; the count only when the totals state
    /// one), the first [`SHOWN`] in group order: each group's columns
    /// (NULL shown as `NULL`), every value as stated and as summed, then
    /// how many groups differ in all.
    fn differences_sql(&self) -> String {
        let r = self.spec;
        let (t, o) = (temp_name(self.n, 't'), temp_name(self.n, 'o'));
        let k = r.columns.len();
        let on: Vec<String> =
            (0..k).map(|i| format!("t.g{i} = o.g{i}")).collect();
        let values = self.values();
        let differ: Vec<String> = values
            .iter()
            .skip(usize::from(r.count.is_none()))
            .map(|v| format!("coalesce(t.{v}, 0) <> coalesce(o.{v}, 0)"))
            .collect();
        let shown: Vec<String> = (0..k)
            .map(|i| {
                format!("coalesce(nullif(coalesce(t.g{i}, o.g{i}), chr(1)), 'NULL')")
            })
            .chain(values.iter().flat_map(|v| {
                [
                    format!("coalesce(t.{v}, 0)::text"),
                    format!("coalesce(o.{v}, 0)::text"),
                ]
            }))
            .collect();
        format!(
            "SELECT {}, count(*) OVER () FROM {t} t FULL JOIN {o} o ON {} WHERE {} ORDER BY 1 LIMIT {SHOWN}",
            shown.join(", "),
            on.join(" AND "),
            differ.join(" OR ")
        )
    }

    /// The outcome of totals that agree in all `groups` groups.
    fn agrees(&self, groups: i64) -> Reconciled {
        let r = self.spec;
        Reconciled {
            totals: r.totals.clone(),
            message: format!(
                "{} agrees with {} in all {groups} groups ({}: {} and {} sums)",
                r.totals,
                r.of,
                r.columns.join(", "),
                if r.count.is_some() { "the count" } else { "no count" },
                r.sums.len()
            ),
            differs: false,
        }
    }

    /// The message of totals that disagree: the groups `rows` of
    /// [`Check::differences_sql`], each with the values that differ, of
    /// `groups` groups.
    fn disagrees(&self, rows: &[Row], groups: i64) -> String {
        let r = self.spec;
        let k = r.columns.len();
        let total: i64 = rows[0].get(k + 2 * self.values().len());
        let names: Vec<String> = std::iter::once(
            r.count.clone().unwrap_or_else(|| "records".into()),
        )
        .chain(r.sums.iter().map(|(t, _)| t.clone()))
        .collect();
        let summed: Vec<String> = std::iter::once("records".to_owned())
            .chain(r.sums.iter().map(|(_, o)| o.clone()))
            .collect();
        let mut lines = Vec::new();
        for row in rows {
            let key: Vec<String> =
                (0..k).map(|i| row.get::<_, String>(i)).collect();
            let mut diffs = Vec::new();
            for (j, name) in names.iter().enumerate() {
                let stated: String = row.get(k + 2 * j);
                let found: String = row.get(k + 2 * j + 1);
                if stated != found && (j > 0 || r.count.is_some()) {
                    diffs.push(format!(
                        "{name} {stated} stated, {found} in {} ({})",
                        r.of, summed[j]
                    ));
                }
            }
            lines.push(format!(
                "({}) = ({}): {}",
                r.columns.join(", "),
                key.join(", "),
                diffs.join("; ")
            ));
        }
        let more = if total as usize > rows.len() {
            format!("\n  … and {} more", total as usize - rows.len())
        } else {
            String::new()
        };
        format!(
            "{} does not agree with {} in {total} of {groups} groups:\n  {}{more}",
            r.totals,
            r.of,
            lines.join("\n  ")
        )
    }
}

fn temp_name(n: usize, side: char) -> String {
    quote_ident(&format!("_fw_reconcile_{n}_{side}"))
}
