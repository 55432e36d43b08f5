//! fwload: stream county property-appraisal exports out of archives,
//! validate them, and load them into PostgreSQL.
//!
//! ```text
//!  source ──▶ pipeline (split ▶ record ▶ decode ▶ pgcopy) ──▶ validate | load
//!
//!  archive member ──read──▶ record-aligned chunks (numbered; sha256 on the way)
//!      ──workers──▶ per chunk: slice fields ▶ decode ▶ encode binary COPY rows
//!                  (or a Reject with its Position and Reason)
//!      ──in order──▶ COPY into an UNLOGGED staging table │ validate counters
//!                  │ rejects file and table │ keys for duplicate checks
//!  publish: ONE transaction, dependency order — references, MERGE,
//!           snapshot deletes, reject thresholds, run record — COMMIT
//! ```
//!
//! | stage | module |
//! |---|---|
//! | layouts, datasets, type rules | [`schema`] |
//! | inputs: files, zip, tar, gzip, members, guards | [`source`] |
//! | record boundaries in a chunk | [`split`] |
//! | fields of one record | [`record`] |
//! | field values (numbers, dates, text) | [`decode`] |
//! | binary `COPY` rows | [`pgcopy`] |
//! | the engine: chunks, workers, order, hashing | [`pipeline`] |
//! | duplicate-key index (sort, spill, merge) | [`keys`] |
//! | outcomes shared by every stage | [`reject`] |
//! | downloads with resume and a manifest | [`fetch`] |
//! | deterministic test archives | [`generate`] |
//!
//! The two entry points are [`validate()`] (no database) and [`load()`].
//! The command line lives in a private module; only it prints.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod decode;
pub mod fetch;
pub mod generate;
pub mod keys;
pub mod pgcopy;
pub mod pipeline;
pub mod record;
pub mod reject;
pub mod schema;
pub mod source;
pub mod split;

mod cli;
mod digest;
mod load;
mod report;
mod validate;

pub use cli::{Cli, Exit, Failure, run};
pub use load::{
    CheckResult, Database, Interrupt, LoadError, LoadErrorKind, LoadEvents,
    LoadFailure, LoadOptions, LoadReport, MakeProgress, Notify, Rollback,
    RunDetail, RunSummary, SslMode, Undone, describe, list_runs, load,
    rollback, rollback_runs, show_run,
};
pub use report::{Progress, RejectWriter, Summary};
pub use validate::{ValidateError, ValidateOptions, validate};
