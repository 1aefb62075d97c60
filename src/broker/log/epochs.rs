//! The leader epoch cache: where each leader epoch's batches begin.
//!
//! Followers ask "where does epoch E end in your log?" to find the point
//! where their log and the leader's diverge (Kafka's
//! OffsetsForLeaderEpoch). The answer comes from this cache, a short list
//! of `(epoch, start offset)` pairs, one per epoch change, kept in step
//! with appends and truncations and rebuilt from batch headers at open.

/// `(epoch, first offset of that epoch)`, ascending in both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    entries: Vec<(u32, u64)>,
}

impl EpochCache {
    /// Notes a batch stored with `epoch` (the header's signed field) at
    /// `base_offset`. Only an epoch above the latest starts an entry;
    /// "no epoch" (negative) and older epochs change nothing.
    pub(crate) fn observe(&mut self, epoch: i32, base_offset: u64) {
        let Ok(epoch) = u32::try_from(epoch) else {
            return;
        };
        if self.latest().is_none_or(|latest| epoch > latest) {
            self.entries.push((epoch, base_offset));
        }
    }

    /// The newest epoch in the log.
    pub(crate) fn latest(&self) -> Option<u32> {
        self.entries.last().map(|&(epoch, _)| epoch)
    }

    /// The largest epoch `<= epoch` and the offset where it ends: the start
    /// of the next epoch, or `log_end` for the latest.
    pub(crate) fn end_of(&self, epoch: u32, log_end: u64) -> Option<(u32, u64)> {
        let next = self.entries.partition_point(|&(e, _)| e <= epoch);
        let &(found, _) = self.entries.get(next.checked_sub(1)?)?;
        let end = self.entries.get(next).map_or(log_end, |&(_, start)| start);
        Some((found, end))
    }

    /// Forgets the epochs that start at or after `offset`, the log's new
    /// end after a truncation.
    pub(crate) fn truncate_from(&mut self, offset: u64) {
        let keep = self.entries.partition_point(|&(_, start)| start < offset);
        self.entries.truncate(keep);
    }

    /// The entries, oldest first.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[(u32, u64)] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(batches: &[(i32, u64)]) -> EpochCache {
        let mut cache = EpochCache::default();
        for &(epoch, base) in batches {
            cache.observe(epoch, base);
        }
        cache
    }

    #[test]
    fn only_rising_epochs_start_entries() {
        let c = cache(&[(-1, 0), (0, 2), (0, 5), (3, 9), (2, 10), (-1, 11), (7, 12)]);
        assert_eq!(c.entries(), &[(0, 2), (3, 9), (7, 12)]);
        assert_eq!(c.latest(), Some(7));
        assert_eq!(cache(&[(-1, 0)]).latest(), None);
    }

    #[test]
    fn end_of_answers_like_offsets_for_leader_epoch() {
        let c = cache(&[(1, 0), (3, 10), (5, 25)]);
        assert_eq!(c.end_of(0, 40), None, "below the first");
        assert_eq!(c.end_of(1, 40), Some((1, 10)));
        assert_eq!(c.end_of(2, 40), Some((1, 10)), "absent, between");
        assert_eq!(c.end_of(3, 40), Some((3, 25)));
        assert_eq!(c.end_of(5, 40), Some((5, 40)), "the latest");
        assert_eq!(c.end_of(u32::MAX, 40), Some((5, 40)), "above the latest");
        assert_eq!(EpochCache::default().end_of(3, 0), None);
    }

    #[test]
    fn truncation_drops_epochs_starting_at_or_after_the_new_end() {
        let mut c = cache(&[(1, 0), (3, 10), (5, 25)]);
        c.truncate_from(26);
        assert_eq!(c.entries(), &[(1, 0), (3, 10), (5, 25)]);
        c.truncate_from(25);
        assert_eq!(c.entries(), &[(1, 0), (3, 10)]);
        c.truncate_from(0);
        assert_eq!(c.entries(), &[]);
    }
}
