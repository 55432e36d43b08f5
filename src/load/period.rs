//! The period of a load (years side by side): which value the load fills
//! in the dataset's period column, whether a target is partitioned by it,
//! and the partition a load of that value writes to.
//!
//! Every statement that changes a target — the `MERGE`, the snapshot
//! deletes and the delete guard's counts — runs on the period's partition
//! itself, so a load of one period cannot touch another's rows whatever
//! the statement; reference checks read the parent tables restricted to
//! the period (pruned to its partition).

use std::path::{Path, PathBuf};

use postgres::{GenericClient, Transaction};

use super::{LoadError, LoadOptions};
use crate::pipeline::{Control, first_field_value};
use crate::schema::{
    Layout, PeriodFrom, SchemaSet, create_partition, partition_name,
    quote_ident,
};

/// The period a load fills: its column and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PeriodValue {
    /// The period column (unquoted).
    pub column: String,
    /// Its value for every row of the load.
    pub value: i32,
    /// The field of the records that states the period (`from =
    /// "field"`), and where the value was read first.
    pub field: Option<(String, String)>,
}

impl PeriodValue {
    /// The column, quoted.
    pub(crate) fn quoted(&self) -> String {
        quote_ident(&self.column)
    }
}

/// The period value of a load of `inputs`, when the dataset keeps one:
/// `--year` (else the year every control record states) or the `{year}`
/// of the archive names, as the dataset says.
///
/// # Errors
/// No value, or inputs that disagree on it (a load is of one period).
pub(crate) fn resolve(
    set: &SchemaSet,
    inputs: &[PathBuf],
    controls: &[Control],
    opts: &LoadOptions,
) -> Result<Option<PeriodValue>, LoadError> {
    let Some(p) = set.period() else { return Ok(None) };
    let dataset = set.dataset.as_ref().map_or("", |d| d.name.as_str());
    let value = match p.from {
        PeriodFrom::Year => {
            let stated = one_value(
                controls.iter().filter_map(|c| Some((c.year?, &c.input))),
                "control records state",
            )?;
            match (opts.year, stated) {
                (Some(y), _) => y,
                (None, Some(y)) => y,
                (None, None) => {
                    return Err(LoadError::config(format!(
                        "dataset {dataset} keeps its tables by {}: give the load's year with --year",
                        p.column
                    )));
                }
            }
        }
        PeriodFrom::Archive => {
            let named = archive_years(set, inputs)?;
            let Some(y) = one_value(
                named.iter().map(|(y, input)| (*y, input)),
                "archive names say",
            )?
            else {
                return Err(LoadError::config("no input to take a year from"));
            };
            if let Some(given) = opts.year.filter(|g| *g != y) {
                return Err(LoadError::config(format!(
                    "--year {given}, but the archive names say {y}"
                )));
            }
            y
        }
        PeriodFrom::Field => {
            let field = p.field.as_deref().expect("checked by the schema");
            let (y, at) = field_value(set, inputs, controls, opts, field)?;
            if let Some(given) = opts.year.filter(|g| *g != y) {
                return Err(LoadError::config(format!(
                    "--year {given}, but {at} states {field} {y}"
                )));
            }
            return Ok(Some(PeriodValue {
                column: p.column.clone(),
                value: y,
                field: Some((field.to_owned(), at)),
            }));
        }
    };
    Ok(Some(PeriodValue { column: p.column.clone(), value, field: None }))
}

/// The period the records of `inputs` state in `field`: read from the
/// first record of each input that has the field, which must all agree
/// (every record is checked once staged: [`check_field`]). With no record
/// to read (inputs without such members), `--year`.
///
/// # Errors
/// A read error, a first record without a year in the field, inputs that
/// disagree, or no value at all.
fn field_value(
    set: &SchemaSet,
    inputs: &[PathBuf],
    controls: &[Control],
    opts: &LoadOptions,
    field: &str,
) -> Result<(i32, String), LoadError> {
    let mut stated = Vec::new();
    for input in inputs {
        let shown = input.display().to_string();
        let export = controls
            .iter()
            .find(|c| c.input == shown)
            .and_then(|c| c.export_version.as_deref());
        let found = first_field_value(
            set,
            input,
            &opts.source,
            opts.pipeline.max_record_bytes,
            (field, export),
        )
        .map_err(|e| LoadError::config(e.to_string()))?;
        let Some((text, at)) = found else { continue };
        let year = text.as_deref().and_then(|t| t.trim().parse::<i32>().ok());
        let Some(year) = year else {
            return Err(LoadError::refused(format!(
                "{at}: the period is read from field {field}, which holds {} here, not a year; nothing was loaded",
                text.map_or_else(
                    || "nothing".to_owned(),
                    |t| format!("{t:?}")
                )
            )));
        };
        stated.push((year, at));
    }
    match one_value(stated.iter().map(|(y, at)| (*y, at)), "records state")? {
        Some(y) => Ok((y, stated.swap_remove(0).1)),
        None => opts.year.map(|y| (y, "--year".to_owned())).ok_or_else(|| {
            LoadError::config(format!(
                "the period is read from field {field}, and no input holds a record with it: give the load's year with --year"
            ))
        }),
    }
}

/// Refuses a load of `period` whose staged rows of `layout` (in
/// `staging`, not rejected) state another period, or none, in the
/// period's field: a load is of one period.
///
/// # Errors
/// Such a row (the first found, with its file and line), or a database
/// error.
pub(super) fn check_field(
    tx: &mut Transaction<'_>,
    (layout, staging): (&Layout, &str),
    period: &PeriodValue,
    names: &dyn Fn(u32) -> (String, String),
) -> Result<(), LoadError> {
    let Some((field, at)) = &period.field else { return Ok(()) };
    if layout.field_index(field).is_none() {
        return Ok(());
    }
    let f = quote_ident(field);
    let sql = format!(
        "SELECT _fw_file, _fw_line, {f}::text FROM {staging} \
         WHERE NOT _fw_reject AND ({f} IS NULL OR btrim({f}::text) <> '{}') LIMIT 1",
        period.value
    );
    let row = tx.query_opt(&sql, &[]).map_err(|e| {
        LoadError::db(format!("checking the period of {}", layout.name), e)
    })?;
    let Some(row) = row else { return Ok(()) };
    let (file, line, value): (i32, i64, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    let (input, member) = names(file as u32);
    Err(LoadError::refused(format!(
        "{input}:{member}:{line}: {field} is {}, but this load is of {} {} (as {at} states): a load is of one period; nothing was loaded",
        value.map_or_else(|| "empty".to_owned(), |v| format!("{v:?}")),
        period.column,
        period.value
    )))
}

/// The one value of `values` (value, where it is from), if any.
///
/// # Errors
/// Two different values, naming where each is from.
fn one_value<'a, S: AsRef<str> + 'a>(
    mut values: impl Iterator<Item = (i32, &'a S)>,
    what: &str,
) -> Result<Option<i32>, LoadError> {
    let Some((first, at)) = values.next() else { return Ok(None) };
    for (v, other) in values {
        if v != first {
            return Err(LoadError::config(format!(
                "a load is of one period, but the {what} {first} ({}) and {v} ({})",
                at.as_ref(),
                other.as_ref()
            )));
        }
    }
    Ok(Some(first))
}

/// The year of each input's archive name, by the dataset's archives.
///
/// # Errors
/// An input whose name is no archive of the dataset with a `{year}`.
fn archive_years(
    set: &SchemaSet,
    inputs: &[PathBuf],
) -> Result<Vec<(i32, String)>, LoadError> {
    let ds = set.dataset.as_ref();
    inputs
        .iter()
        .map(|input| {
            let name = file_name(input);
            ds.and_then(|d| d.archive_named(name))
                .and_then(|a| a.year_in(name))
                .map(|y| (y, input.display().to_string()))
                .ok_or_else(|| {
                    LoadError::config(format!(
                        "{}: the dataset takes the year from archive names, and this is none of its archives with a {{year}}",
                        input.display()
                    ))
                })
        })
        .collect()
}

fn file_name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or_default()
}

/// Whether `table` (qualified, quoted) is partitioned by list on
/// `column` alone.
///
/// # Errors
/// A database error.
pub(super) fn partitioned_by<C: GenericClient>(
    db: &mut C,
    table: &str,
    column: &str,
) -> Result<bool, LoadError> {
    let row = db
        .query_opt(
            "SELECT a.attname::text
             FROM pg_partitioned_table p
             JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
             WHERE p.partrelid = $1::text::regclass AND p.partstrat = 'l' AND p.partnatts = 1",
            &[&table],
        )
        .map_err(|e| LoadError::db(format!("reading how {table} is partitioned"), e))?;
    Ok(row.is_some_and(|r| r.get::<_, String>(0) == column))
}

/// The partition of the partitioned `target` (qualified, quoted) that
/// holds `value`, as its schema and name, if there is one.
///
/// # Errors
/// A database error.
pub(super) fn find_partition<C: GenericClient>(
    db: &mut C,
    target: &str,
    value: i32,
) -> Result<Option<(String, String)>, LoadError> {
    let row = db
        .query_opt(
            "SELECT n.nspname::text, c.relname::text FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE i.inhparent = $1::text::regclass
               AND pg_get_expr(c.relpartbound, c.oid) = $2",
            &[&target, &bound(value)],
        )
        .map_err(|e| {
            LoadError::db(
                format!("finding the {value} partition of {target}"),
                e,
            )
        })?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Attaches `table` to `parent` as the partition of `bound`.
pub(super) fn attach_sql(parent: &str, table: &str, bound: &str) -> String {
    format!("ALTER TABLE {parent} ATTACH PARTITION {table} {bound}")
}

/// A list partition's bound for one value, as PostgreSQL spells it.
pub(super) fn bound(value: i32) -> String {
    format!("FOR VALUES IN ({value})")
}

/// The schema and name the partition of `period` of the partitioned
/// table `table` in `schema` has, or gets when fwload creates it.
///
/// # Errors
/// A database error.
pub(super) fn partition_of<C: GenericClient>(
    db: &mut C,
    (schema, table): (&str, &str),
    period: &PeriodValue,
) -> Result<(String, String), LoadError> {
    let target = super::qualified(schema, table);
    Ok(find_partition(db, &target, period.value)?.unwrap_or_else(|| {
        (schema.to_owned(), partition_name(table, period.value))
    }))
}

/// Where a load of one period writes: the period's partition of a
/// target, and, when the load creates it, the statement that attaches it
/// once it is filled.
pub(super) struct Partition {
    /// The partition, qualified and quoted.
    pub table: String,
    /// `ALTER TABLE .. ATTACH PARTITION`, for a partition created by this
    /// load unattached.
    pub attach: Option<String>,
    /// Whether this load created it.
    pub created: bool,
}

/// The partition of the partitioned `target` (schema `schema`, table
/// `table`) that holds `period`: the table every statement of the load
/// that changes rows runs on. When there is none yet it is created
/// unattached and without indexes, so its rows are written without
/// index inserts; [`Partition::attach`] then builds its key and indexes
/// and makes it part of the target, in the same transaction.
///
/// # Errors
/// A database error.
pub(super) fn partition(
    tx: &mut Transaction<'_>,
    (schema, table): (&str, &str),
    period: &PeriodValue,
) -> Result<Partition, LoadError> {
    let target = super::qualified(schema, table);
    if let Some((s, t)) = find_partition(tx, &target, period.value)? {
        return Ok(Partition {
            table: super::qualified(&s, &t),
            attach: None,
            created: false,
        });
    }
    let name = super::qualified(schema, &partition_name(table, period.value));
    let ctx = |e| {
        LoadError::db(
            format!("creating the {} partition of {target}", period.value),
            e,
        )
    };
    // Rows written to a partition not attached yet fire none of the
    // parent's triggers and reach none of its publications: for such a
    // parent the partition is attached from the start.
    let watched: bool = tx
        .query_one(WATCHED, &[&target])
        .map_err(|e| LoadError::db(format!("looking at {target}"), e))?
        .get(0);
    if watched {
        tx.batch_execute(&format!(
            "CREATE TABLE {name} PARTITION OF {target} {}",
            bound(period.value)
        ))
        .map_err(ctx)?;
        return Ok(Partition { table: name, attach: None, created: true });
    }
    tx.batch_execute(&create_partition(
        &target,
        &name,
        (&period.column, period.value),
    ))
    .map_err(ctx)?;
    let attach = attach_sql(&target, &name, &bound(period.value));
    Ok(Partition { table: name, attach: Some(attach), created: true })
}

/// Whether the table $1 has triggers of its own (not a constraint's) or
/// is published by name or with its schema.
const WATCHED: &str = "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::text::regclass AND NOT tgisinternal)
    OR EXISTS (SELECT 1 FROM pg_publication_rel WHERE prrelid = $1::text::regclass)
    OR EXISTS (SELECT 1 FROM pg_publication_namespace pn JOIN pg_class c ON c.relnamespace = pn.pnnspid
               WHERE c.oid = $1::text::regclass)";

impl Partition {
    /// Attaches a partition this load created (nothing for one that
    /// existed).
    ///
    /// # Errors
    /// A database error.
    pub(super) fn attach(
        &self,
        tx: &mut Transaction<'_>,
    ) -> Result<(), LoadError> {
        let Some(sql) = &self.attach else { return Ok(()) };
        tx.batch_execute(sql)
            .map_err(|e| LoadError::db(format!("attaching {}", self.table), e))
    }
}

/// The partitioned table `table` (qualified, quoted) is part of, and its
/// bound, when it is a partition.
///
/// # Errors
/// A database error.
pub(super) fn parent_of<C: GenericClient>(
    db: &mut C,
    table: &str,
) -> Result<Option<(String, String)>, LoadError> {
    let row = db
        .query_opt(
            "SELECT i.inhparent::regclass::text, pg_get_expr(c.relpartbound, c.oid)
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhrelid = $1::text::regclass AND c.relispartition",
            &[&table],
        )
        .map_err(|e| LoadError::db(format!("looking up the parent of {table}"), e))?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}
