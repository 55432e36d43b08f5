//! `fwload validate`: parse and type-check inputs, report, set the exit
//! code from reject thresholds.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::{CliResult, Exit, Failure, ReadArgs, SchemaArgs, write_json};
use crate::report::{Progress, RejectWriter, Summary, Thresholds, incomplete};
use crate::validate::{ValidateError, ValidateOptions, validate};

/// Arguments of `fwload validate`.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[command(flatten)]
    schema: SchemaArgs,
    /// Input files: zip, tar, tar.gz, gz, plain files or directories.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// Write every reject (input, member, line, byte, field, raw value,
    /// reason) to this CSV file.
    #[arg(long, value_name = "FILE")]
    rejects: Option<PathBuf>,
    /// Write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Fail (exit 1) when more records than this are rejected. Without
    /// either threshold, any reject fails.
    #[arg(long, value_name = "N")]
    max_rejects: Option<u64>,
    /// Fail (exit 1) when the share of rejected records exceeds this
    /// (0.01 = 1%).
    #[arg(long, value_name = "RATIO")]
    max_reject_ratio: Option<f64>,
    /// Fail (exit 2) when a member matches no layout, or an input that is
    /// one of the dataset's archives lacks a member for a layout it holds.
    #[arg(long)]
    strict: bool,
    /// The export year: an export whose control record states another
    /// year fails (exit 1); also which year-dependent members to expect.
    #[arg(long, value_name = "YEAR")]
    year: Option<i32>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    read: ReadArgs,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    thresholds: Thresholds,
    passed: bool,
    failure: Option<String>,
    rejects_file: Option<String>,
}

pub(super) fn run(a: ValidateArgs) -> CliResult {
    let set = a.schema.load()?;
    let (source, pipeline) = a.read.resolve();
    let mut writer = match &a.rejects {
        Some(p) => Some(RejectWriter::create(p).map_err(|e| {
            Failure::msg(
                Exit::Usage,
                format!("cannot create rejects file {}: {e}", p.display()),
            )
        })?),
        None => None,
    };
    let total: u64 = a
        .inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let progress = Progress::new(total, "validate", !a.quiet);
    let opts = ValidateOptions { source, pipeline, year: a.year };
    let result = validate(&set, &a.inputs, &opts, writer.as_mut(), &progress);
    progress.finish();
    let summary = result.map_err(|e| match e {
        ValidateError::Source(_) | ValidateError::Input(_) => {
            Failure::new(Exit::Input, e)
        }
        ValidateError::Schema(_) => Failure::new(Exit::Usage, e),
        ValidateError::Output(_) => Failure::new(Exit::Usage, e),
        ValidateError::Control(_) => Failure::new(Exit::Data, e),
    })?;
    if let Some(w) = writer {
        w.finish().map_err(|e| {
            Failure::msg(Exit::Usage, format!("writing rejects: {e}"))
        })?;
    }
    let mut out = std::io::stdout().lock();
    summary.write_text(&mut out).map_err(|e| Failure::new(Exit::Usage, e))?;
    let thresholds = Thresholds::new(a.max_rejects, a.max_reject_ratio);
    let partial = a
        .strict
        .then(|| incomplete(&summary.unmatched, &summary.missing))
        .flatten();
    let failure = partial.clone().or_else(|| {
        thresholds.crossed(summary.totals.rejected, summary.totals.read)
    });
    if let Some(p) = &a.report {
        let r = JsonReport {
            summary: &summary,
            thresholds,
            passed: failure.is_none(),
            failure: failure.clone(),
            rejects_file: a.rejects.as_ref().map(|p| p.display().to_string()),
        };
        write_json(p, &r)?;
    }
    if let Some(p) = partial {
        return Err(Failure::msg(Exit::Usage, p));
    }
    match failure {
        Some(f) => {
            Err(Failure::msg(Exit::Data, format!("validation failed: {f}")))
        }
        None => Ok(Exit::Ok),
    }
}
