//! The advisory lock per dataset and target schema: two loads of the same
//! targets never interleave.

use postgres::Client;

use super::{LoadError, LoadOptions, meta};

/// The advisory lock key of a dataset.
pub(super) fn lock_key(dataset: &str, target_schema: &str) -> String {
    format!("fwload:{dataset}:{target_schema}")
}

/// Takes the dataset's advisory lock on `db` (held until it closes).
pub(super) fn lock(
    db: &mut Client,
    key: &str,
    no_wait: bool,
    on_wait: &dyn Fn(Option<i32>),
) -> Result<(), LoadError> {
    let ctx = |e| LoadError::db("taking the dataset lock", e);
    let got: bool = db
        .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&key])
        .map_err(ctx)?
        .get(0);
    if got {
        return Ok(());
    }
    let holder: Option<i32> = db
        .query_opt(
            "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
               AND l.objid = (hashtext($1)::bigint & 4294967295)::oid LIMIT 1",
            &[&key],
        )
        .map_err(ctx)?
        .map(|r| r.get(0));
    if no_wait {
        return Err(LoadError::busy(format!(
            "another load of {key} is running (server pid {}); not waiting (--no-wait)",
            holder.map_or("?".into(), |p| p.to_string())
        )));
    }
    on_wait(holder);
    db.execute("SELECT pg_advisory_lock(hashtext($1))", &[&key])
        .map_err(ctx)?;
    Ok(())
}

/// Takes the lock of `dataset` in the target schema (telling the caller
/// when it waits), then clears what dead runs left: with the lock held no
/// other run of the dataset is alive, so runs still `running` were killed,
/// and staging of committed runs is left over.
///
/// # Errors
/// Another load holds the lock under `--no-wait`, or a failed statement.
pub(super) fn take(
    db: &mut Client,
    dataset: &str,
    opts: &LoadOptions,
) -> Result<(), LoadError> {
    let key = lock_key(dataset, &opts.target_schema);
    let show_wait = |pid: Option<i32>| {
        if let Some(w) = &opts.events.waiting {
            w(&format!(
                "waiting for another load of dataset {dataset} into {} to finish (server pid {})",
                opts.target_schema,
                pid.map_or("?".into(), |p| p.to_string())
            ));
        }
    };
    lock(db, &key, opts.no_wait, &show_wait)?;
    meta::abandon_dead_runs(db, &opts.meta, dataset, &opts.target_schema)?;
    meta::drop_spent_staging(db, &opts.meta, dataset, &opts.target_schema)?;
    Ok(())
}
