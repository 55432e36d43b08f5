//! `fwload inspect`: what is in an input and how the schema reads it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{CliResult, Exit, Failure, ReadArgs};
use crate::pipeline::{
    ChunkReader, PipelineOptions, ReadError, check_header, read_control,
};
use crate::record::Fields;
use crate::report::render_raw;
use crate::schema::{Format, Layout, SchemaSet};
use crate::source::{self, Body, MemberInfo, SourceError, SourceOptions};
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
    let mut out = std::io::stdout().lock();
    let mut w = |s: &str| {
        writeln!(out, "{s}").map_err(|e| Failure::new(Exit::Usage, e))
    };
    for line in member_list(&a.input, set.as_ref(), &source_opts)? {
        w(&line)?;
    }
    let mut inspector = Inspector {
        set: set.as_ref(),
        pipe,
        records: a.records,
        export_version: None,
        lines: Vec::new(),
    };
    inspector.control(&a.input, &source_opts);
    source::read_input::<Failure>(
        &a.input,
        &source_opts,
        &|_| true,
        &mut |info, body| inspector.member(info, body).map(Some),
    )
    .map_err(|f| {
        if f.code == Exit::Ok { Failure::msg(Exit::Input, f) } else { f }
    })?;
    for l in &inspector.lines {
        w(l)?;
    }
    Ok(Exit::Ok)
}

/// The input's kind and members, each with its size and the layout that
/// reads it.
fn member_list(
    input: &Path,
    set: Option<&SchemaSet>,
    source_opts: &SourceOptions,
) -> Result<Vec<String>, Failure> {
    let (members, kind) = source::list_members(input, source_opts)
        .map_err(|e| Failure::new(Exit::Input, e))?;
    let mut lines = vec![format!(
        "{} ({}, {} members)",
        input.display(),
        kind.as_str(),
        members.len()
    )];
    for m in &members {
        let layout = match set {
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
        lines.push(format!("  {}  {size}{packed}  {target}", m.name));
    }
    Ok(lines)
}

/// What `inspect` says of each member, gathered as it is read.
struct Inspector<'a> {
    set: Option<&'a SchemaSet>,
    pipe: PipelineOptions,
    /// Records to decode per member.
    records: usize,
    /// The export version the input's control record states.
    export_version: Option<String>,
    lines: Vec<String>,
}

impl Inspector<'_> {
    /// The input's control record, when the schema declares one.
    fn control(&mut self, input: &Path, source_opts: &SourceOptions) {
        let Some(set) = self.set else { return };
        let max = self.pipe.max_record_bytes;
        match read_control(set, input, source_opts, max, None) {
            Ok(Some(c)) => {
                self.lines.push(String::new());
                self.lines.push(crate::report::control_line(&c));
                self.export_version = c.export_version;
            }
            Ok(None) => {}
            Err(e) => self.lines.push(format!("control record: {e}")),
        }
    }

    /// One member: the version and header its layout reads, its first
    /// records decoded field by field, and (fixed width or no layout) its
    /// record lengths. Returns the member's digest.
    fn member(
        &mut self,
        info: &MemberInfo,
        body: Body<'_>,
    ) -> Result<String, Failure> {
        let layout = match self.set {
            Some(s) => s
                .layout_for(&info.name)
                .map_err(|e| Failure::msg(Exit::Usage, e))?,
            None => None,
        };
        self.lines.push(String::new());
        self.lines.push(format!("{}:", info.name));
        let framing =
            layout.map(Framing::of).unwrap_or(Framing::Lines { quoted: None });
        let (chunk, max) = (self.pipe.chunk_size, self.pipe.max_record_bytes);
        let mut reader = ChunkReader::new(body, framing, chunk, max);
        let to_failure = |e| {
            Failure::msg(
                Exit::Input,
                format!("{}:{}: {e}", info.input, info.name),
            )
        };
        // A versioned layout: the version the member is read with, and why.
        let versioned;
        let layout = match layout {
            Some(l) if !l.versions.is_empty() => {
                let len = reader.peek_record_len().map_err(to_failure)?;
                match l.pick_version(len, self.export_version.as_deref()) {
                    Ok(p) => {
                        self.lines.push(format!("  read as version {p}"));
                        versioned = l.with_version(&l.versions[p.index]);
                        Some(&versioned)
                    }
                    Err(m) => {
                        self.lines.push(format!("  {m}"));
                        Some(l)
                    }
                }
            }
            other => other,
        };
        if let Some(l) = layout
            && let Format::Delimited(d) = &l.format
            && d.header
            && let Some(h) = reader.take_header().map_err(to_failure)?
        {
            match check_header(l, &h) {
                Ok(()) => {
                    self.lines.push("  header matches the layout".into())
                }
                Err(d) => self
                    .lines
                    .push(format!("  {}", d.at(&info.input, &info.name))),
            }
            reader.skip_lines(1 + crate::split::count_lines(&h));
        }
        let hist =
            self.records(&mut reader, framing, layout).map_err(to_failure)?;
        if layout.is_none_or(|l| l.is_fixed()) {
            self.lengths(hist, layout);
        }
        Ok(reader.finish().0)
    }

    /// Decodes the member's first records, field by field; returns how
    /// many records have each length.
    fn records(
        &mut self,
        reader: &mut ChunkReader<'_>,
        framing: Framing,
        layout: Option<&Layout>,
    ) -> Result<BTreeMap<usize, u64>, ReadError> {
        let mut hist: BTreeMap<usize, u64> = BTreeMap::new();
        let mut shown = 0;
        let mut fields = Fields::default();
        let mut scratch = Vec::new();
        let slicer = layout.map(crate::record::Slicer::new);
        while let Some(chunk) = reader.next_chunk()? {
            let mut line = chunk.first_line.expect("this reader counts lines");
            for rec in Records::new(&chunk.data, framing) {
                *hist.entry(rec.bytes.len()).or_default() += 1;
                if shown < self.records {
                    shown += 1;
                    let byte = chunk.start_byte + rec.offset as u64;
                    self.lines.push(format!(
                        "  record at line {line}, byte {byte}: {} bytes",
                        rec.bytes.len()
                    ));
                    match (layout, &slicer) {
                        (Some(l), Some(s)) => {
                            match s.slice(rec.bytes, &mut fields) {
                                Err(r) => self
                                    .lines
                                    .push(format!("    rejected: {r}")),
                                Ok(()) => self.fields(
                                    l,
                                    &fields,
                                    rec.bytes,
                                    &mut scratch,
                                ),
                            }
                        }
                        _ => self.lines.push(format!(
                            "    {:?}",
                            render_raw(
                                &rec.bytes[..rec.bytes.len().min(200)],
                                crate::decode::Encoding::Latin1
                            )
                        )),
                    }
                }
                line += 1 + rec.extra_lines as u64;
            }
        }
        Ok(hist)
    }

    /// One line per field of a record: position, type, raw bytes, value.
    fn fields(
        &mut self,
        l: &Layout,
        fields: &Fields,
        bytes: &[u8],
        scratch: &mut Vec<u8>,
    ) {
        for (i, f) in l.fields.iter().enumerate() {
            let raw = fields.get(bytes, i);
            let pos = f
                .span
                .as_ref()
                .map(|s| format!(" [{}..{}]", s.start, s.end))
                .unwrap_or_default();
            let shown_raw = render_raw(raw, l.encoding);
            let v = match f.decoder.decode(raw, scratch) {
                Ok(v) => format!("{v}"),
                Err(r) => format!("REJECT: {r}"),
            };
            self.lines.push(format!(
                "    {:>3} {:<28} {:<16}{pos} {:?} → {v}",
                i + 1,
                f.name,
                f.decoder.ty.sql(),
                shown_raw
            ));
        }
    }

    /// The ten commonest record lengths, against the layout's.
    fn lengths(
        &mut self,
        hist: BTreeMap<usize, u64>,
        layout: Option<&Layout>,
    ) {
        let expect = layout.and_then(|l| match &l.format {
            Format::Fixed(f) => Some(f.record_length),
            _ => None,
        });
        self.lines.push(format!(
            "  record lengths{}:",
            expect
                .map(|e| format!(" (layout: {e} bytes)"))
                .unwrap_or_default()
        ));
        let mut v: Vec<(usize, u64)> = hist.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (len, n) in v.iter().take(10) {
            self.lines.push(format!("    {len:>8} bytes: {n} records"));
        }
        if v.len() > 10 {
            self.lines.push(format!("    … {} more lengths", v.len() - 10));
        }
    }
}

impl From<SourceError> for Failure {
    fn from(e: SourceError) -> Failure {
        Failure::new(Exit::Input, e)
    }
}
