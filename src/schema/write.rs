//! A layout back to canonical TOML: what `fwload schema show` prints and
//! what the schema round-trip property (load → write → load) checks.

use super::{DuplicatePolicy, Format, Layout, Longer, Quoting, Shorter};
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

impl Layout {
    /// The layout as canonical TOML; loading it gives an equal layout.
    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        let mut kv = |k: &str, v: String| {
            s.push_str(k);
            s.push_str(" = ");
            s.push_str(&v);
            s.push('\n');
        };
        kv("name", q(&self.name));
        kv("table", q(&self.table));
        if let Some(d) = &self.description {
            kv("description", q(d));
        }
        kv(
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
        kv("encoding", q(self.encoding.as_str()));
        match &self.format {
            Format::Fixed(f) => {
                kv("format", q("fixed"));
                kv("record_length", f.record_length.to_string());
                kv("terminator", q(f.terminator.as_str()));
                kv(
                    "longer",
                    q(if f.longer == Longer::Ignore {
                        "ignore"
                    } else {
                        "reject"
                    }),
                );
                kv(
                    "shorter",
                    q(if f.shorter == Shorter::Reject {
                        "reject"
                    } else {
                        "pad"
                    }),
                );
            }
            Format::Delimited(d) => {
                kv("format", q("delimited"));
                kv("delimiter", q(&(d.delimiter as char).to_string()));
                kv(
                    "quoting",
                    q(if d.quoting == Quoting::None {
                        "none"
                    } else {
                        "standard"
                    }),
                );
                kv("header", d.header.to_string());
                kv("terminator", q(d.terminator.as_str()));
            }
        }
        if !self.key.is_empty() {
            let k: Vec<String> =
                self.key_names().iter().map(|n| q(n)).collect();
            kv("key", format!("[{}]", k.join(", ")));
            kv("duplicates", q(self.duplicates.as_str()));
        } else if self.duplicates != DuplicatePolicy::Reject {
            kv("duplicates", q(self.duplicates.as_str()));
        }
        kv("skip_blank", self.skip_blank.to_string());
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
            let d = &f.decoder;
            s.push_str("\n[[field]]\n");
            let mut kv = |k: &str, v: String| {
                s.push_str(k);
                s.push_str(" = ");
                s.push_str(&v);
                s.push('\n');
            };
            kv("name", q(&f.name));
            kv("type", q(&d.ty.sql()));
            if f.header != f.name {
                kv("header", q(&f.header));
            }
            if let Some(desc) = &f.description {
                kv("description", q(desc));
            }
            if let Some(sp) = &f.span {
                kv("start", sp.start.to_string());
                kv("width", (sp.end - sp.start).to_string());
            }
            if d.trim != Trim::Both {
                kv("trim", q(d.trim.as_str()));
            }
            if d.text.collapse_spaces {
                kv("collapse_spaces", "true".into());
            }
            if d.text.upper {
                kv("upper", "true".into());
            }
            if d.nulls.len() != 1 || !d.nulls[0].is_empty() {
                kv("null", list(&d.nulls));
            }
            if d.required {
                kv("required", "true".into());
            }
            if let Some(b) = d.min {
                kv("min", bound(d.ty, b));
            }
            if let Some(b) = d.max {
                kv("max", bound(d.ty, b));
            }
            if let Some(p) = &d.pattern {
                let inner = p
                    .as_str()
                    .strip_prefix("^(?:")
                    .and_then(|x| x.strip_suffix(")$"))
                    .unwrap_or(p.as_str());
                kv("pattern", q(inner));
            }
            if let Some(a) = &d.allowed {
                kv("allowed", list(a));
            }
            if d.overflow == Overflow::Truncate {
                kv("overflow", q("truncate"));
            }
            if matches!(
                d.ty,
                FieldType::Date | FieldType::Time | FieldType::Timestamp
            ) && let Some(fmt) = &d.format
            {
                kv("format", q(fmt.as_str()));
            }
            if let Fraction::Implied(n) = d.fraction {
                kv("implied_decimals", n.to_string());
            }
            if d.sign != Sign::Leading {
                kv("sign", q(d.sign.as_str()));
            }
            if d.ty == FieldType::Boolean {
                kv("true", list(&d.true_values));
                kv("false", list(&d.false_values));
            }
        }
        s
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
