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
