//! Years side by side: a dataset kept by period loads each year into its
//! own partition, and a load of one year never touches another's rows —
//! not by the merge, not by snapshot deletes, not through the delete
//! guard's share, not through the unchanged-input skip.

use std::path::PathBuf;

use crate::pg::TestDb;
use crate::util::{
    Dir, assert_ok, fwload, hcad_by_year, load_quiet, run_gen, stderr, stdout,
};

/// A generated HCAD archive of `year` (its own seed), in `d`.
fn year_archive(d: &Dir, schema: &str, year: i32, rows: usize) -> PathBuf {
    let out = d.join(&format!("y{year}.zip"));
    run_gen(&[
        "--schema",
        schema,
        "--rows",
        &rows.to_string(),
        "--seed",
        &year.to_string(),
        "--year",
        &year.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    out
}

fn load(db: &TestDb, schema: &str, args: &[&str]) -> std::process::Output {
    load_quiet(&db.args(), schema, args)
}

/// The partitioned targets of `db`'s schema.
fn parents(db: &TestDb) -> Vec<String> {
    db.client()
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind = 'p' ORDER BY 1",
            &[&db.schema],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Rows of `year` in `a`'s table `t` that `b`'s table `t` lacks, plus
/// the reverse (multisets).
fn differing(a: &TestDb, b: &TestDb, t: &str, year: i32) -> i64 {
    a.one(&format!(
        "SELECT (SELECT count(*) FROM (SELECT * FROM {sa}.{t} WHERE roll_year = {year}
                                        EXCEPT ALL SELECT * FROM {sb}.{t}) x)
              + (SELECT count(*) FROM (SELECT * FROM {sb}.{t}
                                        EXCEPT ALL SELECT * FROM {sa}.{t} WHERE roll_year = {year}) y)",
        sa = a.schema,
        sb = b.schema
    ))
}

/// Three years side by side equal each year loaded alone, table by
/// table; a year's snapshot deletes and delete guard see that year only.
#[test]
fn years_side_by_side_equal_each_year_alone() {
    let d = Dir::new();
    let schema = hcad_by_year(&d, "schema");
    let years = [2021, 2022, 2023];
    let archives: Vec<PathBuf> =
        years.iter().map(|&y| year_archive(&d, &schema, y, 600)).collect();
    let all = TestDb::new();
    for (y, a) in years.iter().zip(&archives) {
        let y = y.to_string();
        assert_ok(&load(
            &all,
            &schema,
            &["--create", "--year", &y, a.to_str().unwrap()],
        ));
    }
    let tables = parents(&all);
    assert!(tables.len() > 60, "partitioned targets: {tables:?}");
    let partitions: i64 = all.one(&format!(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE c.relnamespace = '{}'::regnamespace",
        all.schema
    ));
    assert!(partitions >= 3 * 60, "{partitions} partitions");
    for (y, a) in years.iter().zip(&archives) {
        let alone = TestDb::new();
        assert_ok(&load(
            &alone,
            &schema,
            &["--create", "--year", &y.to_string(), a.to_str().unwrap()],
        ));
        let mut rows = 0i64;
        for t in &tables {
            assert_eq!(differing(&all, &alone, t, *y), 0, "{t} of {y}");
            rows += alone.one::<i64>(&format!(
                "SELECT count(*) FROM {}.{t}",
                alone.schema
            ));
        }
        assert!(rows > 600, "{y}: {rows} rows in all");
    }

    // 2023 again with half its accounts gone, --delete hard: half of
    // 2023 is more than --max-delete-ratio 0.3, though a sixth of the
    // table; the guard counts 2023's rows only and refuses.
    let half = d.join("y2023-half.zip");
    let (base, half_s) =
        (archives[2].to_str().unwrap(), half.to_str().unwrap());
    run_gen(&[
        "--schema", &schema, "--base", base, "--delete", "50%", "--out",
        half_s,
    ]);
    let before: Vec<String> =
        years.iter().map(|y| year_sum(&all, *y)).collect();
    let o = load(
        &all,
        &schema,
        &[
            "--year",
            "2023",
            "--delete",
            "hard",
            "--max-delete-ratio",
            "0.3",
            half_s,
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("real_acct_2023"), "{}", stderr(&o));
    let after: Vec<String> =
        years.iter().map(|y| year_sum(&all, *y)).collect();
    assert_eq!(before, after, "a refused load changed rows");

    // Allowed, it deletes 2023's missing accounts and nothing of 2021 or
    // 2022.
    let real_2023 = |db: &TestDb| -> i64 {
        db.one(&format!(
            "SELECT count(*) FROM {}.real_acct WHERE roll_year = 2023",
            db.schema
        ))
    };
    let had = real_2023(&all);
    assert_ok(&load(
        &all,
        &schema,
        &[
            "--year",
            "2023",
            "--delete",
            "hard",
            "--max-delete-ratio",
            "0.6",
            half_s,
        ],
    ));
    let left = real_2023(&all);
    assert!(left < had * 6 / 10 && left > had * 4 / 10, "{had} → {left}");
    for (i, y) in years.iter().take(2).enumerate() {
        assert_eq!(year_sum(&all, *y), before[i], "{y} changed");
    }
}

/// A checksum of every row of `year` in every partitioned target.
fn year_sum(db: &TestDb, year: i32) -> String {
    parents(db)
        .iter()
        .map(|t| {
            db.one::<String>(&format!(
                "SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '-')
                 FROM {}.{t} t WHERE roll_year = {year}",
                db.schema
            ))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A one-layout dataset whose year comes from the archive name.
fn roll_schema(d: &Dir) -> String {
    d.write(
        "schema/parcel.toml",
        "members = [\"roll_*.txt\"]\nformat = \"delimited\"\nheader = false\nkey = [\"acct\"]\n\
         [[field]]\nname = \"acct\"\ntype = \"int\"\n[[field]]\nname = \"value\"\ntype = \"bigint\"\n",
    );
    d.write(
        "schema/dataset.toml",
        r#"name = "roll"
[[archive]]
name = "roll_{year}.txt"
layouts = ["parcel"]
[period]
column = "tax_year"
from = "archive"
"#,
    );
    d.join("schema").display().to_string()
}

/// The year from the archive name; one load is of one year; a rerun of
/// an earlier year's unchanged input is skipped though a later year was
/// loaded since; a target not partitioned by the period is refused.
#[test]
fn archive_names_give_the_year_and_runs_are_told_apart_by_it() {
    let d = Dir::new();
    let schema = roll_schema(&d);
    let y24 = d.write("roll_2024.txt", "1\t100\n2\t200\n3\t300\n");
    let y25 = d.write("roll_2025.txt", "1\t110\n2\t200\n4\t400\n");
    let (a24, a25) = (y24.to_str().unwrap(), y25.to_str().unwrap());
    let db = TestDb::new();
    assert_ok(&load(&db, &schema, &["--create", a24]));
    assert_ok(&load(&db, &schema, &["--create", a25]));
    let rows: Vec<(i32, i32, i64)> = db
        .client()
        .query(
            &format!(
                "SELECT tax_year, acct, value FROM {}.parcel ORDER BY 1, 2",
                db.schema
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        [
            (2024, 1, 100),
            (2024, 2, 200),
            (2024, 3, 300),
            (2025, 1, 110),
            (2025, 2, 200),
            (2025, 4, 400)
        ]
    );
    // 2024 again, unchanged: skipped, though 2025 was loaded after it.
    let o = load(&db, &schema, &[a24]);
    assert_ok(&o);
    let status: String = db.one(&format!(
        "SELECT status FROM {}.runs ORDER BY id DESC LIMIT 1",
        db.meta
    ));
    assert_eq!(status, "unchanged", "{}", stdout(&o));
    let periods: Vec<Option<i32>> = db
        .client()
        .query(
            &format!("SELECT period FROM {}.runs ORDER BY id", db.meta),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(periods, [Some(2024), Some(2025), Some(2024)]);

    // Two years in one load, or a --year the name contradicts: refused.
    let o = load(&db, &schema, &[a24, a25]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("one period"), "{}", stderr(&o));
    let o = load(&db, &schema, &["--year", "2023", a24]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("archive names say 2024"), "{}", stderr(&o));

    // A target that is not partitioned by the period.
    let plain = TestDb::new();
    plain
        .client()
        .batch_execute(&format!(
            "CREATE TABLE {}.parcel (tax_year integer NOT NULL, acct integer NOT NULL, value bigint, PRIMARY KEY (tax_year, acct))",
            plain.schema
        ))
        .unwrap();
    let o = load(&plain, &schema, &[a24]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not partitioned by list on tax_year"),
        "{}",
        stderr(&o)
    );
}

/// A dataset whose year comes from `--year` needs one.
#[test]
fn a_year_dataset_without_a_year_is_refused() {
    let d = Dir::new();
    let schema = roll_schema(&d);
    let ds = d.join("schema/dataset.toml");
    let text = std::fs::read_to_string(&ds)
        .unwrap()
        .replace("from = \"archive\"", "from = \"year\"");
    std::fs::write(&ds, text).unwrap();
    let input = d.write("roll_2024.txt", "1\t100\n");
    let db = TestDb::new();
    let o = load(&db, &schema, &["--create", input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--year"), "{}", stderr(&o));
    let created: bool = db.one(&format!(
        "SELECT to_regclass('{}.parcel') IS NOT NULL",
        db.schema
    ));
    assert!(!created);
}

/// `--mode replace` of one year swaps that year's partitions only, and
/// `fwload rollback` puts the previous ones back exactly; the other years
/// are untouched throughout, and a later load of another year does not
/// stand in the rollback's way.
#[test]
fn replace_of_one_year_and_its_rollback() {
    let d = Dir::new();
    let schema = hcad_by_year(&d, "schema");
    let years = [2021, 2022, 2023];
    let archives: Vec<PathBuf> =
        years.iter().map(|&y| year_archive(&d, &schema, y, 300)).collect();
    let db = TestDb::new();
    for (y, a) in years.iter().take(2).zip(&archives) {
        let y = y.to_string();
        assert_ok(&load(
            &db,
            &schema,
            &["--create", "--year", &y, a.to_str().unwrap()],
        ));
    }
    let next = d.join("y2022-next.zip");
    let (base, next_s) =
        (archives[1].to_str().unwrap(), next.to_str().unwrap());
    run_gen(&[
        "--schema", &schema, "--base", base, "--update", "5%", "--insert",
        "5%", "--delete", "1%", "--out", next_s,
    ]);
    let before: Vec<String> =
        years.iter().map(|y| year_sum(&db, *y)).collect();
    assert_ok(&load(
        &db,
        &schema,
        &["--mode", "replace", "--year", "2022", next_s],
    ));
    assert_eq!(year_sum(&db, 2021), before[0], "2021 changed");
    assert_ne!(year_sum(&db, 2022), before[1], "2022 not replaced");
    let alone = TestDb::new();
    assert_ok(&load(&alone, &schema, &["--create", "--year", "2022", next_s]));
    for t in parents(&db) {
        assert_eq!(differing(&db, &alone, &t, 2022), 0, "{t}");
    }
    // Every partition is attached: 2021's and 2022's of every target.
    let detached: i64 = db.one(&format!(
        "SELECT count(*) FROM pg_class c WHERE c.relnamespace = '{}'::regnamespace
           AND c.relkind = 'r' AND NOT c.relispartition AND c.relname NOT LIKE '%\\_\\_fwprev'",
        db.schema
    ));
    assert_eq!(detached, 0, "tables neither partition nor kept generation");

    // 2023 loads and is replaced after 2022's replace: another year, so
    // the rollback of 2022 goes ahead without --force and leaves 2023 as
    // it is.
    assert_ok(&load(
        &db,
        &schema,
        &["--create", "--year", "2023", archives[2].to_str().unwrap()],
    ));
    let y2023 = year_sum(&db, 2023);
    assert_ok(&load(
        &db,
        &schema,
        &[
            "--mode",
            "replace",
            "--year",
            "2023",
            "--max-delete-ratio",
            "1",
            next_s,
        ],
    ));
    let y2023_replaced = year_sum(&db, 2023);
    assert_ne!(y2023_replaced, y2023);
    let rollback = |extra: &[&str]| {
        let mut a =
            vec!["rollback".to_owned(), "--dataset".into(), "hcad".into()];
        a.extend(db.args());
        a.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        fwload(&refs)
    };
    assert_ok(&rollback(&["--year", "2022"]));
    assert_eq!(year_sum(&db, 2021), before[0], "2021 changed");
    assert_eq!(year_sum(&db, 2022), before[1], "2022 not restored");
    assert_eq!(year_sum(&db, 2023), y2023_replaced, "2023 changed");
    // Without --year: the newest replace, 2023's.
    assert_ok(&rollback(&[]));
    assert_eq!(year_sum(&db, 2023), y2023, "2023 not restored");
    assert_eq!(year_sum(&db, 2022), before[1], "2022 changed");
    // The restored partitions take a snapshot as before: a merge of 2022
    // with its snapshot deletes.
    assert_ok(&load(
        &db,
        &schema,
        &[
            "--year",
            "2022",
            "--delete",
            "hard",
            "--max-delete-ratio",
            "0.5",
            next_s,
        ],
    ));
    for t in parents(&db) {
        assert_eq!(differing(&db, &alone, &t, 2022), 0, "{t} after merge");
    }
}

/// A dataset whose period is stated by a field of its records (`yr` of
/// the parcels); its lookup table of codes has no such field.
fn field_schema(d: &Dir) -> String {
    d.write(
        "fschema/parcel.toml",
        "members = [\"parcel*.txt\"]\nformat = \"delimited\"\nheader = false\nkey = [\"acct\"]\n\
         [[field]]\nname = \"acct\"\ntype = \"int\"\n[[field]]\nname = \"yr\"\ntype = \"smallint\"\n\
         [[field]]\nname = \"value\"\ntype = \"bigint\"\n",
    );
    d.write(
        "fschema/code.toml",
        "members = [\"code*.txt\"]\nformat = \"delimited\"\nheader = false\nkey = [\"cd\"]\n\
         [[field]]\nname = \"cd\"\ntype = \"varchar(4)\"\n[[field]]\nname = \"dscr\"\ntype = \"varchar(20)\"\n",
    );
    d.write(
        "fschema/dataset.toml",
        "name = \"field_roll\"\n[period]\ncolumn = \"tax_year\"\nfrom = \"field\"\nfield = \"yr\"\n",
    );
    d.join("fschema").display().to_string()
}

/// The year stated by a field of the records: every table gets it, those
/// without the field too; a record stating another year, or none, is
/// refused by name and line with nothing loaded (merge and replace
/// alike), as is a `--year` the records contradict.
#[test]
fn a_field_of_the_records_gives_the_year() {
    let d = Dir::new();
    let schema = field_schema(&d);
    let codes = d.write("code.txt", "A\tapartment\nB\tbarn\n");
    let codes = codes.to_str().unwrap();
    let db = TestDb::new();
    let years = |db: &TestDb, t: &str| -> Vec<(i32, i64)> {
        db.client()
            .query(
                &format!(
                    "SELECT tax_year, count(*) FROM {}.{t} GROUP BY 1 ORDER BY 1",
                    db.schema
                ),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let p24 = d.write("parcel24.txt", "1\t2024\t100\n2\t2024\t200\n");
    let p25 =
        d.write("parcel25.txt", "1\t2025\t110\n2\t2025\t210\n3\t2025\t300\n");
    for p in [&p24, &p25] {
        assert_ok(&load(
            &db,
            &schema,
            &["--create", p.to_str().unwrap(), codes],
        ));
    }
    assert_eq!(years(&db, "parcel"), [(2024, 2), (2025, 3)]);
    assert_eq!(years(&db, "code"), [(2024, 2), (2025, 2)]);
    assert_eq!(parents(&db), ["code", "parcel"]);

    // A record of another year, or of none, amid 2025's: refused, by
    // file and line, and nothing changes.
    let mixed = d.write(
        "parcel_mixed.txt",
        "1\t2025\t111\n2\t2025\t211\n3\t2023\t301\n",
    );
    let empty = d.write("parcel_empty.txt", "1\t2025\t112\n2\t\t212\n");
    for (input, line, what) in
        [(&mixed, 3, "yr is \"2023\""), (&empty, 2, "yr is empty")]
    {
        for mode in ["merge", "replace"] {
            let o = load(
                &db,
                &schema,
                &["--mode", mode, input.to_str().unwrap(), codes],
            );
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "{mode}: {err}");
            assert!(
                err.contains(&format!(
                    "{}:{line}:",
                    input.file_name().unwrap().to_str().unwrap()
                )) && err.contains(what)
                    && err.contains("tax_year 2025"),
                "{mode}: {err}"
            );
        }
    }
    let values: i64 = db.one(&format!(
        "SELECT sum(value)::bigint FROM {}.parcel WHERE tax_year = 2025",
        db.schema
    ));
    assert_eq!(values, 620);

    // --year the records contradict; a first record without a year.
    let o = load(&db, &schema, &["--year", "2030", p25.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("states yr 2025"), "{}", stderr(&o));
    let first_empty = d.write("parcel_first.txt", "1\t\t100\n");
    let o = load(&db, &schema, &[first_empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a year"), "{}", stderr(&o));
    // Only lookup codes, no record to read the year from: --year serves.
    assert_ok(&load(&db, &schema, &["--year", "2026", codes]));
    assert_eq!(years(&db, "code"), [(2024, 2), (2025, 2), (2026, 2)]);
}

/// A year's new partition of a parent with a trigger of its own is
/// written through it: the trigger sees every row, as it would have
/// had the partition existed before the load.
#[test]
fn a_new_year_fires_the_triggers_of_its_table() {
    let d = Dir::new();
    let schema = roll_schema(&d);
    let y24 = d.write("roll_2024.txt", "1\t100\n2\t200\n");
    let y25 = d.write("roll_2025.txt", "1\t110\n2\t200\n3\t300\n");
    let db = TestDb::new();
    assert_ok(&load(&db, &schema, &["--create", y24.to_str().unwrap()]));
    let s = &db.schema;
    db.client()
        .batch_execute(&format!(
            "CREATE TABLE {s}.audit (tax_year integer, acct integer);
             CREATE FUNCTION {s}.audit() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO {s}.audit VALUES (NEW.tax_year, NEW.acct); RETURN NEW; END $$;
             CREATE TRIGGER audit AFTER INSERT ON {s}.parcel FOR EACH ROW EXECUTE FUNCTION {s}.audit();"
        ))
        .unwrap();
    assert_ok(&load(&db, &schema, &[y25.to_str().unwrap()]));
    let audited: i64 = db
        .one(&format!("SELECT count(*) FROM {s}.audit WHERE tax_year = 2025"));
    assert_eq!(audited, 3);
}
