//! What a run tells its user: per-member and per-table counts, rejects
//! grouped by field and reason, the rejects file, the JSON report, and a
//! progress bar on a terminal.

mod progress;
mod rejects;

pub(crate) use crate::decode::render_raw;
pub use progress::Progress;
pub use rejects::RejectWriter;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;

use serde::Serialize;

use crate::decode::{excerpt, excerpt_text};
use crate::pipeline::MemberRun;
use crate::reject::{Counts, Reject};
use crate::schema::Layout;
use crate::source::MemberInfo;

/// One input file.
#[derive(Clone, Debug, Serialize)]
pub struct InputReport {
    /// Path as given.
    pub path: String,
    /// Detected kind.
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 (hex).
    pub sha256: String,
}

/// One member read for a layout.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct MemberReport {
    /// Input path.
    pub input: String,
    /// Member name.
    pub member: String,
    /// Layout name.
    pub layout: String,
    /// Target table.
    pub table: String,
    /// Member length in bytes.
    pub bytes: u64,
    /// sha256 of the member (hex).
    pub sha256: String,
    /// Record counts.
    pub counts: Counts,
    /// Wall time in seconds.
    pub seconds: f64,
    /// The layout version the member was read with, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl MemberReport {
    /// The report of `info`, read for `layout` in `seconds` as `run` says.
    pub fn of_run(
        info: &MemberInfo,
        layout: &Layout,
        run: &MemberRun,
        seconds: f64,
    ) -> MemberReport {
        MemberReport {
            input: info.input.to_string(),
            member: info.name.clone(),
            layout: layout.name.clone(),
            table: layout.table.clone(),
            bytes: run.bytes,
            sha256: run.sha256.clone(),
            counts: run.counts,
            seconds,
            version: run.version.as_ref().map(|v| v.to_string()),
        }
    }
}

/// Totals of one layout/table over its members.
#[derive(Clone, Debug, Serialize)]
pub struct TableReport {
    /// Layout name.
    pub layout: String,
    /// Target table.
    pub table: String,
    /// Members read.
    pub members: usize,
    /// Record counts.
    pub counts: Counts,
}

/// Rejects of one layout, field and reason.
#[derive(Clone, Debug, Serialize)]
pub struct RejectGroup {
    /// Layout name.
    pub layout: String,
    /// Field name (`None` for record-level reasons).
    pub field: Option<String>,
    /// Reason code (`invalid_number`, `impossible_date`, …).
    pub reason: String,
    /// How many.
    pub count: u64,
    /// The first one, rendered as a message with its position: the
    /// earliest in its member, whatever order the rejects arrived in
    /// (duplicate keys are found in the order of their hashes).
    pub first: String,
}

/// A member no layout matched.
#[derive(Clone, Debug, Serialize)]
pub struct Unmatched {
    /// Input path.
    pub input: String,
    /// Member name.
    pub member: String,
    /// Size in bytes, when known.
    pub size: Option<u64>,
}

/// A member an input should have and has not: the input is one of the
/// dataset's archives, and none of its members matches a layout that
/// archive holds.
#[derive(Clone, Debug, Serialize)]
pub struct Missing {
    /// Input path.
    pub input: String,
    /// The dataset archive it is.
    pub archive: String,
    /// The layout without a member.
    pub layout: String,
}

impl Missing {
    /// The members `input` lacks when it is one of `set`'s dataset
    /// archives: a layout of that archive for which `has` is false, and
    /// which an export of `year` should have.
    pub fn of_input(
        set: &crate::schema::SchemaSet,
        input: &std::path::Path,
        year: Option<i32>,
        has: impl Fn(&str) -> bool,
    ) -> Vec<Missing> {
        let Some(ds) = &set.dataset else { return Vec::new() };
        let Some((archive, layouts)) = ds.missing_members(input, has) else {
            return Vec::new();
        };
        layouts
            .into_iter()
            .filter(|l| ds.expects(l, year))
            .map(|l| Missing {
                input: input.display().to_string(),
                archive: archive.to_owned(),
                layout: l.to_owned(),
            })
            .collect()
    }
}

/// What an input's control record states, on one line.
pub(crate) fn control_line(c: &crate::pipeline::Control) -> String {
    let mut parts = Vec::new();
    if let Some(y) = c.year {
        parts.push(format!("year {y}"));
    }
    if let Some(s) = &c.supplement {
        parts.push(format!("supplement {s}"));
    }
    if let Some(v) = &c.export_version {
        parts.push(format!("export version {v}"));
    }
    if c.no_values {
        parts.push("no values".into());
    }
    format!(
        "control record {}:{}: {}",
        c.input,
        excerpt_text(&c.member),
        if parts.is_empty() {
            "states nothing".into()
        } else {
            parts.join(", ")
        }
    )
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (archive {}) has no member for layout '{}'",
            self.input, self.archive, self.layout
        )
    }
}

impl fmt::Display for Unmatched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} matches no layout", self.input, self.member)
    }
}

/// What `--strict` refuses: members no layout matched and members the
/// inputs' archives should have and have not, one per line; `None` when
/// there are none.
pub(crate) fn incomplete(
    unmatched: &[Unmatched],
    missing: &[Missing],
) -> Option<String> {
    let lines: Vec<String> = unmatched
        .iter()
        .map(ToString::to_string)
        .chain(missing.iter().map(ToString::to_string))
        .collect();
    (!lines.is_empty()).then(|| {
        format!(
            "the inputs are not the dataset's complete archives (--strict):\n  {}",
            lines.join("\n  ")
        )
    })
}

/// The summary of a validate (or the parse half of a load).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// fwload version.
    pub fwload_version: String,
    /// sha256 of the schema files.
    pub schema_hash: String,
    /// Inputs read.
    pub inputs: Vec<InputReport>,
    /// What each input's control record states.
    pub controls: Vec<crate::pipeline::Control>,
    /// Members read, in order.
    pub members: Vec<MemberReport>,
    /// Per table totals, in load order.
    pub tables: Vec<TableReport>,
    /// Members no layout matched (not read).
    pub unmatched: Vec<Unmatched>,
    /// Members the inputs' archives should have and have not.
    pub missing: Vec<Missing>,
    /// Layouts no member matched.
    pub layouts_without_input: Vec<String>,
    /// Rejects grouped by layout, field and reason.
    pub reject_groups: Vec<RejectGroup>,
    /// Totals over everything.
    pub totals: Counts,
    /// Bytes of member data processed.
    pub bytes: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl Summary {
    /// Decompressed member bytes per second, in MB/s (10⁶ bytes).
    pub fn throughput_mb_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / 1e6 / self.seconds
        } else {
            0.0
        }
    }

    /// Share of rejected records among records read.
    pub fn reject_ratio(&self) -> f64 {
        if self.totals.read == 0 {
            0.0
        } else {
            self.totals.rejected as f64 / self.totals.read as f64
        }
    }

    /// Writes the summary as a human-readable table.
    ///
    /// # Errors
    /// Writing failed.
    pub fn write_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "{:<44} {:>12} {:>12} {:>10} {:>10} {:>9}",
            "member → table", "read", "valid", "rejected", "filtered", "MB"
        )?;
        for m in &self.members {
            let name = format!("{} → {}", short(&m.member, 28), m.table);
            writeln!(
                w,
                "{:<44} {:>12} {:>12} {:>10} {:>10} {:>9.1}",
                short(&name, 44),
                m.counts.read,
                m.counts.valid,
                m.counts.rejected,
                m.counts.filtered,
                m.bytes as f64 / 1e6
            )?;
        }
        if self.members.len() > 1 {
            writeln!(
                w,
                "{:<44} {:>12} {:>12} {:>10} {:>10} {:>9.1}",
                "total",
                self.totals.read,
                self.totals.valid,
                self.totals.rejected,
                self.totals.filtered,
                self.bytes as f64 / 1e6
            )?;
        }
        for c in &self.controls {
            writeln!(w, "{}", control_line(c))?;
        }
        for m in &self.members {
            if let Some(v) = &m.version {
                writeln!(w, "{}:{} read as version {v}", m.input, m.member)?;
            }
        }
        for t in &self.tables {
            let c = &t.counts;
            if c.deduplicated > 0 || (c.blank + c.filtered_by_rule) > 0 {
                writeln!(
                    w,
                    "  {}: filtered {} blank, {} by filter rules, {} duplicate keys dropped",
                    t.table, c.blank, c.filtered_by_rule, c.deduplicated
                )?;
            }
        }
        if !self.reject_groups.is_empty() {
            writeln!(w, "\nrejects by field and reason:")?;
            for g in &self.reject_groups {
                let field = g.field.as_deref().unwrap_or("(record)");
                writeln!(
                    w,
                    "  {:>10}  {}.{}  {}",
                    g.count, g.layout, field, g.reason
                )?;
                writeln!(w, "              first: {}", g.first)?;
            }
        }
        for u in &self.unmatched {
            writeln!(w, "note: {u} and was not read")?;
        }
        for m in &self.missing {
            writeln!(w, "note: {m}")?;
        }
        for l in &self.layouts_without_input {
            writeln!(w, "note: no input member matches layout '{l}'")?;
        }
        writeln!(
            w,
            "\n{} records read, {} valid, {} rejected, {} filtered; {:.1} MB in {:.2} s ({:.0} MB/s)",
            self.totals.read,
            self.totals.valid,
            self.totals.rejected,
            self.totals.filtered,
            self.bytes as f64 / 1e6,
            self.seconds,
            self.throughput_mb_s()
        )?;
        Ok(())
    }
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(n - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

/// An error and its causes on one line, `: `-separated: how run records
/// and JSON reports keep an error.
pub(crate) fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

/// Renders a reject as one line:
/// `input:member: line 12, byte 4012, field 3 (dos): "02/30/2024": impossible date`.
pub(crate) fn reject_message(r: &Reject, layout: &Layout) -> String {
    let mut s = r.at.to_string();
    if let Some(i) = r.at.field {
        let f = &layout.fields[i as usize];
        s.push_str(&format!(", field {} ({})", i as usize + 1, f.name));
    }
    let raw = excerpt(&r.raw, r.raw_truncated, layout.encoding);
    s.push_str(&format!(": \"{raw}\": {}", r.reason));
    if let (crate::reject::Reason::DateLayout, Some(i)) =
        (r.reason, r.at.field)
        && let Some(fmt) = &layout.fields[i as usize].decoder.format
    {
        s.push_str(&format!(" {}", fmt.as_str()));
    }
    s
}

/// Layout, field index and reason code.
type GroupKey = (String, Option<u16>, &'static str);

/// Groups rejects by layout, field and reason as they arrive.
#[derive(Default)]
pub(crate) struct RejectGroups {
    groups: BTreeMap<GroupKey, Group>,
}

/// One group: its count, its first reject (where, and as a message) and
/// the field's name.
struct Group {
    count: u64,
    at: (Arc<str>, Arc<str>, u64, u64),
    first: String,
    field: Option<String>,
}

impl RejectGroups {
    /// Counts `r` of `layout`, keeping the earliest reject of a member
    /// as the group's example.
    pub(crate) fn add(&mut self, r: &Reject, layout: &Layout) {
        let key = (layout.name.clone(), r.at.field, r.reason.code());
        let at =
            || (r.at.input.clone(), r.at.member.clone(), r.at.line, r.at.byte);
        let g = self.groups.entry(key).or_insert_with(|| Group {
            count: 0,
            at: at(),
            first: reject_message(r, layout),
            field: r.at.field.map(|i| layout.fields[i as usize].name.clone()),
        });
        g.count += 1;
        let (input, member, line, byte) = &g.at;
        if (input, member) == (&r.at.input, &r.at.member)
            && (r.at.line, r.at.byte) < (*line, *byte)
        {
            g.first = reject_message(r, layout);
            g.at = at();
        }
    }

    /// The groups, largest first.
    pub(crate) fn into_groups(self) -> Vec<RejectGroup> {
        let mut v: Vec<RejectGroup> = self
            .groups
            .into_iter()
            .map(|((layout, _, reason), g)| RejectGroup {
                layout,
                field: g.field,
                reason: reason.to_owned(),
                count: g.count,
                first: g.first,
            })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then(a.layout.cmp(&b.layout)));
        v
    }
}

/// Reject thresholds; crossing one is a data failure.
#[derive(Clone, Copy, Debug, Serialize, serde::Deserialize)]
pub struct Thresholds {
    /// Most rejects allowed.
    pub max_rejects: Option<u64>,
    /// Largest reject share allowed.
    pub max_reject_ratio: Option<f64>,
}

impl Thresholds {
    /// From the flags: none given means no reject is allowed.
    pub fn new(
        max_rejects: Option<u64>,
        max_reject_ratio: Option<f64>,
    ) -> Thresholds {
        match (max_rejects, max_reject_ratio) {
            (None, None) => {
                Thresholds { max_rejects: Some(0), max_reject_ratio: None }
            }
            _ => Thresholds { max_rejects, max_reject_ratio },
        }
    }

    /// Why `rejected` of `read` crosses a threshold, if it does.
    pub fn crossed(&self, rejected: u64, read: u64) -> Option<String> {
        if let Some(m) = self.max_rejects
            && rejected > m
        {
            return Some(format!(
                "{rejected} records rejected, more than --max-rejects {m}"
            ));
        }
        let ratio =
            if read == 0 { 0.0 } else { rejected as f64 / read as f64 };
        if let Some(r) = self.max_reject_ratio
            && ratio > r
        {
            return Some(format!(
                "{:.4}% of records rejected, more than --max-reject-ratio {r}",
                ratio * 100.0
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reject::{Position, Reason};
    use crate::schema::SchemaSet;
    use std::path::Path;

    #[test]
    fn a_group_shows_the_earliest_reject_of_a_member() {
        let toml = "members = [\"x\"]\nformat = \"delimited\"\n\
                    delimiter = \",\"\nkey = [\"id\"]\n\
                    [[field]]\nname = \"id\"\ntype = \"int\"\n";
        let layout =
            SchemaSet::layout_from_str(Path::new("t.toml"), toml).unwrap();
        let (input, a, b): (Arc<str>, Arc<str>, Arc<str>) =
            ("in.zip".into(), "a.txt".into(), "b.txt".into());
        let dup = |member: &Arc<str>, line: u64| {
            let at = Position {
                input: input.clone(),
                member: member.clone(),
                line,
                byte: line * 10,
                field: Some(0),
            };
            Reject::new(at, b"7", Reason::DuplicateKey { first_line: 1 })
        };
        // Found in hash order, not input order; then another member.
        let mut groups = RejectGroups::default();
        for (m, line) in [(&a, 40), (&a, 9), (&a, 12), (&b, 2), (&a, 30)] {
            groups.add(&dup(m, line), &layout);
        }
        let g = groups.into_groups();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].count, 5);
        assert_eq!(g[0].first, reject_message(&dup(&a, 9), &layout));
        assert!(
            g[0].first.contains("a.txt: line 9, byte 90"),
            "{}",
            g[0].first
        );
    }
}
