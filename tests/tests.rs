//! Integration tests, built as one binary with a module per area.

mod backfill;
mod bad_input;
mod crash;
mod fetch;
mod generate;
mod guards;
mod hcad_codebook;
mod history;
mod http_server;
mod load;
mod members;
mod pacs_export;
mod periods;
mod pg;
mod pgcopy;
mod reliability;
mod roundtrip;
mod run;
mod schemas;
mod tls;
mod undo;
mod util;
