//! Targets built in place: a staging table that can become its target
//! (logged, its key and indexes built) is renamed into the target schema
//! at publish instead of being copied.

use super::{
    DeletePolicy, LoadError, LoadOptions, StageContext, Staged, ddl,
    qualified, target_parts,
};
use crate::schema::{Layout, SchemaSet, quote_ident};

/// Whether `s`'s staging table can become `layout`'s new target: a logged
/// table with the target's columns, whose final name is free in the
/// metadata schema it is renamed in, and no reference of the layout to
/// itself (which the target must exist for).
pub(super) fn adoptable(
    tx: &mut postgres::Transaction<'_>,
    s: &Staged,
    layout: &Layout,
    cx: &StageContext<'_>,
    opts: &LoadOptions,
    set: &SchemaSet,
) -> Result<bool, LoadError> {
    if set.dataset.as_ref().is_some_and(|d| {
        d.references.iter().any(|r| r.from == layout.name && r.to == r.from)
    }) {
        return Ok(false);
    }
    let (_, table) = target_parts(cx.target_schema, layout);
    let soft = opts.delete == DeletePolicy::Soft;
    let row = tx
        .query_opt(
            "SELECT c.relpersistence = 'p'
                AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                            AND a.attname = 'deleted_at' AND NOT a.attisdropped) = $2
                AND to_regclass($3) IS NULL
             FROM pg_class c WHERE c.oid = to_regclass($1)",
            &[&s.table, &soft, &qualified(cx.meta, &table)],
        )
        .map_err(|e| LoadError::db(format!("looking at {}", s.table), e))?;
    Ok(row.is_some_and(|r| r.get(0)))
}

/// Makes `s`'s staging table `layout`'s target: renamed, moved to the
/// target schema, fwload's columns dropped, and its key and indexes (built
/// by the stage) given their standard names.
pub(super) fn adopt(
    tx: &mut postgres::Transaction<'_>,
    s: &Staged,
    layout: &Layout,
    cx: &StageContext<'_>,
    set: &SchemaSet,
) -> Result<(), LoadError> {
    let (schema, table) = target_parts(cx.target_schema, layout);
    let target = qualified(&schema, &table);
    let ctx = |e| LoadError::db(format!("creating {target}"), e);
    let mut sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {}; ALTER TABLE {} RENAME TO {};",
        quote_ident(&schema),
        s.table,
        quote_ident(&table)
    );
    if schema != cx.meta {
        sql.push_str(&format!(
            "ALTER TABLE {} SET SCHEMA {};",
            qualified(cx.meta, &table),
            quote_ident(&schema)
        ));
    }
    tx.batch_execute(&sql).map_err(ctx)?;
    ddl::drop_fwload_columns(tx, &target)?;
    ddl::standard_names(tx, layout, (&schema, &table), set.references())
}
