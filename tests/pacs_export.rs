//! A PACS export as a whole: its control record (the header) checked
//! against the run and recorded with it, layout versions picked per member
//! (and an unknown one refused), and entity totals reconciled with the
//! entity records before the load commits.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::members::rezip;
use crate::pg::TestDb;
use crate::util::{Dir, fwload, pacs_record, repo, run_gen, stderr, stdout};

const ARCHIVE: &str = "APPRAISAL_EXPORT.zip";

/// A generated PACS export in `d`/`name`, returning the archive.
fn export(d: &Dir, name: &str, extra: &[&str]) -> PathBuf {
    export_with(d, &repo("schemas/pacs"), name, extra)
}

/// As [`export`], with the layouts in `schema`.
fn export_with(d: &Dir, schema: &str, name: &str, extra: &[&str]) -> PathBuf {
    let out = d.join(name);
    let mut args = vec![
        "--schema",
        schema,
        "--rows",
        "120",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_gen(&args);
    out.join(ARCHIVE)
}

fn member(zip: &Path, name: &str) -> Vec<u8> {
    let mut a =
        zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    let mut m = a.by_name(name).unwrap();
    let mut v = Vec::new();
    m.read_to_end(&mut v).unwrap();
    v
}

/// `zip` with member `name` replaced by `bytes`, as an archive of the
/// same name in `d`/`dir`.
fn replaced(
    d: &Dir,
    zip: &Path,
    dir: &str,
    name: &str,
    bytes: &[u8],
) -> PathBuf {
    let to = d.join(dir).join(ARCHIVE);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    rezip(zip, &to, name, Some((name, bytes)));
    to
}

fn load(db: &TestDb, schema: &str, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<String> = vec!["load".into(), "-q".into()];
    args.extend(db.args());
    args.push("--schema".into());
    args.push(schema.into());
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    fwload(&refs)
}

/// A generated export loaded with `--create`: the archive, the schema
/// directory, the database and the load's output.
fn loaded(d: &Dir) -> (PathBuf, String, TestDb, String) {
    let zip = export(d, "e", &[]);
    let schema = repo("schemas/pacs");
    let db = TestDb::new();
    let o = load(&db, &schema, &["--create", zip.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    (zip, schema, db, stdout(&o))
}

fn tables(db: &TestDb) -> i64 {
    db.one(&format!(
        "SELECT count(*) FROM pg_tables WHERE schemaname = '{}'",
        db.schema
    ))
}

#[test]
fn header_year_must_be_the_runs_year() {
    let d = Dir::new();
    let zip = export(&d, "e", &["--year", "2025"]);
    let schema = repo("schemas/pacs");
    let z = zip.to_str().unwrap();
    let ok =
        fwload(&["validate", "-q", "--schema", &schema, "--year", "2025", z]);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    assert!(
        stdout(&ok).contains("APPRAISAL_HEADER.TXT: year 2025, supplement ")
            && stdout(&ok).contains("export version 8.0.30"),
        "{}",
        stdout(&ok)
    );
    let v =
        fwload(&["validate", "-q", "--schema", &schema, "--year", "2024", z]);
    assert_eq!(v.status.code(), Some(1), "{}", stderr(&v));
    let msg = stderr(&v);
    assert!(
        msg.contains("APPRAISAL_HEADER.TXT")
            && msg.contains("states year 2025, but --year is 2024"),
        "{msg}"
    );
    let db = TestDb::new();
    let o = load(&db, &schema, &["--create", "--year", "2024", z]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("states year 2025, but --year is 2024"));
    assert_eq!(tables(&db), 0, "a refused load creates nothing");
    // The right year loads, and the run records what the header states.
    let o = load(&db, &schema, &["--create", "--year", "2025", z]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let controls: String = db.one(&format!(
        "SELECT controls::text FROM {}.runs ORDER BY id DESC LIMIT 1",
        db.meta
    ));
    assert!(
        controls.contains("\"year\": 2025")
            && controls.contains("\"export_version\": \"8.0.30\"")
            && controls.contains("\"no_values\": false"),
        "{controls}"
    );
}

#[test]
fn a_no_values_export_is_refused_over_targets_with_values() {
    let d = Dir::new();
    let (zip, schema, db, _) = loaded(&d);
    let before = db.checksum("appraisal_info", "prop_id, prop_val_yr");
    let header = pacs_record(
        "APPRAISAL_HEADER.TXT",
        &[
            ("Appraisal Year", "2025"),
            ("Supplement Number", "0001"),
            ("Export Version", "8.0.30"),
            ("Value Option", "NO VALUES"),
        ],
    );
    let mut header = header;
    header.extend_from_slice(b"\r\n");
    let nv = replaced(&d, &zip, "nv", "APPRAISAL_HEADER.TXT", &header);
    let o = load(&db, &schema, &[nv.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let msg = stderr(&o);
    assert!(
        msg.contains("carries no values") && msg.contains("appraisal_"),
        "{msg}"
    );
    assert_eq!(db.checksum("appraisal_info", "prop_id, prop_val_yr"), before);
    let status: String = db.one(&format!(
        "SELECT status FROM {}.runs ORDER BY id DESC LIMIT 1",
        db.meta
    ));
    assert_eq!(status, "refused");
    // Into an empty target it loads; --force loads it over values.
    let fresh = TestDb::new();
    let o = load(&fresh, &schema, &["--create", nv.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let o = load(&db, &schema, &["--force", nv.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let flagged: bool = db.one(&format!(
        "SELECT (controls -> 0 ->> 'no_values')::bool FROM {}.runs ORDER BY id DESC LIMIT 1",
        db.meta
    ));
    assert!(flagged);
}

/// The totals record of the first entity in `totals`, with `num_records`
/// one more than stated.
fn one_more_record(totals: &[u8]) -> (Vec<u8>, String, i64) {
    // num_records is bytes 361-375 of the 2,140-byte record (the
    // document's positions), zero-padded digits.
    let doc = crate::util::pacs_document();
    let f = crate::util::pacs_file(&doc, "APPRAISAL_ENTITY_TOTALS.TXT");
    let field = f["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "num_records")
        .expect("num_records")
        .clone();
    let (from, to) = (
        field["start"].as_u64().unwrap() as usize - 1,
        field["end"].as_u64().unwrap() as usize,
    );
    let mut out = totals.to_vec();
    let text = std::str::from_utf8(&out[from..to]).unwrap().trim().to_owned();
    let n: i64 = text.parse().unwrap_or(0);
    let bumped = format!("{:0width$}", n + 1, width = to - from);
    out[from..to].copy_from_slice(bumped.as_bytes());
    let entity = std::str::from_utf8(&out[0..12]).unwrap().trim().to_owned();
    (out, entity.trim_start_matches('0').to_owned(), n)
}

#[test]
fn entity_totals_must_reconcile_with_entity_records() {
    let d = Dir::new();
    let (zip, schema, db, out) = loaded(&d);
    assert!(
        out.contains("reconciled: appraisal_entity_totals agrees with appraisal_entity_info in all"),
        "{out}"
    );
    let before = db.checksum("appraisal_entity_totals", "entity_id, year");
    let info = db
        .checksum("appraisal_entity_info", "prop_id, prop_val_yr, entity_id");
    let (totals, entity, n) =
        one_more_record(&member(&zip, "APPRAISAL_ENTITY_TOTALS.TXT"));
    let bad =
        replaced(&d, &zip, "bad", "APPRAISAL_ENTITY_TOTALS.TXT", &totals);
    let o = load(&db, &schema, &[bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let msg = stderr(&o);
    assert!(
        msg.contains("appraisal_entity_totals does not agree with appraisal_entity_info in 1 of")
            && msg.contains(&format!("(entity_id, year) = ({entity}, 2025)"))
            && msg.contains(&format!(
                "num_records {} stated, {n} in appraisal_entity_info (records)",
                n + 1
            )),
        "{msg}"
    );
    assert_eq!(
        db.checksum("appraisal_entity_totals", "entity_id, year"),
        before
    );
    assert_eq!(
        db.checksum(
            "appraisal_entity_info",
            "prop_id, prop_val_yr, entity_id"
        ),
        info
    );
    // Into new tables (built in place) the check holds as well.
    let fresh = TestDb::new();
    let o = load(&fresh, &schema, &["--create", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(tables(&fresh), 0);
    // And in replace mode.
    let o = load(&db, &schema, &["--mode", "replace", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        db.checksum("appraisal_entity_totals", "entity_id, year"),
        before
    );
    // --force loads it, reporting the difference.
    let o = load(&db, &schema, &["--force", bad.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("does not agree"), "{}", stdout(&o));
}

/// The shipped PACS layouts with a later (made-up, test-only) version of
/// APPRAISAL_INFO.TXT: 9,922-byte records whose owner state moved to the
/// new tail.
fn with_newer_info(d: &Dir) -> String {
    let dir = d.join("schemas");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(repo("schemas/pacs")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    let info = dir.join("appraisal_info.toml");
    let mut text = std::fs::read_to_string(&info).unwrap();
    text.push_str(
        "\n[[variant]]\nversion = \"test-newer\"\nrecord_length = 9922\n[[variant.field]]\nname = \"py_addr_state\"\nfrom = 9873\nto = 9922\n",
    );
    std::fs::write(&info, text).unwrap();
    dir.to_str().unwrap().to_owned()
}

/// `zip` without the members whose key has no tax year (entities,
/// agents, code lists: one export of them is what a run of several years
/// loads, or their keys would repeat), as `d`/`dir`/APPRAISAL_EXPORT.zip.
fn years_only(d: &Dir, zip: &Path, dir: &str) -> PathBuf {
    let yearless = [
        "APPRAISAL_ENTITY.TXT",
        "APPRAISAL_ABSTRACT_SUBDV.TXT",
        "APPRAISAL_AGENT.TXT",
        "APPRAISAL_COUNTRY_CODE.TXT",
        "APPRAISAL_STATE_CODE.TXT",
        "APPRAISAL_TAX_DEFERRAL_INFO.TXT",
        "UDI_7_8.TXT",
    ];
    let mut from = zip.to_owned();
    for (i, m) in yearless.iter().enumerate() {
        let to = d.join(&format!("{dir}/{i}")).join(ARCHIVE);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        rezip(&from, &to, m, None);
        from = to;
    }
    from
}

#[test]
fn each_member_is_read_with_the_version_it_fits() {
    let d = Dir::new();
    let schema = with_newer_info(&d);
    let now = export_with(&d, &schema, "now", &["--year", "2025"]);
    let newer = export_with(
        &d,
        &schema,
        "newer",
        &["--year", "2026", "--layout-version", "test-newer"],
    );
    let older = export(
        &d,
        "older",
        &["--year", "2022", "--layout-version", "2614-byte"],
    );
    // The newer APPRAISAL_INFO.TXT records are 9,922 bytes, its owner
    // state at their tail and blank where 8.0.30 has it.
    let rec = member(&newer, "APPRAISAL_INFO.TXT");
    let first = rec.split(|&b| b == b'\n').next().unwrap();
    assert_eq!(first.strip_suffix(b"\r").unwrap_or(first).len(), 9922);
    let db = TestDb::new();
    let o = load(
        &db,
        &schema,
        &[
            "--create",
            now.to_str().unwrap(),
            years_only(&d, &newer, "newer-years").to_str().unwrap(),
            years_only(&d, &older, "older-years").to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("APPRAISAL_INFO.TXT read as version test-newer (by record length 9922)")
            && out.contains("APPRAISAL_INFO.TXT read as version 8.0.30 (by export version 8.0.30")
            && out.contains("APPRAISAL_ENTITY_INFO.TXT read as version 2614-byte (by record length 2614)"),
        "{out}"
    );
    let s = &db.schema;
    // The state loads from where each version has it.
    for year in [2025, 2026] {
        let states: i64 = db.one(&format!(
            "SELECT count(py_addr_state) FROM {s}.appraisal_info WHERE prop_val_yr = {year}"
        ));
        let rows: i64 = db.one(&format!(
            "SELECT count(*) FROM {s}.appraisal_info WHERE prop_val_yr = {year}"
        ));
        assert!(rows > 0 && states > rows / 2, "{year}: {states} of {rows}");
    }
    // The 2,614-byte entity records have nothing past their end, and the
    // fields before it.
    let (past, before): (i64, i64) = {
        let mut c = db.client();
        let r = c
            .query_one(
                &format!(
                    "SELECT count(freeze_ceiling_override) + count(jeti_amt), count(dstrs_allocation_factor)
                     FROM {s}.appraisal_entity_info WHERE prop_val_yr = 2022"
                ),
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(past, 0);
    assert!(before > 0);
    let full: i64 = db.one(&format!(
        "SELECT count(jeti_amt) FROM {s}.appraisal_entity_info WHERE prop_val_yr = 2025"
    ));
    assert!(full > 0);
    // The run records each member's version.
    let versions: i64 =
        db.one(&format!("SELECT count(version) FROM {}.run_files", db.meta));
    assert!(versions >= 38, "{versions}");
}

#[test]
fn a_member_of_an_unknown_version_is_an_error() {
    let d = Dir::new();
    let schema = with_newer_info(&d);
    let zip =
        export_with(&d, &schema, "newer", &["--layout-version", "test-newer"]);
    let shipped = repo("schemas/pacs");
    let v = fwload(&[
        "validate",
        "-q",
        "--schema",
        &shipped,
        zip.to_str().unwrap(),
    ]);
    assert_eq!(v.status.code(), Some(2), "{}{}", stdout(&v), stderr(&v));
    let msg = stderr(&v);
    assert!(
        msg.contains("APPRAISAL_INFO.TXT: records of 9922 bytes fit no known version of layout appraisal_info (8.0.30: 9247 bytes)"),
        "{msg}"
    );
    let db = TestDb::new();
    let o = load(&db, &shipped, &["--create", zip.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("fit no known version"), "{}", stderr(&o));
    assert_eq!(tables(&db), 0);
}
