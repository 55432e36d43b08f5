//! Properties: any record a schema can describe round-trips through
//! format → parse; any chunk size and input path gives the same records,
//! rejects and positions; `read = valid + rejected + filtered`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fwload::decode::{FieldType, Value};
use fwload::generate::{Plan as GenPlan, sample_records};
use fwload::pgcopy::RowSink;
use fwload::pipeline::{
    ChunkResult, NoRows, Origin, PipelineOptions, Plan, run_member,
};
use fwload::schema::SchemaSet;
use fwload::source::{Body, MemberInfo, slice_body};
use proptest::prelude::*;

use crate::util::{Dir, fwload, stderr};

/// Collects decoded rows as text.
#[derive(Default)]
struct Collect {
    rows: Vec<(u64, Vec<String>)>,
    cur: Vec<String>,
    line: u64,
}

impl RowSink for Collect {
    fn start_row(&mut self, _file: u32, line: u64, _n: usize) {
        self.cur.clear();
        self.line = line;
    }
    fn value(&mut self, _ty: FieldType, v: &Value<'_>) {
        self.cur.push(v.to_string());
    }
    fn end_row(&mut self) {
        self.rows.push((self.line, std::mem::take(&mut self.cur)));
    }
    fn abort_row(&mut self) {
        self.cur.clear();
    }
}

/// Rejects (line, byte, field, code) of a member.
type Parsed1 = Vec<(u64, u64, Option<u16>, &'static str)>;

/// Rows (line, values), rejects and counts of a member.
type Parsed = (Vec<(u64, Vec<String>)>, Parsed1, fwload::reject::Counts);

fn parse(
    layout: &fwload::schema::Layout,
    body: Body<'_>,
    chunk: usize,
) -> Parsed {
    let mut rows = Vec::new();
    let (rejects, counts) =
        parse_into(layout, body, chunk, |c: &mut Collect| {
            rows.append(&mut c.rows)
        });
    (rows, rejects, counts)
}

/// Rejects and counts of a member read into sinks of type `S`, each
/// chunk's sink handed to `keep`.
fn parse_into<S: RowSink + Default + 'static>(
    layout: &fwload::schema::Layout,
    body: Body<'_>,
    chunk: usize,
    mut keep: impl FnMut(&mut S) + Send,
) -> (Parsed1, fwload::reject::Counts) {
    let plan = Arc::new(Plan::new(layout.clone()));
    let info = MemberInfo {
        input: Arc::from("mem"),
        name: "m".into(),
        declared_size: None,
        compressed_size: None,
    };
    let out = Mutex::new(Vec::new());
    let opts = PipelineOptions {
        chunk_size: chunk,
        in_flight: 3,
        max_record_bytes: 1 << 20,
    };
    let mut consume = |r: &mut ChunkResult<S>| -> Result<(), std::io::Error> {
        keep(&mut r.rows);
        out.lock().unwrap().extend(
            r.rejects
                .iter()
                .map(|j| (j.at.line, j.at.byte, j.at.field, j.reason.code())),
        );
        Ok(())
    };
    let run = run_member(
        &plan,
        &info,
        Origin::default(),
        body,
        &opts,
        Arc::new(S::default),
        &mut consume,
    )
    .unwrap();
    assert!(run.counts.balanced(), "{:?}", run.counts);
    (out.into_inner().unwrap(), run.counts)
}

#[derive(Debug, Clone)]
struct FieldSpec {
    ty: &'static str,
    extra: &'static str,
    width: usize,
}

fn field_spec() -> impl Strategy<Value = FieldSpec> {
    prop_oneof![
        Just(FieldSpec { ty: "text", extra: "", width: 30 }),
        Just(FieldSpec {
            ty: "text",
            extra: "collapse_spaces = true\nupper = true",
            width: 30
        }),
        Just(FieldSpec { ty: "varchar(12)", extra: "", width: 12 }),
        Just(FieldSpec { ty: "char(3)", extra: "", width: 3 }),
        Just(FieldSpec { ty: "smallint", extra: "", width: 6 }),
        Just(FieldSpec { ty: "int", extra: "sign = \"trailing\"", width: 11 }),
        Just(FieldSpec {
            ty: "bigint",
            extra: "sign = \"overpunch\"",
            width: 19
        }),
        Just(FieldSpec {
            ty: "numeric(14,2)",
            extra: "implied_decimals = 2",
            width: 14
        }),
        Just(FieldSpec {
            ty: "numeric(12,4)",
            extra: "implied_decimals = 4\nsign = \"overpunch\"",
            width: 12
        }),
        Just(FieldSpec { ty: "numeric(20,6)", extra: "", width: 20 }),
        Just(FieldSpec { ty: "numeric(9,6)", extra: "", width: 10 }),
        Just(FieldSpec { ty: "float8", extra: "", width: 14 }),
        Just(FieldSpec {
            ty: "boolean",
            extra: "true = [\"Y\"]\nfalse = [\"N\"]",
            width: 1
        }),
        Just(FieldSpec {
            ty: "date",
            extra: "format = \"MM/DD/YYYY\"\nnull = [\"\", \"00/00/0000\"]",
            width: 10
        }),
        Just(FieldSpec {
            ty: "date",
            extra: "format = \"YYYYMMDD\"",
            width: 8
        }),
        Just(FieldSpec {
            ty: "timestamp",
            extra: "format = \"YYYY-MM-DD HH:MI:SS.ffffff\"",
            width: 26
        }),
        Just(FieldSpec {
            ty: "time",
            extra: "format = \"HHMMSSff\"",
            width: 8
        }),
        Just(FieldSpec {
            ty: "smallint",
            extra: "null = [\"\", \"0000\"]",
            width: 4
        }),
    ]
}

fn layout_toml(
    fields: &[FieldSpec],
    fixed: bool,
    encoding: &str,
    quoting: bool,
) -> String {
    let mut t = format!("members = [\"m\"]\nencoding = \"{encoding}\"\n");
    if fixed {
        let len: usize = fields.iter().map(|f| f.width + 1).sum();
        t.push_str(&format!("format = \"fixed\"\nrecord_length = {len}\nterminator = \"crlf\"\n"));
    } else {
        t.push_str("format = \"delimited\"\ndelimiter = \"|\"\n");
        if quoting {
            t.push_str("quoting = \"standard\"\n");
        }
    }
    let mut at = 0;
    for (i, f) in fields.iter().enumerate() {
        t.push_str(&format!(
            "[[field]]\nname = \"f{i}\"\ntype = \"{}\"\n{}\n",
            f.ty, f.extra
        ));
        if fixed {
            t.push_str(&format!("start = {at}\nwidth = {}\n", f.width));
            at += f.width + 1;
        }
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn records_round_trip(
        fields in prop::collection::vec(field_spec(), 1..9),
        fixed in any::<bool>(),
        quoting in any::<bool>(),
        encoding in prop_oneof![Just("utf-8"), Just("latin-1"), Just("windows-1252")],
        rows in 1u64..300,
        seed in any::<u64>(),
        chunk in prop_oneof![Just(1usize), Just(13), Just(256), Just(4096), Just(1 << 20)],
    ) {
        let toml = layout_toml(&fields, fixed, encoding, quoting);
        let layout = SchemaSet::layout_from_str(Path::new("p.toml"), &toml).unwrap();
        let set = SchemaSet { layouts: vec![layout.clone()], dataset: None, hash: String::new() };
        let plan = GenPlan::new(&set, rows, seed, 2025, 0.0).unwrap();
        let (bytes, want) = sample_records(&plan, 0, 0..rows).unwrap();
        let (got, rejects, counts) = parse(&layout, slice_body(bytes.clone()), chunk);
        prop_assert!(rejects.is_empty(), "rejects {:?}\n{}", rejects, toml);
        prop_assert_eq!(counts.read, rows);
        prop_assert_eq!(got.len(), want.len());
        for ((line, g), w) in got.iter().zip(&want) {
            let w: Vec<String> = w.iter().map(|d| d.as_value().to_string()).collect();
            prop_assert_eq!(g, &w, "line {}\n{}", line, toml);
        }
        // Streaming the same bytes gives the same rows.
        let mut cur = std::io::Cursor::new(bytes);
        let (got2, _, _) = parse(&layout, Body::Stream(&mut cur), chunk.max(7) / 3 + 1);
        prop_assert_eq!(got, got2);
    }

    #[test]
    fn any_chunk_size_gives_the_same_records(
        lines in prop::collection::vec("[0-9A-Z \"|\\r]{0,20}", 0..60),
        quoting in any::<bool>(),
        a in 1usize..64,
        b in 64usize..5000,
    ) {
        let fields = vec![FieldSpec { ty: "text", extra: "", width: 10 }; 3];
        let toml = layout_toml(&fields, false, "utf-8", quoting);
        let layout = SchemaSet::layout_from_str(Path::new("p.toml"), &toml).unwrap();
        let data = lines.join("\n");
        let first = parse(&layout, slice_body(data.clone()), a);
        let second = parse(&layout, slice_body(data.clone()), b);
        let mut cur = std::io::Cursor::new(data.clone());
        let third = parse(&layout, Body::Stream(&mut cur), a + 3);
        prop_assert_eq!(&first.0, &second.0);
        prop_assert_eq!(&first.1, &second.1);
        prop_assert_eq!(&first.0, &third.0);
        prop_assert_eq!(&first.1, &third.1);
        prop_assert_eq!(first.2, second.2);
        prop_assert_eq!(first.2, third.2);
    }
}

/// Validates `data` (layout `toml`) without values and with a decoding
/// sink: the rejects and counts must be the same. Returns the counts.
fn validation_agrees(
    layout: &fwload::schema::Layout,
    data: Vec<u8>,
    chunk: usize,
    toml: &str,
) -> Result<fwload::reject::Counts, TestCaseError> {
    let decoded = parse(layout, slice_body(data.clone()), chunk);
    let validated =
        parse_into(layout, slice_body(data), chunk, |_: &mut NoRows| {});
    prop_assert_eq!(&decoded.1, &validated.0, "{}", toml);
    prop_assert_eq!(decoded.2, validated.1);
    Ok(decoded.2)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    /// Validation skips text fields that cannot fail on a record of plain
    /// ASCII; it must still find exactly the rejects a load finds, for
    /// records with NULs, bytes ≥ 0x80 (valid and not), over-long values,
    /// required, pattern and allowed-value fields, across block and chunk
    /// boundaries, in delimited and fixed-width layouts.
    #[test]
    fn validation_finds_what_decoding_finds(
        lines in prop::collection::vec(
            prop::collection::vec(
                prop_oneof![
                    8 => Just(b'A'), 2 => Just(b' '), 2 => Just(b'7'),
                    1 => Just(b'|'), 1 => Just(0u8), 1 => Just(0x81u8),
                    1 => Just(0xE9u8), 1 => Just(b'a'),
                ],
                0..90,
            ),
            1..40,
        ),
        fixed in any::<bool>(),
        encoding in prop_oneof![Just("utf-8"), Just("latin-1"), Just("windows-1252")],
        chunk in prop_oneof![Just(1usize), Just(64), Just(100), Just(1 << 20)],
    ) {
        let mut t = format!("members = [\"m\"]\nencoding = \"{encoding}\"\n");
        if fixed {
            t.push_str("format = \"fixed\"\nrecord_length = 60\nshorter = \"pad\"\nlonger = \"ignore\"\n");
        } else {
            t.push_str("format = \"delimited\"\ndelimiter = \"|\"\n");
        }
        let fields = [
            ("text", ""),
            ("text", "collapse_spaces = true\nupper = true"),
            ("varchar(5)", ""),
            ("char(3)", "overflow = \"truncate\""),
            ("text", "required = true"),
            ("text", "pattern = \"A*\""),
            ("varchar(4)", "allowed = [\"AAAA\", \"A\"]"),
            ("text", ""),
        ];
        for (i, (ty, extra)) in fields.iter().enumerate() {
            t.push_str(&format!("[[field]]\nname = \"f{i}\"\ntype = \"{ty}\"\n{extra}\n"));
            if fixed {
                t.push_str(&format!("start = {}\nwidth = 7\n", i * 7));
            }
        }
        let layout = SchemaSet::layout_from_str(Path::new("p.toml"), &t).unwrap();
        let mut data = Vec::new();
        for l in &lines {
            data.extend_from_slice(l);
            data.push(b'\n');
        }
        let counts = validation_agrees(&layout, data, chunk, &t)?;
        // Every line is counted: blank ones as blank, the rest valid or
        // rejected, so nothing is skipped unseen.
        let blank = lines.iter().filter(|l| l.is_empty()).count() as u64;
        prop_assert_eq!(counts.read, lines.len() as u64);
        prop_assert_eq!(counts.blank, blank);
        prop_assert_eq!(
            counts.valid + counts.rejected,
            lines.len() as u64 - blank
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    /// Validation passes the common spellings of numbers and dates with a
    /// quick test and decodes the rest; it must find exactly the rejects a
    /// load finds, and report the same first failing field, whatever mix
    /// of valid, null and invalid values a record holds.
    #[test]
    fn quick_checks_find_what_decoding_finds(
        lines in prop::collection::vec(
            prop::collection::vec(0usize..12, 7),
            1..40,
        ),
        fixed in any::<bool>(),
        chunk in prop_oneof![Just(1usize), Just(100), Just(1 << 20)],
    ) {
        let fields: [(&str, &str, &[&str]); 7] = [
            ("numeric(5,2)", "", &["123.45", "1.5", "", "1234.5", "12.345",
                "1.2.3", " 7 ", "-1.00", "abc", "0000", ".", "5."]),
            ("smallint", "null = [\"\", \"0000\"]", &["2025", "99999",
                "", "0000", "+5", "7-", "32767", "32768", "1 2", "9", "x", "0"]),
            ("date", "format = \"MM/DD/YYYY\"\nnull = [\"\", \"00/00/0000\"]",
                &["07/26/1966", "02/29/2023", "1/5/2024", "00/00/0000", "",
                "13/01/2000", "12/31/9999", "02/29/2024", "01/01/0000",
                "0l/01/2000", "04/31/2001", "11/30/2001"]),
            ("numeric(9,2)", "implied_decimals = 2",
                &["000012345", "1", "", "1234567890", "12.5", "00000000x",
                "99", "0", "-5", "123456789", "  3", "7"]),
            ("int", "required = true", &["1", "", "0", "2147483648", "12",
                "a", "3", "4", "5", "6", "7", "8"]),
            ("numeric(4,1)", "min = 0", &["1.5", "-1.5", "", "999.9",
                "1000", "0", "2", "3", "4", "5", "6", "7"]),
            ("varchar(4)", "", &["AAAA", "AAAAA", "", "\u{e9}\u{e9}", "A",
                "B", "C", "D", "E", "F", "G", "H"]),
        ];
        let mut t = String::from("members = [\"m\"]\nencoding = \"utf-8\"\n");
        if fixed {
            t.push_str("format = \"fixed\"\nrecord_length = 84\nshorter = \"pad\"\n");
        } else {
            t.push_str("format = \"delimited\"\ndelimiter = \"|\"\n");
        }
        for (i, (ty, extra, _)) in fields.iter().enumerate() {
            t.push_str(&format!("[[field]]\nname = \"f{i}\"\ntype = \"{ty}\"\n{extra}\n"));
            if fixed {
                t.push_str(&format!("start = {}\nwidth = 12\n", i * 12));
            }
        }
        let layout = SchemaSet::layout_from_str(Path::new("q.toml"), &t)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{t}")))?;
        let mut data = Vec::new();
        for l in &lines {
            for (f, &pick) in l.iter().enumerate() {
                let v = fields[f].2[pick].as_bytes();
                if fixed {
                    // Right-aligned in its 12 bytes, as numbers often are.
                    data.extend(std::iter::repeat_n(b' ', 12 - v.len()));
                    data.extend_from_slice(v);
                } else {
                    if f > 0 {
                        data.push(b'|');
                    }
                    data.extend_from_slice(v);
                }
            }
            data.push(b'\n');
        }
        let counts = validation_agrees(&layout, data, chunk, &t)?;
        prop_assert_eq!(counts.read, lines.len() as u64);
    }
}

/// The same file with every kind of bad record read through every input
/// path (mapped, streamed, zip, tar.gz, gzip) and chunk size gives the same
/// rejects at the same positions and the same counts.
#[test]
fn every_input_path_agrees() {
    let d = Dir::new();
    let schema =
        d.write("layout.toml", crate::bad_input::LAYOUT).display().to_string();
    let mut text = String::from("acct\tyr\tmailto\tland_val\tdt\r\n");
    for i in 0..400 {
        let row = match i % 9 {
            0 => format!("{i:013}\t2025\tNAME  {i}\t1.5\t01/02/2024\r\n"),
            1 => format!("{i:013}\t99999\tX\t1\t\n"),
            2 => format!("{i:013}\t2025\tX\t1\t02/30/2024\n"),
            3 => format!("{i:013}\t2025\tX\t\n"),
            4 => "\n".to_owned(),
            5 => format!("{:013}\t2025\tDUP\t1\t\r\n", i - 5),
            6 => format!("{i:013}\t0000\t200 OAK \"AVE\t12.345\t\n"),
            7 => format!("{i:013}            \t2025\tPAD\t7\t12/31/1999\n"),
            _ => format!("{i:013}\t2025\tX\t1O\t\n"),
        };
        text.push_str(&row);
    }
    text.push_str("9999999999999\t2025\tLAST\t1\t");
    let plain = d.write("real_acct.txt", &text);
    let mut gz = flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    );
    std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
    d.write("gz/real_acct.txt.gz", gz.finish().unwrap());
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    z.start_file("real_acct.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut z, text.as_bytes()).unwrap();
    d.write("a.zip", z.finish().unwrap().into_inner());
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_cksum();
    tar.append_data(&mut h, "dir/real_acct.txt", text.as_bytes()).unwrap();
    d.write("a.tar.gz", tar.into_inner().unwrap().finish().unwrap());
    let inputs: Vec<PathBuf> = vec![
        plain,
        d.join("gz/real_acct.txt.gz"),
        d.join("a.zip"),
        d.join("a.tar.gz"),
    ];
    let mut first: Option<(String, serde_json::Value)> = None;
    for input in &inputs {
        for (chunk, mmap) in [
            ("1", true),
            ("7", false),
            ("100", true),
            ("4096", true),
            ("65536", false),
        ] {
            let rej = d.join("rej.csv");
            let rep = d.join("rep.json");
            let mut args = vec![
                "validate",
                "-q",
                "--schema",
                &schema,
                "--rejects",
                rej.to_str().unwrap(),
                "--report",
                rep.to_str().unwrap(),
                "--chunk-size",
                chunk,
                input.to_str().unwrap(),
            ];
            if !mmap {
                args.push("--no-mmap");
            }
            let o = fwload(&args);
            assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
            // Drop the input and member columns, which name the path.
            let rejects: String = std::fs::read_to_string(&rej)
                .unwrap()
                .lines()
                .map(|l| {
                    l.splitn(3, ',').nth(2).unwrap_or("").to_owned() + "\n"
                })
                .collect();
            let report: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&rep).unwrap())
                    .unwrap();
            let totals = report["totals"].clone();
            match &first {
                None => first = Some((rejects, totals)),
                Some((r, t)) => {
                    assert_eq!(&rejects, r, "{input:?} chunk {chunk}");
                    assert_eq!(&totals, t, "{input:?} chunk {chunk}");
                }
            }
        }
    }
    let (rejects, totals) = first.unwrap();
    assert_eq!(totals["read"], 401);
    assert_eq!(totals["filtered"], 44);
    assert!(rejects.contains("3,85,layout,yr,overflow"), "{rejects}");
}
