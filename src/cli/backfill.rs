//! `fwload backfill`: `fwload run` for a range of years, oldest first,
//! stopping at the first year that fails; a summary of every year's
//! outcome at the end.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::run::{Ran, RunFlags, Unchanged, run_year};
use super::{CliResult, Exit, Failure, write_json};

/// Arguments of `fwload backfill`.
#[derive(Args, Debug)]
pub struct BackfillArgs {
    #[command(flatten)]
    flags: RunFlags,
    /// The years to load, oldest first: a range `2019-2025` or a list
    /// `2019,2021,2023`.
    #[arg(long, value_name = "YEARS", value_parser = parse_years)]
    years: Years,
    /// Download folder: each year's archives go to DIR/<year> (default:
    /// data/<dataset>/<year>).
    #[arg(long, short = 'd', value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// The years of a backfill, ascending, each once.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Years(Vec<i32>);

/// Parses `A-B` (A ≤ B) or `A,B,…`: four-digit years.
fn parse_years(text: &str) -> Result<Years, String> {
    let year = |t: &str| {
        let t = t.trim();
        match t.parse::<i32>() {
            Ok(y) if t.len() == 4 && (1000..=9999).contains(&y) => Ok(y),
            _ => Err(format!(
                "'{t}' is not a year (four digits, e.g. 2019-2025 or 2019,2021)"
            )),
        }
    };
    let mut years = match text.split_once('-') {
        Some((from, to)) => {
            let (from, to) = (year(from)?, year(to)?);
            if from > to {
                return Err(format!(
                    "the range {from}-{to} runs backwards (write {to}-{from})"
                ));
            }
            (from..=to).collect()
        }
        None => text.split(',').map(year).collect::<Result<Vec<_>, _>>()?,
    };
    years.sort_unstable();
    years.dedup();
    Ok(Years(years))
}

/// What became of one year.
enum Outcome {
    Done(Ran),
    NotStarted,
}

impl Outcome {
    /// The summary's word for it, and the reason of a failure.
    fn describe(&self) -> (&'static str, Option<String>) {
        match self {
            Outcome::Done(Ran::Loaded(_)) => ("loaded", None),
            Outcome::Done(Ran::Unchanged) => ("unchanged", None),
            Outcome::Done(Ran::Failed(f)) => {
                // One line: the message and its causes.
                let text = format!("{:#}", f.error);
                let lines: Vec<&str> = text.lines().map(str::trim).collect();
                ("failed", Some(lines.join(" ")))
            }
            Outcome::NotStarted => ("not started", None),
        }
    }
}

pub(super) fn run(mut a: BackfillArgs) -> CliResult {
    // --report is the backfill's own report, not each year's load's.
    let report = a.flags.load.report.take();
    let prepared = a.flags.prepare()?;
    // Years of a dataset without a period share the targets: a year is
    // in place when its own last load loaded the same inputs and nothing
    // older was loaded since, until a year of this backfill loads.
    let mut how = if prepared.has_period() {
        Unchanged::SinceLast
    } else {
        Unchanged::SinceYear
    };
    let years = &a.years.0;
    let mut outcomes: Vec<(i32, Outcome)> = Vec::with_capacity(years.len());
    let mut exit = Exit::Ok;
    for (i, &year) in years.iter().enumerate() {
        if exit != Exit::Ok {
            outcomes.push((year, Outcome::NotStarted));
            continue;
        }
        writeln!(
            std::io::stdout().lock(),
            "{}== {year} ({} of {})",
            if i == 0 { "" } else { "\n" },
            i + 1,
            years.len()
        )?;
        let ran = match prepared.interrupted() {
            Some(signal) => Ran::Failed(stopped(signal)),
            None => {
                let dir = a.dir.as_ref().map(|d| d.join(year.to_string()));
                run_year(
                    &a.flags,
                    &prepared,
                    Some(&year.to_string()),
                    dir,
                    how,
                )
            }
        };
        match &ran {
            Ran::Loaded(_) => how = Unchanged::SinceLast,
            Ran::Unchanged => {}
            Ran::Failed(f) => {
                exit = f.code;
                eprintln!("fwload: error: {}", f.error);
                for cause in f.error.chain().skip(1) {
                    eprintln!("  caused by: {cause}");
                }
            }
        }
        outcomes.push((year, Outcome::Done(ran)));
    }
    write_summary(&mut std::io::stdout().lock(), &outcomes)?;
    if let Some(p) = &report {
        write_json(p, &summary_json(prepared.name(), &outcomes, exit))?;
    }
    Ok(exit)
}

/// The failure of a year not started because a signal stopped the
/// backfill.
fn stopped(signal: i32) -> Failure {
    let code = if signal == signal_hook::consts::SIGTERM {
        Exit::Terminate
    } else {
        Exit::Interrupt
    };
    Failure::msg(code, "stopped by a signal before this year started")
}

/// Prints each year's outcome.
fn write_summary(
    w: &mut dyn Write,
    outcomes: &[(i32, Outcome)],
) -> std::io::Result<()> {
    writeln!(w, "\n== backfill\n{:<6} outcome", "year")?;
    for (year, outcome) in outcomes {
        match outcome.describe() {
            ("unchanged", _) => writeln!(w, "{year:<6} unchanged, skipped")?,
            (word, Some(reason)) => writeln!(w, "{year:<6} {word}: {reason}")?,
            (word, None) => writeln!(w, "{year:<6} {word}")?,
        }
    }
    Ok(())
}

/// The summary as JSON (`--report`): each year's outcome, with the load
/// report of a year loaded.
fn summary_json(
    dataset: &str,
    outcomes: &[(i32, Outcome)],
    exit: Exit,
) -> serde_json::Value {
    let years: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|(year, outcome)| {
            let (word, reason) = outcome.describe();
            let mut y = json!({ "year": year, "outcome": word });
            if let Some(r) = reason {
                y["reason"] = json!(r);
            }
            match outcome {
                Outcome::Done(Ran::Failed(f)) => {
                    y["exit"] = json!(f.code as u8)
                }
                Outcome::Done(Ran::Loaded(r)) => y["load"] = json!(r),
                _ => {}
            }
            y
        })
        .collect();
    json!({ "dataset": dataset, "years": years, "exit": exit as u8 })
}

#[cfg(test)]
mod tests {
    use super::{Years, parse_years};

    #[test]
    fn years_parse_as_a_range_or_a_list() {
        assert_eq!(
            parse_years("2019-2021"),
            Ok(Years(vec![2019, 2020, 2021]))
        );
        assert_eq!(parse_years("2021"), Ok(Years(vec![2021])));
        assert_eq!(
            parse_years("2023,2019, 2021,2019"),
            Ok(Years(vec![2019, 2021, 2023]))
        );
        assert_eq!(
            parse_years("2025-2019"),
            Err("the range 2025-2019 runs backwards (write 2019-2025)".into())
        );
        assert_eq!(
            parse_years("abc"),
            Err("'abc' is not a year (four digits, e.g. 2019-2025 or 2019,2021)"
                .into())
        );
        assert!(parse_years("2019,").is_err());
        assert!(parse_years("19-21").is_err());
    }
}
