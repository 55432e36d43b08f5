//! `fwload run`: fetch from a local HTTP server, validate, load; stopping
//! before the database on a failed download or validation, skipping the
//! load when nothing changed.

use crate::http_server::{Fault, Resource, Server};
use crate::pg::TestDb;
use crate::util::{Dir, fwload, repo, stderr, stdout};

/// A copy of the HCAD schemas whose archive URLs point at `srv`.
pub(crate) fn local_dataset(d: &Dir, srv: &Server) -> String {
    let dir = d.join("schema");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(repo("schemas/hcad")).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let text = text.replace(
            "https://download.hcad.org/data/CAMA/",
            &srv.url("/cama/"),
        );
        std::fs::write(dir.join(p.file_name().unwrap()), text).unwrap();
    }
    dir.display().to_string()
}

/// Serves generated archives for `year` (every archive of the dataset).
pub(crate) fn publish(d: &Dir, srv: &Server, year: &str, extra: &[&str]) {
    let out = d.join(&format!("gen-{year}"));
    let src = repo("schemas/hcad");
    let mut args = vec![
        "gen", "--schema", &src, "--rows", "400", "--year", year, "--out",
    ];
    let o = out.display().to_string();
    args.push(&o);
    args.extend_from_slice(extra);
    let g = fwload(&args);
    assert!(g.status.success(), "{}", stderr(&g));
    for e in std::fs::read_dir(&out).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let bytes = std::fs::read(out.join(&name)).unwrap();
        srv.put(
            &format!("/cama/{year}/{name}"),
            Resource::new(bytes)
                .etag(Some(&format!("\"{year}-{name}-{}\"", extra.len()))),
        );
    }
}

fn run(
    db: &TestDb,
    schema: &str,
    dir: &str,
    extra: &[&str],
) -> std::process::Output {
    let args = ["run", "--dataset", schema, "--year", "2025", "--dir", dir];
    with_db(db, &args, extra)
}

/// `fwload ARGS -q`, downloads retried after 10 ms, targets created, in
/// `db`, then `extra`.
pub(crate) fn with_db(
    db: &TestDb,
    args: &[&str],
    extra: &[&str],
) -> std::process::Output {
    let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    a.extend(["-q", "--retry-base-ms", "10", "--create"].map(String::from));
    a.extend(db.args());
    a.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    fwload(&refs)
}

#[test]
fn fetch_validate_load_then_nothing_when_unchanged() {
    let d = Dir::new();
    let db = TestDb::new();
    let srv = Server::http();
    let schema = local_dataset(&d, &srv);
    publish(&d, &srv, "2025", &[]);
    let dir = d.join("downloads").display().to_string();
    // A transient failure on the way is retried.
    srv.fault("/cama/2025/Real_acct_owner.zip", Fault::Status(503, vec![]));
    let o = run(&db, &schema, &dir, &[]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("== fetch")
            && out.contains("== validate")
            && out.contains("== load"),
        "{out}"
    );
    assert_eq!(
        db.one::<i64>(&format!(
            "SELECT count(*) FROM {}.real_acct",
            db.schema
        )),
        400
    );
    let stages: serde_json::Value = db
        .one::<postgres::types::Json<serde_json::Value>>(&format!(
            "SELECT stages FROM {}.runs WHERE status = 'succeeded'",
            db.meta
        ))
        .0;
    assert_eq!(stages["fetch"].as_array().unwrap().len(), 8);
    assert_eq!(stages["validate"]["totals"]["rejected"], 0);
    // Again: the server answers 304, the inputs are unchanged, no load.
    let o = run(&db, &schema, &dir, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(
            "every input is unchanged since the last successful run"
        ),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("unchanged  Real_acct_owner.zip"),
        "{}",
        stdout(&o)
    );
    let last: String = db.one(&format!(
        "SELECT status FROM {}.runs ORDER BY id DESC LIMIT 1",
        db.meta
    ));
    assert_eq!(last, "unchanged");
}

#[test]
fn failed_validation_never_touches_the_targets() {
    let d = Dir::new();
    let db = TestDb::new();
    let srv = Server::http();
    let schema = local_dataset(&d, &srv);
    publish(&d, &srv, "2025", &["--faults", "2%"]);
    let dir = d.join("downloads").display().to_string();
    let o = run(&db, &schema, &dir, &[]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("validation failed"), "{}", stderr(&o));
    let exists: bool = db.one(&format!(
        "SELECT to_regclass('{}.real_acct') IS NOT NULL",
        db.schema
    ));
    assert!(!exists);
    let (status, stages): (String, postgres::types::Json<serde_json::Value>) = {
        let r = db.client().query_one(&format!("SELECT status, stages FROM {}.runs ORDER BY id DESC LIMIT 1", db.meta), &[]).unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(status, "refused");
    assert!(stages.0["validate"]["totals"]["rejected"].as_u64().unwrap() > 0);
    // With a threshold that allows them, the same inputs load.
    let o = run(&db, &schema, &dir, &["--max-reject-ratio", "0.05"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn failed_download_stops_before_the_database() {
    let d = Dir::new();
    let db = TestDb::new();
    let srv = Server::http();
    let schema = local_dataset(&d, &srv);
    publish(&d, &srv, "2025", &[]);
    srv.fault("/cama/2025/Real_building_land.zip", Fault::Status(404, vec![]));
    let dir = d.join("downloads").display().to_string();
    let o = run(&db, &schema, &dir, &[]);
    assert_eq!(o.status.code(), Some(5), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("fetch failed, nothing was loaded"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("/cama/2025/Real_building_land.zip"),
        "{}",
        stderr(&o)
    );
    let exists: bool = db.one(&format!(
        "SELECT to_regclass('{}.real_acct') IS NOT NULL",
        db.schema
    ));
    assert!(!exists);
    let status: String = db.one(&format!(
        "SELECT status FROM {}.runs ORDER BY id DESC LIMIT 1",
        db.meta
    ));
    assert_eq!(status, "failed");
}

/// `run` is strict: an archive that lacks a member its layouts expect is
/// refused before anything is loaded, unless `--no-strict`.
#[test]
fn run_refuses_an_archive_missing_a_member() {
    let d = Dir::new();
    let db = TestDb::new();
    let srv = Server::http();
    let schema = local_dataset(&d, &srv);
    publish(&d, &srv, "2025", &[]);
    let lacking = d.join("Real_acct_owner.zip");
    crate::members::rezip(
        &d.join("gen-2025/Real_acct_owner.zip"),
        &lacking,
        "deeds.txt",
        None,
    );
    srv.put(
        "/cama/2025/Real_acct_owner.zip",
        Resource::new(std::fs::read(&lacking).unwrap())
            .etag(Some("\"lacking\"")),
    );
    let dir = d.join("downloads").display().to_string();
    let o = run(&db, &schema, &dir, &[]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("layout 'deeds'"), "{}", stderr(&o));
    let exists: bool = db.one(&format!(
        "SELECT to_regclass('{}.real_acct') IS NOT NULL",
        db.schema
    ));
    assert!(!exists, "nothing may be loaded");
    let o = run(&db, &schema, &dir, &["--no-strict"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}
