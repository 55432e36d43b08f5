//! `fwload load` against a real PostgreSQL: every mode, dry runs,
//! idempotence, change sets, guards, duplicates, orphans, resume, failures
//! mid-publish, concurrency, and values compared with the source.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fwload::schema::SchemaSet;

use crate::pg::TestDb;
use crate::util::{
    Dir, decoded_rows, fwload, load, n, repo, run_gen, stderr, stdout, table,
};

/// Every row of every table as `key → values`, in the same text form as
/// `decoded_rows`.
fn db_rows(
    db: &TestDb,
    set: &SchemaSet,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut c = db.client();
    let mut out = BTreeMap::new();
    for l in &set.layouts {
        let cols: Vec<String> = l
            .fields
            .iter()
            .map(|f| format!("coalesce(\"{}\"::text, 'NULL')", f.name))
            .collect();
        let key: Vec<String> =
            l.key_names().iter().map(|k| format!("\"{k}\"::text")).collect();
        // An array, not concat_ws: a function takes at most 100
        // arguments, and APPRAISAL_INFO has 415 columns.
        let sql = format!(
            "SELECT concat_ws('|', {}), array_to_string(ARRAY[{}], '|') FROM {}.{}",
            key.join(", "),
            cols.join(", "),
            db.schema,
            l.table
        );
        let rows = match c.query(&sql, &[]) {
            Ok(r) => r,
            Err(_) => continue,
        };
        let m: &mut BTreeMap<String, String> =
            out.entry(l.name.clone()).or_default();
        for r in rows {
            m.insert(r.get(0), r.get(1));
        }
    }
    out
}

fn hcad() -> (SchemaSet, String) {
    let s = repo("schemas/hcad");
    (SchemaSet::load(&[PathBuf::from(&s)]).unwrap(), s)
}

#[test]
fn hcad_end_to_end_values_match_the_source() {
    let (set, schema) = hcad();
    let d = Dir::new();
    let db = TestDb::new();
    let zip = d.join("hcad.zip");
    run_gen(&[
        "--schema",
        &schema,
        "--rows",
        "1200",
        "--out",
        zip.to_str().unwrap(),
    ]);
    let o = load(
        &db,
        &d,
        &["--schema", &schema, "--create", zip.to_str().unwrap()],
    );
    assert_eq!(o.code, 0, "{}{}", o.out, o.err);
    assert_eq!(o.report["status"], "succeeded");
    let want = decoded_rows(&set, &[zip]);
    let got = db_rows(&db, &set);
    for l in &set.layouts {
        let (w, g) = (&want[&l.name], &got[&l.name]);
        assert_eq!(w.len(), g.len(), "{} rows", l.name);
        assert_eq!(w, g, "{} values", l.name);
        assert_eq!(
            n(&table(&o.report, &l.name)["inserted"]),
            w.len() as u64,
            "{}",
            l.name
        );
    }
    // Run records: the run, its files with digests, no rejects.
    let runs: i64 = db.one(&format!(
        "SELECT count(*) FROM {}.runs WHERE status = 'succeeded'",
        db.meta
    ));
    assert_eq!(runs, 1);
    let files: i64 = db.one(&format!(
        "SELECT count(*) FROM {}.run_files WHERE member_sha256 IS NOT NULL",
        db.meta
    ));
    assert_eq!(files, set.layouts.len() as i64);
    // The DDL fwload prints is what it created.
    let ddl = fwload(&[
        "schema",
        "ddl",
        "--schema",
        &schema,
        "--target-schema",
        &db.schema,
    ]);
    let text = stdout(&ddl);
    assert!(
        text.contains(&format!(
            "CREATE TABLE \"{}\".\"real_acct\" (",
            db.schema
        )),
        "{text}"
    );
    let key: String = db.one(&format!(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '{}.fixtures'::regclass AND contype = 'p'",
        db.schema
    ));
    assert_eq!(key, "PRIMARY KEY (acct, bld_num, type)");
}

#[test]
fn pacs_end_to_end_values_match_the_source() {
    let s = repo("schemas/pacs");
    let set = SchemaSet::load(&[PathBuf::from(&s)]).unwrap();
    let d = Dir::new();
    let db = TestDb::new();
    let zip = d.join("pacs.zip");
    run_gen(&[
        "--schema",
        &s,
        "--rows",
        "300",
        "--out",
        zip.to_str().unwrap(),
    ]);
    let o =
        load(&db, &d, &["--schema", &s, "--create", zip.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{}{}", o.out, o.err);
    let want = decoded_rows(&set, &[zip]);
    let got = db_rows(&db, &set);
    for l in &set.layouts {
        assert_eq!(want[&l.name], got[&l.name], "{}", l.name);
    }
    // Generated children hang under generated parents: no orphans, not
    // even where the dataset would keep them.
    for l in &set.layouts {
        assert_eq!(n(&table(&o.report, &l.name)["orphans"]), 0, "{}", l.name);
    }
}

#[test]
fn rerun_is_idempotent_and_unchanged_inputs_are_skipped() {
    let (_, schema) = hcad();
    let d = Dir::new();
    let db = TestDb::new();
    let zip = d.join("h.zip");
    run_gen(&[
        "--schema",
        &schema,
        "--rows",
        "600",
        "--out",
        zip.to_str().unwrap(),
    ]);
    let z = zip.to_str().unwrap();
    assert_eq!(load(&db, &d, &["--schema", &schema, "--create", z]).code, 0);
    let before = db.checksum("real_acct", "acct");
    let o = load(&db, &d, &["--schema", &schema, z]);
    assert_eq!(o.code, 0, "{}", o.err);
    assert_eq!(o.report["status"], "unchanged");
    assert!(
        o.out.contains("unchanged since the last successful run"),
        "{}",
        o.out
    );
    // Forced: everything read again, nothing written.
    let upd = |db: &TestDb| -> i64 {
        db.one(&format!(
            "SELECT coalesce(sum(n_tup_upd + n_tup_ins + n_tup_del), 0)::bigint FROM pg_stat_user_tables WHERE schemaname = '{}'",
            db.schema
        ))
    };
    let writes = upd(&db);
    let o = load(&db, &d, &["--schema", &schema, "--force-reload", z]);
    assert_eq!(o.code, 0, "{}", o.err);
    for t in o.report["tables"].as_array().unwrap() {
        assert_eq!(n(&t["inserted"]), 0, "{t}");
        assert_eq!(n(&t["updated"]), 0, "{t}");
        assert_eq!(n(&t["unchanged"]), n(&t["staged"]), "{t}");
    }
    // The table's own update counter: no row was rewritten.
    let mut c = db.client();
    c.batch_execute("SELECT pg_stat_clear_snapshot()").unwrap();
    assert_eq!(upd(&db), writes, "rows were rewritten");
    assert_eq!(db.checksum("real_acct", "acct"), before);
}

#[test]
fn change_set_gives_exactly_the_manifest() {
    let (set, schema) = hcad();
    let d = Dir::new();
    let db = TestDb::new();
    let base = d.join("2025.zip");
    let next = d.join("2026.zip");
    let manifest = d.join("m.json");
    run_gen(&[
        "--schema",
        &schema,
        "--rows",
        "2000",
        "--out",
        base.to_str().unwrap(),
    ]);
    run_gen(&[
        "--schema",
        &schema,
        "--base",
        base.to_str().unwrap(),
        "--update",
        "1%",
        "--delete",
        "0.5%",
        "--insert",
        "2%",
        "--out",
        next.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(
        load(
            &db,
            &d,
            &["--schema", &schema, "--create", base.to_str().unwrap()]
        )
        .code,
        0
    );
    let o = load(
        &db,
        &d,
        &["--schema", &schema, "--delete", "hard", next.to_str().unwrap()],
    );
    assert_eq!(o.code, 0, "{}{}", o.out, o.err);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap())
            .unwrap();
    for t in m["tables"].as_array().unwrap() {
        let name = t["layout"].as_str().unwrap();
        let r = table(&o.report, name);
        let len = |k: &str| t[k].as_array().unwrap().len() as u64;
        assert_eq!(n(&r["inserted"]), len("inserted"), "{name} inserted");
        assert_eq!(n(&r["updated"]), len("updated"), "{name} updated");
        assert_eq!(n(&r["deleted"]), len("deleted"), "{name} deleted");
    }
    // And the target now holds exactly the new archive.
    let want = decoded_rows(&set, &[next]);
    assert_eq!(db_rows(&db, &set), want);
}

#[test]
fn dry_run_changes_nothing_but_reports_the_changes() {
    let (_, schema) = hcad();
    let d = Dir::new();
    let db = TestDb::new();
    let base = d.join("a.zip");
    let next = d.join("b.zip");
    run_gen(&[
        "--schema",
        &schema,
        "--rows",
        "800",
        "--out",
        base.to_str().unwrap(),
    ]);
    run_gen(&[
        "--schema",
        &schema,
        "--base",
        base.to_str().unwrap(),
        "--update",
        "2%",
        "--insert",
        "1%",
        "--out",
        next.to_str().unwrap(),
    ]);
    assert_eq!(
        load(
            &db,
            &d,
            &["--schema", &schema, "--create", base.to_str().unwrap()]
        )
        .code,
        0
    );
    let before = db.checksum("real_acct", "acct");
    let o = load(
        &db,
        &d,
        &["--schema", &schema, "--dry-run", next.to_str().unwrap()],
    );
    assert_eq!(o.code, 0, "{}", o.err);
    assert_eq!(o.report["status"], "dry_run");
    assert_eq!(n(&table(&o.report, "real_acct")["updated"]), 16);
    assert_eq!(n(&table(&o.report, "real_acct")["inserted"]), 8);
    assert!(o.out.contains("dry run: nothing was changed"), "{}", o.out);
    assert_eq!(db.checksum("real_acct", "acct"), before);
    // A dry run is not a success: the next real load still happens.
    let o = load(&db, &d, &["--schema", &schema, next.to_str().unwrap()]);
    assert_eq!(n(&table(&o.report, "real_acct")["updated"]), 16);
}

#[test]
fn delete_guard_refuses_then_force_applies() {
    let (_, schema) = hcad();
    let d = Dir::new();
    let db = TestDb::new();
    let base = d.join("a.zip");
    let next = d.join("b.zip");
    run_gen(&[
        "--schema",
        &schema,
        "--rows",
        "1000",
        "--out",
        base.to_str().unwrap(),
    ]);
    run_gen(&[
        "--schema",
        &schema,
        "--base",
        base.to_str().unwrap(),
        "--delete",
        "10%",
        "--out",
        next.to_str().unwrap(),
    ]);
    assert_eq!(
        load(
            &db,
            &d,
            &["--schema", &schema, "--create", base.to_str().unwrap()]
        )
        .code,
        0
    );
    let before = db.checksum("real_acct", "acct");
    let o = load(
        &db,
        &d,
        &["--schema", &schema, "--delete", "hard", next.to_str().unwrap()],
    );
    assert_eq!(o.code, 1, "{}{}", o.out, o.err);
    assert!(
        o.err.contains("would delete 100 of 1000 rows (10.00%)"),
        "{}",
        o.err
    );
    assert!(o.err.contains("more than --max-delete-ratio 0.05"), "{}", o.err);
    assert_eq!(db.checksum("real_acct", "acct"), before);
    let status: String = db.one(&format!(
        "SELECT status FROM {}.runs ORDER BY id DESC LIMIT 1",
        db.meta
    ));
    assert_eq!(status, "refused");
    let o = load(
        &db,
        &d,
        &[
            "--schema",
            &schema,
            "--delete",
            "soft",
            "--force",
            "--create",
            next.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 2, "soft deletes need deleted_at: {}", o.err);
    assert!(o.err.contains("deleted_at: missing"), "{}", o.err);
    let o = load(
        &db,
        &d,
        &[
            "--schema",
            &schema,
            "--delete",
            "hard",
            "--force",
            next.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 0, "{}", o.err);
    assert_eq!(n(&table(&o.report, "real_acct")["deleted"]), 100);
    assert_eq!(
        db.one::<i64>(&format!(
            "SELECT count(*) FROM {}.real_acct",
            db.schema
        )),
        900
    );
}

#[test]
fn soft_delete_marks_and_revives() {
    let (_, schema) = hcad();
    let d = Dir::new();
    let db = TestDb::new();
    let base = d.join("a.zip");
    let next = d.join("b.zip");
    run_gen(&[
        "--schema",
        &schema,
        "--rows",
        "500",
        "--out",
        base.to_str().unwrap(),
    ]);
    run_gen(&[
        "--schema",
        &schema,
        "--base",
        base.to_str().unwrap(),
        "--delete",
        "2%",
        "--out",
        next.to_str().unwrap(),
    ]);
    let args = ["--schema", &schema, "--create", "--delete", "soft"];
    assert_eq!(
        load(&db, &d, &[&args[..], &[base.to_str().unwrap()]].concat()).code,
        0
    );
    let o = load(&db, &d, &[&args[..], &[next.to_str().unwrap()]].concat());
    assert_eq!(o.code, 0, "{}", o.err);
    assert_eq!(n(&table(&o.report, "real_acct")["deleted"]), 10);
    let marked: i64 = db.one(&format!(
        "SELECT count(*) FROM {}.real_acct WHERE deleted_at IS NOT NULL",
        db.schema
    ));
    assert_eq!(marked, 10);
    // Loading the base again brings them back.
    let o = load(
        &db,
        &d,
        &[&args[..], &["--force-reload", base.to_str().unwrap()]].concat(),
    );
    assert_eq!(n(&table(&o.report, "real_acct")["updated"]), 10, "{}", o.err);
    let marked: i64 = db.one(&format!(
        "SELECT count(*) FROM {}.real_acct WHERE deleted_at IS NOT NULL",
        db.schema
    ));
    assert_eq!(marked, 0);
}

/// A two-table dataset written inline, for duplicate and orphan cases.
fn family(d: &Dir, dup: &str, orphan: &str) -> String {
    d.write(
        "s/parent.toml",
        "members = [\"parent.txt\"]\nformat = \"delimited\"\nheader = true\nkey = [\"id\"]\n\
         [[field]]\nname = \"id\"\ntype = \"int\"\n[[field]]\nname = \"name\"\ntype = \"text\"\n",
    );
    d.write(
        "s/child.toml",
        format!(
            "members = [\"child.txt\"]\nformat = \"delimited\"\nheader = true\nkey = [\"id\", \"seq\"]\nduplicates = \"{dup}\"\n\
             [[field]]\nname = \"id\"\ntype = \"int\"\n[[field]]\nname = \"seq\"\ntype = \"int\"\n[[field]]\nname = \"v\"\ntype = \"text\"\n"
        ),
    );
    d.write(
        "s/dataset.toml",
        format!("name = \"fam\"\n[[reference]]\nfrom = \"child\"\ncolumns = [\"id\"]\nto = \"parent\"\non_orphan = \"{orphan}\"\n"),
    );
    d.write("in/parent.txt", "id\tname\n1\tA\n2\tB\n");
    d.write("in/child.txt", "id\tseq\tv\n1\t1\tfirst\n1\t1\tsecond\n2\t1\tx\n9\t1\torphan\n1\t2\ty\n");
    d.join("s").display().to_string()
}

#[test]
fn duplicate_policies() {
    for (policy, kept, rejected) in [
        ("first", "first", 0u64),
        ("last", "second", 0),
        ("reject", "first", 1),
    ] {
        let d = Dir::new();
        let db = TestDb::new();
        let s = family(&d, policy, "keep");
        let input = d.join("in").display().to_string();
        let o = load(
            &db,
            &d,
            &["--schema", &s, "--create", "--max-rejects", "5", &input],
        );
        assert_eq!(o.code, 0, "{policy}: {}{}", o.out, o.err);
        let v: String = db.one(&format!(
            "SELECT v FROM {}.child WHERE id = 1 AND seq = 1",
            db.schema
        ));
        assert_eq!(v, kept, "{policy}");
        let c = table(&o.report, "child");
        assert_eq!(n(&c["rejected"]), rejected, "{policy}");
        assert_eq!(n(&c["filtered"]), 1 - rejected, "{policy}");
        let dup_rejects: i64 = db.one(&format!(
            "SELECT count(*) FROM {}.rejects WHERE code = 'duplicate_key'",
            db.meta
        ));
        assert_eq!(dup_rejects as u64, rejected, "{policy}");
    }
}

#[test]
fn orphan_policies() {
    // keep: counted and loaded.
    let d = Dir::new();
    let db = TestDb::new();
    let s = family(&d, "first", "keep");
    let input = d.join("in").display().to_string();
    let o = load(&db, &d, &["--schema", &s, "--create", &input]);
    assert_eq!(o.code, 0, "{}", o.err);
    assert_eq!(n(&table(&o.report, "child")["orphans"]), 1);
    assert_eq!(
        db.one::<i64>(&format!("SELECT count(*) FROM {}.child", db.schema)),
        4
    );
    // reject: an orphan rejected counts against the thresholds like any
    // reject (the default refuses any): nothing is loaded.
    let d = Dir::new();
    let db = TestDb::new();
    let s = family(&d, "first", "reject");
    let input = d.join("in").display().to_string();
    let o = load(&db, &d, &["--schema", &s, "--create", &input]);
    assert_eq!(o.code, 1, "{}", o.err);
    assert!(
        o.err.contains("1 records rejected, more than --max-rejects 0"),
        "{}",
        o.err
    );
    assert!(!db.one::<bool>(&format!(
        "SELECT to_regclass('{}.child') IS NOT NULL",
        db.schema
    )));
    // Allowed: counted, rejected with its line and byte, not loaded.
    let rej = d.join("rej.csv");
    let o = load(
        &db,
        &d,
        &[
            "--schema",
            &s,
            "--create",
            "--max-rejects",
            "1",
            "--rejects",
            rej.to_str().unwrap(),
            &input,
        ],
    );
    assert_eq!(o.code, 0, "{}", o.err);
    assert_eq!(n(&table(&o.report, "child")["orphans"]), 1);
    assert_eq!(n(&table(&o.report, "child")["rejected"]), 1);
    assert_eq!(
        db.one::<i64>(&format!("SELECT count(*) FROM {}.child", db.schema)),
        3
    );
    let line: i64 = db.one(&format!(
        "SELECT line FROM {}.rejects WHERE code = 'orphan'",
        db.meta
    ));
    assert_eq!(line, 5);
    assert!(
        std::fs::read_to_string(&rej)
            .unwrap()
            .contains(",5,36,child,id,orphan,")
    );
    assert_eq!(n(&table(&o.report, "child")["inserted"]), 3);
    // Again: the rejected orphan is not counted among the unchanged rows.
    let o = load(
        &db,
        &d,
        &["--schema", &s, "--force-reload", "--max-rejects", "1", &input],
    );
    assert_eq!(o.code, 0, "{}", o.err);
    let child = table(&o.report, "child");
    assert_eq!(n(&child["inserted"]), 0, "{child}");
    assert_eq!(n(&child["updated"]), 0, "{child}");
    assert_eq!(n(&child["unchanged"]), 3, "{child}");
    // Replace mode counts the orphan against the thresholds too.
    let o = load(&db, &d, &["--schema", &s, "--mode", "replace", &input]);
    assert_eq!(o.code, 1, "{}", o.err);
    assert!(o.err.contains("1 records rejected"), "{}", o.err);

    // fail: the run fails, nothing is changed.
    let d = Dir::new();
    let db = TestDb::new();
    let s = family(&d, "first", "fail");
    let input = d.join("in").display().to_string();
    let o = load(&db, &d, &["--schema", &s, "--create", &input]);
    assert_eq!(o.code, 1, "{}", o.err);
    assert!(
        o.err
            .contains("1 rows of child reference parent (id) without a match"),
        "{}",
        o.err
    );
    let exists: bool = db.one(&format!(
        "SELECT to_regclass('{}.parent') IS NOT NULL",
        db.schema
    ));
    assert!(!exists, "tables created by a failed run must not remain");
}

#[test]
fn reject_threshold_refuses() {
    let (_, schema) = hcad();
    let d = Dir::new();
    let db = TestDb::new();
    let zip = d.join("f.zip");
    run_gen(&[
        "--schema",
        &schema,
        "--rows",
        "600",
        "--faults",
        "1%",
        "--out",
        zip.to_str().unwrap(),
    ]);
    let o = load(
        &db,
        &d,
        &["--schema", &schema, "--create", zip.to_str().unwrap()],
    );
    assert_eq!(o.code, 1, "{}", o.err);
    assert!(o.err.contains("more than --max-rejects 0"), "{}", o.err);
    let o = load(
        &db,
        &d,
        &[
            "--schema",
            &schema,
            "--create",
            "--max-reject-ratio",
            "0.05",
            zip.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 0, "{}", o.err);
    let answers = std::fs::read_to_string(d.join("f.zip.answers.csv"))
        .unwrap()
        .lines()
        .count() as i64
        - 1;
    let recorded: i64 = db.one(&format!(
        "SELECT count(*) FROM {m}.rejects WHERE run_id = (SELECT max(id) FROM {m}.runs)",
        m = db.meta
    ));
    assert_eq!(recorded, answers);
}

#[test]
fn failure_mid_merge_leaves_the_target_unchanged() {
    let (_, schema) = hcad();
    let d = Dir::new();
    let db = TestDb::new();
    let (base, next) = crate::util::hcad_change_set(&d, 800, 1);
    assert_eq!(
        load(
            &db,
            &d,
            &["--schema", &schema, "--create", base.to_str().unwrap()]
        )
        .code,
        0
    );
    let sums: Vec<String> =
        ["real_acct", "owners", "building_res", "fixtures"]
            .iter()
            .map(|t| db.checksum(t, "1"))
            .collect();
    // The server fails while MERGE writes building_res, after real_acct and
    // owners were already merged in the same transaction.
    let mut c = db.client();
    c.batch_execute(&format!(
        "CREATE FUNCTION {s}.boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;
         CREATE TRIGGER boom BEFORE INSERT OR UPDATE ON {s}.building_res FOR EACH ROW EXECUTE FUNCTION {s}.boom();",
        s = db.schema
    ))
    .unwrap();
    let o = load(
        &db,
        &d,
        &["--schema", &schema, "--delete", "hard", next.to_str().unwrap()],
    );
    assert_eq!(o.code, 4, "{}{}", o.out, o.err);
    assert!(o.err.contains("injected failure"), "{}", o.err);
    let now: Vec<String> = ["real_acct", "owners", "building_res", "fixtures"]
        .iter()
        .map(|t| db.checksum(t, "1"))
        .collect();
    assert_eq!(sums, now, "the targets changed");
    let (status, reason): (String, String) = {
        let r = c.query_one(&format!("SELECT status, reason FROM {}.runs ORDER BY id DESC LIMIT 1", db.meta), &[]).unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(status, "failed");
    assert!(reason.contains("injected failure"), "{reason}");
    // Resume: the staged tables are reused, only publishing runs again.
    c.batch_execute(&format!(
        "DROP TRIGGER boom ON {}.building_res",
        db.schema
    ))
    .unwrap();
    let o = load(
        &db,
        &d,
        &[
            "--schema",
            &schema,
            "--delete",
            "hard",
            "--resume",
            next.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 0, "{}{}", o.out, o.err);
    for t in o.report["tables"].as_array().unwrap() {
        assert_eq!(t["reused"], true, "{t}");
    }
    assert!(o.out.contains("(staging reused)"), "{}", o.out);
    assert_eq!(n(&table(&o.report, "real_acct")["updated"]), 40);
    let staged_left: i64 =
        db.one(&format!("SELECT count(*) FROM {}.staged", db.meta));
    assert_eq!(staged_left, 0);
}

#[test]
fn resume_restages_what_changed() {
    let (_, schema) = hcad();
    let d = Dir::new();
    let db = TestDb::new();
    let a = d.join("a.zip");
    let b = d.join("b.zip");
    run_gen(&[
        "--schema",
        &schema,
        "--rows",
        "300",
        "--out",
        a.to_str().unwrap(),
    ]);
    run_gen(&[
        "--schema",
        &schema,
        "--rows",
        "300",
        "--seed",
        "9",
        "--out",
        b.to_str().unwrap(),
    ]);
    let mut c = db.client();
    assert_eq!(
        load(
            &db,
            &d,
            &[
                "--schema",
                &schema,
                "--create",
                "--dry-run",
                a.to_str().unwrap()
            ]
        )
        .code,
        0
    );
    c.batch_execute(&format!(
        "CREATE TABLE {}.real_acct (acct int)",
        db.schema
    ))
    .unwrap();
    let o =
        load(&db, &d, &["--schema", &schema, "--create", a.to_str().unwrap()]);
    assert_eq!(o.code, 2, "a mismatched target: {}", o.err);
    assert!(o.err.contains("column acct: type is integer, the layout has character varying(25)"), "{}", o.err);
    assert!(o.err.contains("column yr: missing"), "{}", o.err);
    c.batch_execute(&format!("DROP TABLE {}.real_acct", db.schema)).unwrap();
    // A different input is staged afresh even with --resume.
    let o = load(
        &db,
        &d,
        &["--schema", &schema, "--create", "--resume", b.to_str().unwrap()],
    );
    assert_eq!(o.code, 0, "{}", o.err);
    assert!(
        o.report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["reused"] == false)
    );
}

#[test]
fn modes_append_fill_replace_and_rollback() {
    let d = Dir::new();
    let db = TestDb::new();
    let s = family(&d, "first", "keep");
    let input = d.join("in").display().to_string();
    // append into an empty table, then again: the key conflict fails the
    // run and nothing changes.
    let o = load(
        &db,
        &d,
        &["--schema", &s, "--create", "--mode", "append", &input],
    );
    assert_eq!(o.code, 0, "{}", o.err);
    let before = db.checksum("child", "id, seq");
    let o = load(
        &db,
        &d,
        &["--schema", &s, "--mode", "append", "--force-reload", &input],
    );
    assert_eq!(o.code, 4, "{}", o.err);
    assert!(o.err.contains("23505"), "{}", o.err);
    assert_eq!(db.checksum("child", "id, seq"), before);
    // fill: only NULL columns of existing rows.
    let mut c = db.client();
    c.batch_execute(&format!("UPDATE {s}.child SET v = NULL WHERE id = 2; UPDATE {s}.child SET v = 'kept' WHERE id = 1 AND seq = 2", s = db.schema)).unwrap();
    let o = load(
        &db,
        &d,
        &["--schema", &s, "--mode", "fill", "--force-reload", &input],
    );
    assert_eq!(o.code, 0, "{}", o.err);
    assert_eq!(n(&table(&o.report, "child")["updated"]), 1);
    let v2: String =
        db.one(&format!("SELECT v FROM {}.child WHERE id = 2", db.schema));
    assert_eq!(v2, "x");
    let v1: String = db.one(&format!(
        "SELECT v FROM {}.child WHERE id = 1 AND seq = 2",
        db.schema
    ));
    assert_eq!(v1, "kept");
    // replace: new tables swapped in, the previous generation kept.
    let before_replace = db.checksum("child", "id, seq");
    d.write("in/child.txt", "id\tseq\tv\n1\t1\tnew\n");
    // It removes 3 of the 4 rows: past --max-delete-ratio.
    let o = load(&db, &d, &["--schema", &s, "--mode", "replace", &input]);
    assert_eq!(o.code, 1, "{}{}", o.out, o.err);
    assert!(o.err.contains("would delete 3 of 4 rows"), "{}", o.err);
    assert_eq!(db.checksum("child", "id, seq"), before_replace);
    let o = load(
        &db,
        &d,
        &["--schema", &s, "--mode", "replace", "--force", &input],
    );
    assert_eq!(o.code, 0, "{}{}", o.out, o.err);
    assert_eq!(
        db.one::<i64>(&format!("SELECT count(*) FROM {}.child", db.schema)),
        1
    );
    assert_eq!(
        db.one::<i64>(&format!(
            "SELECT count(*) FROM {}.child__fwprev",
            db.schema
        )),
        4
    );
    let o = fwload(&[
        "rollback",
        "--database-url",
        &db.url(),
        "--meta-schema",
        &db.meta,
        "--dataset",
        "fam",
        "--target-schema",
        &db.schema,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        db.one::<i64>(&format!("SELECT count(*) FROM {}.child", db.schema)),
        4
    );
    assert_eq!(db.checksum("child", "id, seq"), before_replace);
    // The replaced table has its key again.
    let key: String = db.one(&format!(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '{}.child__fwprev'::regclass AND contype = 'p'",
        db.schema
    ));
    assert_eq!(key, "PRIMARY KEY (id, seq)");
}

#[test]
fn concurrent_loads_wait_or_fail_fast() {
    let (_, schema) = hcad();
    let d = Dir::new();
    let db = TestDb::new();
    let zip = d.join("h.zip");
    run_gen(&[
        "--schema",
        &schema,
        "--rows",
        "300",
        "--out",
        zip.to_str().unwrap(),
    ]);
    assert_eq!(
        load(
            &db,
            &d,
            &["--schema", &schema, "--create", zip.to_str().unwrap()]
        )
        .code,
        0
    );
    // Hold the dataset's lock from another session.
    let mut holder = db.client();
    let key = format!("fwload:hcad:{}", db.schema);
    holder.execute("SELECT pg_advisory_lock(hashtext($1))", &[&key]).unwrap();
    let o = load(
        &db,
        &d,
        &[
            "--schema",
            &schema,
            "--no-wait",
            "--force-reload",
            zip.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 6, "{}", o.err);
    assert!(o.err.contains("another load of fwload:hcad"), "{}", o.err);
    // Without --no-wait it waits, then runs once the lock is released.
    let mut a: Vec<String> = vec!["load".into()];
    a.extend(db.args());
    a.extend([
        "--schema".into(),
        schema.clone(),
        "--force-reload".into(),
        zip.display().to_string(),
    ]);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_fwload"))
        .args(&a)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It waits on the advisory lock: a lock not granted shows in pg_locks.
    let since = std::time::Instant::now();
    let lock_waits = format!(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
         AND NOT granted AND objid::int8 = hashtext('{}')::int8 & 4294967295",
        key.replace('\'', "''")
    );
    while db.one::<i64>(&lock_waits) == 0 {
        assert!(
            since.elapsed() < std::time::Duration::from_secs(60),
            "the second load never waited on the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let waiting: i64 = db.one(&format!(
        "SELECT count(*) FROM {}.runs WHERE status = 'running'",
        db.meta
    ));
    assert_eq!(waiting, 0, "the waiting load must not have started a run");
    holder
        .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&key])
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("waiting for another load of dataset hcad")
    );
    // Two loads started together never interleave: both succeed, one after
    // the other.
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_fwload"))
            .args(&a)
            .arg("-q")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (x, y) = (spawn(), spawn());
    assert!(x.wait_with_output().unwrap().status.success());
    assert!(y.wait_with_output().unwrap().status.success());
    let overlapping: i64 = db.one(&format!(
        "SELECT count(*) FROM {m}.runs a JOIN {m}.runs b ON a.id < b.id
         WHERE a.status = 'succeeded' AND b.status = 'succeeded' AND b.started_at < a.finished_at AND a.id > 1",
        m = db.meta
    ));
    assert_eq!(overlapping, 0);
}

#[test]
fn runs_are_listed_and_shown() {
    let (_, schema) = hcad();
    let d = Dir::new();
    let db = TestDb::new();
    let zip = d.join("h.zip");
    run_gen(&[
        "--schema",
        &schema,
        "--rows",
        "200",
        "--out",
        zip.to_str().unwrap(),
    ]);
    assert_eq!(
        load(
            &db,
            &d,
            &["--schema", &schema, "--create", zip.to_str().unwrap()]
        )
        .code,
        0
    );
    let o = fwload(&[
        "runs",
        "--database-url",
        &db.url(),
        "--meta-schema",
        &db.meta,
    ]);
    let text = stdout(&o);
    assert!(text.contains("hcad") && text.contains("succeeded"), "{text}");
    let o = fwload(&[
        "runs",
        "--database-url",
        &db.url(),
        "--meta-schema",
        &db.meta,
        "show",
        "1",
    ]);
    let text = stdout(&o);
    assert!(text.contains("run 1: dataset hcad"), "{text}");
    assert!(
        text.contains("h.zip:real_acct.txt  loaded  200 rows  member sha256 "),
        "{text}"
    );
    assert!(text.contains("rejects:\n  none"), "{text}");
}

/// Columns (name, type, not null), constraints and indexes of every table
/// in `schema`, one line each, with the schema name taken out.
fn catalog(db: &TestDb, schema: &str) -> Vec<String> {
    let mut c = db.client();
    let sql = "
        SELECT c.relname || ' column ' || a.attnum_rank || ' ' || a.attname
               || ' ' || a.ty || CASE WHEN a.attnotnull THEN ' not null'
                                      ELSE '' END
          FROM (SELECT attrelid, attname, attnotnull,
                       format_type(atttypid, atttypmod) AS ty,
                       rank() OVER (PARTITION BY attrelid ORDER BY attnum)
                         AS attnum_rank
                  FROM pg_attribute
                 WHERE attnum > 0 AND NOT attisdropped) a
          JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind = 'r'
        UNION ALL
        SELECT c.relname || ' constraint ' || k.conname || ' '
               || pg_get_constraintdef(k.oid)
          FROM pg_constraint k
          JOIN pg_class c ON c.oid = k.conrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1
        UNION ALL
        SELECT c.relname || ' index '
               || replace(pg_get_indexdef(i.indexrelid), n.nspname || '.', '')
          FROM pg_index i
          JOIN pg_class c ON c.oid = i.indrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1
         ORDER BY 1";
    c.query(sql, &[&schema])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[test]
fn created_targets_equal_the_declared_ddl() {
    let (set, schema) = hcad();
    let d = Dir::new();
    let zip = d.join("f.zip");
    run_gen(&[
        "--schema",
        &schema,
        "--rows",
        "800",
        "--faults",
        "1%",
        "--out",
        zip.to_str().unwrap(),
    ]);
    let zip = zip.to_str().unwrap();
    let args = ["--schema", &schema, "--max-reject-ratio", "0.05", zip];
    // Created by the load (built in place from the staged rows).
    let built = TestDb::new();
    let mut a = vec!["--create"];
    a.extend_from_slice(&args);
    let o = load(&built, &d, &a);
    assert_eq!(o.code, 0, "{}", o.err);
    assert!(n(&table(&o.report, "real_acct")["rejected"]) > 0, "{}", o.out);
    // Created beforehand from `schema ddl`, then loaded by a merge.
    let declared = TestDb::new();
    let ddl = fwload(&[
        "schema",
        "ddl",
        "--schema",
        &schema,
        "--target-schema",
        &declared.schema,
    ]);
    assert!(ddl.status.success(), "{}", stderr(&ddl));
    declared.client().batch_execute(&stdout(&ddl)).unwrap();
    let o = load(&declared, &d, &args);
    assert_eq!(o.code, 0, "{}", o.err);

    let (b, c) =
        (catalog(&built, &built.schema), catalog(&declared, &declared.schema));
    assert!(b.iter().any(|l| l.contains("PRIMARY KEY")), "{b:#?}");
    assert_eq!(b, c);
    for l in &set.layouts {
        let key = l.key_names().join(", ");
        assert_eq!(
            built.checksum(&l.table, &key),
            declared.checksum(&l.table, &key),
            "{}",
            l.table
        );
    }
    // A later load into the built tables merges like into any other.
    let mut a = vec!["--force-reload"];
    a.extend_from_slice(&args);
    let o = load(&built, &d, &a);
    assert_eq!(o.code, 0, "{}", o.err);
    let t = table(&o.report, "real_acct");
    assert_eq!(n(&t["inserted"]) + n(&t["updated"]), 0, "{t}");
    assert!(n(&t["unchanged"]) > 0, "{t}");
}

#[test]
fn replace_with_a_rejected_keyed_record_keeps_constraints() {
    let d = Dir::new();
    let db = TestDb::new();
    d.write(
        "s/t.toml",
        "members = [\"t.txt\"]\nformat = \"delimited\"\nheader = false\nkey = [\"id\"]\n\
         [[field]]\nname = \"id\"\ntype = \"int\"\n\
         [[field]]\nname = \"n\"\ntype = \"int\"\nrequired = true\n",
    );
    d.write("in/t.txt", "1\t5\n2\tx\n3\t7\n");
    let s = d.join("s").display().to_string();
    let input = d.join("in").display().to_string();
    for _ in 0..2 {
        let o = load(
            &db,
            &d,
            &[
                "--schema",
                &s,
                "--create",
                "--mode",
                "replace",
                "--force-reload",
                "--max-rejects",
                "5",
                &input,
            ],
        );
        assert_eq!(o.code, 0, "{}{}", o.out, o.err);
        assert_eq!(n(&table(&o.report, "t")["rejected"]), 1);
        assert_eq!(
            db.checksum("t", "id"),
            db_checksum_of(&db, "(1,5)\n(3,7)")
        );
    }
    let defs = catalog(&db, &db.schema);
    assert!(
        defs.contains(&"t column 2 n integer not null".to_string()),
        "{defs:#?}"
    );
    assert!(
        defs.iter().any(|l| l.starts_with("t constraint")
            && l.ends_with("PRIMARY KEY (id)")),
        "{defs:#?}"
    );
}

/// What `TestDb::checksum` gives for a table whose rows print as `rows`.
fn db_checksum_of(db: &TestDb, rows: &str) -> String {
    db.one(&format!("SELECT md5('{rows}')"))
}

/// A table that references itself finds parents among the rows of the
/// same load (they were rejected as orphans when only the target as it
/// was counted), and a row whose parent is rejected is rejected in turn.
#[test]
fn self_references_find_parents_in_the_same_load() {
    for mode in ["merge", "replace"] {
        let d = Dir::new();
        let db = TestDb::new();
        d.write(
            "s/t.toml",
            "members = [\"t.txt\"]\nformat = \"delimited\"\nheader = true\nkey = [\"id\"]\n\
             [[field]]\nname = \"id\"\ntype = \"int\"\n[[field]]\nname = \"parent\"\ntype = \"int\"\n",
        );
        d.write(
            "s/dataset.toml",
            "name = \"tree\"\n[[reference]]\nfrom = \"t\"\ncolumns = [\"parent\"]\nto = \"t\"\nto_columns = [\"id\"]\non_orphan = \"reject\"\n",
        );
        // 4's parent does not exist, so 4 is an orphan, and 5 with it.
        d.write("in/t.txt", "id\tparent\n3\t2\n1\t\n2\t1\n4\t9\n5\t4\n");
        let s = d.join("s").display().to_string();
        let input = d.join("in").display().to_string();
        let o = load(
            &db,
            &d,
            &[
                "--schema",
                &s,
                "--create",
                "--mode",
                mode,
                "--max-rejects",
                "5",
                &input,
            ],
        );
        assert_eq!(o.code, 0, "{mode}: {}{}", o.out, o.err);
        assert_eq!(n(&table(&o.report, "t")["rejected"]), 2, "{mode}");
        assert_eq!(
            db.checksum("t", "id"),
            db_checksum_of(&db, "(1,)\n(2,1)\n(3,2)"),
            "{mode}"
        );
    }
}
