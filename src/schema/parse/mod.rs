//! Schema files as written (TOML) to the layout model.
//!
//! Each file is first read into raw structs that mirror its keys, with
//! byte spans and with every enumerated setting (`format`, `terminator`,
//! `duplicates`, `on_orphan`, a field's `trim` or `sign`, …) already one
//! of its spellings; then each part is checked and built: a layout's
//! framing, fields, key and filters ([`layout`], [`field`]), a dataset's
//! archives, references, load order and hints ([`dataset`]). Every
//! problem goes to the file's [`Errs`](super::errs::Errs) with its line.

mod dataset;
mod field;
mod layout;

pub(super) use dataset::parse_dataset;
pub(super) use layout::parse_layout;

#[cfg(test)]
mod tests;
