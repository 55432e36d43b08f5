//! Where records start: the byte offsets of records known by line.
//!
//! Staged rows carry their record's line, not its byte offset (eight more
//! bytes per row through `COPY` for the rare row rejected after staging,
//! an orphan). Those few find their offsets by reading their member again,
//! cut and numbered exactly as the pipeline cuts and numbers it.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::ControlError;
use super::read::ChunkReader;
use crate::decode::excerpt_text;
use crate::schema::Layout;
use crate::source::{self, SourceOptions};
use crate::split::{Framing, Records};

/// The byte offset in member `member` of `input` (records of `layout`)
/// of the record starting on each of `lines`; lines past the member's
/// end are absent from the answer.
///
/// # Errors
/// The input cannot be read again, or its member no longer cuts into
/// records.
pub fn record_offsets(
    input: &Path,
    member: &str,
    layout: &Layout,
    opts: &SourceOptions,
    max_record: usize,
    lines: &BTreeSet<u64>,
) -> Result<HashMap<u64, u64>, ControlError> {
    let mut found = HashMap::new();
    let Some(&last) = lines.last() else { return Ok(found) };
    let opts = SourceOptions { skip_archive_hash: true, ..*opts };
    source::read_input::<ControlError>(
        input,
        &opts,
        &|name| name == member,
        &mut |info, body| {
            let at = format!("{}:{}", info.input, excerpt_text(&info.name));
            let refused = |e: super::ReadError| {
                ControlError::Refused(format!("{at}: {e}"))
            };
            let framing = Framing::of(layout);
            let mut reader =
                ChunkReader::new(body, framing, 1 << 20, max_record)
                    .without_hash();
            reader.skip_bom().map_err(refused)?;
            while let Some(chunk) = reader.next_chunk().map_err(refused)? {
                let mut line = chunk.first_line.unwrap_or(1);
                for rec in Records::new(&chunk.data, framing) {
                    if lines.contains(&line) {
                        found.insert(
                            line,
                            chunk.start_byte + rec.offset as u64,
                        );
                    }
                    line += 1 + u64::from(rec.extra_lines);
                }
                if line > last {
                    break;
                }
            }
            Ok(None)
        },
    )?;
    Ok(found)
}
