//! The control record of an export (the PACS header): read from each
//! input before its other members, because its export version picks the
//! layout versions they are read with, and checked against the run.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::read::ChunkReader;
use crate::decode::excerpt_text;
use crate::record::{Fields, Slicer};
use crate::schema::{ControlSpec, Layout, SchemaSet};
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
            let mut reader = ChunkReader::new(
                body,
                Framing::of(layout),
                64 * 1024,
                max_record,
            )
            .without_hash();
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
    let mut scratch = Vec::new();
    let mut value =
        |name: &Option<String>| -> Result<Option<String>, ControlError> {
            let Some(name) = name else { return Ok(None) };
            let i = layout.field_index(name).expect("checked by the schema");
            let raw = fields.get(rec, i);
            match layout.fields[i].decoder.decode(raw, &mut scratch) {
                Ok(v) => {
                    let s = v.to_string();
                    Ok((!s.is_empty() && s != "NULL").then_some(s))
                }
                Err(r) => Err(ControlError::Refused(format!(
                    "{at}: control record, field {name}: {r}"
                ))),
            }
        };
    let year = value(&spec.year)?
        .map(|y| {
            y.parse::<i32>().map_err(|_| {
                ControlError::Refused(format!(
                    "{at}: control record, field {}: {y:?} is not a year",
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
