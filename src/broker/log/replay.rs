//! Rebuilding what the log knows beyond its bytes (leader epochs, producer
//! state) by walking the headers of every batch once, at open and after a
//! truncation that needs it.
//!
//! Only the 61-byte headers are read, each batch skipped by its length, so
//! segments of large batches cost a read per batch rather than their size.
//! Recovery has already checked what it had to, so damage met here (only
//! possible inside a trusted closed segment) is reported, not repaired.

use super::epochs::EpochCache;
use super::error::LogError;
use super::producers::ProducerStates;
use super::scan::Window;
use super::segment::Segment;
use crate::protocol::batch::{BatchHeader, HEADER_LEN};

/// Read size of the header walk: a few small batches' headers per read,
/// without dragging in much of a large batch's records.
const HEADER_CHUNK: usize = 8 << 10;

/// State derived from batch headers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Derived {
    /// Where each leader epoch begins.
    pub(crate) epochs: EpochCache,
    /// The idempotent producers.
    pub(crate) producers: ProducerStates,
}

impl Derived {
    /// Folds in a batch stored at `base_offset`.
    pub(crate) fn observe(&mut self, header: &BatchHeader, base_offset: u64) {
        self.epochs
            .observe(header.partition_leader_epoch, base_offset);
        self.producers.record(header, base_offset);
    }
}

/// Walks the headers of every batch in `segments`, oldest first.
pub(crate) fn replay<'a>(
    segments: impl IntoIterator<Item = &'a Segment>,
) -> Result<Derived, LogError> {
    let mut derived = Derived::default();
    for segment in segments {
        replay_segment(segment, &mut derived)?;
    }
    Ok(derived)
}

fn replay_segment(segment: &Segment, derived: &mut Derived) -> Result<(), LogError> {
    let (file, path, size) = (segment.log_file(), segment.log_path(), segment.size());
    let mut window = Window::new(file, path, size, HEADER_CHUNK);
    let corrupt = |position, reason| LogError::Corrupt {
        path: path.to_path_buf(),
        position,
        reason,
    };
    let mut pos = 0;
    while pos < size {
        let head = window
            .get(pos, HEADER_LEN)?
            .ok_or_else(|| corrupt(pos, "torn batch header"))?;
        let header = BatchHeader::parse(head).map_err(|_| corrupt(pos, "bad batch header"))?;
        let base =
            u64::try_from(header.base_offset).map_err(|_| corrupt(pos, "negative base offset"))?;
        derived.observe(&header, base);
        pos += header.total_len() as u64;
    }
    Ok(())
}
