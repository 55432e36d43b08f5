//! Schema files with every spelling of each setting, and broken ones:
//! each problem is reported with its file, its line and the bad value.

use std::path::Path;

use crate::decode::{Encoding, Overflow, Sign, Trim};
use crate::schema::{
    DuplicatePolicy, Format, Layout, Longer, Mismatch, OrphanPolicy, Quoting,
    SchemaSet, Shorter, Terminator,
};

const FIXED: &str = r#"members = ["a.txt"]
format = "fixed"
record_length = 4
key = ["id"]
[[field]]
name = "id"
type = "int"
start = 0
width = 4
"#;

const DELIMITED: &str = r#"members = ["a.txt"]
format = "delimited"
key = ["id"]
[[field]]
name = "id"
type = "varchar(4)"
"#;

fn layout(text: &str) -> Result<Layout, String> {
    SchemaSet::layout_from_str(Path::new("bad.toml"), text)
        .map_err(|e| e.to_string())
}

/// `base` with `line` inserted after its first `n` lines.
fn with(base: &str, n: usize, line: &str) -> String {
    let mut lines: Vec<&str> = base.lines().collect();
    lines.insert(n, line);
    lines.join("\n") + "\n"
}

/// `FIXED` with `line` after its fourth line (before `[[field]]`): line 5.
fn fixed(line: &str) -> Result<Layout, String> {
    layout(&with(FIXED, 4, line))
}

/// `DELIMITED` with `line` at the end of its field: line 7.
fn delimited_field(line: &str) -> Result<Layout, String> {
    layout(&format!("{DELIMITED}{line}\n"))
}

#[test]
fn every_spelling_of_a_layout_setting_is_accepted() {
    let framing = |l: Layout| match l.format {
        Format::Fixed(f) => f,
        Format::Delimited(_) => panic!("not fixed"),
    };
    for (s, t) in [
        ("any", Terminator::Any),
        ("lf", Terminator::Lf),
        ("crlf", Terminator::Crlf),
        ("none", Terminator::None),
    ] {
        let f = framing(fixed(&format!("terminator = \"{s}\"")).unwrap());
        assert_eq!(f.terminator, t);
        assert_eq!(t.as_str(), s);
    }
    for (s, v) in [("ignore", Longer::Ignore), ("reject", Longer::Reject)] {
        let l = fixed(&format!("longer = \"{s}\"")).unwrap();
        assert_eq!(framing(l).longer, v);
    }
    for (s, v) in [("reject", Shorter::Reject), ("pad", Shorter::Pad)] {
        let l = fixed(&format!("shorter = \"{s}\"")).unwrap();
        assert_eq!(framing(l).shorter, v);
    }
    for (s, v) in [
        ("reject", DuplicatePolicy::Reject),
        ("first", DuplicatePolicy::First),
        ("last", DuplicatePolicy::Last),
    ] {
        let l = fixed(&format!("duplicates = \"{s}\"")).unwrap();
        assert_eq!(l.duplicates, v);
        assert_eq!(v.as_str(), s);
    }
    for (s, v) in [("none", Quoting::None), ("standard", Quoting::Standard)] {
        let l = layout(&with(DELIMITED, 2, &format!("quoting = \"{s}\"")));
        let Format::Delimited(d) = l.unwrap().format else { panic!() };
        assert_eq!(d.quoting, v);
    }
}

#[test]
fn encodings_are_accepted_by_any_spelling_in_any_case() {
    for (s, v) in [
        ("utf-8", Encoding::Utf8),
        ("UTF8", Encoding::Utf8),
        ("latin-1", Encoding::Latin1),
        ("Latin1", Encoding::Latin1),
        ("ISO-8859-1", Encoding::Latin1),
        ("windows-1252", Encoding::Windows1252),
        ("cp1252", Encoding::Windows1252),
    ] {
        let l = fixed(&format!("encoding = \"{s}\"")).unwrap();
        assert_eq!(l.encoding, v, "{s}");
    }
}

#[test]
fn every_spelling_of_a_field_setting_is_accepted() {
    for (s, v) in [
        ("both", Trim::Both),
        ("left", Trim::Left),
        ("right", Trim::Right),
        ("none", Trim::None),
    ] {
        let l = delimited_field(&format!("trim = \"{s}\"")).unwrap();
        assert_eq!(l.fields[0].decoder.trim, v);
        assert_eq!(v.as_str(), s);
    }
    for (s, v) in
        [("reject", Overflow::Reject), ("truncate", Overflow::Truncate)]
    {
        let l = delimited_field(&format!("overflow = \"{s}\"")).unwrap();
        assert_eq!(l.fields[0].decoder.overflow, v);
    }
    for (s, v) in [
        ("leading", Sign::Leading),
        ("trailing", Sign::Trailing),
        ("overpunch", Sign::Overpunch),
        ("none", Sign::Unsigned),
    ] {
        let text =
            with(FIXED, FIXED.lines().count(), &format!("sign = \"{s}\""));
        let l = layout(&text).unwrap();
        assert_eq!(l.fields[0].decoder.sign, v);
        assert_eq!(v.as_str(), s);
    }
}

#[test]
fn an_unknown_layout_setting_names_file_line_and_value() {
    for (line, want) in [
        (
            "terminator = \"cr\"",
            "bad.toml:5: unknown variant `cr`, expected one of `any`, `lf`, `crlf`, `none`",
        ),
        (
            "longer = \"keep\"",
            "bad.toml:5: unknown variant `keep`, expected `ignore` or `reject`",
        ),
        (
            "shorter = \"skip\"",
            "bad.toml:5: unknown variant `skip`, expected `reject` or `pad`",
        ),
        (
            "duplicates = \"any\"",
            "bad.toml:5: unknown variant `any`, expected one of `reject`, `first`, `last`",
        ),
        (
            "encoding = \"ebcdic\"",
            "bad.toml:5: unknown encoding \"ebcdic\" (utf-8, latin-1, windows-1252)",
        ),
    ] {
        assert_eq!(fixed(line).unwrap_err(), want);
    }
    let quoting = with(DELIMITED, 2, "quoting = \"rfc\"");
    assert_eq!(
        layout(&quoting).unwrap_err(),
        "bad.toml:3: unknown variant `rfc`, expected `none` or `standard`"
    );
    let format = FIXED.replace("\"fixed\"", "\"fixd\"");
    assert_eq!(
        layout(&format).unwrap_err(),
        "bad.toml:2: unknown variant `fixd`, expected `fixed` or `delimited`"
    );
}

#[test]
fn an_unknown_field_setting_names_file_line_and_value() {
    for (line, want) in [
        (
            "trim = \"sides\"",
            "bad.toml:7: unknown variant `sides`, expected one of `both`, `left`, `right`, `none`",
        ),
        (
            "overflow = \"cut\"",
            "bad.toml:7: unknown variant `cut`, expected `reject` or `truncate`",
        ),
        (
            "sign = \"minus\"",
            "bad.toml:7: unknown variant `minus`, expected one of `leading`, `trailing`, `overpunch`, `none`",
        ),
    ] {
        assert_eq!(delimited_field(line).unwrap_err(), want);
    }
}

#[test]
fn an_unknown_type_names_file_line_and_field() {
    let e = layout(&DELIMITED.replace("varchar(4)", "integr")).unwrap_err();
    assert_eq!(
        e,
        "bad.toml:4: field 'id': unknown type \"integr\"\n\
         bad.toml:3: key column 'id' is not a field of the layout"
    );
}

#[test]
fn a_missing_setting_names_file_and_line() {
    let e = layout(&DELIMITED.replace("members = [\"a.txt\"]\n", ""));
    assert_eq!(e.unwrap_err(), "bad.toml:1: missing field `members`");
    let e = layout(&DELIMITED.replace("type = \"varchar(4)\"\n", ""));
    assert_eq!(e.unwrap_err(), "bad.toml:4: missing field `type`");
}

#[test]
fn bad_toml_syntax_names_file_and_line() {
    let e = layout(&DELIMITED.replace("name = \"id\"", "name = \"id"));
    assert_eq!(
        e.unwrap_err(),
        "bad.toml:5: invalid basic string, expected `\"`"
    );
}

/// A schema directory with the layout `a` (an int key `id`) and
/// `dataset`; messages without the directory.
fn dataset(dataset: &str) -> Result<SchemaSet, String> {
    let d = tempfile::tempdir().unwrap();
    let a = DELIMITED.replace("varchar(4)", "int");
    std::fs::write(d.path().join("a.toml"), a).unwrap();
    std::fs::write(d.path().join("dataset.toml"), dataset).unwrap();
    let prefix = format!("{}/", d.path().display());
    SchemaSet::load(&[d.path().to_owned()])
        .map_err(|e| e.to_string().replace(&prefix, ""))
}

const REFERENCE: &str = "name = \"x\"\n\n[[reference]]\nfrom = \"a\"\n\
                         columns = [\"id\"]\nto = \"a\"\n";

const RECONCILE: &str = "name = \"x\"\n\n[[reconcile]]\ntotals = \"a\"\n\
                         columns = [\"id\"]\nof = \"a\"\n\
                         of_columns = [\"id\"]\ncount = \"id\"\n";

#[test]
fn every_spelling_of_a_dataset_setting_is_accepted() {
    for (s, v) in [
        ("keep", OrphanPolicy::Keep),
        ("reject", OrphanPolicy::Reject),
        ("fail", OrphanPolicy::Fail),
    ] {
        let set = dataset(&format!("{REFERENCE}on_orphan = \"{s}\"\n"));
        assert_eq!(set.unwrap().references()[0].on_orphan, v);
        assert_eq!(v.as_str(), s);
    }
    let set = dataset(REFERENCE).unwrap();
    assert_eq!(set.references()[0].on_orphan, OrphanPolicy::Reject);
    for (s, v) in [("fail", Mismatch::Fail), ("warn", Mismatch::Warn)] {
        let set = dataset(&format!("{RECONCILE}on_mismatch = \"{s}\"\n"));
        assert_eq!(set.unwrap().dataset.unwrap().reconcile[0].on_mismatch, v);
    }
}

#[test]
fn an_unknown_dataset_setting_names_file_line_and_value() {
    let e = dataset(&format!("{REFERENCE}on_orphan = \"ignore\"\n"));
    assert_eq!(
        e.unwrap_err(),
        "dataset.toml:7: unknown variant `ignore`, expected one of `keep`, `reject`, `fail`"
    );
    let e = dataset(&format!("{RECONCILE}on_mismatch = \"log\"\n"));
    assert_eq!(
        e.unwrap_err(),
        "dataset.toml:9: unknown variant `log`, expected `fail` or `warn`"
    );
}
