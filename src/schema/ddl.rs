//! `CREATE TABLE` and index statements for a layout's target table.

use super::{Layout, Reference};

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

/// The `CREATE TABLE` statement for `layout`'s target, named `table`
/// (already qualified as wanted), with the key as primary key.
///
/// `soft_delete` adds the `deleted_at` column used by soft deletes. A
/// `period` column comes first, leads the key, and partitions the table
/// by list (one partition per value: see [`create_partition`]).
pub fn create_table(
    layout: &Layout,
    table: &str,
    soft_delete: bool,
    period: Option<&str>,
) -> String {
    let mut s = format!("CREATE TABLE {table} (\n");
    let mut cols: Vec<String> = period
        .map(|p| format!("    {} integer NOT NULL", quote_ident(p)))
        .into_iter()
        .collect();
    cols.extend(
        (0..layout.fields.len()).map(|i| format!("    {}", column(layout, i))),
    );
    if soft_delete {
        cols.push("    deleted_at timestamp with time zone".into());
    }
    if !layout.key.is_empty() {
        let key: Vec<String> = period
            .into_iter()
            .chain(layout.key_names())
            .map(quote_ident)
            .collect();
        cols.push(format!("    PRIMARY KEY ({})", key.join(", ")));
    }
    s.push_str(&cols.join(",\n"));
    s.push_str("\n)");
    if let Some(p) = period {
        s.push_str(&format!(" PARTITION BY LIST ({})", quote_ident(p)));
    }
    s
}

/// The name of the partition of `table` (unqualified) holding period
/// `value`: `<table>_<value>`, the table's name cut so the whole fits in
/// PostgreSQL's 63 bytes.
pub fn partition_name(table: &str, value: i32) -> String {
    let tail = format!("_{value}");
    let mut end = table.len().min(63 - tail.len());
    while !table.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{tail}", &table[..end])
}

/// `CREATE TABLE` of the partition `partition` (qualified) of the
/// partitioned `table` holding period `value`; it inherits the key and
/// indexes.
pub fn create_partition(table: &str, partition: &str, value: i32) -> String {
    format!(
        "CREATE TABLE {partition} PARTITION OF {table} FOR VALUES IN ({value})"
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
