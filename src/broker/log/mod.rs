//! Partition log storage engine (owned by the storage-engine work).
