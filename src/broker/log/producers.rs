//! Idempotent producer state: what each producer id last wrote, so a leader
//! can drop retried batches and refuse gaps and fenced (older) producers.
//!
//! The state is derived from batch headers only, so replaying the log's
//! headers rebuilds it exactly; appends keep it in step.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};

use super::error::LogError;
use super::AppendInfo;
use crate::protocol::batch::BatchHeader;

/// Batches remembered per producer to recognise retries (Kafka keeps 5, the
/// most in-flight requests an idempotent producer may have).
const REMEMBERED_BATCHES: usize = 5;

/// Where one idempotent batch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SequencedBatch {
    base_sequence: i32,
    last_sequence: i32,
    base_offset: u64,
    last_offset: u64,
}

/// One producer id's state in the current producer epoch.
#[derive(Debug, Clone)]
struct Producer {
    epoch: i16,
    last_sequence: i32,
    /// The latest batches of `epoch`, oldest first, never empty.
    recent: VecDeque<SequencedBatch>,
}

impl Producer {
    fn starting_with(epoch: i16, batch: SequencedBatch) -> Producer {
        Producer {
            epoch,
            last_sequence: batch.last_sequence,
            recent: VecDeque::from([batch]),
        }
    }
}

/// The producer fields of an idempotent batch.
struct Identity {
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    last_sequence: i32,
}

/// The idempotent producers that wrote to one partition log.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProducerStates {
    producers: HashMap<i64, Producer>,
}

impl ProducerStates {
    /// The leader's check before appending `header`'s batch: `Ok(None)` to
    /// append it, `Ok(Some(info))` if it repeats one of the producer's
    /// recent batches (stored at `info`), or why it must be refused.
    pub(crate) fn check(&self, header: &BatchHeader) -> Result<Option<AppendInfo>, LogError> {
        let Some(id) = identity(header)? else {
            return Ok(None);
        };
        let Some(known) = self.producers.get(&id.producer_id) else {
            return Ok(None);
        };
        if id.epoch < known.epoch {
            return Err(LogError::ProducerFenced {
                producer_id: id.producer_id,
                epoch: id.epoch,
                current_epoch: known.epoch,
            });
        }
        if id.epoch > known.epoch {
            return Ok(None);
        }
        let same = |b: &&SequencedBatch| {
            b.base_sequence == id.base_sequence && b.last_sequence == id.last_sequence
        };
        if let Some(original) = known.recent.iter().find(same) {
            return Ok(Some(AppendInfo {
                base_offset: original.base_offset,
                last_offset: original.last_offset,
                record_count: header.record_count.unsigned_abs(),
            }));
        }
        let expected = next_sequence(known.last_sequence, 1);
        if id.base_sequence != expected {
            return Err(LogError::OutOfOrderSequence {
                producer_id: id.producer_id,
                expected,
                found: id.base_sequence,
            });
        }
        Ok(None)
    }

    /// Records a batch that is now in the log at `base_offset`, without
    /// judging it (a follower stores what its leader wrote). A producer
    /// epoch other than the known one starts the producer afresh.
    pub(crate) fn record(&mut self, header: &BatchHeader, base_offset: u64) {
        let Ok(Some(id)) = identity(header) else {
            return;
        };
        let records = u64::from(header.record_count.unsigned_abs().max(1));
        let batch = SequencedBatch {
            base_sequence: id.base_sequence,
            last_sequence: id.last_sequence,
            base_offset,
            last_offset: base_offset.saturating_add(records - 1),
        };
        match self.producers.entry(id.producer_id) {
            Entry::Occupied(mut slot) if slot.get().epoch == id.epoch => {
                let known = slot.get_mut();
                if known.recent.len() == REMEMBERED_BATCHES {
                    known.recent.pop_front();
                }
                known.recent.push_back(batch);
                known.last_sequence = batch.last_sequence;
            }
            Entry::Occupied(mut slot) => {
                slot.insert(Producer::starting_with(id.epoch, batch));
            }
            Entry::Vacant(slot) => {
                slot.insert(Producer::starting_with(id.epoch, batch));
            }
        }
    }

    /// Whether cutting the log at `offset` removes any producer's latest
    /// batch, i.e. whether the state must be rebuilt.
    pub(crate) fn reach(&self, offset: u64) -> bool {
        self.producers
            .values()
            .filter_map(|p| p.recent.back())
            .any(|b| b.last_offset >= offset)
    }

    /// `(producer epoch, last sequence)` of a known producer.
    pub(crate) fn last_sequence(&self, producer_id: i64) -> Option<(i16, i32)> {
        self.producers
            .get(&producer_id)
            .map(|p| (p.epoch, p.last_sequence))
    }
}

/// The producer fields of `header`: `None` for a non-idempotent batch
/// (producer id < 0), an error if an idempotent one lacks an epoch or a
/// sequence.
fn identity(header: &BatchHeader) -> Result<Option<Identity>, LogError> {
    if header.producer_id < 0 {
        return Ok(None);
    }
    if header.producer_epoch < 0 || header.base_sequence < 0 {
        return Err(LogError::InvalidProducerFields {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
        });
    }
    let increment = header.record_count.unsigned_abs().saturating_sub(1);
    Ok(Some(Identity {
        producer_id: header.producer_id,
        epoch: header.producer_epoch,
        base_sequence: header.base_sequence,
        last_sequence: next_sequence(header.base_sequence, increment),
    }))
}

/// `sequence + increment`, wrapping from `i32::MAX` to 0 as Kafka does.
fn next_sequence(sequence: i32, increment: u32) -> i32 {
    let modulus = i64::from(i32::MAX) + 1;
    let sum = (i64::from(sequence) + i64::from(increment)).rem_euclid(modulus);
    // rem_euclid by 2^31 leaves [0, i32::MAX].
    i32::try_from(sum).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_at_i32_max_to_zero() {
        assert_eq!(next_sequence(0, 1), 1);
        assert_eq!(next_sequence(i32::MAX, 1), 0);
        assert_eq!(next_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(next_sequence(5, 0), 5);
    }
}
