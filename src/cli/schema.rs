//! `fwload schema check | ddl | show`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CliResult, Exit, Failure, SchemaArgs};
use crate::schema::{
    SchemaSet, TableShape, create_table, history_statements, index_statements,
    quote_ident,
};

/// `fwload schema …`
#[derive(Subcommand, Debug)]
pub enum SchemaCommand {
    /// Check schema files; print every problem with file, line and field.
    Check(CheckArgs),
    /// Print the CREATE TABLE statements of the target tables.
    Ddl(DdlArgs),
    /// Print each layout as canonical TOML (defaults made explicit).
    Show(SchemaArgs),
}

/// Arguments of `fwload schema check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Schema directories or files.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// Arguments of `fwload schema ddl`.
#[derive(Args, Debug)]
pub struct DdlArgs {
    #[command(flatten)]
    schema: SchemaArgs,
    /// PostgreSQL schema the tables go in.
    #[arg(long, default_value = "public", value_name = "NAME")]
    target_schema: String,
    /// Add the deleted_at column used by --delete soft.
    #[arg(long)]
    soft_delete: bool,
    /// Tables for --mode history: version columns, the current-key index,
    /// the `<table>_current` view and the `<table>_as_of(ts)` function.
    #[arg(long)]
    history: bool,
}

pub(super) fn run(c: SchemaCommand) -> CliResult {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match c {
        SchemaCommand::Check(a) => match SchemaSet::load(&a.paths) {
            Ok(set) => {
                for l in &set.layouts {
                    writeln!(
                        out,
                        "ok  {} → table {} ({} fields, {})",
                        l.name,
                        l.table,
                        l.fields.len(),
                        l.path.display()
                    )?;
                }
                if let Some(d) = &set.dataset {
                    writeln!(
                        out,
                        "ok  dataset {} ({} archives, {} references)",
                        d.name,
                        d.archives.len(),
                        d.references.len()
                    )?;
                }
                Ok(Exit::Ok)
            }
            Err(e) => {
                for err in &e.0 {
                    eprintln!("{err}");
                }
                Err(Failure::msg(
                    Exit::Usage,
                    format!("{} schema problem(s)", e.0.len()),
                ))
            }
        },
        SchemaCommand::Ddl(a) => {
            let set = a.schema.load()?;
            let history = set.history_columns();
            let shape = TableShape {
                soft_delete: a.soft_delete,
                period: set.period_column(),
                history: a.history.then_some(&history),
            };
            for l in &set.layouts {
                let table = format!(
                    "{}.{}",
                    quote_ident(&a.target_schema),
                    quote_ident(&l.table)
                );
                writeln!(out, "{};", create_table(l, &table, &shape))?;
                let more = index_statements(l, &table, set.references())
                    .into_iter()
                    .chain(history_statements(l, &table, &shape));
                for s in more {
                    writeln!(out, "{s};")?;
                }
                writeln!(out)?;
            }
            Ok(Exit::Ok)
        }
        SchemaCommand::Show(a) => {
            let set = a.load()?;
            for l in &set.layouts {
                writeln!(out, "# {}\n{}", l.path.display(), l.to_toml())?;
            }
            Ok(Exit::Ok)
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::new(Exit::Usage, e)
    }
}
