//! What a dataset declares about a whole export beyond its layouts: the
//! control record (year, supplement, export version, a "no values" flag),
//! totals that must reconcile with the records they sum, and members that
//! exist only in some years.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::errs::Errs;
use crate::decode::FieldType;

use super::{Dataset, Layout};

/// The layout whose single record describes the export (the PACS
/// header), and which of its fields say what.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlSpec {
    /// The control layout.
    pub layout: String,
    /// The field stating the export's (tax) year.
    pub year: Option<String>,
    /// The field stating its supplement number.
    pub supplement: Option<String>,
    /// The field stating its export version (which picks layout
    /// versions).
    pub export_version: Option<String>,
    /// A field and the value that says the export carries no values.
    pub no_values: Option<(String, String)>,
}

/// A totals table that must agree with the records it sums, group by
/// group, before a load commits.
#[derive(Clone, Debug, PartialEq)]
pub struct Reconcile {
    /// The layout stating the totals.
    pub totals: String,
    /// Its group columns.
    pub columns: Vec<String>,
    /// The layout whose records are summed.
    pub of: String,
    /// Its group columns, matching `columns`.
    pub of_columns: Vec<String>,
    /// The totals column stating the number of records.
    pub count: Option<String>,
    /// (totals column, summed column) pairs.
    pub sums: Vec<(String, String)>,
    /// Whether a difference fails the load.
    pub on_mismatch: Mismatch,
}

/// What a load does when totals do not reconcile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mismatch {
    /// Refuse the load: nothing is committed (the default).
    #[default]
    Fail,
    /// Report the differences and load.
    Warn,
}

/// The years in which an archive holds a layout's member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Years {
    /// From this year on (`"2024-"`).
    From(i32),
    /// Up to this year (`"-2023"`).
    To(i32),
    /// Only the current year's export (`"current"`), the year of today's
    /// date.
    Current,
}

impl Years {
    /// Whether an export of `year` has the member (`current` is this
    /// calendar year).
    pub fn holds(self, year: i32, current: i32) -> bool {
        match self {
            Years::From(y) => year >= y,
            Years::To(y) => year <= y,
            Years::Current => year >= current,
        }
    }

    /// The spelling used in dataset files.
    pub fn spelling(self) -> String {
        match self {
            Years::From(y) => format!("{y}-"),
            Years::To(y) => format!("-{y}"),
            Years::Current => "current".into(),
        }
    }

    fn parse(s: &str) -> Option<Years> {
        let year = |t: &str| {
            (t.len() == 4 && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse().ok())
                .flatten()
        };
        if s == "current" {
            Some(Years::Current)
        } else if let Some(y) = s.strip_suffix('-') {
            year(y).map(Years::From)
        } else if let Some(y) = s.strip_prefix('-') {
            year(y).map(Years::To)
        } else {
            None
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    layout: String,
    year: Option<String>,
    supplement: Option<String>,
    export_version: Option<String>,
    no_values: Option<RawNoValues>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNoValues {
    field: String,
    value: String,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReconcile {
    totals: String,
    columns: Vec<String>,
    of: String,
    of_columns: Vec<String>,
    count: Option<String>,
    #[serde(default)]
    sums: BTreeMap<String, String>,
    on_mismatch: Option<Mismatch>,
}

fn layout<'a>(
    e: &mut Errs,
    sp: &Range<usize>,
    layouts: &'a [Layout],
    name: &str,
    what: &str,
) -> Option<&'a Layout> {
    let l = layouts.iter().find(|l| l.name == name);
    if l.is_none() {
        e.at(Some(sp), None, format!("{what} names unknown layout '{name}'"));
    }
    l
}

fn field(
    e: &mut Errs,
    sp: &Range<usize>,
    l: &Layout,
    name: &str,
    numeric: bool,
) {
    match l.field_index(name) {
        None => e.at(
            Some(sp),
            None,
            format!("'{name}' is not a field of layout {}", l.name),
        ),
        Some(i) if numeric => {
            let ty = l.fields[i].decoder.ty;
            if !matches!(
                ty,
                FieldType::Smallint
                    | FieldType::Int
                    | FieldType::Bigint
                    | FieldType::Numeric(_)
            ) {
                e.at(
                    Some(sp),
                    None,
                    format!(
                        "'{}.{name}' is {}, not a whole or decimal number",
                        l.name,
                        ty.sql()
                    ),
                );
            }
        }
        Some(_) => {}
    }
}

/// Checks and builds the dataset's `[control]`.
pub(super) fn control(
    e: &mut Errs,
    raw: Option<&Spanned<RawControl>>,
    layouts: &[Layout],
) -> Option<ControlSpec> {
    let raw_s = raw?;
    let sp = raw_s.span();
    let r = raw_s.get_ref();
    let l = layout(e, &sp, layouts, &r.layout, "control")?;
    let no_values =
        r.no_values.as_ref().map(|n| (n.field.clone(), n.value.clone()));
    for f in [&r.supplement, &r.export_version]
        .into_iter()
        .flatten()
        .chain(no_values.as_ref().map(|n| &n.0))
    {
        field(e, &sp, l, f, false);
    }
    if let Some(y) = &r.year {
        field(e, &sp, l, y, true);
    }
    Some(ControlSpec {
        layout: r.layout.clone(),
        year: r.year.clone(),
        supplement: r.supplement.clone(),
        export_version: r.export_version.clone(),
        no_values,
    })
}

/// Checks and builds the dataset's `[[reconcile]]` entries.
pub(super) fn reconciles(
    e: &mut Errs,
    raw: &[Spanned<RawReconcile>],
    layouts: &[Layout],
) -> Vec<Reconcile> {
    let mut out = Vec::new();
    for rs in raw {
        let sp = rs.span();
        let r = rs.get_ref();
        let t = layout(e, &sp, layouts, &r.totals, "reconcile");
        let o = layout(e, &sp, layouts, &r.of, "reconcile");
        let (Some(t), Some(o)) = (t, o) else { continue };
        if r.columns.is_empty() || r.columns.len() != r.of_columns.len() {
            e.at(
                Some(&sp),
                None,
                "reconcile needs as many columns as of_columns, at least one",
            );
        }
        for c in &r.columns {
            field(e, &sp, t, c, false);
        }
        for c in &r.of_columns {
            field(e, &sp, o, c, false);
        }
        if r.count.is_none() && r.sums.is_empty() {
            e.at(Some(&sp), None, "reconcile needs a count or sums");
        }
        if let Some(c) = &r.count {
            field(e, &sp, t, c, true);
        }
        for (tc, oc) in &r.sums {
            field(e, &sp, t, tc, true);
            field(e, &sp, o, oc, true);
        }
        let on_mismatch = r.on_mismatch.unwrap_or_default();
        out.push(Reconcile {
            totals: r.totals.clone(),
            columns: r.columns.clone(),
            of: r.of.clone(),
            of_columns: r.of_columns.clone(),
            count: r.count.clone(),
            sums: r.sums.iter().map(|(a, b)| (a.clone(), b.clone())).collect(),
            on_mismatch,
        });
    }
    out
}

/// Checks and builds the dataset's `[years]` table.
pub(super) fn years(
    e: &mut Errs,
    raw: Option<&Spanned<BTreeMap<String, String>>>,
    layouts: &[Layout],
) -> Vec<(String, Years)> {
    let Some(raw) = raw else { return Vec::new() };
    let sp = raw.span();
    let mut out = Vec::new();
    for (name, spelled) in raw.get_ref() {
        if layout(e, &sp, layouts, name, "years").is_none() {
            continue;
        }
        match Years::parse(spelled) {
            Some(y) => out.push((name.clone(), y)),
            None => e.at(
                Some(&sp),
                None,
                format!(
                    "years.{name} = {spelled:?}: write \"2024-\", \"-2023\" or \"current\""
                ),
            ),
        }
    }
    out
}

impl Dataset {
    /// Whether an export of `year` (when known) should have `layout`'s
    /// member: a layout declared for some years only is expected in those
    /// years, and not at all when the year is unknown.
    pub fn expects(&self, layout: &str, year: Option<i32>) -> bool {
        match self.years_of(layout) {
            None => true,
            Some(years) => year.is_some_and(|y| years.holds(y, this_year())),
        }
    }

    /// The years `layout`'s member exists in, when the dataset limits
    /// them.
    pub fn years_of(&self, layout: &str) -> Option<Years> {
        self.years.iter().find(|(l, _)| l == layout).map(|(_, y)| *y)
    }
}

/// The current calendar year (UTC), for [`Years::Current`].
pub fn this_year() -> i32 {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0) as i64;
    // Days since 1970-01-01 → since 2000-01-01.
    crate::decode::civil((days - 10_957) as i32).0
}

/// A check of the dataset that guards the commit: it runs inside the
/// publish transaction once every table is in, and a check that fails
/// rolls the load back.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// Its name, shown when it fails.
    pub name: String,
    /// What it checks.
    pub kind: CheckKind,
}

/// What a [`Check`] checks.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckKind {
    /// A query returning one value, which must meet `expect`.
    Sql {
        /// The query as written, placeholders and all.
        sql: String,
        /// The comparison the value must pass.
        expect: Expect,
    },
    /// Per table, rows may change by at most `share` against the previous
    /// successful run: the rows inserted, updated and deleted, and the
    /// difference in rows loaded, each as a share of the rows that run
    /// loaded.
    MaxChange {
        /// The share, 0.05 for `"5%"`.
        share: f64,
        /// The layouts checked; empty for every one.
        tables: Vec<String>,
    },
    /// The records of layout `layout` state how many records each member
    /// holds (`member` names it, `records` states the count); every
    /// member they name must hold exactly that many.
    Counts {
        /// The layout stating the counts.
        layout: String,
        /// Its field naming the member.
        member: String,
        /// Its field stating the number of records.
        records: String,
    },
}

/// The comparison a [`CheckKind::Sql`] value must pass: an operator and
/// its operands, as written (the server compares them as the value's
/// type).
#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    /// `=`, `<>`, `<`, `<=`, `>`, `>=` or `between`.
    pub op: String,
    /// One operand, two for `between`.
    pub operands: Vec<String>,
}

impl Expect {
    /// Parses `= 0`, `<= 100`, `between 1 and 10`, `true`, …
    fn parse(s: &str) -> Option<Expect> {
        let s = s.trim();
        let lower = s.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("between ") {
            let at = rest.find(" and ")?;
            let start = s.len() - rest.len();
            let (a, b) = (&s[start..start + at], &s[start + at + 5..]);
            let (a, b) = (unquote(a)?, unquote(b)?);
            return Some(Expect {
                op: "between".into(),
                operands: vec![a, b],
            });
        }
        for op in ["<>", "!=", "<=", ">=", "=", "<", ">"] {
            if let Some(rest) = s.strip_prefix(op) {
                let op = if op == "!=" { "<>" } else { op };
                return Some(Expect {
                    op: op.into(),
                    operands: vec![unquote(rest)?],
                });
            }
        }
        // A bare value means equal to it.
        Some(Expect { op: "=".into(), operands: vec![unquote(s)?] })
    }

    /// The comparison as written, for messages: `= 0`, `between 1 and 2`.
    pub fn show(&self) -> String {
        match self.operands.as_slice() {
            [a, b] => format!("between {a} and {b}"),
            [a] => format!("{} {a}", self.op),
            _ => self.op.clone(),
        }
    }
}

/// An operand: trimmed, optional single quotes taken off; none if empty.
fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    let s =
        s.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')).unwrap_or(s);
    (!s.is_empty()).then(|| s.to_owned())
}

/// The pieces of a check's SQL: text, and placeholders `{layout}` (the
/// layout's target table), `{period}` (the load's period value) and
/// `{schema}` (the target schema); `{{` and `}}` stand for braces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqlPiece<'a> {
    /// Text as written.
    Text(&'a str),
    /// A placeholder's name.
    Name(&'a str),
}

/// Cuts `sql` into text and placeholders.
///
/// # Errors
/// An unclosed or empty placeholder.
pub fn sql_pieces(sql: &str) -> Result<Vec<SqlPiece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(i) = rest.find(['{', '}']) {
        let (text, tail) = rest.split_at(i);
        if !text.is_empty() {
            out.push(SqlPiece::Text(text));
        }
        if let Some(t) = tail.strip_prefix("{{") {
            out.push(SqlPiece::Text("{"));
            rest = t;
        } else if let Some(t) = tail.strip_prefix("}}") {
            out.push(SqlPiece::Text("}"));
            rest = t;
        } else if tail.starts_with('}') {
            return Err(
                "a '}' closes no placeholder (write '}}' for a brace)".into(),
            );
        } else {
            let end = tail.find('}').ok_or_else(|| {
                "a '{' opens a placeholder that is never closed (write '{{' for a brace)"
                    .to_owned()
            })?;
            let name = tail[1..end].trim();
            if name.is_empty() {
                return Err("an empty placeholder '{}'".into());
            }
            out.push(SqlPiece::Name(name));
            rest = &tail[end + 1..];
        }
    }
    if !rest.is_empty() {
        out.push(SqlPiece::Text(rest));
    }
    Ok(out)
}

/// Placeholders every check's SQL may use besides layout names.
pub const CHECK_PLACEHOLDERS: [&str; 2] = ["period", "schema"];

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    name: String,
    sql: Option<String>,
    expect: Option<String>,
    max_change: Option<String>,
    #[serde(default)]
    tables: Vec<String>,
    counts: Option<String>,
    member: Option<String>,
    records: Option<String>,
}

/// Checks and builds the dataset's `[[check]]` entries.
pub(super) fn checks(
    e: &mut Errs,
    raw: &[Spanned<RawCheck>],
    layouts: &[Layout],
) -> Vec<Check> {
    let mut out = Vec::new();
    for cs in raw {
        let sp = cs.span();
        let c = cs.get_ref();
        let at = |what: &str| format!("check '{}': {what}", c.name);
        let kinds =
            [c.sql.is_some(), c.max_change.is_some(), c.counts.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            e.at(
                Some(&sp),
                None,
                at("give exactly one of sql, max_change, counts"),
            );
            continue;
        }
        let kind = if let Some(sql) = &c.sql {
            let Some(expect) = c.expect.as_deref().map(Expect::parse) else {
                e.at(
                    Some(&sp),
                    None,
                    at("sql needs expect (e.g. expect = \"= 0\")"),
                );
                continue;
            };
            let Some(expect) = expect else {
                e.at(Some(&sp), None, at("expect needs a value (e.g. \"= 0\", \"<= 100\", \"between 1 and 9\")"));
                continue;
            };
            match sql_pieces(sql) {
                Err(m) => e.at(Some(&sp), None, at(&m)),
                Ok(pieces) => {
                    for p in pieces {
                        if let SqlPiece::Name(n) = p
                            && !CHECK_PLACEHOLDERS.contains(&n)
                            && !layouts.iter().any(|l| l.name == n)
                        {
                            e.at(
                                Some(&sp),
                                None,
                                at(&format!(
                                    "{{{n}}} is no layout of the dataset, nor period or schema"
                                )),
                            );
                        }
                    }
                }
            }
            CheckKind::Sql { sql: sql.clone(), expect }
        } else if let Some(m) = &c.max_change {
            let share = m
                .trim()
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<f64>().ok())
                .filter(|p| p.is_finite() && *p >= 0.0);
            let Some(share) = share else {
                e.at(
                    Some(&sp),
                    None,
                    at(&format!(
                        "max_change = {m:?}: write a share such as \"5%\""
                    )),
                );
                continue;
            };
            for t in &c.tables {
                layout(e, &sp, layouts, t, &at("tables"));
            }
            CheckKind::MaxChange {
                share: share / 100.0,
                tables: c.tables.clone(),
            }
        } else {
            let name = c.counts.clone().unwrap_or_default();
            let (Some(member), Some(records)) = (&c.member, &c.records) else {
                e.at(Some(&sp), None, at("counts needs member and records (the fields naming the member and stating its records)"));
                continue;
            };
            if let Some(l) = layout(e, &sp, layouts, &name, &at("counts")) {
                field(e, &sp, l, member, false);
                field(e, &sp, l, records, true);
            }
            CheckKind::Counts {
                layout: name,
                member: member.clone(),
                records: records.clone(),
            }
        };
        if c.expect.is_some() && !matches!(kind, CheckKind::Sql { .. }) {
            e.at(Some(&sp), None, at("expect belongs to a sql check"));
        }
        out.push(Check { name: c.name.clone(), kind });
    }
    out
}
