//! `fwload backfill`: a range of years from a local HTTP server, oldest
//! first; stopping at the first failed year, skipping on a rerun the
//! years already loaded.

use crate::http_server::{Fault, Server};
use crate::pg::TestDb;
use crate::run::{local_dataset, publish, with_db};
use crate::util::{Dir, stderr, stdout};

/// `local_dataset` kept by period: a `roll_year` column filled from
/// `--year`.
fn dataset_by_year(d: &Dir, srv: &Server) -> String {
    let schema = local_dataset(d, srv);
    let file = format!("{schema}/dataset.toml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("\n[period]\ncolumn = \"roll_year\"\nfrom = \"year\"\n");
    std::fs::write(&file, text).unwrap();
    schema
}

fn backfill(
    db: &TestDb,
    schema: &str,
    dir: &str,
    years: &str,
) -> std::process::Output {
    let args = ["backfill", "--dataset", schema, "--years", years];
    with_db(db, &args, &["--dir", dir])
}

/// A test's database and a server publishing `years` of a copy of the
/// HCAD dataset (kept by period or not): the copy, and a download folder.
struct Served {
    d: Dir,
    db: TestDb,
    srv: Server,
    schema: String,
    dir: String,
}

impl Served {
    fn new(years: &[&str], by_period: bool) -> Served {
        let d = Dir::new();
        let srv = Server::http();
        let schema = if by_period {
            dataset_by_year(&d, &srv)
        } else {
            local_dataset(&d, &srv)
        };
        for year in years {
            publish(&d, &srv, year, &[]);
        }
        let dir = d.join("downloads").display().to_string();
        Served { d, db: TestDb::new(), srv, schema, dir }
    }

    fn backfill(&self, years: &str) -> std::process::Output {
        backfill(&self.db, &self.schema, &self.dir, years)
    }

    /// Backfills `years`, which succeeds with `summary` (its lines of
    /// years) in its summary; the output.
    fn backfill_ok(&self, years: &str, summary: &str) -> String {
        let o = self.backfill(years);
        let out = stdout(&o);
        assert!(o.status.success(), "{out}{}", stderr(&o));
        assert!(out.contains(summary), "{summary}\nnot in\n{out}");
        out
    }
}

/// Succeeded runs per year (`period` for a dataset kept by period, else
/// `year`), oldest year first.
fn succeeded(db: &TestDb, column: &str) -> Vec<(i32, i64)> {
    db.client()
        .query(
            &format!(
                "SELECT {column}, count(*) FROM {}.runs
                 WHERE status = 'succeeded' GROUP BY 1 ORDER BY 1",
                db.meta
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn backfill_loads_each_year_into_its_period() {
    let s = Served::new(&["2021", "2022", "2023"], true);
    let (d, db) = (&s.d, &s.db);
    let out = s.backfill_ok(
        "2021-2023",
        "2021   loaded\n2022   loaded\n2023   loaded\n",
    );
    for (i, year) in ["2021", "2022", "2023"].iter().enumerate() {
        assert!(out.contains(&format!("== {year} ({} of 3)", i + 1)), "{out}");
        assert!(
            d.join(&format!("downloads/{year}/Real_acct_owner.zip")).exists()
        );
    }
    let a = out.find("== 2021").unwrap();
    let b = out.find("== 2022").unwrap();
    let c = out.find("== 2023").unwrap();
    assert!(a < b && b < c, "{out}");
    assert!(
        out[a..b].contains("== validate") && out[a..b].contains("== load")
    );
    let rows: Vec<(i32, i64)> = db
        .client()
        .query(
            &format!(
                "SELECT roll_year, count(*) FROM {}.real_acct GROUP BY 1 ORDER BY 1",
                db.schema
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, [(2021, 400), (2022, 400), (2023, 400)]);
    assert_eq!(succeeded(db, "period"), [(2021, 1), (2022, 1), (2023, 1)]);
    let years: i64 = db.one(&format!(
        "SELECT count(*) FROM {}.runs WHERE status = 'succeeded' AND year = period",
        db.meta
    ));
    assert_eq!(years, 3);
}

#[test]
fn backfill_stops_at_a_failed_year_and_a_rerun_skips_the_years_done() {
    let s = Served::new(&["2021", "2022", "2023", "2024"], true);
    let (db, srv) = (&s.db, &s.srv);
    srv.fault("/cama/2023/Real_building_land.zip", Fault::Status(404, vec![]));
    let report = s.d.join("backfill.json").display().to_string();
    let args = ["backfill", "--dataset", &s.schema, "--years", "2021-2024"];
    let o = with_db(db, &args, &["--dir", &s.dir, "--report", &report]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(5), "{out}{}", stderr(&o));
    assert!(out.contains("2021   loaded\n2022   loaded\n"), "{out}");
    assert!(
        out.contains("2023   failed: fetch failed, nothing was loaded: "),
        "{out}"
    );
    assert!(out.contains("2024   not started\n"), "{out}");
    assert!(!out.contains("== 2024"), "{out}");
    assert!(
        stderr(&o).contains("/cama/2023/Real_building_land.zip"),
        "{}",
        stderr(&o)
    );
    assert_eq!(succeeded(db, "period"), [(2021, 1), (2022, 1)]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap())
            .unwrap();
    assert_eq!(json["exit"], 5);
    let outcomes: Vec<(i64, &str)> = json["years"]
        .as_array()
        .unwrap()
        .iter()
        .map(|y| (y["year"].as_i64().unwrap(), y["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (2021, "loaded"),
            (2022, "loaded"),
            (2023, "failed"),
            (2024, "not started")
        ]
    );
    assert_eq!(json["years"][2]["exit"], 5);
    assert_eq!(json["years"][0]["load"]["period"], 2021);
    assert_eq!(json["years"][0]["load"]["status"], "succeeded");
    // The server is fixed (the fault was for one request): the years done
    // are unchanged, the rest load.
    s.backfill_ok("2021-2024", "2021   unchanged, skipped\n2022   unchanged, skipped\n2023   loaded\n2024   loaded\n");
    assert_eq!(
        succeeded(db, "period"),
        [(2021, 1), (2022, 1), (2023, 1), (2024, 1)]
    );
    // A year already fetched is asked for again only conditionally.
    let asked = srv.requests(Some("/cama/2021/Real_acct_owner.zip"));
    assert!(asked.last().unwrap().status == 304, "{asked:?}");
}

/// Without a period every year loads into the same tables: a rerun skips
/// a year only while its own last load loaded the same inputs and no
/// older year was loaded since; once a year loads, every later one loads
/// again too.
#[test]
fn backfill_without_a_period_skips_years_still_in_place() {
    let s = Served::new(&["2021", "2022", "2023"], false);
    let db = &s.db;
    let o = s.backfill("2021,2023,2022");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(succeeded(db, "year"), [(2021, 1), (2022, 1), (2023, 1)]);
    s.backfill_ok("2021-2023", "2021   unchanged, skipped\n2022   unchanged, skipped\n2023   unchanged, skipped\n");
    // 2022 republished: it loads, and 2023, unchanged, loads again after
    // it so that the newest year is what the tables hold.
    publish(&s.d, &s.srv, "2022", &["--seed", "9"]);
    s.backfill_ok(
        "2021-2023",
        "2021   unchanged, skipped\n2022   loaded\n2023   loaded\n",
    );
    assert_eq!(succeeded(db, "year"), [(2021, 1), (2022, 2), (2023, 2)]);
    // A load of an older year since: the years after it are no longer in
    // place.
    let dir = format!("{}/2021", s.dir);
    let args =
        ["run", "--dataset", &s.schema, "--year", "2021", "--dir", &dir];
    let o = with_db(db, &args, &["--force-reload"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    s.backfill_ok(
        "2021-2023",
        "2021   unchanged, skipped\n2022   loaded\n2023   loaded\n",
    );
}

#[test]
fn backfill_refuses_bad_years() {
    let db = TestDb::new();
    for (years, message) in [
        ("2025-2019", "the range 2025-2019 runs backwards (write 2019-2025)"),
        ("abc", "'abc' is not a year"),
        ("2019,,2021", "'' is not a year"),
    ] {
        let o = backfill(&db, "schemas/hcad", "unused", years);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(message), "{years}: {}", stderr(&o));
        assert!(stderr(&o).contains("--years"), "{}", stderr(&o));
    }
}
