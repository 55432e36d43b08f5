//! The members of a dataset's archives: a member no layout matches and a
//! member an archive should hold and lacks are reported, and `--strict`
//! (the default of `run`) refuses either.

use std::io::{Read, Write};
use std::path::Path;

use crate::util::{Dir, fwload, repo, run_gen, stderr, stdout};

/// Copies the members of the zip `from` into a new zip `to`, leaving out
/// `drop` and adding `extra` (name, bytes).
pub fn rezip(
    from: &Path,
    to: &Path,
    drop: &str,
    extra: Option<(&str, &[u8])>,
) {
    let mut src =
        zip::ZipArchive::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut out = zip::ZipWriter::new(std::fs::File::create(to).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    for i in 0..src.len() {
        let mut m = src.by_index(i).unwrap();
        let name = m.name().unwrap().to_string();
        if name == drop {
            continue;
        }
        let mut bytes = Vec::new();
        m.read_to_end(&mut bytes).unwrap();
        out.start_file(name, opts).unwrap();
        out.write_all(&bytes).unwrap();
    }
    if let Some((name, bytes)) = extra {
        out.start_file(name, opts).unwrap();
        out.write_all(bytes).unwrap();
    }
    out.finish().unwrap();
}

fn validate(input: &Path, strict: bool) -> (i32, String) {
    validate_with(input, if strict { &["--strict"] } else { &[] })
}

/// `fwload validate` of `input` with the HCAD schemas and `extra`: the
/// exit code and the output.
fn validate_with(input: &Path, extra: &[&str]) -> (i32, String) {
    let schema = repo("schemas/hcad");
    let mut a = vec!["validate", "-q", "--schema", &schema];
    a.extend_from_slice(extra);
    a.push(input.to_str().unwrap());
    let o = fwload(&a);
    (o.status.code().unwrap_or(-1), format!("{}{}", stdout(&o), stderr(&o)))
}

/// Every HCAD table generated into one zip in `d`.
fn every_table(d: &Dir) -> std::path::PathBuf {
    let all = d.join("all.zip");
    run_gen(&[
        "--schema",
        &repo("schemas/hcad"),
        "--rows",
        "50",
        "--seed",
        "3",
        "--out",
        all.to_str().unwrap(),
    ]);
    all
}

#[test]
fn strict_refuses_missing_and_unmatched_members() {
    let d = Dir::new();
    let all = every_table(&d);
    // Named as the dataset's archive of accounts and owners.
    let whole = d.join("whole/Real_acct_owner.zip");
    let lacking = d.join("lacking/Real_acct_owner.zip");
    let extra = d.join("extra/Real_acct_owner.zip");
    for p in [&whole, &lacking, &extra] {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    }
    rezip(&all, &whole, "", None);
    rezip(&all, &lacking, "deeds.txt", None);
    rezip(&all, &extra, "", Some(("notes.txt", b"hello\n")));

    assert_eq!(validate(&whole, true).0, 0);
    // Without --strict: a note, exit 0.
    let (code, out) = validate(&lacking, false);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "(archive Real_acct_owner.zip) has no member for layout 'deeds'"
        ),
        "{out}"
    );
    let (code, out) = validate(&lacking, true);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--strict"), "{out}");
    assert!(out.contains("layout 'deeds'"), "{out}");
    let (code, out) = validate(&extra, true);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("notes.txt matches no layout"), "{out}");
    // An input that is no archive of the dataset lacks nothing.
    let (code, out) = validate(&all, true);
    assert_eq!(code, 0, "{out}");

    // load --strict refuses before it connects (this URL reaches no
    // server: a connection attempt would exit 4).
    let o = fwload(&[
        "load",
        "-q",
        "--strict",
        "--schema",
        &repo("schemas/hcad"),
        "--database-url",
        "postgres://nobody@127.0.0.1:1/none",
        lacking.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("layout 'deeds'"), "{}", stderr(&o));
}

fn validate_year(input: &Path, year: Option<i32>) -> (i32, String) {
    let y = year.map(|y| y.to_string());
    let mut a = vec!["--strict"];
    if let Some(y) = &y {
        a.extend(["--year", y]);
    }
    validate_with(input, &a)
}

#[test]
fn members_of_some_years_only_are_expected_in_those_years() {
    let d = Dir::new();
    let all = every_table(&d);
    // real_mnrl.txt exists from 2024 on.
    let owner = d.join("owner/Real_acct_owner.zip");
    std::fs::create_dir_all(owner.parent().unwrap()).unwrap();
    rezip(&all, &owner, "real_mnrl.txt", None);
    let (code, out) = validate_year(&owner, Some(2023));
    assert_eq!(code, 0, "{out}");
    let (code, out) = validate_year(&owner, Some(2024));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("layout 'real_mnrl'"), "{out}");
    // Without a year, a member of some years only is not expected.
    let (code, out) = validate_year(&owner, None);
    assert_eq!(code, 0, "{out}");
    // extra_features_detail2.txt only in the current year's export.
    let land = d.join("land/Real_building_land.zip");
    std::fs::create_dir_all(land.parent().unwrap()).unwrap();
    rezip(&all, &land, "extra_features_detail2.txt", None);
    let now = fwload::schema::this_year();
    let (code, out) = validate_year(&land, Some(now - 1));
    assert_eq!(code, 0, "{out}");
    let (code, out) = validate_year(&land, Some(now));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("layout 'extra_features_detail2'"), "{out}");
}
