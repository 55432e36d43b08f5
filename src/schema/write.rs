//! A layout back to canonical TOML: what `fwload schema show` prints and
//! what the schema round-trip property (load → write → load) checks.

use super::{
    DuplicatePolicy, Field, Format, Layout, Longer, Quoting, Shorter,
};
use crate::decode::{Bound, FieldType, Fraction, Overflow, Sign, Trim};

fn q(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn list(v: &[Box<[u8]>]) -> String {
    let items: Vec<String> =
        v.iter().map(|b| q(&String::from_utf8_lossy(b))).collect();
    format!("[{}]", items.join(", "))
}

fn bound(ty: FieldType, b: Bound) -> String {
    match (ty, b) {
        (FieldType::Numeric(Some((_, s))), Bound::Exact(m)) => {
            let d = crate::decode::Decimal { mantissa: m, scale: s };
            q(&d.to_string())
        }
        (FieldType::Date, Bound::Exact(d)) => {
            let (y, m, dd) = crate::decode::civil(d as i32);
            q(&format!("{y:04}-{m:02}-{dd:02}"))
        }
        (FieldType::Timestamp, Bound::Exact(t)) => {
            let t = t as i64;
            let days = t.div_euclid(crate::decode::USECS_PER_DAY) as i32;
            let us = t.rem_euclid(crate::decode::USECS_PER_DAY);
            let (y, m, dd) = crate::decode::civil(days);
            let s = us / 1_000_000;
            q(&format!(
                "{y:04}-{m:02}-{dd:02} {:02}:{:02}:{:02}",
                s / 3600,
                s / 60 % 60,
                s % 60
            ))
        }
        (FieldType::Time, Bound::Exact(t)) => {
            let s = t as i64 / 1_000_000;
            q(&format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60))
        }
        (_, Bound::Exact(i)) => i.to_string(),
        (_, Bound::Float(f)) => {
            let v = toml::Value::Float(f);
            v.to_string()
        }
    }
}

/// Appends `k = v` on a line of its own.
fn kv(s: &mut String, k: &str, v: String) {
    s.push_str(k);
    s.push_str(" = ");
    s.push_str(&v);
    s.push('\n');
}

impl Layout {
    /// The layout as canonical TOML; loading it gives an equal layout.
    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        self.head_toml(&mut s);
        for f in &self.filters {
            s.push_str("\n[[filter]]\n");
            s.push_str(&format!(
                "field = {}\n",
                q(&self.fields[f.field].name)
            ));
            if !f.keep.is_empty() {
                s.push_str(&format!("keep = {}\n", list(&f.keep)));
            }
            if !f.drop.is_empty() {
                s.push_str(&format!("drop = {}\n", list(&f.drop)));
            }
        }
        for f in &self.fields {
            s.push_str("\n[[field]]\n");
            field_toml(f, &mut s);
        }
        s
    }

    /// Appends the layout's top-level keys: names, members, encoding,
    /// format, key and duplicates.
    fn head_toml(&self, s: &mut String) {
        kv(s, "name", q(&self.name));
        kv(s, "table", q(&self.table));
        if let Some(d) = &self.description {
            kv(s, "description", q(d));
        }
        kv(
            s,
            "members",
            format!(
                "[{}]",
                self.members
                    .iter()
                    .map(|m| q(m))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        kv(s, "encoding", q(self.encoding.as_str()));
        format_toml(&self.format, s);
        if !self.key.is_empty() {
            let k: Vec<String> =
                self.key_names().iter().map(|n| q(n)).collect();
            kv(s, "key", format!("[{}]", k.join(", ")));
            kv(s, "duplicates", q(self.duplicates.as_str()));
        } else if self.duplicates != DuplicatePolicy::Reject {
            kv(s, "duplicates", q(self.duplicates.as_str()));
        }
        kv(s, "skip_blank", self.skip_blank.to_string());
    }
}

/// Appends the keys of a fixed-width or delimited format.
fn format_toml(format: &Format, s: &mut String) {
    match format {
        Format::Fixed(f) => {
            kv(s, "format", q("fixed"));
            kv(s, "record_length", f.record_length.to_string());
            kv(s, "terminator", q(f.terminator.as_str()));
            kv(
                s,
                "longer",
                q(if f.longer == Longer::Ignore {
                    "ignore"
                } else {
                    "reject"
                }),
            );
            kv(
                s,
                "shorter",
                q(if f.shorter == Shorter::Reject { "reject" } else { "pad" }),
            );
        }
        Format::Delimited(d) => {
            kv(s, "format", q("delimited"));
            kv(s, "delimiter", q(&(d.delimiter as char).to_string()));
            kv(
                s,
                "quoting",
                q(if d.quoting == Quoting::None {
                    "none"
                } else {
                    "standard"
                }),
            );
            kv(s, "header", d.header.to_string());
            kv(s, "terminator", q(d.terminator.as_str()));
        }
    }
}

/// Appends the keys of one `[[field]]` that differ from the defaults.
fn field_toml(f: &Field, s: &mut String) {
    let d = &f.decoder;
    kv(s, "name", q(&f.name));
    kv(s, "type", q(&d.ty.sql()));
    if f.header != f.name {
        kv(s, "header", q(&f.header));
    }
    if let Some(desc) = &f.description {
        kv(s, "description", q(desc));
    }
    if let Some(sp) = &f.span {
        kv(s, "start", sp.start.to_string());
        kv(s, "width", (sp.end - sp.start).to_string());
    }
    if d.trim != Trim::Both {
        kv(s, "trim", q(d.trim.as_str()));
    }
    if d.text.collapse_spaces {
        kv(s, "collapse_spaces", "true".into());
    }
    if d.text.upper {
        kv(s, "upper", "true".into());
    }
    if d.nulls.len() != 1 || !d.nulls[0].is_empty() {
        kv(s, "null", list(&d.nulls));
    }
    if d.required {
        kv(s, "required", "true".into());
    }
    if let Some(b) = d.min {
        kv(s, "min", bound(d.ty, b));
    }
    if let Some(b) = d.max {
        kv(s, "max", bound(d.ty, b));
    }
    if let Some(p) = &d.pattern {
        let inner = p
            .as_str()
            .strip_prefix("^(?:")
            .and_then(|x| x.strip_suffix(")$"))
            .unwrap_or(p.as_str());
        kv(s, "pattern", q(inner));
    }
    if let Some(a) = &d.allowed {
        kv(s, "allowed", list(a));
    }
    if d.overflow == Overflow::Truncate {
        kv(s, "overflow", q("truncate"));
    }
    if matches!(d.ty, FieldType::Date | FieldType::Time | FieldType::Timestamp)
        && let Some(fmt) = &d.format
    {
        kv(s, "format", q(fmt.as_str()));
    }
    if let Fraction::Implied(n) = d.fraction {
        kv(s, "implied_decimals", n.to_string());
    }
    if d.sign != Sign::Leading {
        kv(s, "sign", q(d.sign.as_str()));
    }
    if d.ty == FieldType::Boolean {
        kv(s, "true", list(&d.true_values));
        kv(s, "false", list(&d.false_values));
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::SchemaSet;
    use std::path::Path;

    // Found by fuzz/fuzz_targets/schema.rs.
    #[test]
    fn every_type_and_bound_reloads() {
        let text = r#"members = ["x"]
format = "delimited"
[[field]]
name = "t"
type = "timestamp"
min = "1990-01-01 00:00:00"
[[field]]
name = "c"
type = "time"
[[field]]
name = "n"
type = "numeric(38,38)"
max = "0"
[[field]]
name = "f"
type = "float8"
min = -1.5
"#;
        let l = SchemaSet::layout_from_str(Path::new("t.toml"), text).unwrap();
        let again =
            SchemaSet::layout_from_str(Path::new("t.toml"), &l.to_toml())
                .unwrap();
        assert_eq!(l, again);
        let nan = text.replace("min = -1.5", "min = nan");
        let e = SchemaSet::layout_from_str(Path::new("t.toml"), &nan)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a finite number"), "{e}");
    }
}
