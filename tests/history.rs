//! `--mode history`: the versions valid at each load's effective time are,
//! table by table and column by column, the snapshot loaded then; reruns
//! add no version; a failed publish adds none; versions of a key never
//! overlap; history is kept within each year of a dataset kept by year.

use std::path::PathBuf;

use crate::pg::TestDb;
use crate::util::{Dir, assert_ok, load_quiet, repo, run_gen, stderr, stdout};

fn load(db: &TestDb, schema: &str, args: &[&str]) -> std::process::Output {
    load_quiet(&db.args(), schema, args)
}

/// The base tables of `db`'s target schema.
fn tables(db: &TestDb) -> Vec<String> {
    db.client()
        .query(
            "SELECT c.relname::text FROM pg_class c
             WHERE c.relnamespace = $1::text::regnamespace AND c.relkind IN ('r', 'p')
               AND NOT c.relispartition ORDER BY 1",
            &[&db.schema],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The columns of `db`'s table `t`, quoted, in order.
fn columns(db: &TestDb, t: &str) -> String {
    db.one(&format!(
        "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)
         FROM information_schema.columns WHERE table_schema = '{}' AND table_name = '{t}'",
        db.schema
    ))
}

/// Rows of `hist`'s table `t` valid at `at` that `plain`'s `t` lacks,
/// plus the reverse, compared on `plain`'s columns (multisets).
fn differing_at(hist: &TestDb, plain: &TestDb, t: &str, at: &str) -> i64 {
    let cols = columns(plain, t);
    hist.one(&format!(
        "SELECT (SELECT count(*) FROM (SELECT {cols} FROM {h}.{t}_as_of('{at}')
                                        EXCEPT ALL SELECT {cols} FROM {p}.{t}) x)
              + (SELECT count(*) FROM (SELECT {cols} FROM {p}.{t}
                                        EXCEPT ALL SELECT {cols} FROM {h}.{t}_as_of('{at}')) y)",
        h = hist.schema,
        p = plain.schema
    ))
}

/// Versions in every table of `db`.
fn versions(db: &TestDb) -> i64 {
    tables(db)
        .iter()
        .map(|t| {
            db.one::<i64>(&format!("SELECT count(*) FROM {}.{t}", db.schema))
        })
        .sum()
}

/// Pairs of versions of one key whose validity overlaps, in `t` keyed by
/// `key` (comma-separated columns).
fn overlaps(db: &TestDb, t: &str, key: &str) -> i64 {
    let same: Vec<String> =
        key.split(", ").map(|k| format!("a.{k} = b.{k}")).collect();
    db.one(&format!(
        "SELECT count(*) FROM {s}.{t} a JOIN {s}.{t} b ON {} AND a.valid_from < b.valid_from
         WHERE a.valid_to IS NULL OR a.valid_to > b.valid_from",
        same.join(" AND "),
        s = db.schema
    ))
}

/// The key columns of `db`'s table `t` without `valid_from`.
fn key_of(db: &TestDb, t: &str) -> String {
    db.one(&format!(
        "SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.n)
         FROM pg_index i CROSS JOIN unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = '{}.{t}'::regclass AND i.indisprimary AND a.attname <> 'valid_from'",
        db.schema
    ))
}

/// Five HCAD snapshots (updates, inserts, deletes; the third is the
/// first again, so deleted keys come back and changed values revert)
/// loaded in history mode at five times: the versions valid at each time
/// are that snapshot loaded alone by a plain merge.
#[test]
fn versions_valid_at_each_load_are_its_snapshot() {
    let d = Dir::new();
    let schema = repo("schemas/hcad");
    let s1 = d.join("s1.zip");
    run_gen(&[
        "--schema",
        &schema,
        "--rows",
        "400",
        "--seed",
        "11",
        "--out",
        s1.to_str().unwrap(),
    ]);
    let change = |base: &PathBuf, name: &str, seed: &str| -> PathBuf {
        let out = d.join(name);
        run_gen(&[
            "--schema",
            &schema,
            "--base",
            base.to_str().unwrap(),
            "--seed",
            seed,
            "--update",
            "8%",
            "--insert",
            "3%",
            "--delete",
            "3%",
            "--out",
            out.to_str().unwrap(),
        ]);
        out
    };
    let s2 = change(&s1, "s2.zip", "21");
    let s4 = change(&s2, "s4.zip", "41");
    let s5 = change(&s4, "s5.zip", "51");
    let snapshots = [&s1, &s2, &s1, &s4, &s5];
    let times =
        ["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04", "2020-01-05"];
    let hist = TestDb::new();
    let history = |db: &TestDb, s: &PathBuf, at: &str, extra: &[&str]| {
        let mut a = vec![
            "--mode",
            "history",
            "--create",
            "--as-of",
            at,
            "--delete",
            "hard",
            "--max-delete-ratio",
            "0.9",
        ];
        a.extend_from_slice(extra);
        a.push(s.to_str().unwrap());
        load(db, &schema, &a)
    };
    for (i, (s, at)) in snapshots.iter().zip(times).enumerate() {
        if i == 3 {
            // A publish that fails midway (the delete guard of a later
            // table) leaves no version behind.
            let before = versions(&hist);
            let o = load(
                &hist,
                &schema,
                &[
                    "--mode",
                    "history",
                    "--as-of",
                    at,
                    "--delete",
                    "hard",
                    "--max-delete-ratio",
                    "0.001",
                    s.to_str().unwrap(),
                ],
            );
            assert_eq!(
                o.status.code(),
                Some(1),
                "{}{}",
                stdout(&o),
                stderr(&o)
            );
            assert_eq!(
                versions(&hist),
                before,
                "a refused load left versions"
            );
        }
        assert_ok(&history(&hist, s, at, &[]));
        if i == 2 {
            // The same snapshot again, later (read again, not skipped as
            // unchanged): no version, nothing written.
            let before = versions(&hist);
            let o = history(&hist, s, "2020-01-03 12:00", &["--force-reload"]);
            assert_ok(&o);
            assert_eq!(versions(&hist), before, "a rerun added versions");
            let written: i64 = hist.one(&format!(
                "SELECT sum((t->>'inserted')::bigint + (t->>'updated')::bigint + (t->>'deleted')::bigint)::bigint
                 FROM {m}.runs r, jsonb_array_elements(r.counts->'tables') t
                 WHERE r.id = (SELECT max(id) FROM {m}.runs)",
                m = hist.meta
            ));
            assert_eq!(written, 0, "{}", stdout(&o));
        }
    }
    let all = tables(&hist);
    assert!(all.len() > 60, "{all:?}");
    for (s, at) in snapshots.iter().zip(times) {
        let plain = TestDb::new();
        assert_ok(&load(&plain, &schema, &["--create", s.to_str().unwrap()]));
        for t in &all {
            assert_eq!(differing_at(&hist, &plain, t, at), 0, "{t} at {at}");
        }
    }
    for t in &all {
        assert_eq!(overlaps(&hist, t, &key_of(&hist, t)), 0, "{t}");
    }
    // History grew where the snapshots changed, and only there.
    let real: Vec<i64> = ["true", "valid_to IS NULL"]
        .iter()
        .map(|w| {
            hist.one(&format!(
                "SELECT count(*) FROM {}.real_acct WHERE {w}",
                hist.schema
            ))
        })
        .collect();
    assert!(real[0] > real[1] && real[1] > 300, "{real:?}");

    // A load not later than the newest version is refused.
    let o = history(&hist, &s4, "2020-01-05", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--as-of"), "{}", stderr(&o));
    // The current-key index stands guard: a second current version of a
    // key cannot be written.
    let dup = hist.client().batch_execute(&format!(
        "INSERT INTO {s}.real_acct SELECT * FROM {s}.real_acct_current LIMIT 1",
        s = hist.schema
    ));
    assert!(dup.is_err());
}

/// History within years: a dataset kept by year keeps versions per year,
/// each year's partition on its own timeline.
#[test]
fn history_composes_with_years() {
    let d = Dir::new();
    d.write(
        "s/parcel.toml",
        "members = [\"roll_*.txt\"]\nformat = \"delimited\"\nheader = false\nkey = [\"acct\"]\n\
         [[field]]\nname = \"acct\"\ntype = \"int\"\n[[field]]\nname = \"value\"\ntype = \"bigint\"\n",
    );
    d.write(
        "s/dataset.toml",
        "name = \"roll\"\n[[archive]]\nname = \"roll_{year}.txt\"\nlayouts = [\"parcel\"]\n\
         [period]\ncolumn = \"tax_year\"\nfrom = \"archive\"\n\
         [history]\nvalid_from = \"since\"\nvalid_to = \"until\"\n",
    );
    let schema = d.join("s").display().to_string();
    let db = TestDb::new();
    let run = |data: &str, year: &str, at: &str| {
        let dir = d.join(at);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(format!("roll_{year}.txt"));
        std::fs::write(&f, data).unwrap();
        load(
            &db,
            &schema,
            &[
                "--mode",
                "history",
                "--create",
                "--as-of",
                at,
                f.to_str().unwrap(),
            ],
        )
    };
    assert_ok(&run("1\t100\n2\t200\n", "2024", "2024-03-01"));
    assert_ok(&run("1\t100\n2\t210\n", "2024", "2024-06-01"));
    assert_ok(&run("1\t120\n2\t210\n", "2025", "2025-03-01"));
    // 2024 may still change after 2025 began: its own timeline.
    assert_ok(&run("1\t105\n2\t210\n", "2024", "2024-09-01"));
    let rows: Vec<(i32, i32, i64, String, Option<String>)> = db
        .client()
        .query(
            &format!(
                "SELECT tax_year, acct, value, since::date::text, until::date::text
                 FROM {}.parcel ORDER BY 1, 2, since",
                db.schema
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        rows,
        [
            (2024, 1, 100, s("2024-03-01"), Some(s("2024-09-01"))),
            (2024, 1, 105, s("2024-09-01"), None),
            (2024, 2, 200, s("2024-03-01"), Some(s("2024-06-01"))),
            (2024, 2, 210, s("2024-06-01"), None),
            (2025, 1, 120, s("2025-03-01"), None),
            (2025, 2, 210, s("2025-03-01"), None),
        ]
    );
    let at_mid: i64 = db.one(&format!(
        "SELECT value FROM {}.parcel_as_of('2024-07-01') WHERE tax_year = 2024 AND acct = 2",
        db.schema
    ));
    assert_eq!(at_mid, 210);
}
