//! Nothing lost across runs (issue 19): `--resume` after a server crash,
//! staging names unique per dataset and target schema, an unchanged-input
//! skip that compares what decides the outcome, generated names with
//! multi-byte characters, runs that were killed or interrupted, and a
//! connection lost while staging.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pg::{Cluster, TestDb};
use crate::util::{
    Dir, fwload, hcad_change_set, repo, run_gen, stderr, stdout, wait_within,
};

const TABLES: [&str; 4] = ["real_acct", "owners", "building_res", "fixtures"];

/// Where a load goes: URL, target and metadata schemas, and the schema
/// directory it loads with.
pub struct Target {
    pub url: String,
    pub schema: String,
    pub meta: String,
    pub dataset: String,
}

impl Target {
    pub fn of(db: &TestDb) -> Target {
        Target {
            url: db.url(),
            schema: db.schema.clone(),
            meta: db.meta.clone(),
            dataset: repo("schemas/hcad"),
        }
    }

    pub fn args(&self, rest: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = [
            "load",
            "-q",
            "--schema",
            &self.dataset,
            "--database-url",
            &self.url,
            "--target-schema",
            &self.schema,
            "--meta-schema",
            &self.meta,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(rest.iter().map(|s| s.to_string()));
        a
    }

    pub fn load(&self, rest: &[&str]) -> (i32, String) {
        let a = self.args(rest);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        outcome(&fwload(&refs))
    }

    pub fn spawn(&self, rest: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_fwload"))
            .args(self.args(rest))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run fwload")
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("server")
    }

    /// Checksums of the targets' rows, in a fixed order.
    pub fn sums(&self) -> Vec<String> {
        let mut c = self.client();
        TABLES
            .iter()
            .map(|t| {
                self.sum(&mut c, t).unwrap_or_else(|e| format!("missing: {e}"))
            })
            .collect()
    }

    /// Checksums of every table in the target schema, by name.
    pub fn state(&self) -> Vec<(String, String)> {
        let mut c = self.client();
        let tables: Vec<String> = c
            .query(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY 1",
                &[&self.schema],
            )
            .expect("list tables")
            .iter()
            .map(|r| r.get(0))
            .collect();
        tables
            .into_iter()
            .map(|name| {
                let sum = self.sum(&mut c, &name).expect("checksum");
                (name, sum)
            })
            .collect()
    }

    /// A checksum of `table`'s rows in a fixed order ('empty' without
    /// rows).
    pub fn sum(
        &self,
        c: &mut postgres::Client,
        table: &str,
    ) -> Result<String, postgres::Error> {
        c.query_one(
            &format!(
                "SELECT coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), 'empty') FROM {}.{table} t",
                self.schema
            ),
            &[],
        )
        .map(|r| r.get(0))
    }

    pub fn one<T: for<'a> postgres::types::FromSql<'a>>(
        &self,
        sql: &str,
    ) -> T {
        self.client()
            .query_one(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// Makes every publish into building_res fail.
    fn sabotage(&self, on: bool) {
        let s = &self.schema;
        let sql = if on {
            format!(
                "CREATE FUNCTION {s}.boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;
                 CREATE TRIGGER boom BEFORE INSERT OR UPDATE OR DELETE ON {s}.building_res FOR EACH STATEMENT EXECUTE FUNCTION {s}.boom();"
            )
        } else {
            format!(
                "DROP TRIGGER boom ON {s}.building_res; DROP FUNCTION {s}.boom();"
            )
        };
        self.client().batch_execute(&sql).unwrap();
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Exit code and all output of a finished fwload.
pub fn outcome(o: &std::process::Output) -> (i32, String) {
    (o.status.code().unwrap_or(-1), format!("{}{}", stdout(o), stderr(o)))
}

pub fn finish(child: Child) -> (i32, String) {
    outcome(&child.wait_with_output().unwrap())
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Issue 19, item 1: staging tables are UNLOGGED, so crash recovery
/// empties them; `--resume` after a server crash must stage again, not
/// publish the empty tables as "unchanged".
#[test]
fn r19_resume_after_a_server_crash_stages_again() {
    let d = Dir::new();
    let (base, next) = hcad_change_set(&d, 600, 19);
    let cluster = Cluster::start("", None, &[]);
    let url = cluster.url("postgres");
    let mk = |s: &str| Target {
        url: url.clone(),
        schema: s.into(),
        meta: format!("{s}_meta"),
        dataset: repo("schemas/hcad"),
    };
    // The state a clean base + change-set load ends in.
    let want = mk("want");
    assert_eq!(want.load(&["--create", path(&base)]).0, 0);
    assert_eq!(want.load(&["--delete", "hard", path(&next)]).0, 0);
    let after = want.sums();

    let t = mk("crashed");
    assert_eq!(t.load(&["--create", path(&base)]).0, 0);
    let before = t.sums();
    t.sabotage(true);
    let (code, out) = t.load(&["--delete", "hard", path(&next)]);
    assert_eq!(code, 4, "{out}");
    assert_eq!(t.sums(), before);
    cluster.crash_restart();
    t.sabotage(false);
    let (code, out) = t.load(&["--delete", "hard", "--resume", path(&next)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("staged again, not reused"), "{out}");
    assert!(!out.contains("staging reused"), "{out}");
    assert_eq!(
        t.sums(),
        after,
        "resume after a crash did not end in the after state"
    );
    // And the next run is honestly unchanged.
    let (code, out) = t.load(&["--delete", "hard", path(&next)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(t.sums(), after);
}

/// Issue 19, item 2: dataset `a_b` into schema `S` and dataset `a` into
/// `b_S` once shared `stg_a_b_S_<table>`; one's `--resume` published the
/// other's rows.
#[test]
fn r19_staging_is_unique_per_dataset_and_target_schema() {
    let d = Dir::new();
    let (base, next) = hcad_change_set(&d, 400, 19);
    let other = d.join("other.zip");
    run_gen(&[
        "--schema",
        &repo("schemas/hcad"),
        "--base",
        path(&base),
        "--update",
        "20%",
        "--out",
        path(&other),
    ]);
    let db = TestDb::new();
    let want_db = TestDb::new();
    let want = Target::of(&want_db);
    assert_eq!(want.load(&["--create", path(&base)]).0, 0);
    assert_eq!(want.load(&["--delete", "hard", path(&next)]).0, 0);

    let ab = Target::of(&db);
    let a = Target { schema: format!("b_{}", db.schema), ..Target::of(&db) };
    let _drop = DropSchema(a.url.clone(), a.schema.clone());
    for (t, name) in [(&ab, "a_b"), (&a, "a")] {
        let (code, out) =
            t.load(&["--dataset-name", name, "--create", path(&base)]);
        assert_eq!(code, 0, "{out}");
        t.sabotage(true);
    }
    // Both fail while publishing and leave their staging for --resume.
    let (code, out) =
        ab.load(&["--dataset-name", "a_b", "--delete", "hard", path(&next)]);
    assert_eq!(code, 4, "{out}");
    let (code, out) =
        a.load(&["--dataset-name", "a", "--delete", "hard", path(&other)]);
    assert_eq!(code, 4, "{out}");
    let tables: i64 = ab.one(&format!(
        "SELECT count(DISTINCT staging_table) FROM {}.staged",
        db.meta
    ));
    let rows: i64 =
        ab.one(&format!("SELECT count(*) FROM {}.staged", db.meta));
    assert_eq!(tables, rows, "two staged layouts share a staging table");
    ab.sabotage(false);
    let (code, out) = ab.load(&[
        "--dataset-name",
        "a_b",
        "--delete",
        "hard",
        "--resume",
        path(&next),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("staging reused"), "{out}");
    assert_eq!(ab.sums(), want.sums(), "a_b's resume published other rows");
}

struct DropSchema(String, String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.0, postgres::NoTls)
        {
            let _ = c.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.1
            ));
        }
    }
}

/// Issue 19, item 3: the skip compares the delete policy, notices a
/// target dropped by hand, and loading nothing is an error.
#[test]
fn r19_unchanged_skip_compares_what_decides_the_outcome() {
    let d = Dir::new();
    let (base, next) = hcad_change_set(&d, 300, 19);
    let db = TestDb::new();
    let t = Target::of(&db);
    assert_eq!(t.load(&["--create", path(&base)]).0, 0);
    assert_eq!(t.load(&[path(&next)]).0, 0);
    let kept =
        t.one::<i64>(&format!("SELECT count(*) FROM {}.real_acct", db.schema));
    // The same file with --delete hard is not "unchanged": its deletes
    // are still to be done.
    let (code, out) = t.load(&["--delete", "hard", "--force", path(&next)]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("unchanged since"), "{out}");
    let now =
        t.one::<i64>(&format!("SELECT count(*) FROM {}.real_acct", db.schema));
    assert!(now < kept, "the deletes did not happen: {kept} -> {now}");
    let (code, out) = t.load(&["--delete", "hard", path(&next)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("unchanged since"), "{out}");
    // A target dropped by hand is loaded again.
    t.client()
        .batch_execute(&format!("DROP TABLE {}.owners", db.schema))
        .unwrap();
    let (code, out) = t.load(&["--delete", "hard", "--create", path(&next)]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("unchanged since"), "{out}");
    assert!(
        t.one::<i64>(&format!("SELECT count(*) FROM {}.owners", db.schema))
            > 0
    );
    // An input none of whose members matches a layout: an error, as in
    // validate, even on a dataset's first run.
    let fresh = TestDb::new();
    let f = Target::of(&fresh);
    let nested = d.join("nested.zip");
    {
        let mut z =
            zip::ZipWriter::new(std::fs::File::create(&nested).unwrap());
        z.start_file("inner.zip", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut z, &std::fs::read(&base).unwrap())
            .unwrap();
        z.finish().unwrap();
    }
    let (code, out) = f.load(&["--create", path(&nested)]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no member matches a layout"), "{out}");
    assert!(out.contains("inner.zip"), "{out}");
}

/// Issue 19, item 4: a non-ASCII dataset name and target schema whose
/// generated names pass 63 bytes panicked cutting a character in two.
#[test]
fn r19_multibyte_names_are_cut_on_character_boundaries() {
    let d = Dir::new();
    let (base, _) = hcad_change_set(&d, 50, 19);
    let db = TestDb::new();
    let schema = format!("{}_{}", db.schema, "é".repeat(20));
    let _drop = DropSchema(db.url(), schema.clone());
    let t = Target { schema: schema.clone(), ..Target::of(&db) };
    let name = "données_évaluées_".repeat(4);
    let (code, out) =
        t.load(&["--dataset-name", &name, "--create", path(&base)]);
    assert_eq!(code, 0, "{out}");
    let names: Vec<String> = t
        .client()
        .query(&format!("SELECT staging_table FROM {}.staged", db.meta), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(names.is_empty(), "staging left behind: {names:?}");
    // A failed publish leaves staging named within 63 bytes.
    t.sabotage(true);
    let (code, out) =
        t.load(&["--dataset-name", &name, "--force-reload", path(&base)]);
    assert_eq!(code, 4, "{out}");
    let names: Vec<String> = t
        .client()
        .query(
            &format!("SELECT c.relname::text FROM {}.staged s JOIN pg_class c ON c.oid = s.staging_oid", db.meta),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let layouts =
        fwload::schema::SchemaSet::load(&[repo("schemas/hcad").into()])
            .unwrap()
            .layouts
            .len();
    assert_eq!(names.len(), layouts, "{names:?}");
    assert!(
        names.iter().all(|n| n.len() <= 63 && n.starts_with("stg_")),
        "{names:?}"
    );
}

/// Issue 19, item 6: a run killed with SIGKILL is marked abandoned by the
/// next run; SIGTERM and SIGINT roll back, record `interrupted` and exit
/// 143 and 130; staging of a committed run left by a kill before its
/// cleanup is dropped by the next run.
#[test]
fn r19_killed_and_interrupted_runs_are_recorded() {
    let d = Dir::new();
    let (base, next) = hcad_change_set(&d, 30000, 19);
    let db = TestDb::new();
    let t = Target::of(&db);
    let runs = |status: &str| -> i64 {
        t.one(&format!(
            "SELECT count(*) FROM {}.runs WHERE status = '{status}'",
            db.meta
        ))
    };
    let started = || -> bool {
        t.client()
            .query_one(
                &format!(
                    "SELECT count(*) FROM {}.runs WHERE status = 'running'",
                    db.meta
                ),
                &[],
            )
            .map(|r| r.get::<_, i64>(0) > 0)
            .unwrap_or(false)
    };
    // SIGKILL: the run stays "running" until the next run of the dataset.
    let child = t.spawn(&["--create", path(&base)]);
    wait_for("the run to start", started);
    std::thread::sleep(Duration::from_millis(200));
    let pid = child.id() as i32;
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let (code, _) = finish(child);
    assert_eq!(code, -1);
    assert_eq!(runs("running"), 1);
    // SIGTERM and SIGINT: rolled back and recorded.
    for (signal, exit) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let child = t.spawn(&["--create", path(&base)]);
        wait_for("the run to start", started);
        std::thread::sleep(Duration::from_millis(300));
        unsafe { libc::kill(child.id() as i32, signal) };
        let (code, out) = finish(child);
        assert_eq!(code, exit, "{out}");
        assert!(out.contains("interrupted by"), "{out}");
    }
    assert_eq!(runs("abandoned"), 1, "the killed run is not marked abandoned");
    assert_eq!(runs("interrupted"), 2);
    assert_eq!(runs("running"), 0);
    let exists: bool = t.one(&format!(
        "SELECT to_regclass('{}.real_acct') IS NOT NULL",
        db.schema
    ));
    assert!(!exists, "an interrupted first load left a target");
    let (code, out) = t.load(&["--create", path(&base)]);
    assert_eq!(code, 0, "{out}");
    // Staging of a committed run, left by a kill before the cleanup.
    let run: i64 = t.one(&format!(
        "SELECT max(id) FROM {}.runs WHERE status = 'succeeded'",
        db.meta
    ));
    t.client()
        .batch_execute(&format!(
            "CREATE UNLOGGED TABLE {m}.stg_left (x int);
             INSERT INTO {m}.staged (dataset, target_schema, layout, staging_table, run_id, inputs, counts, staging_oid, table_rows, kind, schema_hash)
             VALUES ('hcad', '{s}', 'real_acct', '{m}.stg_left', {run}, '[]', '{{}}', '{m}.stg_left'::regclass, 0, 'staging', '')",
            m = db.meta,
            s = db.schema
        ))
        .unwrap();
    let (code, out) = t.load(&[path(&next)]);
    assert_eq!(code, 0, "{out}");
    let left: bool = t.one(&format!(
        "SELECT to_regclass('{}.stg_left') IS NOT NULL",
        db.meta
    ));
    assert!(!left, "staging of a committed run was left behind");
}

/// Issue 19, item 10: a connection lost while staging is a database
/// error (exit 4), not an input error (exit 3).
#[test]
fn r19_connection_lost_while_staging_exits_4() {
    let d = Dir::new();
    let (base, _) = hcad_change_set(&d, 30000, 19);
    let db = TestDb::new();
    let t = Target::of(&db);
    let child = t.spawn(&["--create", "--jobs", "1", path(&base)]);
    let pattern = format!("COPY \"{}\".%", db.meta);
    let mut c = t.client();
    wait_for("a COPY into staging", || {
        c.query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()",
            &[&pattern],
        )
        .map(|r| r.get::<_, i64>(0) > 0)
        .unwrap()
    });
    let (code, out) = finish(child);
    assert_eq!(code, 4, "{out}");
}

/// Waits for `child` at most `secs`; kills it and fails the test if it
/// runs longer (a hang).
pub fn finish_within(child: Child, secs: u64) -> (i32, String) {
    outcome(&wait_within(child, secs))
}

/// Issue 19, item 8: three rollbacks swapped back, forward and back, and
/// none was recorded. A rollback is a run, idempotent, that ends the
/// unchanged-input skip, and refuses to undo later runs unless forced.
#[test]
fn r19_rollback_is_a_recorded_idempotent_run() {
    let d = Dir::new();
    let (base, next) = hcad_change_set(&d, 300, 8);
    let db = TestDb::new();
    let t = Target::of(&db);
    let rollback = |extra: &[&str]| {
        let mut a = vec![
            "rollback",
            "--database-url",
            &t.url,
            "--meta-schema",
            &t.meta,
            "--dataset",
            "hcad",
            "--target-schema",
            &t.schema,
        ];
        a.extend_from_slice(extra);
        outcome(&fwload(&a))
    };
    let replace = ["--mode", "replace"];
    assert_eq!(
        t.load(&[&replace[..], &["--create", path(&base)]].concat()).0,
        0
    );
    let first = t.sums();
    let (code, out) = t.load(&[&replace[..], &[path(&next)]].concat());
    assert_eq!(code, 0, "{out}");
    let second = t.sums();
    assert_ne!(first, second);

    let (code, out) = rollback(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("recorded as run"), "{out}");
    assert_eq!(t.sums(), first);
    let recorded = t.one::<i64>(&format!(
        "SELECT count(*) FROM {}.runs WHERE mode = 'rollback' AND status = 'succeeded'",
        t.meta
    ));
    assert_eq!(recorded, 1);
    // Again: nothing to do, not a swap forward.
    let (code, out) = rollback(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing to roll back"), "{out}");
    assert_eq!(t.sums(), first);
    // The same file again is not "unchanged": the rollback undid it.
    let (code, out) = t.load(&[&replace[..], &[path(&next)]].concat());
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("unchanged since"), "{out}");
    assert_eq!(t.sums(), second);
    // A merge after the replace would be undone too: refused unless
    // forced.
    let (code, out) = t.load(&["--force-reload", path(&base)]);
    assert_eq!(code, 0, "{out}");
    let merged = t.sums();
    let (code, out) = rollback(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rolling back would undo it too"), "{out}");
    assert_eq!(t.sums(), merged);
    let (code, out) = rollback(&["--force"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(t.sums(), first);
}

/// Issue 19, item 9: a replace with a 10-account archive over a table of
/// hundreds was reported as "deleted" and exited 0, dry run or not.
#[test]
fn r19_replace_has_a_delete_guard() {
    let d = Dir::new();
    let (base, _) = hcad_change_set(&d, 300, 9);
    let tiny = d.join("tiny.zip");
    run_gen(&[
        "--schema",
        &repo("schemas/hcad"),
        "--rows",
        "10",
        "--seed",
        "1",
        "--out",
        path(&tiny),
    ]);
    let db = TestDb::new();
    let t = Target::of(&db);
    assert_eq!(t.load(&["--mode", "replace", "--create", path(&base)]).0, 0);
    let before = t.sums();
    for dry in [true, false] {
        let mut a = vec!["--mode", "replace", path(&tiny)];
        if dry {
            a.push("--dry-run");
        }
        let (code, out) = t.load(&a);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("more than --max-delete-ratio"), "{out}");
        assert_eq!(t.sums(), before);
    }
    let (code, out) =
        t.load(&["--mode", "replace", "--max-delete-ratio", "1", path(&tiny)]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        t.one::<i64>(&format!("SELECT count(*) FROM {}.real_acct", t.schema)),
        10
    );
}

/// Issue 19, item 7: a replace swap stood 28 s in the lock queue behind a
/// reader, holding up every new reader of the tables. It now waits at
/// most `--lock-timeout` at a time, lets go in between, and gives up
/// after a few tries with nothing changed.
#[test]
fn r19_replace_swap_waits_for_locks_briefly() {
    let d = Dir::new();
    let (base, next) = hcad_change_set(&d, 300, 7);
    let db = TestDb::new();
    let t = Target::of(&db);
    assert_eq!(t.load(&["--mode", "replace", "--create", path(&base)]).0, 0);
    let before = t.sums();
    let table = format!("{}.real_acct", t.schema);
    let waiting = format!(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = '{table}'::regclass"
    );
    let args = ["--mode", "replace", "--lock-timeout", "0.3", path(&next)];

    // A reader that never lets go: the load gives up, nothing changed.
    let mut reader = t.client();
    reader
        .batch_execute(&format!("BEGIN; SELECT count(*) FROM {table}"))
        .unwrap();
    let child = t.spawn(&args);
    wait_for("the load to queue for its lock", || t.one::<i64>(&waiting) > 0);
    // While it waits, a new reader is held up for at most the timeout.
    let mut other = t.client();
    other.batch_execute("SET statement_timeout = '5s'").unwrap();
    let t0 = Instant::now();
    other
        .batch_execute(&format!("SELECT count(*) FROM {table}"))
        .expect("a new reader must not wait behind the load's lock");
    assert!(t0.elapsed() < Duration::from_secs(5));
    let (code, out) = finish_within(child, 60);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("could not lock"), "{out}");
    assert_eq!(t.sums(), before);

    // A reader that lets go after a while: the swap goes through.
    let child = t.spawn(&args);
    wait_for("the load to queue for its lock", || t.one::<i64>(&waiting) > 0);
    reader.batch_execute("COMMIT").unwrap();
    let (code, out) = finish_within(child, 60);
    assert_eq!(code, 0, "{out}");
    assert_ne!(t.sums(), before);
}

/// Issue 19, item 10: `load` with no connection settings created
/// fwload's metadata schema in the database named like the user.
#[test]
fn r19_load_refuses_to_guess_the_database() {
    let d = Dir::new();
    let (base, _) = hcad_change_set(&d, 20, 10);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fwload"));
    cmd.args(["load", "-q", "--schema", &repo("schemas/hcad"), path(&base)]);
    for (k, _) in std::env::vars() {
        if k == "DATABASE_URL" || k.starts_with("PG") {
            cmd.env_remove(k);
        }
    }
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no database named"), "{}", stderr(&o));
}
