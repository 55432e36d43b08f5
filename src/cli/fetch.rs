//! `fwload fetch`: download a dataset's archives, or URLs, into a folder,
//! print one summary line per file and exit 5 when any failed.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;
use indicatif::{
    MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle,
};

use super::{CliResult, Exit, Failure};
use crate::fetch::{
    FetchError, FetchErrorKind, FetchOptions, FetchOutcome, FetchProgress,
    Source, Status, fetch_all_blocking,
};
use crate::schema::SchemaSet;

/// How downloads behave (shared by `fetch` and `run`).
#[derive(Args, Debug, Clone)]
pub(super) struct FetchTuning {
    /// Retries after the first attempt of a file, on transient failures.
    #[arg(long, value_name = "N", default_value_t = 5)]
    retries: u32,
    /// Backoff before the first retry in milliseconds; it doubles with each
    /// retry (up to 60 s), minus random jitter of up to half.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    retry_base_ms: u64,
    /// Seconds to wait for a connection, the response, or the next piece
    /// of the body before trying again (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_timeout)]
    timeout: Duration,
    /// Files downloaded at the same time.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    parallel: u64,
    /// Cap on the download rate over all files together, in bytes per
    /// second; suffixes K, M, G (powers of 1024), e.g. 500K or 2M.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    limit_rate: Option<u64>,
    /// PEM file with extra root certificates to trust (besides the
    /// built-in web roots); may be repeated.
    #[arg(long = "ca-cert", value_name = "FILE")]
    ca_certs: Vec<PathBuf>,
}

impl FetchTuning {
    /// Fetch options for downloads into `dir`.
    pub(super) fn options(&self, dir: &Path, force: bool) -> FetchOptions {
        FetchOptions {
            retries: self.retries,
            retry_base: Duration::from_millis(self.retry_base_ms),
            timeout: self.timeout,
            parallel: usize::try_from(self.parallel).unwrap_or(1),
            limit_rate: self.limit_rate,
            ca_certs: self.ca_certs.clone(),
            force,
            ..FetchOptions::new(dir)
        }
    }
}

/// Arguments of `fwload fetch`.
#[derive(Args, Debug)]
pub struct FetchArgs {
    /// URLs to download, each `URL` (saved under the last segment of its
    /// path) or `NAME=URL`; `{year}` is replaced by --year.
    #[arg(value_name = "URL")]
    urls: Vec<String>,
    /// Schema directory whose dataset.toml lists the archives to download
    /// (a path to a dataset.toml file loads its directory).
    #[arg(long, short = 's', value_name = "PATH")]
    schema: Option<PathBuf>,
    /// Year replacing `{year}` in archive names and URLs.
    #[arg(long, value_name = "YEAR")]
    year: Option<String>,
    /// Only the dataset archives with this name (after --year); may be
    /// repeated.
    #[arg(long = "archive", value_name = "NAME")]
    archives: Vec<String>,
    /// Download folder (created when missing).
    #[arg(long, short = 'd', value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Expected sha256 (64 hex digits); may be repeated, one per file in
    /// order (dataset archives first, then URLs). Overrides the dataset's.
    #[arg(long = "sha256", value_name = "HEX")]
    sha256: Vec<String>,
    #[command(flatten)]
    tuning: FetchTuning,
    /// Download again even when the manifest says the file has not
    /// changed.
    #[arg(long)]
    force: bool,
    /// No progress bars and no retry notes on standard error.
    #[arg(long, short)]
    quiet: bool,
}

pub(super) fn run(a: FetchArgs) -> CliResult {
    let sources = a.sources()?;
    let opts = a.options();
    let progress = Bars::new(!a.quiet);
    let outcomes = fetch_all_blocking(sources, &opts, &progress)
        .map_err(|e| Failure::new(setup_exit(&e), e))?;
    print_summary(&outcomes).map_err(|e| Failure::new(Exit::Fetch, e))?;
    let failed: Vec<&FetchOutcome> =
        outcomes.iter().filter(|o| o.status() == Status::Failed).collect();
    if failed.is_empty() {
        return Ok(Exit::Ok);
    }
    let mut msg =
        format!("{} of {} downloads failed", failed.len(), outcomes.len());
    for o in failed {
        msg.push_str(&format!("\n  {}", failure_line(o)));
    }
    Err(Failure::msg(Exit::Fetch, msg))
}

impl FetchArgs {
    /// The sources: the dataset's archives (filtered by --archive), then
    /// the URLs, with --year and --sha256 applied.
    fn sources(&self) -> Result<Vec<Source>, Failure> {
        let usage = |e: FetchError| Failure::new(Exit::Usage, e);
        let mut sources = match &self.schema {
            Some(p) => self.dataset_sources(p)?,
            None => Vec::new(),
        };
        for u in &self.urls {
            let s = Source::parse(u)
                .and_then(|s| s.with_year(self.year.as_deref()))
                .map_err(usage)?;
            sources.push(s);
        }
        if sources.is_empty() {
            return Err(Failure::msg(
                Exit::Usage,
                "nothing to fetch: give URLs or --schema with a dataset",
            ));
        }
        if !self.sha256.is_empty() {
            if self.sha256.len() != sources.len() {
                return Err(Failure::msg(
                    Exit::Usage,
                    format!(
                        "{} --sha256 values for {} files: give one per file",
                        self.sha256.len(),
                        sources.len()
                    ),
                ));
            }
            sources = sources
                .into_iter()
                .zip(&self.sha256)
                .map(|(s, h)| s.with_sha256(h))
                .collect::<Result<_, _>>()
                .map_err(usage)?;
        }
        Ok(sources)
    }

    /// The archives of the dataset at `path` that have a URL.
    fn dataset_sources(&self, path: &Path) -> Result<Vec<Source>, Failure> {
        let dir = match path.file_name() {
            Some(n) if n == "dataset.toml" && path.is_file() => {
                path.parent().unwrap_or(Path::new(".")).to_owned()
            }
            _ => path.to_owned(),
        };
        let set = SchemaSet::load(&[dir]).map_err(|e| {
            Failure::msg(Exit::Usage, format!("schema errors:\n{e}"))
        })?;
        let Some(ds) = set.dataset else {
            return Err(Failure::msg(
                Exit::Usage,
                format!("{}: no dataset.toml to fetch from", path.display()),
            ));
        };
        let all = Source::from_dataset(&ds, self.year.as_deref())
            .map_err(|e| Failure::new(Exit::Usage, e))?;
        if all.is_empty() {
            return Err(Failure::msg(
                Exit::Usage,
                format!(
                    "{}: no archive of dataset '{}' has a url",
                    ds.path.display(),
                    ds.name
                ),
            ));
        }
        if self.archives.is_empty() {
            return Ok(all);
        }
        let mut picked = Vec::new();
        for want in &self.archives {
            let Some(s) =
                all.iter().find(|s| s.name.eq_ignore_ascii_case(want))
            else {
                let names: Vec<&str> =
                    all.iter().map(|s| s.name.as_str()).collect();
                return Err(Failure::msg(
                    Exit::Usage,
                    format!(
                        "dataset '{}' has no archive {want:?} with a url \
                         (it has: {})",
                        ds.name,
                        names.join(", ")
                    ),
                ));
            };
            picked.push(s.clone());
        }
        Ok(picked)
    }

    fn options(&self) -> FetchOptions {
        self.tuning.options(&self.dir, self.force)
    }
}

/// The exit code of a set-up error: bad input from the user is a usage
/// error, anything else a fetch failure.
pub(super) fn setup_exit(e: &FetchError) -> Exit {
    match e.kind() {
        FetchErrorKind::InvalidSource(_) | FetchErrorKind::CaCert(_) => {
            Exit::Usage
        }
        _ => Exit::Fetch,
    }
}

/// One line per file on standard output, then a count.
pub(super) fn print_summary(outcomes: &[FetchOutcome]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let width =
        outcomes.iter().map(|o| o.source.name.len()).max().unwrap_or(0);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for o in outcomes {
        let status = o.status().as_str();
        *counts.entry(status).or_default() += 1;
        let name = &o.source.name;
        match &o.result {
            Ok(f) => {
                write!(
                    out,
                    "{status:<10} {name:<width$} {:>12} bytes  sha256 {}",
                    f.size, f.sha256
                )?;
                if f.status == Status::Resumed {
                    write!(out, "  (resumed at byte {})", f.resumed_from)?;
                }
                writeln!(out)?;
            }
            Err(_) => writeln!(
                out,
                "{status:<10} {name:<width$} {}",
                failure_line(o)
            )?,
        }
    }
    let parts: Vec<String> = ["downloaded", "resumed", "unchanged", "failed"]
        .iter()
        .filter_map(|s| counts.get(s).map(|n| format!("{n} {s}")))
        .collect();
    let n = outcomes.len();
    let files = if n == 1 { "file" } else { "files" };
    writeln!(out, "{n} {files}: {}", parts.join(", "))?;
    out.flush()
}

/// A failed file's error with its innermost cause and the attempts made,
/// on one line.
pub(super) fn failure_line(o: &FetchOutcome) -> String {
    let Err(e) = &o.result else { return String::new() };
    let mut line = e.to_string();
    if e.path().is_some() {
        line = format!("{}: {line}", o.source.url);
    }
    if let Some(root) = root_cause(e) {
        line.push_str(": ");
        line.push_str(&root);
    }
    let n = o.attempts;
    line.push_str(&format!(" ({n} attempt{})", if n == 1 { "" } else { "s" }));
    line
}

/// The innermost cause's text.
fn root_cause(e: &FetchError) -> Option<String> {
    let mut cur = std::error::Error::source(e)?;
    while let Some(next) = cur.source() {
        cur = next;
    }
    Some(cur.to_string())
}

/// Progress on standard error: a bar per file in flight when it is a
/// terminal, plus a note for each retry (unless quiet).
pub(super) struct Bars {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<usize, ProgressBar>>,
    notes: bool,
}

impl Bars {
    pub(super) fn new(enabled: bool) -> Bars {
        let multi = (enabled && std::io::stderr().is_terminal()).then(|| {
            MultiProgress::with_draw_target(
                ProgressDrawTarget::stderr_with_hz(4),
            )
        });
        Bars { multi, bars: Mutex::new(HashMap::new()), notes: enabled }
    }

    fn bar(&self, file: usize) -> Option<ProgressBar> {
        let bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        bars.get(&file).cloned()
    }

    fn note(&self, msg: &str) {
        if !self.notes {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }
}

const BAR_TEMPLATE: &str = "{prefix:>20!} [{bar:30}] {bytes}/{total_bytes} \
                            {binary_bytes_per_sec} eta {eta}";

impl FetchProgress for Bars {
    fn body(&self, file: usize, name: &str, total: Option<u64>, offset: u64) {
        let Some(multi) = &self.multi else { return };
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        let bar = bars.entry(file).or_insert_with(|| {
            let b = multi.add(ProgressBar::new(0));
            let style = ProgressStyle::with_template(BAR_TEMPLATE)
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            b.set_style(style);
            b.set_prefix(name.to_owned());
            b
        });
        match total {
            Some(t) => bar.set_length(t),
            None => bar.unset_length(),
        }
        bar.set_position(offset);
        bar.reset_eta();
    }

    fn advance(&self, file: usize, bytes: u64) {
        if let Some(b) = self.bar(file) {
            b.inc(bytes);
        }
    }

    fn retry(
        &self,
        _file: usize,
        name: &str,
        attempt: u32,
        wait: Duration,
        error: &FetchError,
    ) {
        let cause =
            root_cause(error).map(|c| format!(": {c}")).unwrap_or_default();
        self.note(&format!(
            "fwload: {name}: attempt {attempt} failed: {error}{cause}; retrying in {:.1} s",
            wait.as_secs_f64()
        ));
    }

    fn done(&self, file: usize, _outcome: &FetchOutcome) {
        let bar =
            self.bars.lock().unwrap_or_else(|p| p.into_inner()).remove(&file);
        if let (Some(b), Some(m)) = (bar, &self.multi) {
            b.finish_and_clear();
            m.remove(&b);
        }
    }
}

/// Parses `--timeout`: positive seconds, fractions allowed.
pub(super) fn parse_timeout(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s.is_finite() && s < 1e9 => {
            Ok(Duration::from_secs_f64(s))
        }
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
}

/// Parses `--limit-rate`: bytes per second, with an optional K, M or G
/// suffix (powers of 1024, either case) and an optional trailing `B`.
fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix(['B', 'b']).unwrap_or(t);
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let bad = || {
        format!("{text:?} is not a rate like 500K or 2M (bytes per second)")
    };
    let value: f64 = digits.trim().parse().map_err(|_| bad())?;
    let bytes = value * mult as f64;
    if !(1.0..1e18).contains(&bytes) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_rate("500K"), Ok(512_000));
        assert_eq!(parse_rate("500k"), Ok(512_000));
        assert_eq!(parse_rate("2M"), Ok(2 << 20));
        assert_eq!(parse_rate("1.5MB"), Ok(1_572_864));
        assert_eq!(parse_rate("1G"), Ok(1 << 30));
        for bad in ["", "K", "-1K", "0", "fast", "1T", "nan"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("30"), Ok(Duration::from_secs(30)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("x").is_err());
    }
}
