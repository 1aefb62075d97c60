//! Kafka record batch v2 codec (owned by the storage-engine work).
