//! Tunables of a partition log.

use std::fmt;
use std::str::FromStr;

/// When appended data is forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync the segment before `append` returns.
    Always,
    /// The broker calls `sync()` every N milliseconds; the log only tracks
    /// whether there is anything to sync.
    EveryMs(u64),
    /// Only the broker's explicit `sync()` calls (and segment rolls) fsync.
    Never,
}

/// `FsyncPolicy::from_str` failed; the text says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fsync policy: expected \"always\", \"never\" or \"every-ms:N\"")]
pub struct ParseFsyncPolicyError;

impl FromStr for FsyncPolicy {
    type Err = ParseFsyncPolicyError;

    /// Accepts `always`, `never` and `every-ms:N` (N in milliseconds).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            _ => s
                .strip_prefix("every-ms:")
                .and_then(|ms| ms.parse().ok())
                .map(FsyncPolicy::EveryMs)
                .ok_or(ParseFsyncPolicyError),
        }
    }
}

impl fmt::Display for FsyncPolicy {
    /// The same form `from_str` accepts, so configs round-trip.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::EveryMs(ms) => write!(f, "every-ms:{ms}"),
            FsyncPolicy::Never => f.write_str("never"),
        }
    }
}

/// How a partition log lays out and syncs its segments.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Roll to a new segment when the active one would exceed this many
    /// bytes. A single larger batch still goes into its own segment.
    pub segment_bytes: u64,
    /// Bytes of log data between two sparse index entries.
    pub index_interval_bytes: u32,
    /// When appends reach stable storage.
    pub fsync: FsyncPolicy,
}

impl Default for LogConfig {
    /// 128 MiB segments, an index entry every 4 KiB, fsync every second.
    fn default() -> Self {
        LogConfig {
            segment_bytes: 128 * 1024 * 1024,
            index_interval_bytes: 4096,
            fsync: FsyncPolicy::EveryMs(1000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policy_parses_and_displays_the_same_form() {
        for (text, policy) in [
            ("always", FsyncPolicy::Always),
            ("never", FsyncPolicy::Never),
            ("every-ms:250", FsyncPolicy::EveryMs(250)),
        ] {
            assert_eq!(text.parse::<FsyncPolicy>(), Ok(policy));
            assert_eq!(policy.to_string(), text);
        }
        for bad in ["", "Always", "every-ms:", "every-ms:-1", "every-ms=5", "5"] {
            assert_eq!(bad.parse::<FsyncPolicy>(), Err(ParseFsyncPolicyError));
        }
    }

    #[test]
    fn defaults() {
        let c = LogConfig::default();
        assert_eq!(c.segment_bytes, 128 << 20);
        assert_eq!(c.index_interval_bytes, 4096);
        assert_eq!(c.fsync, FsyncPolicy::EveryMs(1000));
    }
}
