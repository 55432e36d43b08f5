//! The command line: one file per subcommand. Raw flags are parsed here
//! and turned once into library types; only this module and `main.rs`
//! print or choose exit codes.

mod backfill;
mod exit;
mod fetch;
mod generate;
mod inspect;
mod load;
mod run;
mod schema;
mod validate;

pub(crate) use exit::CliResult;
pub use exit::{Exit, Failure};

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::pipeline::PipelineOptions;
use crate::schema::SchemaSet;
use crate::source::{Limits, MmapChoice, SourceOptions};

/// fwload: stream county property-appraisal exports out of archives,
/// validate them, and load them into PostgreSQL.
#[derive(Parser, Debug)]
#[command(name = "fwload", version, about, max_term_width = 100)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and type-check inputs against a schema, with no database.
    Validate(validate::ValidateArgs),
    /// Show an input's members, the layout each matches and its first
    /// records decoded field by field.
    Inspect(inspect::InspectArgs),
    /// Check schema files, print DDL or canonical TOML.
    #[command(subcommand)]
    Schema(schema::SchemaCommand),
    /// Download a dataset's archives (resumable, verified, conditional).
    Fetch(fetch::FetchArgs),
    /// Generate realistic synthetic archives, change sets and faults.
    Gen(generate::GenArgs),
    /// Load inputs into PostgreSQL: binary COPY into staging, one MERGE
    /// transaction.
    Load(load::LoadArgs),
    /// List past runs, or show one.
    Runs(load::RunsArgs),
    /// Swap replaced tables back to their previous generation.
    Rollback(load::RollbackArgs),
    /// Fetch, validate and load a dataset in one command.
    Run(run::RunArgs),
    /// Run a dataset for a range of years, oldest first.
    Backfill(backfill::BackfillArgs),
}

/// Where the schema comes from.
#[derive(Args, Debug, Clone)]
pub struct SchemaArgs {
    /// Schema directory (every *.toml, with dataset.toml) or layout file;
    /// may be repeated.
    #[arg(long = "schema", short = 's', required = true, value_name = "PATH")]
    pub schema: Vec<PathBuf>,
}

impl SchemaArgs {
    /// Loads the schemas.
    ///
    /// # Errors
    /// Every schema problem, as a usage failure.
    pub fn load(&self) -> Result<SchemaSet, Failure> {
        SchemaSet::load(&self.schema).map_err(|e| {
            Failure::msg(Exit::Usage, format!("schema errors:\n{e}"))
        })
    }
}

/// How inputs are read and parsed.
#[derive(Args, Debug, Clone)]
pub(crate) struct ReadArgs {
    /// Read plain files with read(2) instead of memory-mapping them.
    #[arg(long)]
    pub no_mmap: bool,
    /// Chunk size in bytes for parallel parsing.
    #[arg(long, value_name = "BYTES")]
    pub chunk_size: Option<usize>,
    /// Worker threads (default: one per CPU).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Longest record accepted, in bytes; a longer one stops the run.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_record_bytes)]
    pub max_record_bytes: usize,
    /// Largest decompressed member, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_member_bytes)]
    pub max_member_bytes: u64,
    /// Largest total of an input's decompressed members, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_input_bytes)]
    pub max_input_bytes: u64,
    /// Largest decompression ratio, of a member and of an input's members
    /// together to the input's size (checked past 64 MiB of output).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_ratio)]
    pub max_ratio: u64,
}

impl ReadArgs {
    /// Source and pipeline options, and the thread pool set up.
    #[allow(unsafe_code)]
    pub(crate) fn resolve(&self) -> (SourceOptions, PipelineOptions) {
        if let Some(n) = self.threads {
            // Fails only when the pool was built already (tests); harmless.
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(n.max(1))
                .build_global();
        }
        let mmap = if self.no_mmap {
            MmapChoice::never()
        } else {
            // SAFETY: fwload reads published exports that nothing rewrites
            // while a run reads them; a file truncated underneath would
            // fault, which README documents (use --no-mmap for files that
            // may change, such as ones still being downloaded).
            unsafe { MmapChoice::auto() }
        };
        let limits = Limits {
            max_member_bytes: self.max_member_bytes,
            max_input_bytes: self.max_input_bytes,
            max_ratio: self.max_ratio,
            max_record_bytes: self.max_record_bytes,
            ..Limits::default()
        };
        let mut pipeline = PipelineOptions {
            max_record_bytes: self.max_record_bytes,
            ..PipelineOptions::default()
        };
        if let Some(c) = self.chunk_size {
            pipeline.chunk_size = c.max(1);
        }
        (SourceOptions { limits, mmap, skip_archive_hash: false }, pipeline)
    }
}

/// Runs the parsed command line.
///
/// # Errors
/// A [`Failure`] with its exit code.
pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Schema(c) => schema::run(c),
        Command::Fetch(a) => fetch::run(a),
        Command::Gen(a) => generate::run(a),
        Command::Load(a) => load::run(a),
        Command::Runs(a) => load::runs(a),
        Command::Rollback(a) => load::rollback_cmd(a),
        Command::Run(a) => run::run(a),
        Command::Backfill(a) => backfill::run(a),
    }
}

/// Writes JSON to `path` (pretty-printed).
///
/// # Errors
/// The file cannot be written.
pub(crate) fn write_json(
    path: &std::path::Path,
    value: &impl serde::Serialize,
) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::new(Exit::Usage, e))?;
    std::fs::write(path, text + "\n").map_err(|e| {
        Failure::msg(
            Exit::Usage,
            format!("cannot write report {}: {e}", path.display()),
        )
    })
}
