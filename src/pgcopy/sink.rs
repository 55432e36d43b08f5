//! Where the parser's workers put the values of valid records: the one
//! interface between parsing and whatever keeps the rows (the COPY
//! encoder of a load, nothing at all in validation).

use crate::decode::{FieldType, Value};

/// Receives the decoded values of each valid record.
///
/// `start_row`, then one `value` per field in layout order, then
/// `end_row`; a record rejected midway ends with `abort_row` instead and
/// must leave no trace.
pub trait RowSink: Send {
    /// Whether the sink uses the values. A sink that does not (validation)
    /// lets the worker skip fields whose checks cannot fail on the record
    /// at hand, instead of decoding them.
    const VALUES: bool = true;
    /// A record begins.
    fn start_row(&mut self, file: u32, line: u64, nfields: usize);
    /// The next field's value.
    fn value(&mut self, ty: FieldType, v: &Value<'_>);
    /// The record is complete and valid.
    fn end_row(&mut self);
    /// The record was rejected; forget its values.
    fn abort_row(&mut self);
    /// A rejected record whose key could still be read: its key values
    /// (NULL for every other field) follow, ended by `end_row`. A load
    /// keeps these apart so that deleting rows missing from a snapshot
    /// never deletes a row whose new record was merely rejected. Sinks
    /// that do not care ignore it (the default).
    fn start_rejected_key(
        &mut self,
        _file: u32,
        _line: u64,
        _nfields: usize,
    ) -> bool {
        false
    }
    /// Empties the sink for another chunk, returning whether it can be
    /// reused (its buffers kept, so a pipeline allocates them once rather
    /// than per chunk). Sinks that cannot say no (the default).
    fn reset(&mut self) -> bool {
        false
    }
}
