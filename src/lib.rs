//! fwload: stream county property-appraisal exports out of archives,
//! validate them, and load them into PostgreSQL.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod decode;
pub mod digest;
pub mod fetch;
pub mod generate;
pub mod keys;
pub mod load;
pub mod pgcopy;
pub mod pipeline;
pub mod record;
pub mod reject;
pub mod report;
pub mod schema;
pub mod source;
pub mod split;
pub mod validate;
