//! The control record of an export (the PACS header): read from each
//! input before its other members, because its export version picks the
//! layout versions they are read with, and checked against the run.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::read::{ChunkReader, ReadError};
use crate::decode::excerpt_text;
use crate::record::{Fields, Slicer};
use crate::schema::{ControlSpec, Format, Layout, SchemaSet};
use crate::source::{self, SourceError, SourceOptions};
use crate::split::Framing;

/// What an input's control record states.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Control {
    /// The input.
    pub input: String,
    /// The control member.
    pub member: String,
    /// The export's (tax) year.
    pub year: Option<i32>,
    /// Its supplement number.
    pub supplement: Option<String>,
    /// Its export version.
    pub export_version: Option<String>,
    /// Whether it says it carries no values.
    pub no_values: bool,
}

/// Why an input's control record could not be used.
#[derive(Debug)]
pub enum ControlError {
    /// The input could not be read.
    Source(SourceError),
    /// The record is missing or does not decode, or disagrees with the
    /// run.
    Refused(String),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::Source(e) => write!(f, "{e}"),
            ControlError::Refused(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ControlError {}

impl From<SourceError> for ControlError {
    fn from(e: SourceError) -> Self {
        ControlError::Source(e)
    }
}

/// Reads `input`'s control record, when the dataset declares one and the
/// input has its member (`None` otherwise), and checks its year against
/// the run's `year`.
///
/// # Errors
/// A read error, or a control member that is empty, whose declared
/// fields do not decode, or that states another year than `year`.
pub fn read_control(
    set: &SchemaSet,
    input: &Path,
    opts: &SourceOptions,
    max_record: usize,
    year: Option<i32>,
) -> Result<Option<Control>, ControlError> {
    let Some(spec) = set.dataset.as_ref().and_then(|d| d.control.as_ref())
    else {
        return Ok(None);
    };
    let Some(layout) = set.layout(&spec.layout) else {
        return Ok(None);
    };
    let mut found: Option<Control> = None;
    // One member is wanted: the input's digest is taken where it is read.
    let opts = SourceOptions { skip_archive_hash: true, ..*opts };
    source::read_input::<ControlError>(
        input,
        &opts,
        &|name| layout.matches(name),
        &mut |info, body| {
            if found.is_some() {
                return Ok(None);
            }
            let at = format!("{}:{}", info.input, excerpt_text(&info.name));
            let mut reader = first_records(body, layout, max_record);
            reader
                .skip_bom()
                .and_then(|_| reader.take_header())
                .map_err(|e| ControlError::Refused(format!("{at}: {e}")))
                .and_then(|rec| match rec {
                    Some(rec) => {
                        let mut c = decode(spec, layout, &rec, &at)?;
                        c.input = info.input.to_string();
                        c.member = info.name.clone();
                        found = Some(c);
                        Ok(None)
                    }
                    None => Err(ControlError::Refused(format!(
                        "{at}: the control record is missing (empty member)"
                    ))),
                })
        },
    )?;
    if let Some(c) = &found {
        c.check_year(year).map_err(ControlError::Refused)?;
    }
    Ok(found)
}

/// The value of field `field` in the first data record of `input` that
/// has it (the first member of a layout with the field that holds a
/// record), with where it is (`input:member:line`); `None` when no such
/// member holds a record. `export` is the export version the input's
/// control record states, which picks a layout version.
///
/// # Errors
/// A read error, or a first record whose field does not decode.
pub fn first_field_value(
    set: &SchemaSet,
    input: &Path,
    opts: &SourceOptions,
    max_record: usize,
    (field, export): (&str, Option<&str>),
) -> Result<Option<(Option<String>, String)>, ControlError> {
    let layouts: Vec<&Layout> = set
        .layouts
        .iter()
        .filter(|l| l.field_index(field).is_some())
        .collect();
    let mut found = None;
    let opts = SourceOptions { skip_archive_hash: true, ..*opts };
    source::read_input::<ControlError>(
        input,
        &opts,
        &|name| layouts.iter().any(|l| l.matches(name)),
        &mut |info, body| {
            let layout = match layouts.iter().find(|l| l.matches(&info.name)) {
                Some(l) if found.is_none() => *l,
                _ => return Ok(None),
            };
            let at = format!("{}:{}", info.input, excerpt_text(&info.name));
            let refused =
                |e: ReadError| ControlError::Refused(format!("{at}: {e}"));
            let mut reader = first_records(body, layout, max_record);
            reader.skip_bom().map_err(refused)?;
            let header =
                matches!(&layout.format, Format::Delimited(d) if d.header);
            if header {
                reader.take_header().map_err(refused)?;
            }
            let Some(rec) = reader.take_header().map_err(refused)? else {
                return Ok(None);
            };
            let at = format!("{at}:{}", if header { 2 } else { 1 });
            let read_as = if layout.versions.is_empty() {
                layout.clone()
            } else {
                let picked =
                    layout.pick_version(Some(rec.len()), export).map_err(
                        |m| ControlError::Refused(format!("{at}: {m}")),
                    )?;
                layout.with_version(&layout.versions[picked.index])
            };
            let mut fields = Fields::default();
            Slicer::new(&read_as)
                .slice(&rec, &mut fields)
                .map_err(|r| ControlError::Refused(format!("{at}: {r}")))?;
            let value = field_text(&read_as, &rec, &fields, field, &at)?;
            found = Some((value, at));
            Ok(None)
        },
    )?;
    Ok(found)
}

/// Field `name` of the sliced record `rec`, decoded and printed; `None`
/// when empty.
fn field_text(
    layout: &Layout,
    rec: &[u8],
    fields: &Fields,
    name: &str,
    at: &str,
) -> Result<Option<String>, ControlError> {
    let i = layout.field_index(name).expect("checked by the schema");
    let raw = fields.get(rec, i);
    let mut scratch = Vec::new();
    match layout.fields[i].decoder.decode(raw, &mut scratch) {
        Ok(v) => {
            let s = v.to_string();
            Ok((!s.is_empty() && s != "NULL").then_some(s))
        }
        Err(r) => {
            Err(ControlError::Refused(format!("{at}: field {name}: {r}")))
        }
    }
}

/// A reader of the first records of a member of `layout`, unhashed.
fn first_records<'a>(
    body: source::Body<'a>,
    layout: &Layout,
    max_record: usize,
) -> ChunkReader<'a> {
    ChunkReader::new(body, Framing::of(layout), 64 * 1024, max_record)
        .without_hash()
}

fn decode(
    spec: &ControlSpec,
    layout: &Layout,
    rec: &[u8],
    at: &str,
) -> Result<Control, ControlError> {
    let mut fields = Fields::default();
    Slicer::new(layout).slice(rec, &mut fields).map_err(|r| {
        ControlError::Refused(format!("{at}: control record: {r}"))
    })?;
    let at = format!("{at}: control record");
    let value =
        |name: &Option<String>| -> Result<Option<String>, ControlError> {
            match name {
                Some(name) => field_text(layout, rec, &fields, name, &at),
                None => Ok(None),
            }
        };
    let year = value(&spec.year)?
        .map(|y| {
            y.parse::<i32>().map_err(|_| {
                ControlError::Refused(format!(
                    "{at}: field {}: {y:?} is not a year",
                    spec.year.as_deref().unwrap_or_default()
                ))
            })
        })
        .transpose()?;
    let supplement = value(&spec.supplement)?;
    let export_version = value(&spec.export_version)?;
    let no_values = match &spec.no_values {
        Some((f, v)) => value(&Some(f.clone()))?.as_deref() == Some(v),
        None => false,
    };
    Ok(Control {
        year,
        supplement,
        export_version,
        no_values,
        ..Control::default()
    })
}

impl Control {
    /// Checks the stated year against the run's `--year`.
    ///
    /// # Errors
    /// The years differ; the message names both and the member.
    pub fn check_year(&self, year: Option<i32>) -> Result<(), String> {
        match (self.year, year) {
            (Some(stated), Some(want)) if stated != want => Err(format!(
                "{}:{}: the control record states year {stated}, but --year is {want}; nothing was loaded",
                self.input,
                excerpt_text(&self.member)
            )),
            _ => Ok(()),
        }
    }
}

/// The year of an input: `--year`, else its control record's.
pub fn input_year(
    year: Option<i32>,
    control: Option<&Control>,
) -> Option<i32> {
    year.or(control.and_then(|c| c.year))
}
