//! `fwload inspect`: what is in an input and how the schema reads it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::{CliResult, Exit, Failure, ReadArgs};
use crate::pipeline::{ChunkReader, check_header, read_control};
use crate::record::Fields;
use crate::report::render_raw;
use crate::schema::{Format, SchemaSet};
use crate::source::{self, SourceError};
use crate::split::{Framing, Records};

/// Arguments of `fwload inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Schema directory or file to match members against (optional).
    #[arg(long = "schema", short = 's', value_name = "PATH")]
    schema: Vec<PathBuf>,
    /// Records to decode per member.
    #[arg(long, default_value_t = 3, value_name = "N")]
    records: usize,
    /// Input file (zip, tar, tar.gz, gz or plain).
    #[arg(value_name = "INPUT")]
    input: PathBuf,
    #[command(flatten)]
    read: ReadArgs,
}

pub(super) fn run(a: InspectArgs) -> CliResult {
    let set = if a.schema.is_empty() {
        None
    } else {
        Some(SchemaSet::load(&a.schema).map_err(|e| {
            Failure::msg(Exit::Usage, format!("schema errors:\n{e}"))
        })?)
    };
    let (source_opts, pipe) = a.read.resolve();
    let input_err = |e: SourceError| Failure::new(Exit::Input, e);
    let (members, kind) =
        source::list_members(&a.input, &source_opts).map_err(input_err)?;
    let mut out = std::io::stdout().lock();
    let w = |out: &mut std::io::StdoutLock, s: String| {
        writeln!(out, "{s}").map_err(|e| Failure::new(Exit::Usage, e))
    };
    w(
        &mut out,
        format!(
            "{} ({}, {} members)",
            a.input.display(),
            kind.as_str(),
            members.len()
        ),
    )?;
    for m in &members {
        let layout = match &set {
            Some(s) => s
                .layout_for(&m.name)
                .map_err(|e| Failure::msg(Exit::Usage, e))?
                .map(|l| l.name.clone()),
            None => None,
        };
        let size = m
            .declared_size
            .map(|s| format!("{s} bytes"))
            .unwrap_or_else(|| "size unknown".into());
        let packed = m
            .compressed_size
            .map(|c| format!(", {c} compressed"))
            .unwrap_or_default();
        let target = layout
            .map(|l| format!("→ layout {l}"))
            .unwrap_or_else(|| "(no layout)".into());
        w(&mut out, format!("  {}  {size}{packed}  {target}", m.name))?;
    }
    let records = a.records;
    let mut lines: Vec<String> = Vec::new();
    let mut export_version = None;
    if let Some(set) = &set {
        match read_control(
            set,
            &a.input,
            &source_opts,
            pipe.max_record_bytes,
            None,
        ) {
            Ok(Some(c)) => {
                lines.push(String::new());
                lines.push(crate::report::control_line(&c));
                export_version = c.export_version;
            }
            Ok(None) => {}
            Err(e) => lines.push(format!("control record: {e}")),
        }
    }
    source::read_input::<Failure>(&a.input, &source_opts, &|_| true, &mut |info, body| {
        let layout = match &set {
            Some(s) => s.layout_for(&info.name).map_err(|e| Failure::msg(Exit::Usage, e))?,
            None => None,
        };
        lines.push(String::new());
        lines.push(format!("{}:", info.name));
        let framing = layout.map(Framing::of).unwrap_or(Framing::Lines { quoted: None });
        let mut reader = ChunkReader::new(body, framing, pipe.chunk_size, pipe.max_record_bytes);
        let to_failure = |e| Failure::msg(Exit::Input, format!("{}:{}: {e}", info.input, info.name));
        // A versioned layout: the version the member is read with, and why.
        let versioned;
        let layout = match layout {
            Some(l) if !l.versions.is_empty() => {
                let len = reader.peek_record_len().map_err(to_failure)?;
                match l.pick_version(len, export_version.as_deref()) {
                    Ok(p) => {
                        lines.push(format!("  read as version {p}"));
                        versioned = l.with_version(&l.versions[p.index]);
                        Some(&versioned)
                    }
                    Err(m) => {
                        lines.push(format!("  {m}"));
                        Some(l)
                    }
                }
            }
            other => other,
        };
        if let Some(l) = layout
            && let Format::Delimited(d) = &l.format
            && d.header
            && let Some(h) = reader.take_header().map_err(to_failure)? {
                match check_header(l, &h) {
                    Ok(()) => lines.push("  header matches the layout".into()),
                    Err(d) => lines.push(format!("  {}", d.at(&info.input, &info.name))),
                }
                reader.skip_lines(1 + crate::split::count_lines(&h));
            }
        let mut hist: BTreeMap<usize, u64> = BTreeMap::new();
        let mut shown = 0;
        let mut fields = Fields::default();
        let mut scratch = Vec::new();
        let slicer = layout.map(crate::record::Slicer::new);
        while let Some(chunk) = reader.next_chunk().map_err(to_failure)? {
            let mut line =
                chunk.first_line.expect("this reader counts lines");
            for rec in Records::new(&chunk.data, framing) {
                *hist.entry(rec.bytes.len()).or_default() += 1;
                if shown < records {
                    shown += 1;
                    lines.push(format!("  record at line {line}, byte {}: {} bytes", chunk.start_byte + rec.offset as u64, rec.bytes.len()));
                    match (layout, &slicer) {
                        (Some(l), Some(s)) => match s.slice(rec.bytes, &mut fields) {
                            Err(r) => lines.push(format!("    rejected: {r}")),
                            Ok(()) => {
                                for (i, f) in l.fields.iter().enumerate() {
                                    let raw = fields.get(rec.bytes, i);
                                    let pos = f.span.as_ref().map(|s| format!(" [{}..{}]", s.start, s.end)).unwrap_or_default();
                                    let shown_raw = render_raw(raw, l.encoding);
                                    let v = match f.decoder.decode(raw, &mut scratch) {
                                        Ok(v) => format!("{v}"),
                                        Err(r) => format!("REJECT: {r}"),
                                    };
                                    lines.push(format!("    {:>3} {:<28} {:<16}{pos} {:?} → {v}", i + 1, f.name, f.decoder.ty.sql(), shown_raw));
                                }
                            }
                        },
                        _ => lines.push(format!("    {:?}", render_raw(&rec.bytes[..rec.bytes.len().min(200)], crate::decode::Encoding::Latin1))),
                    }
                }
                line += 1 + rec.extra_lines as u64;
            }
        }
        let fixed = layout.is_some_and(|l| l.is_fixed());
        if fixed || layout.is_none() {
            let expect = layout.and_then(|l| match &l.format {
                Format::Fixed(f) => Some(f.record_length),
                _ => None,
            });
            lines.push(format!(
                "  record lengths{}:",
                expect.map(|e| format!(" (layout: {e} bytes)")).unwrap_or_default()
            ));
            let mut v: Vec<(usize, u64)> = hist.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            for (len, n) in v.iter().take(10) {
                lines.push(format!("    {len:>8} bytes: {n} records"));
            }
            if v.len() > 10 {
                lines.push(format!("    … {} more lengths", v.len() - 10));
            }
        }
        Ok(Some(reader.finish().0))
    })
    .map_err(|f| if f.code == Exit::Ok { Failure::msg(Exit::Input, f) } else { f })?;
    for l in lines {
        w(&mut out, l)?;
    }
    Ok(Exit::Ok)
}

impl From<SourceError> for Failure {
    fn from(e: SourceError) -> Failure {
        Failure::new(Exit::Input, e)
    }
}
