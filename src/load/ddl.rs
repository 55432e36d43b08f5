//! Names and DDL of built targets, shared by staging and publishing: the
//! key and index names (chosen by PostgreSQL, or per run so two
//! generations of a table coexist), PostgreSQL's 63-byte limit cut on a
//! character boundary, and the statements that build a target's key and
//! indexes or give an adopted table its standard names.

use postgres::Transaction;

use super::LoadError;
use crate::schema::{
    Layout, Reference, create_index, quote_ident, reference_indexes,
};

/// Names for the key and indexes of a built target.
#[derive(Clone, Copy, Debug)]
pub(super) enum Naming<'a> {
    /// Names PostgreSQL chooses, unique in the table's schema (renamed
    /// when the table is adopted: see [`standard_names`]).
    Chosen,
    /// Names unique to a run, so two generations of a table can coexist:
    /// the final table's name and the run.
    Run(&'a str, i64),
}

pub(crate) use crate::schema::clip;

/// A name of at most 63 bytes for an object of `table`.
pub(super) fn object_name(table: &str, what: &str, run: i64) -> String {
    let tail = format!("_{what}_{run}");
    format!("{}{tail}", clip(table, 63usize.saturating_sub(tail.len())))
}

/// The statements that give a filled table (one a stage made to become a
/// target) its primary key (led by the `period` column, if any) and
/// reference indexes: built on the full table, a sort each instead of an
/// index insert per row.
pub(super) fn key_and_indexes(
    layout: &Layout,
    table: &str,
    (references, period): (&[Reference], Option<&str>),
    naming: Naming<'_>,
) -> Vec<String> {
    let mut out = Vec::new();
    if !layout.key.is_empty() {
        let key: Vec<String> = period
            .into_iter()
            .chain(layout.key_names())
            .map(quote_ident)
            .collect();
        let name = match naming {
            Naming::Chosen => String::new(),
            Naming::Run(base, run) => format!(
                "CONSTRAINT {} ",
                quote_ident(&object_name(base, "pk", run))
            ),
        };
        out.push(format!(
            "ALTER TABLE {table} ADD {name}PRIMARY KEY ({})",
            key.join(", ")
        ));
    }
    for c in reference_indexes(layout, references) {
        out.push(match naming {
            Naming::Chosen => {
                let cols: Vec<String> =
                    c.iter().map(|c| quote_ident(c)).collect();
                format!("CREATE INDEX ON {table} ({})", cols.join(", "))
            }
            Naming::Run(base, run) => {
                let what = format!("{}_idx", c.join("_"));
                create_index(&object_name(base, &what, run), table, &c)
            }
        });
    }
    out
}

/// Drops fwload's own columns from a table a stage filled, once it is
/// published as a target.
///
/// # Errors
/// A database error.
pub(super) fn drop_fwload_columns(
    tx: &mut Transaction<'_>,
    table: &str,
) -> Result<(), LoadError> {
    tx.batch_execute(&format!(
        "ALTER TABLE {table} DROP COLUMN _fw_file, DROP COLUMN _fw_line, DROP COLUMN _fw_reject"
    ))
    .map_err(|e| LoadError::db(format!("finishing {table}"), e))
}

/// The name PostgreSQL gives the primary key of a table named `table`
/// (unqualified): `<table>_pkey`, the table's name cut so the whole fits
/// in 63 bytes.
pub(super) fn pkey_name(table: &str) -> String {
    format!("{}_pkey", clip(table, 63 - "_pkey".len()))
}

/// Gives the key and indexes of `target` (schema `schema`, table `table`)
/// the names `CREATE TABLE` and `fwload schema ddl` give them, where
/// those are free; built under names of PostgreSQL's choosing, they are
/// matched by what they index.
///
/// # Errors
/// A database error.
pub(super) fn standard_names(
    tx: &mut Transaction<'_>,
    layout: &Layout,
    (schema, table): (&str, &str),
    references: &[Reference],
) -> Result<(), LoadError> {
    let target = format!("{}.{}", quote_ident(schema), quote_ident(table));
    let ctx = |e| LoadError::db(format!("naming the indexes of {target}"), e);
    let rows = tx
        .query(
            "SELECT c.relname::text, i.indisprimary,
                    ARRAY(SELECT a.attname::text
                          FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
                          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                          ORDER BY k.n)
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = to_regclass($1)",
            &[&target],
        )
        .map_err(ctx)?;
    let wanted = reference_indexes(layout, references);
    for row in rows {
        let (name, primary, cols): (String, bool, Vec<String>) =
            (row.get(0), row.get(1), row.get(2));
        let want = if primary {
            pkey_name(table)
        } else if wanted.contains(&cols) {
            // Cut as PostgreSQL cuts the name it is given.
            clip(&crate::schema::index_name(table, &cols), 63).to_owned()
        } else {
            continue;
        };
        if want == name {
            continue;
        }
        let free: bool = tx
            .query_one(
                "SELECT to_regclass($1) IS NULL",
                &[&format!("{}.{}", quote_ident(schema), quote_ident(&want))],
            )
            .map_err(ctx)?
            .get(0);
        if !free {
            continue;
        }
        let sql = if primary {
            format!(
                "ALTER TABLE {target} RENAME CONSTRAINT {} TO {}",
                quote_ident(&name),
                quote_ident(&want)
            )
        } else {
            format!(
                "ALTER INDEX {}.{} RENAME TO {}",
                quote_ident(schema),
                quote_ident(&name),
                quote_ident(&want)
            )
        };
        tx.batch_execute(&sql).map_err(ctx)?;
    }
    Ok(())
}

/// Counts the rows of `table`; with `live_only`, only those not
/// soft-deleted.
pub(super) fn count_sql(table: &str, live_only: bool) -> String {
    let live = if live_only { " WHERE deleted_at IS NULL" } else { "" };
    format!("SELECT count(*) FROM {table}{live}")
}

#[cfg(test)]
mod tests {
    use super::{clip, object_name, pkey_name};

    #[test]
    fn names_fit_in_63_bytes_on_character_boundaries() {
        assert_eq!(pkey_name("real_acct"), "real_acct_pkey");
        let long = "é".repeat(40); // 80 bytes
        let pk = pkey_name(&long);
        assert_eq!(pk, format!("{}_pkey", "é".repeat(29)));
        assert!(pk.len() <= 63);
        let o = object_name(&long, "pk", 12);
        assert_eq!(o, format!("{}_pk_12", "é".repeat(28)));
        assert!(o.len() <= 63);
        assert_eq!(clip("abc", 63), "abc");
        assert_eq!(clip("aé", 2), "a");
    }
}
