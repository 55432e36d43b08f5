//! Validation: every input through the pipeline with no database, every
//! record counted, every reject positioned, duplicate keys found across
//! each whole table.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::decode::excerpt_text;
use crate::keys::{Duplicate, KeyIndex};
use crate::pipeline::{
    ChunkResult, ControlError, NoRows, Origin, PipelineError, PipelineOptions,
    Plan, input_year, read_control, run_member,
};
use crate::reject::{Position, Reason, Reject};
use crate::report::{
    InputReport, MemberReport, Missing, Progress, RejectGroups, RejectWriter,
    Summary, TableReport, Unmatched,
};
use crate::schema::{DuplicatePolicy, Layout, SchemaSet};
use crate::source::{self, SourceError, SourceOptions};

/// How a validation runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct ValidateOptions {
    /// Input reading.
    pub source: SourceOptions,
    /// Chunking and parallelism.
    pub pipeline: PipelineOptions,
    /// The export year the run expects (`--year`): a control record
    /// stating another is refused.
    pub year: Option<i32>,
}

/// Why a validation could not finish.
#[derive(Debug)]
pub enum ValidateError {
    /// An input could not be read.
    Source(SourceError),
    /// An input is not text a layout reads (a record too long for the
    /// limit, UTF-16).
    Input(String),
    /// The input does not match the schema (header drift, a member matched
    /// by two layouts).
    Schema(String),
    /// Writing the rejects file failed.
    Output(std::io::Error),
    /// An export's control record disagrees with the run (its year) or
    /// cannot be read.
    Control(String),
}

impl fmt::Display for ValidateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidateError::Input(m)
            | ValidateError::Schema(m)
            | ValidateError::Control(m) => f.write_str(m),
            ValidateError::Source(e) => write!(f, "{e}"),
            ValidateError::Output(_) => f.write_str("writing rejects"),
        }
    }
}

impl std::error::Error for ValidateError {
    /// A source error's message already shows its cause.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ValidateError::Output(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SourceError> for ValidateError {
    fn from(e: SourceError) -> Self {
        ValidateError::Source(e)
    }
}

impl From<ControlError> for ValidateError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Source(e) => ValidateError::Source(e),
            ControlError::Refused(m) => ValidateError::Control(m),
        }
    }
}

impl From<PipelineError<std::io::Error>> for ValidateError {
    fn from(e: PipelineError<std::io::Error>) -> Self {
        match e {
            PipelineError::Sink(e) => ValidateError::Output(e),
            PipelineError::Header(_) | PipelineError::Version(_) => {
                ValidateError::Schema(e.to_string())
            }
            PipelineError::Source(e) => ValidateError::Source(e),
            other => ValidateError::Input(other.to_string()),
        }
    }
}

struct Shared<'a> {
    groups: RejectGroups,
    writer: Option<&'a mut RejectWriter>,
}

impl Shared<'_> {
    fn reject(&mut self, r: &Reject, layout: &Layout) -> std::io::Result<()> {
        self.groups.add(r, layout);
        if let Some(w) = self.writer.as_deref_mut() {
            w.write(r, layout)?;
        }
        Ok(())
    }
}

/// Validates `inputs` against `set`.
///
/// # Errors
/// A [`ValidateError`]; bad records are not errors but rejects in the
/// summary (and in `rejects` when given).
pub fn validate(
    set: &SchemaSet,
    inputs: &[PathBuf],
    opts: &ValidateOptions,
    rejects: Option<&mut RejectWriter>,
    progress: &Progress,
) -> Result<Summary, ValidateError> {
    let started = Instant::now();
    let files = source::expand_inputs(inputs)?;
    let mut run = Validation::new(set, opts, rejects, progress);
    for path in &files {
        run.input(path)?;
    }
    run.duplicates()?;
    let mut summary = run.finish()?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// A validation under way: the compiled layouts, each table's key index,
/// and the summary so far.
struct Validation<'a> {
    set: &'a SchemaSet,
    opts: &'a ValidateOptions,
    progress: &'a Progress,
    plans: Vec<Arc<Plan>>,
    index_of: HashMap<&'a str, usize>,
    keys: Vec<KeyIndex>,
    /// The table whose keys were collected last and are not yet sealed.
    unsealed: Option<usize>,
    shared: Mutex<Shared<'a>>,
    /// File number → (index in `summary.members`, layout index).
    file_members: Vec<(usize, usize)>,
    summary: Summary,
}

impl<'a> Validation<'a> {
    fn new(
        set: &'a SchemaSet,
        opts: &'a ValidateOptions,
        rejects: Option<&'a mut RejectWriter>,
        progress: &'a Progress,
    ) -> Validation<'a> {
        Validation {
            set,
            opts,
            progress,
            plans: set
                .layouts
                .iter()
                .map(|l| Arc::new(Plan::new(l.clone())))
                .collect(),
            index_of: set
                .layouts
                .iter()
                .enumerate()
                .map(|(i, l)| (l.name.as_str(), i))
                .collect(),
            keys: set.layouts.iter().map(|_| KeyIndex::default()).collect(),
            unsealed: None,
            shared: Mutex::new(Shared {
                groups: RejectGroups::default(),
                writer: rejects,
            }),
            file_members: Vec::new(),
            summary: Summary {
                fwload_version: env!("CARGO_PKG_VERSION").into(),
                schema_hash: set.hash.clone(),
                ..Summary::default()
            },
        }
    }

    /// Reads one input: its control record, then every member a layout
    /// matches; notes the members no layout matches and the layouts the
    /// input should have held.
    fn input(&mut self, path: &std::path::Path) -> Result<(), ValidateError> {
        let (set, opts) = (self.set, self.opts);
        let control = read_control(
            set,
            path,
            &opts.source,
            opts.pipeline.max_record_bytes,
            opts.year,
        )?;
        let year = input_year(opts.year, control.as_ref());
        let export_version =
            control.as_ref().and_then(|c| c.export_version.clone());
        self.summary.controls.extend(control);
        let first_member = self.summary.members.len();
        let unmatched: RefCell<Vec<Unmatched>> = RefCell::new(Vec::new());
        let ambiguous: RefCell<Option<String>> = RefCell::new(None);
        let input_name = path.display().to_string();
        let want = |name: &str| match set.layout_for(name) {
            Ok(Some(_)) => true,
            Ok(None) => {
                unmatched.borrow_mut().push(Unmatched {
                    input: input_name.clone(),
                    member: name.to_owned(),
                    size: None,
                });
                false
            }
            Err(m) => {
                ambiguous
                    .borrow_mut()
                    .get_or_insert(format!("{input_name}: {m}"));
                false
            }
        };
        let digest = source::read_input::<ValidateError>(
            path,
            &opts.source,
            &want,
            &mut |info, body| {
                self.member(info, body, export_version.as_deref()).map(Some)
            },
        )?;
        if let Some(m) = ambiguous.into_inner() {
            return Err(ValidateError::Schema(m));
        }
        let summary = &mut self.summary;
        summary.unmatched.extend(unmatched.into_inner());
        let read = &summary.members[first_member..];
        summary.missing.extend(Missing::of_input(set, path, year, |l| {
            read.iter().any(|m| m.layout == l)
        }));
        summary.inputs.push(InputReport {
            path: digest.path,
            kind: digest.kind.as_str().into(),
            size: digest.size,
            sha256: digest.sha256,
        });
        Ok(())
    }

    /// Runs one member through the pipeline: its rejects to the shared
    /// groups and writer, its keys to its table's index. Returns the
    /// member's digest.
    fn member(
        &mut self,
        info: &source::MemberInfo,
        body: source::Body<'_>,
        export_version: Option<&str>,
    ) -> Result<String, ValidateError> {
        let layout = self
            .set
            .layout_for(&info.name)
            .map_err(ValidateError::Schema)?
            .expect("wanted member has a layout");
        let li = self.index_of[layout.name.as_str()];
        let plan = &self.plans[li];
        let file = self.file_members.len() as u32;
        let progress = self.progress;
        progress.message(&info.name);
        let t0 = Instant::now();
        if let Some(prev) = self.unsealed.replace(li)
            && prev != li
        {
            self.keys[prev].seal().map_err(ValidateError::Output)?;
        }
        let key_index = &mut self.keys[li];
        let shared = &self.shared;
        let mut consume =
            |r: &mut ChunkResult<NoRows>| -> std::io::Result<()> {
                progress.inc(r.len as u64);
                if !r.rejects.is_empty() {
                    let mut sh = shared.lock().expect("rejects lock");
                    for rej in &r.rejects {
                        sh.reject(rej, &plan.layout)?;
                    }
                }
                key_index.push(&r.keys, &r.key_order)
            };
        let run = run_member(
            plan,
            info,
            Origin { file, export_version },
            body,
            &self.opts.pipeline,
            Arc::new(|| NoRows),
            &mut consume,
        )?;
        let summary = &mut self.summary;
        self.file_members.push((summary.members.len(), li));
        let seconds = t0.elapsed().as_secs_f64();
        summary
            .members
            .push(MemberReport::of_run(info, layout, &run, seconds));
        Ok(run.sha256)
    }

    /// Finds duplicate keys, table by table, and applies each table's
    /// policy to them.
    fn duplicates(&mut self) -> Result<(), ValidateError> {
        let shared = self.shared.get_mut().expect("rejects lock");
        let file_members = &self.file_members;
        for (li, index) in
            std::mem::take(&mut self.keys).into_iter().enumerate()
        {
            let layout = &self.set.layouts[li];
            let members = &mut self.summary.members;
            index
                .for_each_duplicate(layout.duplicates, &mut |d| {
                    apply_duplicates(
                        &[d],
                        layout,
                        &|file| file_members[file as usize].0,
                        members,
                        &mut |r| shared.reject(r, layout),
                    )
                })
                .map_err(ValidateError::Output)?;
        }
        Ok(())
    }

    /// The summary: a report per table that had input, the totals, the
    /// reject groups. Refused when no member matched a layout.
    fn finish(self) -> Result<Summary, ValidateError> {
        let mut summary = self.summary;
        for (li, layout) in self.set.layouts.iter().enumerate() {
            let mut t = TableReport {
                layout: layout.name.clone(),
                table: layout.table.clone(),
                members: 0,
                counts: Default::default(),
            };
            for &(mi, l) in &self.file_members {
                if l == li {
                    t.members += 1;
                    t.counts += summary.members[mi].counts;
                }
            }
            if t.members == 0 {
                summary.layouts_without_input.push(layout.name.clone());
            } else {
                summary.totals += t.counts;
                summary.bytes += summary
                    .members
                    .iter()
                    .filter(|m| m.layout == layout.name)
                    .map(|m| m.bytes)
                    .sum::<u64>();
                summary.tables.push(t);
            }
        }
        if summary.members.is_empty() {
            return Err(nothing_matched(&summary));
        }
        let shared = self.shared.into_inner().expect("rejects lock");
        summary.reject_groups = shared.groups.into_groups();
        Ok(summary)
    }
}

/// The error when no member of the inputs matched a layout.
fn nothing_matched(summary: &Summary) -> ValidateError {
    let seen: Vec<String> = summary
        .unmatched
        .iter()
        .take(5)
        .map(|u| format!("{}:{}", u.input, excerpt_text(&u.member)))
        .collect();
    ValidateError::Schema(format!(
        "no member of the inputs matches a layout of the schema, so nothing was validated (members seen: {})",
        if seen.is_empty() { "none".to_owned() } else { seen.join(", ") }
    ))
}

/// Moves duplicate records out of `valid`: into `rejected` (policy
/// reject, each reported through `reject`) or `filtered` (first/last).
///
/// # Errors
/// What `reject` returns.
pub(crate) fn apply_duplicates(
    dups: &[Duplicate],
    layout: &Layout,
    member_of: &dyn Fn(u32) -> usize,
    members: &mut [MemberReport],
    reject: &mut dyn FnMut(&Reject) -> std::io::Result<()>,
) -> std::io::Result<()> {
    for d in dups {
        let m = &mut members[member_of(d.entry.file)];

        m.counts.valid -= 1;
        if layout.duplicates == DuplicatePolicy::Reject {
            m.counts.rejected += 1;
            let r = Reject {
                at: Position {
                    input: Arc::from(m.input.as_str()),
                    member: Arc::from(m.member.as_str()),
                    line: d.entry.line,
                    byte: d.entry.byte,
                    field: layout.key.first().map(|&k| k as u16),
                },
                raw: d.entry.text().into(),
                raw_truncated: d.entry.text_len as usize == d.entry.text.len(),
                reason: Reason::DuplicateKey { first_line: d.kept.line },
            };
            reject(&r)?;
        } else {
            m.counts.filtered += 1;
            m.counts.deduplicated += 1;
        }
    }
    Ok(())
}
