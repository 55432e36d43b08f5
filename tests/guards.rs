//! What guards a commit (issue 23): the dataset's checks (SQL assertions,
//! change against the previous run, member counts a file states), orphan
//! rejects under the reject thresholds, and protected target schemas.

use crate::pg::TestDb;
use crate::util::{Dir, load, n, table};

/// A dataset of `parent` (id, name, val) and `child` (id, seq), both
/// keyed, a `manifest` layout stating each member's records, and the
/// dataset file's `checks`, in `d`'s `s/`.
fn dataset(d: &Dir, checks: &str) -> String {
    d.write(
        "s/parent.toml",
        "members = [\"parent.txt\"]\nformat = \"delimited\"\nheader = true\nkey = [\"id\"]\n\
         [[field]]\nname = \"id\"\ntype = \"int\"\n[[field]]\nname = \"name\"\ntype = \"text\"\n\
         [[field]]\nname = \"val\"\ntype = \"int\"\n",
    );
    d.write(
        "s/child.toml",
        "members = [\"child.txt\"]\nformat = \"delimited\"\nheader = true\nkey = [\"id\", \"seq\"]\n\
         [[field]]\nname = \"id\"\ntype = \"int\"\n[[field]]\nname = \"seq\"\ntype = \"int\"\n",
    );
    d.write(
        "s/manifest.toml",
        "members = [\"manifest.txt\"]\nformat = \"delimited\"\nheader = true\nkey = [\"member\"]\n\
         [[field]]\nname = \"member\"\ntype = \"text\"\n[[field]]\nname = \"records\"\ntype = \"int\"\n",
    );
    d.write(
        "s/dataset.toml",
        format!(
            "name = \"guarded\"\nload_order = [\"manifest\", \"parent\", \"child\"]\n{checks}"
        ),
    );
    d.join("s").display().to_string()
}

/// Writes the input directory `in/`: parents `(id, val)`, a child per
/// parent id in `children`, and no manifest.
fn input(d: &Dir, parents: &[(i32, i32)], children: &[i32]) -> String {
    let mut p = String::from("id\tname\tval\n");
    for (id, val) in parents {
        p.push_str(&format!("{id}\tname {id}\t{val}\n"));
    }
    d.write("in/parent.txt", p);
    let mut c = String::from("id\tseq\n");
    for id in children {
        c.push_str(&format!("{id}\t1\n"));
    }
    d.write("in/child.txt", c);
    d.join("in").display().to_string()
}

/// A checksum of every row of the three tables (absent: "none").
fn sums(db: &TestDb) -> Vec<String> {
    let mut c = db.client();
    ["parent", "child", "manifest"]
        .iter()
        .map(|t| {
            c.query_one(
                &format!(
                    "SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), 'empty') FROM {}.{t} t",
                    db.schema
                ),
                &[],
            )
            .map(|r| r.get(0))
            .unwrap_or_else(|_| "none".into())
        })
        .collect()
}

const SQL_CHECKS: &str = "\
[[check]]
name = \"no negative value\"
sql = \"SELECT count(*) FROM {parent} WHERE val < 0\"
expect = \"= 0\"

[[check]]
name = \"every child has its parent\"
sql = \"\"\"
SELECT count(*) FROM {child} c
 WHERE NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = c.id)\"\"\"
expect = \"0\"

[[check]]
name = \"values sum in range\"
sql = \"SELECT sum(val) FROM {parent}\"
expect = \"between 10 and 1000\"
";

#[test]
fn sql_checks_pass_or_roll_the_load_back() {
    let d = Dir::new();
    let db = TestDb::new();
    let s = dataset(&d, SQL_CHECKS);
    let good = [(1, 10), (2, 20), (3, 30)];
    let inp = input(&d, &good, &[1, 2]);
    let o = load(&db, &d, &["-s", &s, "--create", &inp]);
    assert_eq!(o.code, 0, "{}", o.err);
    let checks = o.report["checks"].as_array().expect("checks reported");
    assert_eq!(checks.len(), 3, "{checks:?}");
    assert!(checks.iter().all(|c| c["passed"] == true), "{checks:?}");
    assert_eq!(checks[2]["found"], "60");
    let before = sums(&db);
    // Each check fails on purpose; nothing changes.
    for (parents, children, message) in [
        (
            vec![(1, 10), (2, -5), (3, 30)],
            vec![1, 2],
            "check 'no negative value' failed: 1, expected = 0",
        ),
        (
            good.to_vec(),
            vec![1, 2, 7],
            "check 'every child has its parent' failed: 1, expected = 0",
        ),
        (
            vec![(1, 10), (2, 20), (3, 3000)],
            vec![1],
            "check 'values sum in range' failed: 3030, expected between 10 and 1000",
        ),
    ] {
        let inp = input(&d, &parents, &children);
        let o = load(&db, &d, &["-s", &s, &inp]);
        assert_eq!(o.code, 1, "{message}: {}{}", o.out, o.err);
        assert!(o.err.contains(message), "{message}: {}", o.err);
        assert_eq!(sums(&db), before, "{message}");
    }
    // A check that is not valid SQL is the dataset's error (exit 2),
    // naming the check; nothing changes.
    let s = dataset(
        &d,
        "[[check]]\nname = \"broken\"\nsql = \"SELECT nonsense FROM {parent}\"\nexpect = \"= 0\"\n",
    );
    let inp = input(&d, &[(1, 11), (2, 20), (3, 30)], &[1]);
    let o = load(&db, &d, &["-s", &s, &inp]);
    assert_eq!(o.code, 2, "{}", o.err);
    assert!(o.err.contains("check 'broken' does not run"), "{}", o.err);
    assert!(o.err.contains("nonsense"), "{}", o.err);
    assert_eq!(sums(&db), before);
}

#[test]
fn a_check_naming_an_unknown_table_is_a_schema_error() {
    let d = Dir::new();
    let s = dataset(
        &d,
        "[[check]]\nname = \"typo\"\nsql = \"SELECT count(*) FROM {parnet}\"\nexpect = \"= 0\"\n\
         [[check]]\nname = \"two kinds\"\nmax_change = \"5%\"\ncounts = \"manifest\"\n",
    );
    let o = crate::util::fwload(&["schema", "check", &s]);
    let err = crate::util::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("check 'typo': {parnet} is no layout"), "{err}");
    assert!(
        err.contains(
            "check 'two kinds': give exactly one of sql, max_change, counts"
        ),
        "{err}"
    );
}

#[test]
fn max_change_refuses_a_truncated_or_shifted_export() {
    let d = Dir::new();
    let db = TestDb::new();
    let s = dataset(
        &d,
        "[[check]]\nname = \"small moves\"\nmax_change = \"5%\"\ntables = [\"parent\"]\n",
    );
    let parents: Vec<(i32, i32)> = (1..=100).map(|i| (i, i)).collect();
    let inp = input(&d, &parents, &[1]);
    let o = load(&db, &d, &["-s", &s, "--create", &inp]);
    assert_eq!(o.code, 0, "{}", o.err);
    let first = o.report["run_id"].as_i64().unwrap();
    assert!(
        o.report["checks"][0]["found"]
            .as_str()
            .unwrap()
            .contains("no previous successful load"),
        "{}",
        o.report
    );
    let before = sums(&db);
    // Truncated to half: merge without deletes would change no row, but
    // half the rows are missing.
    let inp = input(&d, &parents[..50], &[1]);
    let o = load(&db, &d, &["-s", &s, &inp]);
    assert_eq!(o.code, 1, "{}", o.err);
    assert!(
        o.err.contains(&format!(
            "check 'small moves' failed: parent: 50.00% changed (50 rows loaded against 100 by run {first}), expected at most 5%"
        )),
        "{}",
        o.err
    );
    assert_eq!(sums(&db), before);
    // A tenth of the rows updated (say, a column shifted in some rows).
    let mut shifted = parents.clone();
    for p in shifted.iter_mut().take(10) {
        p.1 += 1000;
    }
    let inp = input(&d, &shifted, &[1]);
    let o = load(&db, &d, &["-s", &s, &inp]);
    assert_eq!(o.code, 1, "{}", o.err);
    assert!(
        o.err.contains("parent: 10.00% changed (0 inserted, 10 updated, 0 deleted of 100 rows loaded by run"),
        "{}",
        o.err
    );
    assert_eq!(sums(&db), before);
    // Three updated and two deleted: within 5%.
    let mut small = parents[..98].to_vec();
    for p in small.iter_mut().take(3) {
        p.1 += 1000;
    }
    let inp = input(&d, &small, &[1]);
    let o = load(&db, &d, &["-s", &s, "--delete", "hard", &inp]);
    assert_eq!(o.code, 0, "{}", o.err);
    assert_eq!(n(&table(&o.report, "parent")["updated"]), 3);
    assert_eq!(n(&table(&o.report, "parent")["deleted"]), 2);
    assert!(
        o.report["checks"][0]["found"]
            .as_str()
            .unwrap()
            .contains("parent: 5.00% changed"),
        "{}",
        o.report
    );
    // Replace compares sizes: 60 rows against 98.
    let inp = input(&d, &parents[..60], &[1]);
    let before = sums(&db);
    // --force passes the delete guard, not a check.
    let o = load(&db, &d, &["-s", &s, "--mode", "replace", "--force", &inp]);
    assert_eq!(o.code, 1, "{}", o.err);
    assert!(o.err.contains("60 rows loaded against 98"), "{}", o.err);
    assert_eq!(sums(&db), before);
}

#[test]
fn counts_a_file_states_must_match_the_members() {
    let d = Dir::new();
    let db = TestDb::new();
    let s = dataset(
        &d,
        "[[check]]\nname = \"stated counts\"\ncounts = \"manifest\"\nmember = \"member\"\nrecords = \"records\"\n",
    );
    let inp = input(&d, &[(1, 1), (2, 2), (3, 3)], &[1, 2]);
    d.write(
        "in/manifest.txt",
        "member\trecords\nparent.txt\t3\nchild.txt\t2\n",
    );
    let o = load(&db, &d, &["-s", &s, "--create", &inp]);
    assert_eq!(o.code, 0, "{}", o.err);
    assert_eq!(o.report["checks"].as_array().unwrap().len(), 2);
    let before = sums(&db);
    // One child record lost on the way: refused (the manifest, unchanged,
    // is read from its table).
    input(&d, &[(1, 1), (2, 2), (3, 3)], &[1]);
    let o = load(&db, &d, &["-s", &s, &inp]);
    assert_eq!(o.code, 1, "{}{}", o.out, o.report);
    assert!(
        o.err.contains(
            "check 'stated counts' failed: child.txt: 1 records read, expected 2 (as manifest states)"
        ),
        "{}",
        o.err
    );
    assert_eq!(sums(&db), before);
    // A member the manifest names but the input lacks.
    input(&d, &[(1, 1), (2, 2), (3, 3)], &[1, 2]);
    d.write(
        "in/manifest.txt",
        "member\trecords\nparent.txt\t3\nchild.txt\t2\nland.txt\t9\n",
    );
    let o = load(&db, &d, &["-s", &s, &inp]);
    assert_eq!(o.code, 1, "{}", o.err);
    assert!(
        o.err.contains(
            "land.txt: not read by this load, expected 9 (as manifest line 4 states)"
        ),
        "{}",
        o.err
    );
    assert_eq!(sums(&db), before);
}
