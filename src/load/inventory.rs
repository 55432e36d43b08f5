//! The inputs before any database work: hashed, listed member by member
//! against the layouts, their control records read; and the work they
//! make once unchanged inputs are known.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use super::{LoadError, LoadOptions, LoadReport, MemberRef, RunFile};
use crate::pipeline::{Control, input_year, read_control};
use crate::report::{Missing, Unmatched, incomplete};
use crate::schema::SchemaSet;
use crate::source::{self, HashingReader, SourceError, SourceErrorKind};

/// The inputs of a load as found before any database work.
pub(super) struct Inventory {
    /// Every input file (directories expanded), in order.
    files: Vec<PathBuf>,
    /// Each file's size and sha256.
    digests: Vec<(u64, String)>,
    /// Each file's members.
    listed: Vec<(usize, Vec<Listed>)>,
    /// Each file's control record, when the dataset has one.
    pub(super) controls: Vec<Option<Control>>,
}

/// What a load will read: the work per layout and the members' numbers.
pub(super) struct Planned {
    /// Per layout, its members (in layout order).
    pub(super) work: Vec<Work>,
    /// Member number → (input, member).
    pub(super) names: HashMap<u32, (String, String)>,
    /// Uncompressed bytes to read, where the inputs say.
    pub(super) total_bytes: u64,
    /// Members of a layout in inputs skipped as unchanged.
    pub(super) unchanged: Vec<String>,
}

impl Inventory {
    /// Hashes and lists `inputs`, and reads their control records.
    ///
    /// # Errors
    /// An input that cannot be read, a member two layouts match, inputs
    /// that feed no layout, or a control record that is refused.
    pub(super) fn take(
        set: &SchemaSet,
        inputs: &[PathBuf],
        opts: &LoadOptions,
    ) -> Result<Inventory, LoadError> {
        // Digests first: they decide what is unchanged.
        let files = source::expand_inputs(inputs)?;
        let digests: Vec<(u64, String)> = {
            use rayon::prelude::*;
            files.par_iter().map(|p| hash_file(p)).collect::<Result<_, _>>()?
        };
        let mut listed: Vec<(usize, Vec<Listed>)> = Vec::new();
        for (i, path) in files.iter().enumerate() {
            let (members, _) = source::list_members(path, &opts.source)?;
            let mut v = Vec::new();
            for m in members {
                let li = set
                    .layout_for(&m.name)
                    .map_err(LoadError::schema)?
                    .and_then(|l| {
                        set.layouts.iter().position(|x| x.name == l.name)
                    });
                v.push((m.name, m.declared_size, li));
            }
            listed.push((i, v));
        }
        nothing_to_load(inputs, &files, &listed)?;
        let controls = read_controls(set, &files, opts)?;
        Ok(Inventory { files, digests, listed, controls })
    }

    /// The members the inputs' archives should hold (for their year) and
    /// do not.
    pub(super) fn missing(
        &self,
        set: &SchemaSet,
        opts: &LoadOptions,
    ) -> Vec<Missing> {
        self.listed
            .iter()
            .flat_map(|(i, v)| {
                let year = input_year(opts.year, self.controls[*i].as_ref());
                Missing::of_input(set, &self.files[*i], year, |l| {
                    v.iter().any(|m| {
                        m.2.is_some_and(|li| set.layouts[li].name == l)
                    })
                })
            })
            .collect()
    }

    /// `--strict`: refuses members no layout matches and `missing` ones.
    ///
    /// # Errors
    /// Either kind, listed.
    pub(super) fn refuse_incomplete(
        &self,
        missing: &[Missing],
    ) -> Result<(), LoadError> {
        let unmatched: Vec<Unmatched> = self
            .listed
            .iter()
            .flat_map(|(i, v)| {
                v.iter().filter(|m| m.2.is_none()).map(|m| Unmatched {
                    input: self.files[*i].display().to_string(),
                    member: m.0.clone(),
                    size: m.1,
                })
            })
            .collect();
        match incomplete(&unmatched, missing) {
            Some(why) => {
                Err(LoadError::schema(format!("{why}\nnothing was loaded")))
            }
            None => Ok(()),
        }
    }

    /// The work: every member of an input not in `previous` (unchanged
    /// since the last success) that feeds a layout, numbered; each
    /// member is also noted in `report` with what happens to it.
    pub(super) fn plan(
        &self,
        set: &SchemaSet,
        previous: &HashSet<String>,
        report: &mut LoadReport,
    ) -> Planned {
        let mut planned = Planned {
            work: Vec::new(),
            names: HashMap::new(),
            total_bytes: 0,
            unchanged: Vec::new(),
        };
        let mut file_no = 0u32;
        for (i, members) in &self.listed {
            let path = self.files[*i].display().to_string();
            let (size, sha) = &self.digests[*i];
            let unchanged = previous.contains(sha);
            if unchanged {
                report.unchanged_inputs.push(path.clone());
            }
            for (name, declared, li) in members {
                let status = match (li, unchanged) {
                    (None, _) => "no layout",
                    (Some(_), true) => "unchanged",
                    (Some(_), false) => "loaded",
                };
                report.files.push(RunFile {
                    input: path.clone(),
                    input_size: *size as i64,
                    input_sha256: sha.clone(),
                    member: name.clone(),
                    member_size: declared.map(|d| d as i64),
                    member_sha256: None,
                    layout: li.map(|l| set.layouts[l].name.clone()),
                    rows: None,
                    status: status.into(),
                    version: None,
                });
                if li.is_some() && unchanged {
                    planned.unchanged.push(name.clone());
                }
                let (Some(li), false) = (li, unchanged) else { continue };
                planned.names.insert(file_no, (path.clone(), name.clone()));
                let m = MemberRef {
                    input: path.clone(),
                    input_sha256: sha.clone(),
                    member: name.clone(),
                    file: file_no,
                };
                file_no += 1;
                let bytes = declared.unwrap_or(0);
                planned.total_bytes += bytes;
                match planned.work.iter_mut().find(|w| w.layout == *li) {
                    Some(w) => {
                        w.members.push(m);
                        w.bytes += bytes;
                    }
                    None => planned.work.push(Work {
                        layout: *li,
                        members: vec![m],
                        bytes,
                    }),
                }
            }
        }
        planned.work.sort_by_key(|w| w.layout);
        planned
    }
}

fn hash_file(path: &std::path::Path) -> Result<(u64, String), LoadError> {
    let io = |e| {
        let input = path.display().to_string();
        SourceError::new(&input, None, SourceErrorKind::Io(e))
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let (sha, n) =
        HashingReader::new(std::io::BufReader::with_capacity(1 << 20, f))
            .finish()
            .map_err(io)?;
    Ok((n, sha))
}

/// Refuses inputs that feed no layout: a file given on the command line
/// none of whose members matches a layout (a nested zip, a tar of links,
/// a wrong archive), or inputs none of whose members match at all. As in
/// `validate`, loading nothing is an error, never an "unchanged" success.
fn nothing_to_load(
    inputs: &[PathBuf],
    files: &[PathBuf],
    listed: &[(usize, Vec<Listed>)],
) -> Result<(), LoadError> {
    let seen = |v: &[Listed]| {
        let names: Vec<&str> =
            v.iter().take(5).map(|(n, _, _)| n.as_str()).collect();
        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
    };
    for (i, v) in listed {
        if inputs.contains(&files[*i]) && v.iter().all(|m| m.2.is_none()) {
            return Err(LoadError::schema(format!(
                "{}: no member matches a layout of the schema, so nothing would be loaded (members seen: {})",
                files[*i].display(),
                seen(v)
            )));
        }
    }
    if listed.iter().all(|(_, v)| v.iter().all(|m| m.2.is_none())) {
        let all: Vec<Listed> =
            listed.iter().flat_map(|(_, v)| v.iter().cloned()).collect();
        return Err(LoadError::schema(format!(
            "no member of the inputs matches a layout of the schema, so nothing would be loaded (members seen: {})",
            seen(&all)
        )));
    }
    Ok(())
}

/// A member found in an input: name, declared size, layout index.
type Listed = (String, Option<u64>, Option<usize>);

pub(super) struct Work {
    pub(super) layout: usize,
    pub(super) members: Vec<MemberRef>,
    /// Uncompressed bytes of the members, where the input says.
    pub(super) bytes: u64,
}

pub(super) fn work_refs(work: &[Work]) -> Vec<(usize, Vec<MemberRef>)> {
    work.iter().map(|w| (w.layout, w.members.clone())).collect()
}

/// Reads every input's control record (see [`read_control`]) and checks
/// its year against `--year`.
///
/// # Errors
/// An input that cannot be read, or a control record that does not
/// decode or states another year (refused).
fn read_controls(
    set: &SchemaSet,
    files: &[PathBuf],
    opts: &LoadOptions,
) -> Result<Vec<Option<Control>>, LoadError> {
    files
        .iter()
        .map(|path| {
            read_control(
                set,
                path,
                &opts.source,
                opts.pipeline.max_record_bytes,
                opts.year,
            )
            .map_err(LoadError::from)
        })
        .collect()
}
