//! Layouts: what a record looks like and which table it feeds.
//!
//! A schema file (TOML) describes one record layout: the archive members
//! it reads, fixed-width or delimited framing, encoding, fields with their
//! types, conversions and checks, the target table and its key. A dataset
//! file (`dataset.toml`) ties the layouts of one source family together:
//! archives, load order and cross-table references. [`SchemaSet::load`]
//! reads a directory (or single files), checks everything and reports
//! every problem with its file, line and field; [`create_table`] turns a
//! layout into a `CREATE TABLE` statement.

mod checks;
mod ddl;
mod errs;
mod load;
mod parse;
mod version;
mod write;

pub use checks::{
    CHECK_PLACEHOLDERS, Check, CheckKind, ControlSpec, Expect, Mismatch,
    Reconcile, SqlPiece, Years, sql_pieces, this_year,
};
pub use ddl::{
    TableShape, clip, column, create_index, create_partition, create_table,
    create_table_unkeyed, history_index, history_statements, history_views,
    index_name, index_statements, partition_name, primary_key, quote_ident,
    quote_literal, reference_indexes,
};
pub use load::SchemaSet;
pub use version::{Picked, Version};

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;

use crate::decode::{Decoder, Encoding};

/// How records are framed.
#[derive(Clone, Debug, PartialEq)]
pub enum Format {
    /// Fixed-width records; fields are byte ranges.
    Fixed(Fixed),
    /// Delimited records; fields are in column order.
    Delimited(Delimited),
}

/// Fixed-width framing.
#[derive(Clone, Debug, PartialEq)]
pub struct Fixed {
    /// Record length in bytes, without terminator.
    pub record_length: usize,
    /// How records end.
    pub terminator: Terminator,
    /// What to do with a longer record.
    pub longer: Longer,
    /// What to do with a shorter record.
    pub shorter: Shorter,
}

/// Delimited framing.
#[derive(Clone, Debug, PartialEq)]
pub struct Delimited {
    /// The field separator byte.
    pub delimiter: u8,
    /// Whether `"` quotes fields.
    pub quoting: Quoting,
    /// Whether the first record is a header row (checked against the
    /// fields' header names).
    pub header: bool,
    /// How records end.
    pub terminator: Terminator,
}

/// Line terminator of a layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Terminator {
    /// LF or CRLF, record by record (the default).
    #[default]
    Any,
    /// LF only; a CR before it is a reject.
    Lf,
    /// CRLF only; a bare LF is a reject.
    Crlf,
    /// No terminator: fixed-width records back to back.
    None,
}

impl Terminator {
    /// The spelling used in schema files.
    pub fn as_str(self) -> &'static str {
        match self {
            Terminator::Any => "any",
            Terminator::Lf => "lf",
            Terminator::Crlf => "crlf",
            Terminator::None => "none",
        }
    }
}

/// Policy for fixed-width records longer than the layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Longer {
    /// Ignore the extra tail (newer exports append fields).
    #[default]
    Ignore,
    /// Reject the record.
    Reject,
}

/// Policy for fixed-width records shorter than the layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shorter {
    /// Reject the record (the default).
    #[default]
    Reject,
    /// Treat the missing tail as spaces.
    Pad,
}

/// Quoting of delimited fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quoting {
    /// A `"` is an ordinary character (HCAD; the default).
    #[default]
    None,
    /// RFC 4180: `"…"` encloses a field, `""` is a literal quote.
    Standard,
}

/// What to do when two records share a key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DuplicatePolicy {
    /// The later records are rejects (the default).
    #[default]
    Reject,
    /// Keep the first record; later ones are counted as filtered.
    First,
    /// Keep the last record; earlier ones are counted as filtered.
    Last,
}

impl DuplicatePolicy {
    /// The spelling used in schema files.
    pub fn as_str(self) -> &'static str {
        match self {
            DuplicatePolicy::Reject => "reject",
            DuplicatePolicy::First => "first",
            DuplicatePolicy::Last => "last",
        }
    }
}

/// One field of a layout.
#[derive(Clone, Debug)]
pub struct Field {
    /// Column name in the target table.
    pub name: String,
    /// The header text expected for this column (delimited with header).
    pub header: String,
    /// Byte range in a fixed-width record (start from 0, end exclusive).
    pub span: Option<Range<usize>>,
    /// Type, conversions and checks.
    pub decoder: Decoder,
    /// Free-text description.
    pub description: Option<String>,
    /// Line of the field's definition in its schema file (from 1).
    pub line: usize,
}

impl PartialEq for Field {
    fn eq(&self, o: &Self) -> bool {
        let (a, b) = (&self.decoder, &o.decoder);
        self.name == o.name
            && self.header == o.header
            && self.span == o.span
            && self.description == o.description
            && a.ty == b.ty
            && a.trim == b.trim
            && a.text == b.text
            && a.sign == b.sign
            && a.fraction == b.fraction
            && a.format == b.format
            && a.nulls == b.nulls
            && a.required == b.required
            && a.overflow == b.overflow
            && a.true_values == b.true_values
            && a.false_values == b.false_values
            && a.min == b.min
            && a.max == b.max
            && a.pattern.as_ref().map(|p| p.as_str())
                == b.pattern.as_ref().map(|p| p.as_str())
            && a.allowed == b.allowed
    }
}

/// A record filter: records whose (trimmed) field value is not kept are
/// counted as filtered, never loaded and never silently dropped.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    /// Index of the field tested.
    pub field: usize,
    /// Values that keep the record (when non-empty).
    pub keep: Vec<Box<[u8]>>,
    /// Values that filter the record out.
    pub drop: Vec<Box<[u8]>>,
}

impl Filter {
    /// Whether a record with this trimmed value is kept.
    #[inline]
    pub fn keeps(&self, v: &[u8]) -> bool {
        (self.keep.is_empty() || self.keep.iter().any(|k| **k == *v))
            && !self.drop.iter().any(|d| **d == *v)
    }
}

/// One record layout feeding one table.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Layout name (unique in a set; defaults to the file stem).
    pub name: String,
    /// Target table name.
    pub table: String,
    /// Free-text description.
    pub description: Option<String>,
    /// Globs matched against archive member names (case-insensitive,
    /// against the full member path and its last component).
    pub members: Vec<String>,
    matcher: globset::GlobSet,
    /// Framing.
    pub format: Format,
    /// Source encoding of text fields.
    pub encoding: Encoding,
    /// Fields in column order.
    pub fields: Vec<Field>,
    /// Indices of the key fields (may be empty: no key).
    pub key: Vec<usize>,
    /// Duplicate-key policy.
    pub duplicates: DuplicatePolicy,
    /// Count empty records as filtered instead of rejecting them.
    pub skip_blank: bool,
    /// Record filters.
    pub filters: Vec<Filter>,
    /// Versions of a fixed layout, its own first (empty: records are read
    /// as the layout says, whatever their length); see [`Version`].
    pub versions: Vec<Version>,
    /// The schema file this layout came from.
    pub path: PathBuf,
}

impl PartialEq for Layout {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.table == o.table
            && self.description == o.description
            && self.members == o.members
            && self.format == o.format
            && self.encoding == o.encoding
            && self.fields == o.fields
            && self.key == o.key
            && self.duplicates == o.duplicates
            && self.skip_blank == o.skip_blank
            && self.filters == o.filters
            && self.versions == o.versions
    }
}

impl Layout {
    /// Whether an archive member path matches this layout's globs.
    pub fn matches(&self, member: &str) -> bool {
        let lower = member.to_ascii_lowercase();
        let base = lower.rsplit('/').next().unwrap_or(&lower);
        self.matcher.is_match(&lower) || self.matcher.is_match(base)
    }

    /// The key fields' names.
    pub fn key_names(&self) -> Vec<&str> {
        self.key.iter().map(|&i| self.fields[i].name.as_str()).collect()
    }

    /// Whether the layout is fixed-width.
    pub fn is_fixed(&self) -> bool {
        matches!(self.format, Format::Fixed(_))
    }

    /// Index of the field named `name`.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

/// A cross-table reference declared by a dataset
/// (`building_res.acct → real_acct.acct`).
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    /// Referencing layout.
    pub from: String,
    /// Referencing columns.
    pub columns: Vec<String>,
    /// Referenced layout.
    pub to: String,
    /// Referenced columns.
    pub to_columns: Vec<String>,
    /// What to do with orphans.
    pub on_orphan: OrphanPolicy,
}

/// What a load does with rows whose reference has no target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrphanPolicy {
    /// Count them and load them anyway.
    Keep,
    /// Count them and reject them (they are not loaded).
    #[default]
    Reject,
    /// Fail the whole run.
    Fail,
}

impl OrphanPolicy {
    /// The spelling used in dataset files.
    pub fn as_str(self) -> &'static str {
        match self {
            OrphanPolicy::Keep => "keep",
            OrphanPolicy::Reject => "reject",
            OrphanPolicy::Fail => "fail",
        }
    }
}

/// One archive a dataset is published as.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchiveSpec {
    /// File name (may contain `{year}`).
    pub name: String,
    /// Download URL (may contain `{year}`).
    pub url: Option<String>,
    /// Expected sha256 (hex), when known.
    pub sha256: Option<String>,
    /// Layouts whose members this archive holds.
    pub layouts: Vec<String>,
}

impl ArchiveSpec {
    /// Whether `file_name` (an input's file name) is this archive: equal
    /// ignoring ASCII case, `{year}` standing for any four digits.
    pub fn is_named(&self, file_name: &str) -> bool {
        self.name_years(file_name).is_some()
    }

    /// The year `file_name` has where this archive's name has its first
    /// `{year}`; `None` when the name has none or is not this archive.
    pub fn year_in(&self, file_name: &str) -> Option<i32> {
        self.name_years(file_name)?
    }

    /// When `file_name` is this archive, the digits standing for its
    /// first `{year}` (`Some(None)`: the name has no `{year}`).
    fn name_years(&self, file_name: &str) -> Option<Option<i32>> {
        let name = file_name.as_bytes();
        let mut parts = self.name.split("{year}");
        let first = parts.next().unwrap_or_default().as_bytes();
        if name.len() < first.len()
            || !name[..first.len()].eq_ignore_ascii_case(first)
        {
            return None;
        }
        let mut at = first.len();
        let mut year = None;
        for part in parts {
            let digits = &name[at.min(name.len())..];
            if digits.len() < 4 || !digits[..4].iter().all(u8::is_ascii_digit)
            {
                return None;
            }
            year = year.or_else(|| {
                std::str::from_utf8(&digits[..4]).ok()?.parse().ok()
            });
            at += 4;
            let rest = &name[at..];
            let part = part.as_bytes();
            if rest.len() < part.len()
                || !rest[..part.len()].eq_ignore_ascii_case(part)
            {
                return None;
            }
            at += part.len();
        }
        (at == name.len()).then_some(year)
    }
}

impl Dataset {
    /// The archive an input is, by its file name.
    pub fn archive_named(&self, file_name: &str) -> Option<&ArchiveSpec> {
        self.archives.iter().find(|a| a.is_named(file_name))
    }

    /// The layouts the archive that `input` is should hold but for which
    /// `has` found no member: (archive name, layouts), or `None` when the
    /// input is none of the dataset's archives.
    pub fn missing_members<'a>(
        &'a self,
        input: &std::path::Path,
        has: impl Fn(&str) -> bool,
    ) -> Option<(&'a str, Vec<&'a str>)> {
        let file_name = input.file_name()?.to_str()?;
        let archive = self.archive_named(file_name)?;
        let missing: Vec<&str> = archive
            .layouts
            .iter()
            .map(String::as_str)
            .filter(|l| !has(l))
            .collect();
        Some((&archive.name, missing))
    }
}

/// A source family: its archives, load order and references.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Dataset name (used for run records and the advisory lock).
    pub name: String,
    /// Free-text description.
    pub description: Option<String>,
    /// The published archives.
    pub archives: Vec<ArchiveSpec>,
    /// Layout names in load order (parents before children).
    pub load_order: Vec<String>,
    /// Cross-table references.
    pub references: Vec<Reference>,
    /// Proportions for generated data.
    pub generate: GenerateHints,
    /// The control record, when the export has one.
    pub control: Option<ControlSpec>,
    /// Totals that must reconcile before a load commits.
    pub reconcile: Vec<Reconcile>,
    /// Checks that guard the commit.
    pub checks: Vec<Check>,
    /// Layouts whose members exist only in some years.
    pub years: Vec<(String, Years)>,
    /// The period its targets are kept by (years side by side), if any.
    pub period: Option<Period>,
    /// The names of the version columns of history targets.
    pub history: HistoryColumns,
    /// The dataset file.
    pub path: PathBuf,
}

/// The period a dataset's targets are kept by: every target gets
/// `column` (an integer, e.g. `tax_year`) first in its key and is
/// partitioned by it, one partition per value; a load fills it with one
/// value and touches that partition only.
#[derive(Clone, Debug, PartialEq)]
pub struct Period {
    /// The column's name.
    pub column: String,
    /// Where a load's value comes from.
    pub from: PeriodFrom,
    /// With `from = "field"`: the field of the records that states their
    /// period (e.g. PACS `prop_val_yr`).
    pub field: Option<String>,
}

/// The columns fwload keeps on each version of a history target
/// (`--mode history`): when it became valid, when it stopped being
/// (NULL while current), and the fingerprint of its values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryColumns {
    /// When the version became valid.
    pub valid_from: String,
    /// When it stopped being valid; NULL for the current version.
    pub valid_to: String,
    /// The version's fingerprint: the first 16 bytes of the sha256 of
    /// its values' binary encodings, as a uuid.
    pub row_hash: String,
}

impl Default for HistoryColumns {
    fn default() -> Self {
        HistoryColumns {
            valid_from: "valid_from".into(),
            valid_to: "valid_to".into(),
            row_hash: "row_hash".into(),
        }
    }
}

/// Where a load's period value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeriodFrom {
    /// `--year` (else the year the inputs' control records state).
    Year,
    /// The `{year}` of the dataset's archive names the inputs match.
    Archive,
    /// A field of the records (`field = "..."`): the same value in every
    /// record of a load that has the field.
    Field,
}

impl PeriodFrom {
    /// The spelling used in dataset files.
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodFrom::Year => "year",
            PeriodFrom::Archive => "archive",
            PeriodFrom::Field => "field",
        }
    }
}

/// How many rows `fwload gen` makes of each table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerateHints {
    /// The table `--rows` counts (default: the first top-level layout).
    pub main: Option<String>,
    /// Top-level tables: rows as a share of `--rows` (default 1).
    pub rows: Vec<(String, f64)>,
    /// Child tables: mean rows per parent row (default 1).
    pub per_parent: Vec<(String, f64)>,
}

/// A problem in a schema or dataset file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaError {
    /// The file.
    pub path: PathBuf,
    /// Line in the file (from 1), when known.
    pub line: Option<usize>,
    /// The field concerned, when any.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "field '{field}': ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for SchemaError {}

/// Every problem found while loading schemas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaErrors(pub Vec<SchemaError>);

impl fmt::Display for SchemaErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SchemaErrors {}

#[cfg(test)]
mod tests {
    use super::ArchiveSpec;

    #[test]
    fn archive_names_match_with_year_and_case() {
        let spec = |name: &str| ArchiveSpec {
            name: name.into(),
            url: None,
            sha256: None,
            layouts: Vec::new(),
        };
        let plain = spec("Real_acct_owner.zip");
        assert!(plain.is_named("Real_acct_owner.zip"));
        assert!(plain.is_named("REAL_ACCT_OWNER.ZIP"));
        assert!(!plain.is_named("Real_acct_owner.zip.part"));
        assert!(!plain.is_named("Real_acct.zip"));
        let yearly = spec("roll_{year}.zip");
        assert!(yearly.is_named("roll_2025.zip"));
        assert!(!yearly.is_named("roll_25.zip"));
        assert!(!yearly.is_named("roll_20x5.zip"));
        assert!(!yearly.is_named("roll_2025"));
        assert!(!yearly.is_named("roll_"));
        assert_eq!(yearly.year_in("ROLL_2025.zip"), Some(2025));
        assert_eq!(yearly.year_in("roll_25.zip"), None);
        assert_eq!(plain.year_in("Real_acct_owner.zip"), None);
        assert_eq!(
            spec("{year}/x_{year}.zip").year_in("2024/x_2023.zip"),
            Some(2024)
        );
    }
}
