//! Every binary COPY encoder against the real server: a value decoded by
//! fwload and written in binary must read back exactly as PostgreSQL reads
//! the same value from text.

use std::io::Write;

use fwload::decode::{DateFormat, DateKind, Decoder, FieldType};
use fwload::pgcopy;

use crate::pg::TestDb;

fn decoder(ty: &str) -> Decoder {
    let t = FieldType::parse(ty).unwrap();
    let mut d = Decoder::new(t);
    d.nulls.clear();
    d.format = match t {
        FieldType::Date => {
            Some(DateFormat::new("YYYY-MM-DD", DateKind::Date).unwrap())
        }
        FieldType::Timestamp => Some(
            DateFormat::new("YYYY-MM-DD HH:MI:SS.ffffff", DateKind::Timestamp)
                .unwrap(),
        ),
        FieldType::Time => {
            Some(DateFormat::new("HH:MI:SS.ffffff", DateKind::Time).unwrap())
        }
        _ => d.format,
    };
    d.true_values = vec![Box::from(&b"true"[..])];
    d.false_values = vec![Box::from(&b"false"[..])];
    d
}

/// (type, our source text, the same value as PostgreSQL text input)
const CASES: &[(&str, &str, &str)] = &[
    ("smallint", "-32768", "-32768"),
    ("smallint", "32767", "32767"),
    ("int", "-2147483648", "-2147483648"),
    ("int", "0", "0"),
    ("bigint", "9223372036854775807", "9223372036854775807"),
    ("bigint", "-9223372036854775808", "-9223372036854775808"),
    ("numeric", "0", "0"),
    ("numeric", "0.00", "0.00"),
    ("numeric", "-0.5", "-0.5"),
    ("numeric", "1.2300", "1.2300"),
    ("numeric", "0.0001", "0.0001"),
    ("numeric", "100000000", "100000000"),
    (
        "numeric",
        "9999999999999999999999999999",
        "9999999999999999999999999999",
    ),
    (
        "numeric",
        "-12345678901234567890.123456",
        "-12345678901234567890.123456",
    ),
    (
        "numeric",
        "99999999999999999999999999999999999999",
        "99999999999999999999999999999999999999",
    ),
    (
        "numeric",
        "0.00000000000000000000000000000000000001",
        "0.00000000000000000000000000000000000001",
    ),
    ("numeric(14,2)", "28336.77", "28336.77"),
    ("numeric(14,2)", "5", "5"),
    ("numeric(14,2)", "-10000.5", "-10000.5"),
    ("numeric(10,4)", "10.5024", "10.5024"),
    (
        "numeric(28,0)",
        "1234567890123456789012345678",
        "1234567890123456789012345678",
    ),
    ("float8", "0", "0"),
    ("float8", "-1.5", "-1.5"),
    ("float8", "0.1", "0.1"),
    ("float8", "1e300", "1e300"),
    ("float8", "5e-324", "5e-324"),
    ("boolean", "true", "true"),
    ("boolean", "false", "false"),
    ("date", "0001-01-01", "0001-01-01"),
    ("date", "1850-07-04", "1850-07-04"),
    ("date", "1999-12-31", "1999-12-31"),
    ("date", "2000-01-01", "2000-01-01"),
    ("date", "2024-02-29", "2024-02-29"),
    ("date", "9999-12-31", "9999-12-31"),
    ("timestamp", "1900-01-01 00:00:00.000000", "1900-01-01 00:00:00"),
    ("timestamp", "1999-12-31 23:59:59.999999", "1999-12-31 23:59:59.999999"),
    ("timestamp", "2262-04-11 23:47:16.854775", "2262-04-11 23:47:16.854775"),
    ("time", "00:00:00.000000", "00:00:00"),
    ("time", "23:59:59.999999", "23:59:59.999999"),
    ("time", "12:34:56.780000", "12:34:56.78"),
    ("text", "", ""),
    ("text", "PEÑA", "PEÑA"),
    ("text", "日本語", "日本語"),
    ("text", "200 OAK \"AVE\t'x'", "200 OAK \"AVE\t'x'"),
    ("varchar(5)", "ÑÉÑÉÑ", "ÑÉÑÉÑ"),
    ("char(3)", "A", "A"),
];

#[test]
fn encoders_round_trip_through_the_server() {
    let db = TestDb::new();
    let mut c = db.client();
    for (i, (ty, ours, theirs)) in CASES.iter().enumerate() {
        let table = format!("{}.t{i}", db.schema);
        c.batch_execute(&format!("CREATE TABLE {table} (v {ty})")).unwrap();
        let d = decoder(ty);
        let mut scratch = Vec::new();
        let v = d
            .decode(ours.as_bytes(), &mut scratch)
            .unwrap_or_else(|r| panic!("{ty} {ours:?}: {r}"));
        let mut buf = Vec::new();
        pgcopy::header(&mut buf);
        buf.extend_from_slice(&1i16.to_be_bytes());
        pgcopy::value(&mut buf, d.ty, &v);
        pgcopy::trailer(&mut buf);
        let mut w = c
            .copy_in(&format!("COPY {table} FROM STDIN (FORMAT binary)"))
            .unwrap();
        w.write_all(&buf).unwrap();
        w.finish().unwrap_or_else(|e| {
            panic!("{ty} {ours:?}: {}", fwload::describe(&e))
        });
        let row = c
            .query_one(&format!("SELECT v::text, $1::text::{ty}::text, v = $1::text::{ty} FROM {table}"), &[theirs])
            .unwrap();
        let (got, want, equal): (String, String, bool) =
            (row.get(0), row.get(1), row.get(2));
        assert_eq!(got, want, "{ty} {ours:?}");
        assert!(equal, "{ty} {ours:?}");
    }
    // NULL in every type.
    c.batch_execute(&format!(
        "CREATE TABLE {}.n (a int, b numeric, c date, d text)",
        db.schema
    ))
    .unwrap();
    let mut buf = Vec::new();
    pgcopy::header(&mut buf);
    buf.extend_from_slice(&4i16.to_be_bytes());
    for _ in 0..4 {
        pgcopy::null(&mut buf);
    }
    pgcopy::trailer(&mut buf);
    let mut w = c
        .copy_in(&format!("COPY {}.n FROM STDIN (FORMAT binary)", db.schema))
        .unwrap();
    w.write_all(&buf).unwrap();
    w.finish().unwrap();
    let nulls: i64 = db.one(&format!("SELECT count(*) FROM {}.n WHERE a IS NULL AND b IS NULL AND c IS NULL AND d IS NULL", db.schema));
    assert_eq!(nulls, 1);
}

#[test]
fn decimals_of_every_scale_round_trip() {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(&format!(
        "CREATE TABLE {}.d (v numeric, t text)",
        db.schema
    ))
    .unwrap();
    let mut buf = Vec::new();
    pgcopy::header(&mut buf);
    let mut texts = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for scale in 0..=20u16 {
        for _ in 0..40 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let m = (x as i128 % 10i128.pow(18))
                * if x.is_multiple_of(3) { -1 } else { 1 }
                * 10i128.pow((x % 20) as u32);
            let dec = fwload::decode::Decimal { mantissa: m, scale };
            buf.extend_from_slice(&2i16.to_be_bytes());
            pgcopy::numeric(&mut buf, &dec);
            let t = dec.to_string();
            pgcopy::text(&mut buf, &t);
            texts.push(t);
        }
    }
    pgcopy::trailer(&mut buf);
    let mut w = c
        .copy_in(&format!("COPY {}.d FROM STDIN (FORMAT binary)", db.schema))
        .unwrap();
    w.write_all(&buf).unwrap();
    w.finish().unwrap();
    let bad: i64 = db.one(&format!(
        "SELECT count(*) FROM {}.d WHERE v::text <> t OR v <> t::numeric",
        db.schema
    ));
    assert_eq!(bad, 0);
    assert_eq!(
        db.one::<i64>(&format!("SELECT count(*) FROM {}.d", db.schema)),
        texts.len() as i64
    );
}
