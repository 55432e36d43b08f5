//! `CREATE TABLE` and index statements for a layout's target table.

use super::{HistoryColumns, Layout, Reference};

/// Quotes an SQL identifier (`"name"`, inner quotes doubled); a
/// `schema.table` name is quoted part by part.
pub fn quote_ident(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// Quotes an SQL string literal (`'it''s'`), for DDL and comments only:
/// values always travel through COPY or bind parameters.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// What a target has besides its layout's columns.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableShape<'a> {
    /// A `deleted_at` column for soft deletes.
    pub soft_delete: bool,
    /// A period column: first, leading the key, partitioning the table by
    /// list (one partition per value: see [`create_partition`]).
    pub period: Option<&'a str>,
    /// Version columns (`--mode history`): every version of a key is a
    /// row, the key with `valid_from` is the primary key.
    pub history: Option<&'a HistoryColumns>,
}

impl TableShape<'_> {
    /// The columns of the primary key of `layout`'s target: the period,
    /// the layout's key, then a version's `valid_from`.
    pub fn key<'k>(&'k self, layout: &'k Layout) -> Vec<&'k str> {
        let mut key: Vec<&str> = self.period.into_iter().collect();
        key.extend(layout.key_names());
        key.extend(self.history.map(|h| h.valid_from.as_str()));
        key
    }
}

/// The `CREATE TABLE` statement for `layout`'s target, named `table`
/// (already qualified as wanted), with the key as primary key and the
/// columns `shape` adds.
pub fn create_table(
    layout: &Layout,
    table: &str,
    shape: &TableShape<'_>,
) -> String {
    table_sql(layout, table, shape, true)
}

/// [`create_table`] without the primary key, which [`primary_key`] adds
/// once the table is filled (one sort instead of an index insert per
/// row).
pub fn create_table_unkeyed(
    layout: &Layout,
    table: &str,
    shape: &TableShape<'_>,
) -> String {
    table_sql(layout, table, shape, false)
}

/// The statement adding the primary key [`create_table_unkeyed`] leaves
/// out; `None` for a layout without a key.
pub fn primary_key(
    layout: &Layout,
    table: &str,
    shape: &TableShape<'_>,
) -> Option<String> {
    (!layout.key.is_empty()).then(|| {
        format!("ALTER TABLE {table} ADD {}", key_clause(layout, shape))
    })
}

fn key_clause(layout: &Layout, shape: &TableShape<'_>) -> String {
    let key: Vec<String> =
        shape.key(layout).into_iter().map(quote_ident).collect();
    format!("PRIMARY KEY ({})", key.join(", "))
}

fn table_sql(
    layout: &Layout,
    table: &str,
    shape: &TableShape<'_>,
    keyed: bool,
) -> String {
    let mut s = format!("CREATE TABLE {table} (\n");
    let mut cols: Vec<String> = shape
        .period
        .map(|p| format!("    {} integer NOT NULL", quote_ident(p)))
        .into_iter()
        .collect();
    cols.extend(
        (0..layout.fields.len()).map(|i| format!("    {}", column(layout, i))),
    );
    if shape.soft_delete {
        cols.push("    deleted_at timestamp with time zone".into());
    }
    if let Some(h) = shape.history {
        let (from, to) =
            (quote_ident(&h.valid_from), quote_ident(&h.valid_to));
        cols.push(format!("    {from} timestamp with time zone NOT NULL"));
        cols.push(format!("    {to} timestamp with time zone"));
        cols.push(format!("    {} uuid NOT NULL", quote_ident(&h.row_hash)));
        cols.push(format!("    CHECK ({to} IS NULL OR {to} > {from})"));
    }
    if keyed && !layout.key.is_empty() {
        cols.push(format!("    {}", key_clause(layout, shape)));
    }
    s.push_str(&cols.join(",\n"));
    s.push_str("\n)");
    if let Some(p) = shape.period {
        s.push_str(&format!(" PARTITION BY LIST ({})", quote_ident(p)));
    }
    s
}

/// What a history target has besides its table: a unique index on the
/// key of the current versions (at most one current version per key), a
/// view of the current versions (`<table>_current`) and a function of
/// the versions valid at a time (`<table>_as_of(timestamptz)`). `table`
/// is qualified; empty for a shape without history.
pub fn history_statements(
    layout: &Layout,
    table: &str,
    shape: &TableShape<'_>,
) -> Vec<String> {
    history_index(layout, table, shape)
        .into_iter()
        .chain(history_views(table, shape))
        .collect()
}

/// The schema prefix (`"s".`, or empty) and the unquoted name of the
/// qualified `table`.
fn split_table(table: &str) -> (String, String) {
    match table.rsplit_once('.') {
        Some((s, b)) => (format!("{s}."), b.trim_matches('"').to_owned()),
        None => (String::new(), table.trim_matches('"').to_owned()),
    }
}

/// The unique index on the key of a history target's current versions;
/// `None` without history or without a key.
pub fn history_index(
    layout: &Layout,
    table: &str,
    shape: &TableShape<'_>,
) -> Option<String> {
    let h = shape.history?;
    let key: Vec<String> = shape
        .period
        .into_iter()
        .chain(layout.key_names())
        .map(quote_ident)
        .collect();
    if key.is_empty() {
        return None;
    }
    Some(format!(
        "CREATE UNIQUE INDEX {} ON {table} ({}) WHERE {} IS NULL",
        quote_ident(&format!("{}_current_key", split_table(table).1)),
        key.join(", "),
        quote_ident(&h.valid_to)
    ))
}

/// The view of a history target's current versions and its as-of
/// function; empty without history.
pub fn history_views(table: &str, shape: &TableShape<'_>) -> Vec<String> {
    let Some(h) = shape.history else { return Vec::new() };
    let (schema, base) = split_table(table);
    let (from, to) = (quote_ident(&h.valid_from), quote_ident(&h.valid_to));
    let named = |what: &str| {
        format!("{schema}{}", quote_ident(&format!("{base}_{what}")))
    };
    vec![
        format!(
            "CREATE VIEW {} AS SELECT * FROM {table} WHERE {to} IS NULL",
            named("current")
        ),
        format!(
            "CREATE FUNCTION {}(at timestamp with time zone) RETURNS SETOF {table} \
             LANGUAGE sql STABLE AS $fw$ SELECT * FROM {table} \
             WHERE {from} <= at AND ({to} IS NULL OR {to} > at) $fw$",
            named("as_of")
        ),
    ]
}

/// The name of the partition of `table` (unqualified) holding period
/// `value`: `<table>_<value>`, the table's name cut so the whole fits in
/// PostgreSQL's 63 bytes.
pub fn partition_name(table: &str, value: i32) -> String {
    let tail = format!("_{value}");
    format!("{}{tail}", clip(table, 63 - tail.len()))
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary (PostgreSQL cuts identifiers to 63 bytes so).
pub fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `CREATE TABLE` of the partition `partition` (qualified) of the
/// partitioned `table` holding value `value` of its period column
/// `column`, not attached yet: the parent's columns, defaults and checks,
/// no index, and a check that its rows hold `value`. Filled, it is
/// attached (which builds the parent's key and
/// indexes on it, a sort each, and needs no scan thanks to the check).
pub fn create_partition(
    table: &str,
    partition: &str,
    (column, value): (&str, i32),
) -> String {
    format!(
        "CREATE TABLE {partition} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS); \
         ALTER TABLE {partition} ADD CHECK ({c} = {value})",
        c = quote_ident(column)
    )
}

/// Field `i` of `layout` as a column definition: name, type and, for key
/// and required fields, `NOT NULL`.
pub fn column(layout: &Layout, i: usize) -> String {
    let f = &layout.fields[i];
    let not_null = f.decoder.required || layout.key.contains(&i);
    format!(
        "{} {}{}",
        quote_ident(&f.name),
        f.decoder.ty.sql(),
        if not_null { " NOT NULL" } else { "" }
    )
}

/// The column lists of `layout` that reference another table in
/// `references` and need an index of their own (the primary key serves those
/// it starts with), each once.
pub fn reference_indexes(
    layout: &Layout,
    references: &[Reference],
) -> Vec<Vec<String>> {
    let key = layout.key_names();
    let mut out: Vec<Vec<String>> = Vec::new();
    for r in references.iter().filter(|r| r.from == layout.name) {
        let prefix = key.len() >= r.columns.len()
            && key.iter().zip(&r.columns).all(|(a, b)| a == b);
        if !prefix && !out.contains(&r.columns) {
            out.push(r.columns.clone());
        }
    }
    out
}

/// `CREATE INDEX` on `table` over `columns`, named `name`.
pub fn create_index(name: &str, table: &str, columns: &[String]) -> String {
    let cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    format!(
        "CREATE INDEX {} ON {table} ({})",
        quote_ident(name),
        cols.join(", ")
    )
}

/// The name `fwload schema ddl` gives the index of `table` (unqualified)
/// over `columns`.
pub fn index_name(table: &str, columns: &[String]) -> String {
    format!("{table}_{}_idx", columns.join("_"))
}

/// Index statements for the columns of `layout` that reference another
/// table in `references` (unless the primary key already starts with
/// them).
pub fn index_statements(
    layout: &Layout,
    table: &str,
    references: &[Reference],
) -> Vec<String> {
    let base = table.rsplit('.').next().unwrap_or(table).trim_matches('"');
    reference_indexes(layout, references)
        .iter()
        .map(|c| create_index(&index_name(base, c), table, c))
        .collect()
}
