//! Bad input: every case gives a clear message with its position, no
//! panic, and counts that still add up.

use std::io::Write;

use crate::util::{Dir, fwload, stderr, stdout};

/// A small HCAD-like layout used by most cases.
pub const LAYOUT: &str = r#"
members = ["*.txt"]
format = "delimited"
header = true
encoding = "windows-1252"
key = ["acct"]

[[field]]
name = "acct"
type = "varchar(13)"

[[field]]
name = "yr"
type = "smallint"
null = ["", "0000"]

[[field]]
name = "mailto"
type = "text"
collapse_spaces = true

[[field]]
name = "land_val"
type = "numeric(14,2)"

[[field]]
name = "dt"
type = "date"
format = "MM/DD/YYYY"
"#;

const GOOD: &str = "acct\tyr\tmailto\tland_val\tdt\n\
0660640130020\t2025\tMILLER NORMAN B  & LESLIE B\t1234.50\t01/02/2024\n\
1161530010003            \t0000\t200 OAK \"AVE\t12\t\n";

fn setup() -> (Dir, String) {
    let d = Dir::new();
    let schema = d.write("layout.toml", LAYOUT).display().to_string();
    (d, schema)
}

/// Runs validate with a JSON report and returns (exit code, stdout,
/// stderr, report).
fn validate(
    d: &Dir,
    schema: &str,
    input: &str,
    extra: &[&str],
) -> (i32, String, String, serde_json::Value) {
    let report = d.join("report.json");
    let _ = std::fs::remove_file(&report);
    let mut args = vec![
        "validate",
        "-q",
        "--schema",
        schema,
        "--report",
        report.to_str().unwrap(),
        input,
    ];
    args.extend_from_slice(extra);
    let o = fwload(&args);
    let json = std::fs::read_to_string(&report)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o), json)
}

fn assert_balanced(report: &serde_json::Value) {
    for m in report["members"].as_array().expect("members") {
        let c = &m["counts"];
        let n = |k: &str| c[k].as_u64().unwrap();
        assert_eq!(
            n("read"),
            n("valid") + n("rejected") + n("filtered"),
            "counts add up: {c}"
        );
    }
}

fn zip_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in members {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn good_file_has_no_rejects() {
    let (d, schema) = setup();
    let f = d.write("real_acct.txt", GOOD);
    let (code, out, err, rep) =
        validate(&d, &schema, f.to_str().unwrap(), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(rep["totals"]["valid"], 2);
    assert_balanced(&rep);
}

#[test]
fn truncated_zip() {
    let (d, schema) = setup();
    let z = zip_bytes(&[("real_acct.txt", GOOD.as_bytes())]);
    let f = d.write("cut.zip", &z[..z.len() * 6 / 10]);
    let (code, _, err, _) = validate(&d, &schema, f.to_str().unwrap(), &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cut.zip: not a readable zip archive"), "{err}");
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn zip_crc_failure() {
    let (d, schema) = setup();
    let data = GOOD.repeat(200);
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored);
    w.start_file("real_acct.txt", opts).unwrap();
    w.write_all(data.as_bytes()).unwrap();
    let mut z = w.finish().unwrap().into_inner();
    // Change one stored byte of a value: the data still parses, the CRC
    // no longer matches.
    let at = z.windows(7).position(|w| w == b"MILLER ").unwrap() + 1000;
    let at = at + z[at..].iter().position(|&b| b == b'M').unwrap();
    z[at] = b'N';
    let f = d.write("crc.zip", &z);
    let (code, _, err, _) = validate(&d, &schema, f.to_str().unwrap(), &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("crc.zip:real_acct.txt: checksum mismatch"), "{err}");
}

#[test]
fn gzip_crc_failure() {
    let (d, schema) = setup();
    let mut gz =
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(GOOD.as_bytes()).unwrap();
    let mut data = gz.finish().unwrap();
    let n = data.len();
    data[n - 8] ^= 0xFF; // the CRC-32 in the gzip trailer
    let f = d.write("real_acct.txt.gz", &data);
    let (code, _, err, _) = validate(&d, &schema, f.to_str().unwrap(), &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("real_acct.txt.gz:real_acct.txt:"), "{err}");
    assert!(err.contains("corrupt") || err.contains("checksum"), "{err}");
}

#[test]
fn member_declared_larger_than_it_is() {
    let (d, schema) = setup();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored);
    w.start_file("real_acct.txt", opts).unwrap();
    w.write_all(GOOD.as_bytes()).unwrap();
    let mut z = w.finish().unwrap().into_inner();
    // Patch the uncompressed size in the local header (offset 22) and in
    // the central directory entry (offset 24 after its signature).
    let real = GOOD.len() as u32;
    let bigger = (real + 1000).to_le_bytes();
    z[22..26].copy_from_slice(&bigger);
    let cd = z.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
    z[cd + 24..cd + 28].copy_from_slice(&bigger);
    let f = d.write("big.zip", &z);
    let (code, _, err, _) = validate(&d, &schema, f.to_str().unwrap(), &[]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!(
            "big.zip:real_acct.txt: member declares {} bytes but holds {real}",
            real + 1000
        )),
        "{err}"
    );
}

#[test]
fn decompression_bomb() {
    let (d, schema) = setup();
    let out = d.join("bomb.zip");
    let o = fwload(&[
        "gen",
        "--schema",
        &schema,
        "--rows",
        "10",
        "--corrupt",
        "bomb",
        "--bomb-bytes",
        "150000000",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (code, _, err, _) = validate(&d, &schema, out.to_str().unwrap(), &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("a decompression bomb?"), "{err}");
    assert!(err.contains("bomb.zip:layout.txt"), "{err}");
}

#[test]
fn member_name_leaving_the_archive() {
    let (d, schema) = setup();
    let z = zip_bytes(&[("../evil.txt", GOOD.as_bytes())]);
    let f = d.write("evil.zip", &z);
    let (code, _, err, _) = validate(&d, &schema, f.to_str().unwrap(), &[]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("evil.zip:../evil.txt: member name leaves the archive"),
        "{err}"
    );
}

#[test]
fn empty_file() {
    let (d, schema) = setup();
    let f = d.write("real_acct.txt", "");
    let (code, _, err, _) = validate(&d, &schema, f.to_str().unwrap(), &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("real_acct.txt: input is empty (0 bytes)"), "{err}");
}

#[test]
fn no_final_newline_and_mixed_line_endings() {
    let (d, schema) = setup();
    let text = "acct\tyr\tmailto\tland_val\tdt\r\n1\t2025\tA\t1\t\r\n2\t2025\tB\t1\t\n3\t2025\tC\t1\t";
    let f = d.write("real_acct.txt", text);
    let (code, out, err, rep) =
        validate(&d, &schema, f.to_str().unwrap(), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(rep["totals"]["valid"], 3);
    // Declared CRLF: the LF line is a reject naming its line.
    let crlf = LAYOUT
        .replace("header = true", "header = true\nterminator = \"crlf\"");
    let s2 = d.write("crlf.toml", crlf);
    let rej = d.join("rej.csv");
    let (code, _, _, rep) = validate(
        &d,
        s2.to_str().unwrap(),
        f.to_str().unwrap(),
        &["--rejects", rej.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert_eq!(rep["totals"]["rejected"], 1);
    let rejects = std::fs::read_to_string(rej).unwrap();
    assert!(rejects.contains(",3,"), "{rejects}");
    assert!(rejects.contains("terminator"), "{rejects}");
    assert_balanced(&rep);
}

#[test]
fn fixed_records_shorter_and_longer() {
    let d = Dir::new();
    let layout = r#"
members = ["*.TXT"]
format = "fixed"
record_length = 10
longer = "ignore"
shorter = "reject"
[[field]]
name = "id"
type = "int"
start = 0
width = 4
[[field]]
name = "name"
type = "text"
start = 4
width = 6
"#;
    let schema = d.write("f.toml", layout).display().to_string();
    // A newer year's longer record is read (tail ignored); a short one is
    // a reject with its length.
    let f =
        d.write("X.TXT", "0001ALPHA \r\n0002BETA  EXTRA-TAIL\r\n0003GAM\r\n");
    let rej = d.join("rej.csv");
    let (code, _, _, rep) = validate(
        &d,
        &schema,
        f.to_str().unwrap(),
        &["--rejects", rej.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert_eq!(rep["totals"]["valid"], 2);
    let r = std::fs::read_to_string(rej).unwrap();
    assert!(r.contains("X.TXT,X.TXT,3,34,f,,record_length,\"record is 7 bytes, shorter than the layout's 10\",0003GAM"), "{r}");
    let reject_longer =
        layout.replace("longer = \"ignore\"", "longer = \"reject\"");
    let s2 = d.write("g.toml", reject_longer).display().to_string();
    let (_, _, _, rep) = validate(&d, &s2, f.to_str().unwrap(), &[]);
    assert_eq!(rep["totals"]["rejected"], 2);
    assert_balanced(&rep);
}

#[test]
fn field_level_rejects_name_their_position() {
    let (d, schema) = setup();
    let text = "acct\tyr\tmailto\tland_val\tdt\n\
        0000000000001\t2025\tPE#A\t1\t\n\
        0000000000002\t99999\tX\t1\t\n\
        0000000000003\t2025\tX\t99999999999999999\t\n\
        0000000000004\t2025\tX\t1\t02/30/2024\n\
        0000000000005\t2025\tX\t1O0\t\n";
    // The one byte windows-1252 leaves undefined.
    let bytes: Vec<u8> =
        text.bytes().map(|b| if b == b'#' { 0x81 } else { b }).collect();
    let f = d.write("real_acct.txt", bytes);
    let rej = d.join("rej.csv");
    let (code, out, _, rep) = validate(
        &d,
        &schema,
        f.to_str().unwrap(),
        &["--rejects", rej.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert_eq!(rep["totals"]["rejected"], 5);
    let r = std::fs::read_to_string(&rej).unwrap();
    let lines: Vec<&str> = r.lines().collect();
    assert_eq!(
        lines[0],
        "input,member,line,byte,layout,field,reason_code,reason,raw"
    );
    let f = f.display().to_string();
    assert_eq!(
        lines[1],
        format!(
            "{f},real_acct.txt,2,46,layout,mailto,encoding,byte 2 of the value is not valid in the declared encoding,PE\\x81A"
        )
    );
    assert_eq!(
        lines[2],
        format!(
            "{f},real_acct.txt,3,68,layout,yr,overflow,number out of range for the field's type,99999"
        )
    );
    assert!(
        lines[3].contains(",4,") && lines[3].contains("land_val,overflow"),
        "{}",
        lines[3]
    );
    assert!(
        lines[4].contains(",5,")
            && lines[4]
                .contains("dt,impossible_date,impossible date,02/30/2024"),
        "{}",
        lines[4]
    );
    assert!(
        lines[5].contains(",6,")
            && lines[5]
                .contains("land_val,invalid_number,invalid digit 'O',1O0"),
        "{}",
        lines[5]
    );
    // The summary groups them by field and reason with the first position.
    assert!(out.contains("layout.yr  overflow"), "{out}");
    assert!(
        out.contains(
            "line 3, byte 68, field 2 (yr): \"99999\": number out of range"
        ),
        "{out}"
    );
    assert_balanced(&rep);
}

#[test]
fn header_drift_is_reported() {
    let (d, schema) = setup();
    let f = d.write(
        "real_acct.txt",
        "acct\tyear\tland_val\tmailto\tdt\textra\n1\t2\t3\t4\t5\t6\n",
    );
    let (code, _, err, _) = validate(&d, &schema, f.to_str().unwrap(), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("real_acct.txt: line 1: header does not match the layout (5 columns expected, 6 found)"), "{err}");
    assert!(
        err.contains("column 2: renamed? expected 'yr', found 'year'"),
        "{err}"
    );
    assert!(
        err.contains("column 6: 'extra' is not in the layout (added)"),
        "{err}"
    );
    assert!(err.contains("'land_val' moved"), "{err}");
}

#[test]
fn line_without_newline_is_bounded() {
    let (d, schema) = setup();
    let schema_nohdr = d
        .write("nh.toml", LAYOUT.replace("header = true", "header = false"))
        .display()
        .to_string();
    let _ = schema;
    // A 1 GB sparse file: no newline anywhere.
    let f = d.join("real_acct.txt");
    std::fs::File::create(&f).unwrap().set_len(1 << 30).unwrap();
    for extra in [&[][..], &["--no-mmap"][..]] {
        let mut args = vec![
            "validate",
            "-q",
            "--schema",
            &schema_nohdr,
            f.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (code, err, rss_kib) = run_measured(&args);
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("real_acct.txt: line 1, byte 0: no record end within 16777216 bytes"), "{err}");
        assert!(rss_kib < 200 * 1024, "peak RSS {rss_kib} KiB");
    }
}

/// Runs fwload and returns (exit code, stderr, peak RSS in KiB) of that
/// one child process.
// The child is reaped with wait4, which also reports its rusage.
#[allow(clippy::zombie_processes)]
fn run_measured(args: &[&str]) -> (i32, String, i64) {
    use std::os::unix::process::ExitStatusExt;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_fwload"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut err = String::new();
    let mut stderr_pipe = child.stderr.unwrap();
    std::io::Read::read_to_string(&mut stderr_pipe, &mut err).unwrap();
    let mut status = 0;
    // SAFETY: plain libc call on our own child; rusage is written by the
    // kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    let code = std::process::ExitStatus::from_raw(status).code().unwrap_or(-1);
    (code, err, usage.ru_maxrss)
}

#[test]
fn inputs_matching_no_layout_fail() {
    let (d, schema) = setup();
    let f = d.write("other.dat", GOOD);
    let (code, _, err, _) = validate(&d, &schema, f.to_str().unwrap(), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no member of the inputs matches a layout of the schema"),
        "{err}"
    );
    assert!(err.contains("other.dat:other.dat"), "{err}");
}

#[test]
fn digests_are_those_of_the_bytes() {
    use sha2::{Digest, Sha256};
    let hex = |b: &[u8]| {
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    let (d, schema) = setup();
    let data = GOOD.repeat(300);
    let plain = d.write("real_acct.txt", &data);
    let z = zip_bytes(&[("real_acct.txt", data.as_bytes())]);
    let zip = d.write("a.zip", &z);
    for (input, input_bytes) in [(&plain, data.as_bytes()), (&zip, &z[..])] {
        for extra in [&["--chunk-size", "100"][..], &["--no-mmap"][..]] {
            let (code, _, err, rep) = validate(
                &d,
                &schema,
                input.to_str().unwrap(),
                &[&["--max-rejects", "1000"], extra].concat(),
            );
            assert_eq!(code, 0, "{err}");
            assert_eq!(
                rep["inputs"][0]["sha256"],
                hex(input_bytes),
                "{input:?} {extra:?}"
            );
            assert_eq!(
                rep["members"][0]["sha256"],
                hex(data.as_bytes()),
                "{input:?} {extra:?}"
            );
        }
    }
}

/// A member's data as a zip holds it: method, CRC-32, uncompressed size
/// and the stored bytes.
struct Packed {
    method: u16,
    crc: u32,
    size: u32,
    data: Vec<u8>,
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum()
}

fn stored(data: &[u8]) -> Packed {
    Packed {
        method: 0,
        crc: crc32(data),
        size: data.len() as u32,
        data: data.to_vec(),
    }
}

fn deflated(data: &[u8]) -> Packed {
    let mut e = flate2::write::DeflateEncoder::new(
        Vec::new(),
        flate2::Compression::best(),
    );
    e.write_all(data).unwrap();
    Packed {
        method: 8,
        crc: crc32(data),
        size: data.len() as u32,
        data: e.finish().unwrap(),
    }
}

/// A local file header with its data, written byte by byte.
fn local_entry(name: &str, extra: &[u8], p: &Packed) -> Vec<u8> {
    let mut v = b"PK\x03\x04".to_vec();
    for x in [20u16, 0, p.method, 0, 0x21] {
        v.extend(x.to_le_bytes());
    }
    for x in [p.crc, p.data.len() as u32, p.size] {
        v.extend(x.to_le_bytes());
    }
    v.extend((name.len() as u16).to_le_bytes());
    v.extend((extra.len() as u16).to_le_bytes());
    v.extend(name.as_bytes());
    v.extend(extra);
    v.extend(&p.data);
    v
}

/// Appends a central directory listing `entries` (name, offset of the
/// local header it points at, data) and its end record to `body`: the
/// entries may point wherever a test wants, several at one header.
fn with_central(
    mut body: Vec<u8>,
    entries: &[(&str, usize, &Packed)],
) -> Vec<u8> {
    let start = body.len();
    for (name, offset, p) in entries {
        body.extend(b"PK\x01\x02");
        for x in [20u16, 20, 0, p.method, 0, 0x21] {
            body.extend(x.to_le_bytes());
        }
        for x in [p.crc, p.data.len() as u32, p.size] {
            body.extend(x.to_le_bytes());
        }
        for x in [name.len() as u16, 0, 0, 0, 0] {
            body.extend(x.to_le_bytes());
        }
        body.extend(0u32.to_le_bytes());
        body.extend((*offset as u32).to_le_bytes());
        body.extend(name.as_bytes());
    }
    let size = body.len() - start;
    body.extend(b"PK\x05\x06");
    for x in [0u16, 0, entries.len() as u16, entries.len() as u16] {
        body.extend(x.to_le_bytes());
    }
    body.extend((size as u32).to_le_bytes());
    body.extend((start as u32).to_le_bytes());
    body.extend(0u16.to_le_bytes());
    body
}

#[test]
fn zip_entries_sharing_one_local_header_are_refused() {
    // The bomb a tester sent: many central directory entries pointing at
    // one member, each inflating it again.
    let (d, schema) = setup();
    let p = deflated(GOOD.as_bytes());
    let body = local_entry("a.txt", &[], &p);
    let z = with_central(
        body,
        &[("a.txt", 0, &p), ("b.txt", 0, &p), ("c.txt", 0, &p)],
    );
    let f = d.write("overlap.zip", &z);
    let (code, _, err, _) = validate(&d, &schema, f.to_str().unwrap(), &[]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("overlap.zip: members a.txt and b.txt overlap"),
        "{err}"
    );
    // Listing the members (as load and inspect do) refuses it too.
    let o = fwload(&["inspect", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("members a.txt and b.txt overlap"));
}

#[test]
fn zip_member_inside_another_members_header_is_refused() {
    // b.txt's local header and data lie inside a.dat's extra field: the
    // central directory alone cannot tell (a.dat's one byte of data would
    // end before b.txt starts), the local headers can.
    let (d, schema) = setup();
    let b = stored(GOOD.as_bytes());
    let inner = local_entry("b.txt", &[], &b);
    let mut extra = 0xcafeu16.to_le_bytes().to_vec();
    extra.extend((inner.len() as u16).to_le_bytes());
    extra.extend(&inner);
    let a = stored(b"x");
    let body = local_entry("a.dat", &extra, &a);
    let z = with_central(body, &[("a.dat", 0, &a), ("b.txt", 39, &b)]);
    let f = d.write("inner.zip", &z);
    let (code, _, err, _) = validate(&d, &schema, f.to_str().unwrap(), &[]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("inner.zip: members a.dat and b.txt overlap"),
        "{err}"
    );
}

#[test]
fn zip_members_together_beyond_the_ratio_are_refused() {
    // Each member stays under the size from which one member's ratio is
    // checked (64 MiB); together they expand 68 MiB from about 70 KB.
    let (d, schema) = setup();
    let p = deflated(&vec![0u8; 4 << 20]);
    let mut body = Vec::new();
    let mut entries = Vec::new();
    let names: Vec<String> =
        (1..=17).map(|i| format!("part{i:02}.txt")).collect();
    for n in &names {
        entries.push((n.as_str(), body.len(), &p));
        body.extend(local_entry(n, &[], &p));
    }
    let z = with_central(body, &entries);
    let f = d.write("parts.zip", &z);
    let (code, _, err, _) = validate(&d, &schema, f.to_str().unwrap(), &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("parts.zip:part17.txt: "), "{err}");
    assert!(err.contains("members together"), "{err}");
    assert!(err.contains("a decompression bomb?"), "{err}");
    // The limit is --max-ratio's: raised, the archive is read (and its
    // members of NUL bytes then fail the header check).
    let (code, _, err, _) =
        validate(&d, &schema, f.to_str().unwrap(), &["--max-ratio", "100000"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("header does not match"), "{err}");
}

#[test]
fn input_bytes_limit() {
    let (d, schema) = setup();
    // A zip is refused from what its members declare, before reading any.
    let z = zip_bytes(&[
        ("real_acct.txt", GOOD.as_bytes()),
        ("real_acct_2.txt", GOOD.as_bytes()),
    ]);
    let f = d.write("two.zip", &z);
    let limit = (GOOD.len() + 10).to_string();
    let (code, _, err, _) = validate(
        &d,
        &schema,
        f.to_str().unwrap(),
        &["--max-input-bytes", &limit],
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!(
            "two.zip:real_acct_2.txt: the members together declare {} bytes, beyond the {limit} byte limit of an input (--max-input-bytes)",
            2 * GOOD.len()
        )),
        "{err}"
    );
    // A gzip stream declares nothing: it stops as it passes the limit.
    let mut gz =
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(GOOD.repeat(10).as_bytes()).unwrap();
    let f = d.write("real_acct.txt.gz", gz.finish().unwrap());
    let (code, _, err, _) = validate(
        &d,
        &schema,
        f.to_str().unwrap(),
        &["--max-input-bytes", "1000"],
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("real_acct.txt.gz:real_acct.txt: the input decompresses beyond the 1000 byte limit of an input (--max-input-bytes)"),
        "{err}"
    );
}

#[test]
fn generated_archives_pass_the_limits() {
    let d = Dir::new();
    let schema = crate::util::repo("schemas/hcad");
    let out = d.join("gen.zip");
    crate::util::run_gen(&[
        "--schema",
        &schema,
        "--rows",
        "2000",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    let (code, _, err, rep) =
        validate(&d, &schema, out.to_str().unwrap(), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(rep["members"].as_array().unwrap().len() > 1, "{rep}");
}

/// Makes a FIFO at `path` and a thread that opens it for writing and
/// writes `data` once a reader opens it. Returns a function that releases
/// the thread (opening the FIFO for reading itself, so a writer still
/// waiting for a reader goes on) and waits for it.
fn fifo_with_writer(
    path: &std::path::Path,
    data: &'static [u8],
) -> impl FnOnce() {
    let o = std::process::Command::new("mkfifo").arg(path).output().unwrap();
    assert!(o.status.success(), "mkfifo: {}", stderr(&o));
    let p = path.to_owned();
    let writer = std::thread::spawn(move || {
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&p) {
            let _ = f.write_all(data);
        }
    });
    let p = path.to_owned();
    move || {
        use std::os::unix::fs::OpenOptionsExt;
        let _reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p)
            .unwrap();
        writer.join().unwrap();
    }
}

#[test]
fn fifo_input_is_refused_not_waited_on() {
    let (d, schema) = setup();
    let fifo = d.join("real_acct.txt");
    let release = fifo_with_writer(&fifo, GOOD.as_bytes());
    let o = crate::util::fwload_within(
        &["validate", "-q", "--schema", &schema, fifo.to_str().unwrap()],
        20,
    );
    release();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!(
            "{}: is a FIFO (named pipe), not a regular file",
            fifo.display()
        )),
        "{err}"
    );
}

#[test]
fn fifo_in_an_input_directory_is_refused() {
    let (d, schema) = setup();
    d.write("in/a_real_acct.txt", GOOD);
    let fifo = d.join("in/b_real_acct.txt");
    let release = fifo_with_writer(&fifo, GOOD.as_bytes());
    let dir = d.join("in");
    let o = crate::util::fwload_within(
        &["validate", "-q", "--schema", &schema, dir.to_str().unwrap()],
        20,
    );
    release();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!(
            "{}: is a FIFO (named pipe), not a regular file, found in input directory {}",
            fifo.display(),
            dir.display()
        )),
        "{err}"
    );
}
#[test]
fn utf8_byte_order_mark_is_skipped() {
    let (d, schema) = setup();
    let mut data = b"\xEF\xBB\xBF".to_vec();
    data.extend(GOOD.as_bytes());
    let plain = d.write("real_acct.txt", &data);
    let zip = d.write("bom.zip", zip_bytes(&[("real_acct.txt", &data)]));
    for (f, extra) in
        [(&plain, &[][..]), (&plain, &["--no-mmap"][..]), (&zip, &[][..])]
    {
        let (code, out, err, rep) =
            validate(&d, &schema, f.to_str().unwrap(), extra);
        assert_eq!(code, 0, "{f:?} {extra:?}: {out}{err}");
        assert_eq!(rep["totals"]["valid"], 2);
        // Byte offsets and digests stay those of the member's bytes.
        assert_eq!(rep["members"][0]["bytes"], data.len());
    }
}

#[test]
fn utf16_is_named() {
    let (d, schema) = setup();
    let le: Vec<u8> = GOOD.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = GOOD.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let with_bom = |bom: &[u8], text: &[u8]| [bom, text].concat();
    let cases = [
        ("le.txt", with_bom(b"\xFF\xFE", &le)),
        ("be.txt", with_bom(b"\xFE\xFF", &be)),
        ("nobom.txt", le.clone()),
    ];
    for (name, data) in &cases {
        let f = d.write(name, data);
        let (code, _, err, _) =
            validate(&d, &schema, f.to_str().unwrap(), &[]);
        assert_eq!(code, 3, "{name}: {err}");
        assert!(
            err.contains(&format!(
                "{}:{name}: the member is UTF-16",
                f.display()
            )),
            "{err}"
        );
        assert!(err.contains("; convert it to UTF-8"), "{err}");
    }
    let z = d.write("u16.zip", zip_bytes(&[("real_acct.txt", &cases[0].1)]));
    let (code, _, err, _) = validate(&d, &schema, z.to_str().unwrap(), &[]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("u16.zip:real_acct.txt: the member is UTF-16"),
        "{err}"
    );
}
/// The first 2000 characters of `s`, for a failure message.
fn head(s: &str) -> String {
    s.chars().take(2000).collect()
}

#[test]
fn a_megabyte_of_nul_as_header_is_quoted_short() {
    let (d, schema) = setup();
    let mut data = vec![0u8; 1 << 20];
    data.extend(b"\n1\t2025\tA\t1\t\n");
    let f = d.write("real_acct.txt", &data);
    let (code, _, err, _) = validate(&d, &schema, f.to_str().unwrap(), &[]);
    assert_eq!(code, 2, "{}", head(&err));
    assert!(err.len() < 800, "{} bytes: {}", err.len(), head(&err));
    assert!(err.contains("real_acct.txt: line 1: header does not match"));
    assert!(err.contains("\\x00\\x00"), "{err}");
    assert!(err.contains(&format!("… ({} bytes)", 1 << 20)), "{err}");
    // A header of a million columns lists a few differences, not all.
    let mut data = vec![b'\t'; 1 << 20];
    data.extend(b"\n1\t2025\tA\t1\t\n");
    let f = d.write("real_acct.txt", &data);
    let (code, _, err, _) = validate(&d, &schema, f.to_str().unwrap(), &[]);
    assert_eq!(code, 2, "{}", head(&err));
    assert!(err.len() < 2000, "{} bytes: {}", err.len(), head(&err));
    assert!(err.contains("more differences"), "{err}");
}

/// A required text outside the key was once added to the record's key on
/// the fast path, so two records with one key were both valid.
#[test]
fn duplicate_key_found_beside_a_required_text() {
    let d = Dir::new();
    let schema = d.write(
        "layout.toml",
        "members = [\"*.txt\"]\nformat = \"delimited\"\nheader = true\n\
         key = [\"acct\"]\n\n[[field]]\nname = \"acct\"\ntype = \"varchar(13)\"\n\n\
         [[field]]\nname = \"dscr\"\ntype = \"varchar(10)\"\nnull = []\nrequired = true\n",
    );
    let input = d.write("x.txt", "acct\tdscr\n0001\tA\n0001\tB\n0002\t\n");
    let (code, out, err, rep) =
        validate(&d, schema.to_str().unwrap(), input.to_str().unwrap(), &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(rep["totals"]["valid"], 2, "{rep}");
    assert_eq!(rep["totals"]["rejected"], 1, "{rep}");
    assert!(
        err.contains("duplicate") || out.contains("duplicate"),
        "{out}{err}"
    );
}
