//! What each group received: per producer, the sequence numbers delivered.

use std::collections::HashMap;

use hdrhistogram::Histogram;

use crate::names::Topic;

/// A set of sequence numbers: one bit each.
#[derive(Debug, Default, Clone)]
pub(super) struct Bits(Vec<u64>);

impl Bits {
    /// Adds `i`; false if it was there already.
    pub(super) fn insert(&mut self, i: u64) -> bool {
        let (word, bit) = ((i / 64) as usize, i % 64);
        if word >= self.0.len() {
            self.0.resize((word + 1).next_power_of_two(), 0);
        }
        let was = self.0[word] >> bit & 1 == 1;
        self.0[word] |= 1 << bit;
        !was
    }

    pub(super) fn len(&self) -> u64 {
        self.0.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    fn word(&self, i: usize) -> u64 {
        self.0.get(i).copied().unwrap_or(0)
    }

    /// How many of `wanted` are not in `self`, and the first of them.
    pub(super) fn missing(&self, wanted: &Bits) -> (u64, Option<u64>) {
        let mut count = 0;
        let mut first = None;
        for (i, w) in wanted.0.iter().enumerate() {
            let lacking = w & !self.word(i);
            if lacking != 0 {
                count += u64::from(lacking.count_ones());
                first.get_or_insert(i as u64 * 64 + u64::from(lacking.trailing_zeros()));
            }
        }
        (count, first)
    }
}

/// The offsets a group received from one partition.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) min: u64,
    pub(super) max: u64,
    pub(super) count: u64,
}

/// What one group received.
pub(super) struct GroupLedger {
    /// Per producer, the sequence numbers delivered.
    pub(super) delivered: Vec<Bits>,
    pub(super) count: u64,
    pub(super) duplicates: u64,
    /// Values that do not parse as a load record (wrong size, unknown producer).
    pub(super) unrecognised: u64,
    pub(super) spans: HashMap<(Topic, u32), Span>,
    pub(super) e2e_us: Histogram<u64>,
}

impl GroupLedger {
    /// Nothing received yet, from any of `producers` producers.
    pub(super) fn new(producers: usize, e2e_us: Histogram<u64>) -> GroupLedger {
        GroupLedger {
            delivered: vec![Bits::default(); producers],
            count: 0,
            duplicates: 0,
            unrecognised: 0,
            spans: HashMap::new(),
            e2e_us,
        }
    }

    /// How many of the acknowledged records (`acked`, per producer) this group has
    /// not received, and the first of them as (producer, sequence number).
    pub(super) fn missing(&self, acked: &[Bits]) -> (u64, Option<(u32, u64)>) {
        let mut total = 0;
        let mut first = None;
        for (p, wanted) in acked.iter().enumerate() {
            let (n, f) = self.delivered[p].missing(wanted);
            total += n;
            if first.is_none() {
                first = f.map(|s| (p as u32, s));
            }
        }
        (total, first)
    }

    /// Records received that were never acknowledged (their producer saw them fail
    /// or never settled them).
    pub(super) fn delivered_unacked(&self, acked: &[Bits]) -> u64 {
        self.delivered
            .iter()
            .zip(acked)
            .map(|(d, a)| a.missing(d).0)
            .sum()
    }

    /// Offsets skipped inside the range each partition delivered.
    pub(super) fn offset_gaps(&self) -> u64 {
        self.spans
            .values()
            .map(|s| (s.max - s.min + 1).saturating_sub(s.count))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_count_insert_and_missing() {
        let mut wanted = Bits::default();
        let mut have = Bits::default();
        for i in [0, 1, 63, 64, 200, 1000] {
            assert!(wanted.insert(i));
        }
        assert!(!wanted.insert(64));
        assert_eq!(wanted.len(), 6);
        for i in [0, 63, 64, 1000, 5000] {
            have.insert(i);
        }
        assert_eq!(have.missing(&wanted), (2, Some(1)));
        assert_eq!(wanted.missing(&have), (1, Some(5000)));
    }
}
