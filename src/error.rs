//! The library's one error type.
//!
//! `Error` is also the wire format of every failed request: a server renders it as
//! `{"error": "<kind>", "message": "<Display>", ...fields}` with the status from
//! [`Error::status`], and a client parses that body back into the same variant. The
//! serde tag is the `kind` that the Python exceptions mirror.

use serde::{Deserialize, Serialize};

/// Everything that can go wrong in logbrook, as seen by a caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Error {
    /// The consumer must join a consumer group before it subscribes or polls.
    #[error("consumer '{consumer}' is not in a consumer group: call join_consumer_group first")]
    NotInGroup {
        /// The consumer's id.
        consumer: String,
    },
    /// The topic does not exist (never created, or removed).
    #[error("unknown topic '{topic}'")]
    UnknownTopic {
        /// The topic asked for.
        topic: String,
    },
    /// A topic with this name already exists.
    #[error("topic '{topic}' already exists")]
    TopicExists {
        /// The topic's name.
        topic: String,
    },
    /// A topic, group or server name breaks the naming rules.
    #[error("invalid {what} name '{name}': {reason}")]
    InvalidName {
        /// What was being named: "topic", "consumer group" or "server id".
        what: String,
        /// The rejected name (truncated if very long).
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A leader or broker could not be reached, or did not answer in time.
    #[error("{addr} is unavailable: {reason}")]
    Unavailable {
        /// The address that failed.
        addr: String,
        /// What happened (connection refused, timeout, ...).
        reason: String,
    },
    /// The partition does not exist in the topic.
    #[error("topic '{topic}' has no partition {partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
    },
    /// The broker asked does not host this partition, or is not its leader now
    /// (stale metadata: refresh and retry).
    #[error("broker {broker} does not lead partition {partition} of topic '{topic}'")]
    NotPartitionOwner {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The broker that answered.
        broker: String,
    },
    /// A fetch asked for an offset outside the partition's log.
    #[error("offset {requested} is out of range for '{topic}' partition {partition} (log holds {start}..{end})")]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset asked for.
        requested: u64,
        /// The first offset held.
        start: u64,
        /// The next offset to be written.
        end: u64,
    },
    /// The consumer group does not know this member (it left, or timed out): rejoin.
    #[error("consumer '{member}' is not a member of group '{group}'")]
    UnknownMember {
        /// The group.
        group: String,
        /// The member's id.
        member: String,
    },
    /// The leader does not know this broker id (its metadata was lost): register again.
    #[error("unknown broker id {broker_id}")]
    UnknownBroker {
        /// The broker id given.
        broker_id: u32,
    },
    /// No live broker can take the request (e.g. creating a topic with no broker up).
    #[error("no live broker: {reason}")]
    NoBrokers {
        /// Why the brokers were needed.
        reason: String,
    },
    /// The request is malformed: a bad body, a bad parameter, a bad record batch.
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong with it.
        reason: String,
    },
    /// The request lacks the cluster's shared secret (`--auth-token`), or has a wrong
    /// one. Nothing was changed.
    #[error("unauthorized: {reason}")]
    Unauthorized {
        /// What was missing or wrong.
        reason: String,
    },
    /// The request body is larger than the server accepts.
    #[error("request of {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The size sent.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// Records sent in the background could not be delivered (reported by `flush`).
    #[error("{records} record(s) could not be delivered: {reason}")]
    DeliveryFailed {
        /// How many records failed since the last report.
        records: u64,
        /// The first failure.
        reason: String,
    },
    /// The server failed to read or write its data (disk full, I/O error).
    #[error("storage error: {reason}")]
    Storage {
        /// The underlying failure, naming the file.
        reason: String,
    },
    /// A newer leader epoch or partition state exists: the request came from a
    /// replica with stale metadata (a fenced old leader, a lagging follower).
    #[error("fenced: {reason}")]
    StaleEpoch {
        /// Which epochs disagreed.
        reason: String,
    },
    /// With `acks=all`, the in-sync replicas did not confirm the records in time. The
    /// records may still be committed later: an idempotent retry does not duplicate them.
    #[error("partition {partition} of topic '{topic}' was not replicated in time: {reason}")]
    ReplicationTimeout {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// What was waited for.
        reason: String,
    },
    /// An idempotent producer's batch does not continue its sequence on this partition
    /// (a batch before it was lost), or comes from a fenced producer epoch.
    #[error("producer {producer_id} is out of sequence: {reason}")]
    OutOfOrderSequence {
        /// The producer id.
        producer_id: i64,
        /// Expected and found sequence, or the fenced epoch.
        reason: String,
    },
    /// A single record is larger than the broker's `--max-record-bytes`.
    #[error("record of {size} bytes is over the limit of {limit} bytes (--max-record-bytes)")]
    RecordTooLarge {
        /// The record's size (key plus value).
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A peer answered something this version does not understand.
    #[error("protocol error: {reason}")]
    Protocol {
        /// What was wrong with the answer.
        reason: String,
    },
}

impl Error {
    /// The HTTP status a server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            Error::InvalidName { .. } | Error::InvalidRequest { .. } => 400,
            Error::UnknownTopic { .. }
            | Error::UnknownPartition { .. }
            | Error::UnknownMember { .. }
            | Error::UnknownBroker { .. } => 404,
            Error::TopicExists { .. }
            | Error::NotInGroup { .. }
            | Error::StaleEpoch { .. }
            | Error::OutOfOrderSequence { .. } => 409,
            Error::NotPartitionOwner { .. } => 421,
            Error::TooLarge { .. } | Error::RecordTooLarge { .. } => 413,
            Error::Unauthorized { .. } => 401,
            Error::OffsetOutOfRange { .. } => 416,
            Error::Unavailable { .. }
            | Error::NoBrokers { .. }
            | Error::ReplicationTimeout { .. } => 503,
            Error::Storage { .. } | Error::Protocol { .. } | Error::DeliveryFailed { .. } => 500,
        }
    }

    /// The stable snake_case name of the variant (the wire's `error` field).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotInGroup { .. } => "not_in_group",
            Error::UnknownTopic { .. } => "unknown_topic",
            Error::TopicExists { .. } => "topic_exists",
            Error::InvalidName { .. } => "invalid_name",
            Error::Unavailable { .. } => "unavailable",
            Error::UnknownPartition { .. } => "unknown_partition",
            Error::NotPartitionOwner { .. } => "not_partition_owner",
            Error::OffsetOutOfRange { .. } => "offset_out_of_range",
            Error::UnknownMember { .. } => "unknown_member",
            Error::UnknownBroker { .. } => "unknown_broker",
            Error::NoBrokers { .. } => "no_brokers",
            Error::InvalidRequest { .. } => "invalid_request",
            Error::TooLarge { .. } => "too_large",
            Error::Unauthorized { .. } => "unauthorized",
            Error::DeliveryFailed { .. } => "delivery_failed",
            Error::Storage { .. } => "storage",
            Error::Protocol { .. } => "protocol",
            Error::StaleEpoch { .. } => "stale_epoch",
            Error::ReplicationTimeout { .. } => "replication_timeout",
            Error::OutOfOrderSequence { .. } => "out_of_order_sequence",
            Error::RecordTooLarge { .. } => "record_too_large",
        }
    }

    /// Whether retrying after refreshing metadata may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. }
                | Error::NotPartitionOwner { .. }
                | Error::NoBrokers { .. }
                | Error::ReplicationTimeout { .. }
                | Error::StaleEpoch { .. }
        )
    }

    /// Renders the error as the JSON body servers send: the variant's fields, its
    /// `error` kind and a human `message`.
    pub fn to_json_body(&self) -> serde_json::Value {
        let mut body = serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({}));
        if let serde_json::Value::Object(map) = &mut body {
            map.insert("error".into(), self.kind().into());
            map.insert("message".into(), self.to_string().into());
        }
        body
    }

    /// Parses an error body sent by a server; an unknown shape becomes `Protocol`
    /// carrying the status and whatever message could be read.
    pub fn from_json_body(status: u16, body: &[u8]) -> Error {
        if let Ok(err) = serde_json::from_slice::<Error>(body) {
            return err;
        }
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        Error::Protocol {
            reason: format!("HTTP {status}: {message}"),
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Error {
        Error::InvalidRequest {
            reason: reason.into(),
        }
    }

    /// A storage error carrying the whole chain of causes ("failed to write x: No
    /// space left on device"), not only the outermost message.
    pub(crate) fn storage_chain(err: &(dyn std::error::Error + 'static)) -> Error {
        let mut reason = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        Error::Storage { reason }
    }

    pub(crate) fn storage(err: impl std::fmt::Display) -> Error {
        Error::Storage {
            reason: err.to_string(),
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn every_variant() -> Vec<Error> {
        let s = || "x".to_string();
        vec![
            Error::NotInGroup { consumer: s() },
            Error::UnknownTopic { topic: s() },
            Error::TopicExists { topic: s() },
            Error::InvalidName {
                what: s(),
                name: s(),
                reason: s(),
            },
            Error::Unavailable {
                addr: s(),
                reason: s(),
            },
            Error::UnknownPartition {
                topic: s(),
                partition: 3,
            },
            Error::NotPartitionOwner {
                topic: s(),
                partition: 1,
                broker: s(),
            },
            Error::OffsetOutOfRange {
                topic: s(),
                partition: 0,
                requested: 9,
                start: 0,
                end: 4,
            },
            Error::UnknownMember {
                group: s(),
                member: s(),
            },
            Error::UnknownBroker { broker_id: 7 },
            Error::NoBrokers { reason: s() },
            Error::InvalidRequest { reason: s() },
            Error::TooLarge { size: 10, limit: 5 },
            Error::Unauthorized { reason: s() },
            Error::Storage { reason: s() },
            Error::Protocol { reason: s() },
            Error::DeliveryFailed {
                records: 3,
                reason: s(),
            },
            Error::StaleEpoch { reason: s() },
            Error::ReplicationTimeout {
                topic: s(),
                partition: 2,
                reason: s(),
            },
            Error::OutOfOrderSequence {
                producer_id: 4,
                reason: s(),
            },
            Error::RecordTooLarge { size: 9, limit: 8 },
        ]
    }

    #[test]
    fn every_variant_round_trips_through_its_json_body() {
        for err in every_variant() {
            let body = serde_json::to_vec(&err.to_json_body()).unwrap();
            let back = Error::from_json_body(err.status(), &body);
            assert_eq!(back, err);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"], err.kind());
            assert_eq!(v["message"], err.to_string());
        }
    }

    #[test]
    fn unknown_body_becomes_protocol_error_with_status() {
        let err = Error::from_json_body(502, b"<html>bad gateway</html>");
        assert!(matches!(err, Error::Protocol { ref reason } if reason.contains("502")));
    }

    #[test]
    fn client_errors_are_4xx_and_server_errors_5xx() {
        for err in every_variant() {
            let status = err.status();
            let server_side = matches!(
                err,
                Error::Unavailable { .. }
                    | Error::NoBrokers { .. }
                    | Error::ReplicationTimeout { .. }
                    | Error::Storage { .. }
                    | Error::Protocol { .. }
                    | Error::DeliveryFailed { .. }
            );
            assert_eq!(status >= 500, server_side, "{err:?}");
        }
    }
}
