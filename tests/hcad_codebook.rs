//! The shipped HCAD layouts against the county's codebook
//! (`tests/data/hcad-pdata-codebook.json`, from pdataCodebook.pdf): every
//! documented file has a layout in the archive the codebook names, with its
//! columns in order, their nullability and sizes; code columns reference
//! their code tables; and a generated full set validates and loads.

use std::path::PathBuf;

use fwload::decode::FieldType;
use fwload::schema::{Layout, OrphanPolicy, SchemaSet};
use serde_json::Value;

use crate::pg::TestDb;
use crate::util::{Dir, fwload, repo, run_gen, stderr, stdout};

fn codebook() -> Value {
    let text =
        std::fs::read_to_string(repo("tests/data/hcad-pdata-codebook.json"))
            .expect("tests/data/hcad-pdata-codebook.json");
    serde_json::from_str(&text).expect("codebook JSON")
}

fn hcad() -> SchemaSet {
    SchemaSet::load(&[PathBuf::from(repo("schemas/hcad"))]).unwrap()
}

fn files(cb: &Value) -> &[Value] {
    cb["files"].as_array().expect("files")
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn columns(file: &Value) -> &[Value] {
    file["columns"].as_array().map_or(&[], Vec::as_slice)
}

/// The one layout reading `file` (a codebook file entry).
fn layout_of<'a>(set: &'a SchemaSet, file: &Value) -> &'a Layout {
    let name = s(&file["file"]);
    let found = set.matching(name);
    assert_eq!(found.len(), 1, "{name}: layouts matching it");
    found[0]
}

/// Whether `ty` holds every value of the codebook's `kind(size)` text:
/// sized text must be the codebook's own; a number or date must take as
/// many characters as the codebook allows.
fn holds(ty: FieldType, kind: &str, size: u32) -> Result<(), String> {
    let ok = match ty {
        FieldType::Varchar(n) => kind == "varchar" && n == size,
        FieldType::Char(n) => kind == "char" && n == size,
        FieldType::Smallint => size <= 4,
        FieldType::Int => size <= 9,
        FieldType::Bigint => size <= 18,
        FieldType::Numeric(Some((p, sc))) => u32::from(p - sc) >= size,
        FieldType::Numeric(None) => true,
        // MM/DD/YYYY takes 10 characters.
        FieldType::Date => size >= 10,
        _ => false,
    };
    if ok { Ok(()) } else { Err(format!("{ty:?} for {kind}({size})")) }
}

#[test]
fn every_codebook_file_has_a_layout_in_its_archive() {
    let (cb, set) = (codebook(), hcad());
    let ds = set.dataset.as_ref().expect("dataset.toml");
    assert_eq!(files(&cb).len(), 68);
    let mut layouts = Vec::new();
    for f in files(&cb) {
        let name = s(&f["file"]);
        if columns(f).is_empty() {
            // t_pp_c.txt: listed, no columns documented, so no layout.
            assert!(set.matching(name).is_empty(), "{name} has a layout");
            continue;
        }
        let l = layout_of(&set, f);
        if let Some(alias) = f["listed_in_archive_as"].as_str() {
            assert_eq!(set.matching(alias).len(), 1, "{alias}");
            assert_eq!(set.matching(alias)[0].name, l.name, "{alias}");
        }
        let archive = s(&f["archive"]);
        let holders: Vec<&str> = ds
            .archives
            .iter()
            .filter(|a| a.layouts.contains(&l.name))
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(holders, [archive], "{name} ({}): archives", l.name);
        layouts.push(l.name.clone());
    }
    // Nothing shipped that the codebook does not document.
    layouts.sort_unstable();
    let mut all: Vec<String> =
        set.layouts.iter().map(|l| l.name.clone()).collect();
    all.sort_unstable();
    assert_eq!(layouts, all);
    // Code tables load before the accounts, the accounts before the rest.
    let pos = |n: &str| ds.load_order.iter().position(|x| x == n).unwrap();
    for f in files(&cb).iter().filter(|f| f["kind"] == "code_table") {
        let l = layout_of(&set, f);
        assert!(pos(&l.name) < pos("real_acct"), "{}", l.name);
        assert!(pos(&l.name) < pos("t_business_acct"), "{}", l.name);
    }
    assert_eq!(ds.load_order.len(), set.layouts.len());
}

#[test]
fn layouts_have_the_codebook_columns_sizes_and_nullability() {
    let (cb, set) = (codebook(), hcad());
    let mut problems = Vec::new();
    for f in files(&cb).iter().filter(|f| !columns(f).is_empty()) {
        let l = layout_of(&set, f);
        let want: Vec<&str> =
            columns(f).iter().map(|c| s(&c["name"])).collect();
        let headers: Vec<&str> =
            l.fields.iter().map(|x| x.header.as_str()).collect();
        assert_eq!(headers, want, "{}: headers", l.name);
        let names: Vec<&str> =
            l.fields.iter().map(|x| x.name.as_str()).collect();
        let lower: Vec<String> =
            want.iter().map(|c| c.to_ascii_lowercase()).collect();
        assert_eq!(names, lower, "{}: column names", l.name);
        for (i, (c, x)) in columns(f).iter().zip(&l.fields).enumerate() {
            let at = format!("{}.{}", l.name, x.name);
            let size = c["size"].as_u64().unwrap() as u32;
            if let Err(e) = holds(x.decoder.ty, s(&c["type"]), size) {
                problems.push(format!("{at}: type {e}"));
            }
            // Key columns are never NULL, whatever the codebook says.
            let required = c["nullable"] == false || l.key.contains(&i);
            if x.decoder.required != required {
                problems.push(format!(
                    "{at}: required = {}, codebook nullable = {}",
                    x.decoder.required, c["nullable"]
                ));
            }
        }
        if let Some(pk) = f["primary_key"].as_array() {
            let pk: Vec<String> =
                pk.iter().map(|k| s(k).to_ascii_lowercase()).collect();
            let key: Vec<&str> =
                l.key.iter().map(|&k| l.fields[k].name.as_str()).collect();
            // ownership_history: the codebook's key names a column (ln_num)
            // the file does not have.
            if pk.iter().all(|k| names.contains(&k.as_str())) {
                assert_eq!(key, pk, "{}: key", l.name);
            }
        }
        assert!(!l.key.is_empty(), "{}: no key", l.name);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn code_columns_and_children_reference_their_tables() {
    let (cb, set) = (codebook(), hcad());
    let ds = set.dataset.as_ref().unwrap();
    let refs = |from: &str, col: &str, to: &str| {
        ds.references
            .iter()
            .filter(|r| r.from == from && r.to == to && r.columns == [col])
            .collect::<Vec<_>>()
    };
    for f in files(&cb).iter().filter(|f| !columns(f).is_empty()) {
        let l = layout_of(&set, f);
        for c in columns(f) {
            let Some(table) = c["code_table"].as_str() else { continue };
            let code = set.matching(table)[0];
            let col = s(&c["name"]).to_ascii_lowercase();
            let r = refs(&l.name, &col, &code.name);
            assert_eq!(r.len(), 1, "{}.{col} → {}", l.name, code.name);
            assert_eq!(r[0].on_orphan, OrphanPolicy::Keep, "{}.{col}", l.name);
            let to = &r[0].to_columns[0];
            let want = c["code_column"].as_str().map(str::to_ascii_lowercase);
            if let Some(w) = want {
                assert_eq!(to, &w, "{}.{col}: code column", l.name);
            }
        }
        // Every record of a data file other than an account belongs to
        // an account.
        let is_account =
            ["real_acct", "t_business_acct"].contains(&l.name.as_str());
        if f["kind"] == "data"
            && !is_account
            && l.field_index("acct").is_some()
        {
            let n = refs(&l.name, "acct", "real_acct").len()
                + refs(&l.name, "acct", "t_business_acct").len();
            assert_eq!(n, 1, "{}.acct → an account", l.name);
        }
    }
}

#[test]
fn generated_full_set_validates_and_loads() {
    let schema = repo("schemas/hcad");
    let d = Dir::new();
    let out = d.join("hcad");
    run_gen(&[
        "--schema",
        &schema,
        "--rows",
        "300",
        "--out",
        out.to_str().unwrap(),
    ]);
    let v = fwload(&[
        "validate",
        "-q",
        "--schema",
        &schema,
        out.to_str().unwrap(),
    ]);
    assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));
    let db = TestDb::new();
    let mut args: Vec<String> = vec!["load".into(), "-q".into()];
    args.extend(db.args());
    for a in ["--schema", &schema, "--create", out.to_str().unwrap()] {
        args.push(a.into());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = fwload(&refs);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let set = hcad();
    assert_eq!(set.layouts.len(), 67);
    let mut empty = Vec::new();
    for l in &set.layouts {
        let rows: i64 =
            db.one(&format!("SELECT count(*) FROM {}.{}", db.schema, l.table));
        if rows == 0 {
            empty.push(l.name.clone());
        }
    }
    assert!(empty.is_empty(), "tables without rows: {empty:?}");
    // Generated codes exist in their code tables.
    let missing: i64 = db.one(&format!(
        "SELECT count(*) FROM {0}.real_acct a WHERE NOT EXISTS (SELECT FROM {0}.desc_r_01_state_class c WHERE c.code = a.state_class)",
        db.schema
    ));
    assert_eq!(missing, 0, "state classes missing from desc_r_01_state_class");
}

/// Loads a generated full HCAD set into `db`; returns the load's JSON
/// report.
fn load_generated(db: &TestDb, d: &Dir, rows: &str, seed: &str) -> Value {
    let schema = repo("schemas/hcad");
    let out = d.join("hcad");
    let out = out.to_str().unwrap();
    run_gen(&[
        "--schema", &schema, "--rows", rows, "--seed", seed, "--out", out,
    ]);
    let report = d.join("report.json");
    let mut args: Vec<String> = vec!["load".into(), "-q".into()];
    args.extend(db.args());
    for a in ["--schema", &schema, "--create", "--report"] {
        args.push(a.into());
    }
    args.push(report.to_str().unwrap().into());
    args.push(out.into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = fwload(&refs);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let text = std::fs::read_to_string(&report).expect("load report");
    serde_json::from_str(&text).expect("report JSON")
}

#[test]
fn generated_codes_exist_in_every_referenced_table() {
    let set = hcad();
    let ds = set.dataset.as_ref().unwrap();
    let (db, d) = (TestDb::new(), Dir::new());
    let report = load_generated(&db, &d, "200", "11");
    // Orphans under on_orphan = "reject" leave the load: the report
    // counts them per table.
    let mut problems = Vec::new();
    for t in report["tables"].as_array().expect("tables") {
        if t["orphans"].as_u64() != Some(0) {
            problems
                .push(format!("{}: {} orphans", t["layout"], t["orphans"]));
        }
    }
    // Orphans kept in the target: every reference, asked of the data.
    let table = |name: &str| {
        &set.layouts.iter().find(|l| l.name == name).expect(name).table
    };
    for r in &ds.references {
        let on: Vec<String> = r
            .columns
            .iter()
            .zip(&r.to_columns)
            .map(|(c, p)| format!("p.{p} = c.{c}"))
            .collect();
        let set_cols: Vec<String> =
            r.columns.iter().map(|c| format!("c.{c} IS NOT NULL")).collect();
        let n: i64 = db.one(&format!(
            "SELECT count(*) FROM {s}.{} c WHERE {} AND NOT EXISTS (SELECT FROM {s}.{} p WHERE {})",
            table(&r.from),
            set_cols.join(" AND "),
            table(&r.to),
            on.join(" AND "),
            s = db.schema,
        ));
        if n != 0 {
            problems.push(format!(
                "{}.{:?} → {}.{:?}: {n} orphans",
                r.from, r.columns, r.to, r.to_columns
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
