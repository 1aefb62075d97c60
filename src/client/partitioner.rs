//! Choosing a record's partition.
//!
//! A keyed record goes to `murmur2(key) % partitions`, the hash Kafka's Java client
//! uses, so the same key always lands in the same partition (and in the same one a
//! Kafka client would pick). Unkeyed records go round robin over the partitions whose
//! broker is alive.

/// Kafka's murmur2 (32-bit, seed 0x9747b28c), as in its Java `Utils.murmur2`.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition of a keyed record.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    // Kafka's `toPositive`: mask the sign bit rather than abs().
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Round robin over the usable partitions.
#[derive(Debug, Default, Clone)]
pub struct RoundRobin {
    next: u32,
}

impl RoundRobin {
    /// The next partition among `usable` (falls back to all of `0..count` if none is
    /// usable, so the send fails with the real reason rather than silently).
    pub fn next(&mut self, count: u32, usable: &[u32]) -> u32 {
        self.next = self.next.wrapping_add(1);
        if usable.is_empty() {
            self.next % count.max(1)
        } else {
            usable[self.next as usize % usable.len()]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_java_client() {
        // Values from Kafka's UtilsTest.testMurmur2 (as signed ints there).
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (data, expected) in cases {
            assert_eq!(
                murmur2(data) as i32,
                *expected,
                "{:?}",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn keys_map_stably_and_in_range() {
        for n in 1..10 {
            let p = partition_for_key(b"user-42", n);
            assert!(p < n);
            assert_eq!(p, partition_for_key(b"user-42", n));
        }
    }

    #[test]
    fn round_robin_cycles_over_usable_partitions() {
        let mut rr = RoundRobin::default();
        let picks: Vec<u32> = (0..4).map(|_| rr.next(3, &[0, 2])).collect();
        assert!(picks.iter().all(|p| *p == 0 || *p == 2));
        assert!(picks.contains(&0) && picks.contains(&2));
        assert!(rr.next(3, &[]) < 3);
    }
}
