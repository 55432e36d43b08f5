//! Shared helpers: temporary directories with files written from inline
//! text, and running the fwload binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::pg::TestDb;

/// A temporary directory removed when dropped.
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    /// A new empty directory.
    pub fn new() -> Dir {
        Dir { tmp: tempfile::tempdir().expect("temp dir") }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Path of `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Writes `data` to `name` (creating parent directories).
    pub fn write(&self, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, data).expect("write");
        p
    }
}

/// Runs the fwload binary with `args`.
pub fn fwload(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fwload"))
        .args(args)
        .output()
        .expect("run fwload")
}

/// Runs `fwload gen` with `args`; the test fails if it does.
pub fn run_gen(args: &[&str]) {
    let mut a = vec!["gen"];
    a.extend_from_slice(args);
    let o = fwload(&a);
    assert!(o.status.success(), "gen {args:?}: {}{}", stdout(&o), stderr(&o));
}

/// An HCAD archive of `rows` accounts, `base.zip`, and a change set of
/// it, `next.zip` (5% updated, 5% inserted, 1% deleted), both in `d`.
pub fn hcad_change_set(d: &Dir, rows: usize, seed: u64) -> (PathBuf, PathBuf) {
    let schema = repo("schemas/hcad");
    let (base, next) = (d.join("base.zip"), d.join("next.zip"));
    let (b, n) = (base.to_str().unwrap(), next.to_str().unwrap());
    let (rows, seed) = (rows.to_string(), seed.to_string());
    run_gen(&[
        "--schema", &schema, "--rows", &rows, "--seed", &seed, "--out", b,
    ]);
    run_gen(&[
        "--schema", &schema, "--base", b, "--update", "5%", "--insert", "5%",
        "--delete", "1%", "--out", n,
    ]);
    (base, next)
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The root of the repository (for the shipped schemas).
pub fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// Every valid record of every layout in `inputs`, decoded: layout name →
/// key text (`a|b`) → the row's values as text, joined by `|`. Records the
/// parser rejects are left out. Built from the library's own parts, so it
/// reads exactly what validate and load read.
pub fn decoded_rows(
    set: &fwload::schema::SchemaSet,
    inputs: &[PathBuf],
) -> std::collections::BTreeMap<
    String,
    std::collections::BTreeMap<String, String>,
> {
    use fwload::pipeline::{ChunkReader, key_bytes};
    use fwload::record::{Fields, Slicer};
    use fwload::split::{Framing, Records};
    let mut out = std::collections::BTreeMap::new();
    for input in inputs {
        fwload::source::read_input::<fwload::source::SourceError>(
            input,
            &fwload::source::SourceOptions::default(),
            &|m| !set.matching(m).is_empty(),
            &mut |info, body| {
                let layout = set.matching(&info.name)[0];
                let rows: &mut std::collections::BTreeMap<String, String> =
                    out.entry(layout.name.clone()).or_default();
                let framing = Framing::of(layout);
                let mut r = ChunkReader::new(body, framing, 1 << 20, 1 << 24);
                // A versioned layout reads the member as the version its
                // first record fits.
                let versioned;
                let layout = if layout.versions.is_empty() {
                    layout
                } else {
                    let len = r.peek_record_len().unwrap();
                    let v = layout.pick_version(len, None).unwrap();
                    versioned = layout.with_version(&layout.versions[v.index]);
                    &versioned
                };
                let slicer = Slicer::new(layout);
                if let fwload::schema::Format::Delimited(d) = &layout.format
                    && d.header
                {
                    r.take_header().unwrap();
                }
                let mut fields = Fields::default();
                let mut scratch = Vec::new();
                while let Some(c) = r.next_chunk().unwrap() {
                    'rec: for rec in Records::new(&c.data, framing) {
                        if rec.bytes.is_empty()
                            || slicer.slice(rec.bytes, &mut fields).is_err()
                        {
                            continue;
                        }
                        let mut key = Vec::new();
                        let mut key_text = Vec::new();
                        let mut row = Vec::new();
                        for (i, f) in layout.fields.iter().enumerate() {
                            match f
                                .decoder
                                .decode(fields.get(rec.bytes, i), &mut scratch)
                            {
                                Ok(v) => {
                                    if layout.key.contains(&i) {
                                        key_bytes(&v, &mut key, &mut key_text);
                                    }
                                    row.push(v.to_string());
                                }
                                Err(_) => continue 'rec,
                            }
                        }
                        let k = String::from_utf8(key_text).unwrap();
                        // First record of a key wins, as the default policy.
                        rows.entry(k).or_insert_with(|| row.join("|"));
                    }
                }
                Ok(Some(r.finish().0))
            },
        )
        .unwrap();
    }
    out
}

/// Runs the fwload binary with `args`, killing it and failing the test
/// when it has not finished within `secs` seconds (for inputs that could
/// make it wait forever).
pub fn fwload_within(args: &[&str], secs: u64) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_fwload"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run fwload");
    wait_within(child, secs)
}

/// The output of `child` (started with piped output), killing it and
/// failing the test when it has not finished within `secs` seconds.
pub fn wait_within(mut child: std::process::Child, secs: u64) -> Output {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().expect("wait for fwload").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().expect("reap fwload");
            panic!(
                "fwload still running after {secs} s, killed:\n{}{}",
                stdout(&o),
                stderr(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("fwload output")
}

/// The PACS layout document's field table ("Appraisal Export Layout
/// 8.0.30": 19 files, each with its record length and fields at 1-based
/// inclusive positions), kept with the tests.
pub fn pacs_document() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pacs-export-layout-8.0.30.json");
    let text = std::fs::read_to_string(&path).expect("layout document");
    serde_json::from_str(&text).expect("layout document JSON")
}

/// The document's entry for `file` (`APPRAISAL_INFO.TXT`, or the short
/// name for a file the document names no other way).
///
/// # Panics
/// A file the document does not list.
pub fn pacs_file(doc: &serde_json::Value, file: &str) -> serde_json::Value {
    doc["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["file"] == file || f["short_name"] == file)
        .unwrap_or_else(|| panic!("the document lists no {file}"))
        .clone()
}

/// A record of the document's `file`: its record length in spaces, each
/// `(field, value)` written from the field's first byte as the document
/// positions it.
///
/// # Panics
/// An unknown file or field, or a value wider than its field.
pub fn pacs_record(file: &str, values: &[(&str, &str)]) -> Vec<u8> {
    let f = pacs_file(&pacs_document(), file);
    let len = f["record_length"].as_u64().expect("record_length") as usize;
    let mut r = vec![b' '; len];
    for (name, v) in values {
        let field = f["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|x| x["name"] == *name)
            .unwrap_or_else(|| panic!("{file} has no field {name}"));
        let from = field["start"].as_u64().unwrap() as usize - 1;
        let to = field["end"].as_u64().unwrap() as usize;
        assert!(
            v.len() <= to - from,
            "{name}: {v:?} wider than {}",
            to - from
        );
        r[from..from + v.len()].copy_from_slice(v.as_bytes());
    }
    r
}

/// `fwload load -q -s schema` with the database arguments `db` (see
/// `TestDb::args`) and `args`.
pub fn load_quiet(db: &[String], schema: &str, args: &[&str]) -> Output {
    let mut a: Vec<String> =
        vec!["load".into(), "-q".into(), "-s".into(), schema.into()];
    a.extend_from_slice(db);
    a.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    fwload(&refs)
}

/// Fails the test, showing its output, unless `o` succeeded.
pub fn assert_ok(o: &Output) {
    assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
}

/// A copy of the HCAD schemas, in `d`'s directory `name`, kept by
/// `roll_year` taken from `--year`.
pub fn hcad_by_year(d: &Dir, name: &str) -> String {
    let dir = d.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(repo("schemas/hcad")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    let ds = dir.join("dataset.toml");
    let mut text = std::fs::read_to_string(&ds).unwrap();
    text.push_str("\n[period]\ncolumn = \"roll_year\"\nfrom = \"year\"\n");
    std::fs::write(&ds, text).unwrap();
    dir.display().to_string()
}

/// How a `fwload load` ended: exit code, output, and its `--report`.
pub struct Outcome {
    pub code: i32,
    pub out: String,
    pub err: String,
    pub report: serde_json::Value,
}

/// `fwload load -q --report …` into `db` with `args`, its report in `d`.
pub fn load(db: &TestDb, d: &Dir, args: &[&str]) -> Outcome {
    let rep = d.join("load-report.json");
    let _ = std::fs::remove_file(&rep);
    let mut a: Vec<String> = vec![
        "load".into(),
        "-q".into(),
        "--report".into(),
        rep.display().to_string(),
    ];
    a.extend(db.args());
    a.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = fwload(&refs);
    let report = std::fs::read_to_string(&rep)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    Outcome {
        code: o.status.code().unwrap_or(-1),
        out: stdout(&o),
        err: stderr(&o),
        report,
    }
}

/// The report's outcome of `layout`'s table.
pub fn table<'a>(
    r: &'a serde_json::Value,
    layout: &str,
) -> &'a serde_json::Value {
    r["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["layout"] == layout)
        .unwrap_or_else(|| panic!("no {layout} in {r}"))
}

/// A count of a report.
pub fn n(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}
