//! The broker's HTTP endpoints (documented in `docs/protocol.md`). Record batches
//! travel as raw bytes; everything else is JSON.

use std::time::Duration;

use tide::{Request, Response, StatusCode};

use crate::error::Error;
use crate::http::auth::RequireToken;
use crate::http::client::{END_OFFSET_HEADER, HIGH_WATERMARK_HEADER};
use crate::http::limits::Budget;
use crate::http::reply::{
    body_bytes, error_response, json_body, name_param, number_param, query_u64, reply, JsonErrors,
};
use crate::names::Topic;
use crate::protocol::control::{
    Ack, Acks, BrokerAssignment, EndOffsetsRequest, EndOffsetsResponse,
};
use crate::stages::{self, Stage};

use super::log::FsyncPolicy;
use super::service::{BrokerService, FetchResult, ReplicaFetchRequest};

/// State of the broker's routes.
#[derive(Clone)]
pub struct BrokerState {
    /// The partitions.
    pub service: BrokerService,
    /// Largest produce body accepted.
    pub max_request_bytes: u64,
    /// Largest single record (key plus value) accepted.
    pub max_record_bytes: u64,
    /// Largest fetch answer (a single larger batch is still sent whole).
    pub max_fetch_bytes: u64,
    /// The shared secret every request must carry, if any.
    pub auth_token: Option<String>,
    /// Bytes of produce bodies held in memory at once, across requests: more wait.
    pub produce_memory: Budget,
}

/// The tide app serving a broker.
pub fn app(state: BrokerState) -> tide::Server<BrokerState> {
    let auth = RequireToken::new(state.auth_token.as_deref());
    let mut app = tide::with_state(state);
    app.with(JsonErrors);
    app.with(auth);
    app.at("/partitions/:topic/:partition/records")
        .post(produce)
        .get(fetch);
    app.at("/partitions/:topic/:partition/replica")
        .get(replica_fetch);
    app.at("/partitions/:topic/:partition/epoch-end")
        .get(epoch_end);
    app.at("/end-offsets").post(end_offsets);
    app.at("/assignment").post(assignment);
    app.at("/health")
        .get(|_| async { Ok(Response::new(StatusCode::Ok)) });
    app
}

async fn produce(mut req: Request<BrokerState>) -> tide::Result {
    let received = stages::now();
    reply(
        async {
            let topic: Topic = name_param(&req, "topic")?;
            let partition = number_param(&req, "partition")?;
            let acks: Acks = match req.url().query_pairs().find(|(k, _)| k == "acks") {
                Some((_, v)) => v.parse()?,
                None => Acks::default(),
            };
            let timeout = Duration::from_millis(
                query_u64(&req, "timeout_ms", DEFAULT_ACK_TIMEOUT_MS)?.min(MAX_ACK_TIMEOUT_MS),
            );
            let limit = req.state().max_request_bytes;
            // Hold the body's size in the memory budget from before reading it until
            // the batch is stored (an undeclared length counts as the limit).
            let declared = req.len().map_or(limit, |len| (len as u64).min(limit));
            let _memory = req.state().produce_memory.acquire(declared).await;
            let mut batch = body_bytes(&mut req, limit).await?;
            check_record_sizes(&batch, req.state().max_record_bytes)?;
            let service = req.state().service.clone();
            let (ack, wait) = if service.fsync_policy() == FsyncPolicy::Always {
                // The fsync would stall an executor thread for up to milliseconds.
                let service = service.clone();
                let topic = topic.clone();
                async_std::task::spawn_blocking(move || {
                    service.produce(&topic, partition, &mut batch)
                })
                .await?
            } else {
                service.produce(&topic, partition, &mut batch)?
            };
            let offsets = ack.base_offset..=ack.last_offset;
            stages::mark_at(Stage::BrokerReceived, offsets.clone(), received);
            stages::mark(Stage::BrokerStored, offsets);
            if acks == Acks::All {
                service
                    .wait_committed(&topic, partition, wait, timeout)
                    .await?;
            }
            Ok::<_, Error>(ack)
        }
        .await,
    )
}

/// Refuses a batch holding a record larger than `limit` (before anything is written).
fn check_record_sizes(batch: &[u8], limit: u64) -> Result<(), Error> {
    if batch.len() as u64 <= limit {
        return Ok(()); // no record can be larger than its batch
    }
    let Ok(records) = crate::protocol::batch::records(batch) else {
        return Ok(()); // malformed: the log's validation says how
    };
    for record in records {
        let Ok(record) = record else {
            return Ok(());
        };
        let size = (record.key.map_or(0, <[u8]>::len) + record.value.len()) as u64;
        if size > limit {
            return Err(Error::RecordTooLarge { size, limit });
        }
    }
    Ok(())
}

/// Renders a fetch answer: the batches, and the end and high watermark headers.
fn fetch_response(fetched: FetchResult) -> Response {
    let mut res = Response::new(StatusCode::Ok);
    res.insert_header(END_OFFSET_HEADER, fetched.end_offset.to_string());
    res.insert_header(HIGH_WATERMARK_HEADER, fetched.high_watermark.to_string());
    res.set_body(fetched.batches);
    res.set_content_type(tide::http::mime::BYTE_STREAM);
    res
}

async fn replica_fetch(req: Request<BrokerState>) -> tide::Result {
    let result = async {
        let state = req.state();
        let request = ReplicaFetchRequest {
            topic: name_param(&req, "topic")?,
            partition: number_param(&req, "partition")?,
            replica: u32::try_from(query_u64(&req, "replica", u64::MAX)?)
                .map_err(|_| Error::invalid("replica must be a broker id"))?,
            leader_epoch: u32::try_from(query_u64(&req, "epoch", u64::MAX)?)
                .map_err(|_| Error::invalid("epoch must be a leader epoch"))?,
            offset: query_u64(&req, "offset", 0)?,
            max_bytes: state.max_fetch_bytes as usize,
            max_wait: Duration::from_millis(
                query_u64(&req, "max_wait_ms", 0)?.min(MAX_FETCH_WAIT_MS),
            ),
        };
        state.service.replica_fetch(&request).await
    }
    .await;
    Ok(match result {
        Ok(fetched) => fetch_response(fetched),
        Err(err) => error_response(&err),
    })
}

async fn epoch_end(req: Request<BrokerState>) -> tide::Result {
    reply(
        async {
            let topic: Topic = name_param(&req, "topic")?;
            let partition = number_param(&req, "partition")?;
            let epoch = u32::try_from(query_u64(&req, "epoch", u64::MAX)?)
                .map_err(|_| Error::invalid("epoch must be a leader epoch"))?;
            req.state().service.epoch_end(&topic, partition, epoch)
        }
        .await,
    )
}

async fn fetch(req: Request<BrokerState>) -> tide::Result {
    let result = async {
        let topic: Topic = name_param(&req, "topic")?;
        let partition = number_param(&req, "partition")?;
        let offset = query_u64(&req, "offset", 0)?;
        let state = req.state();
        let max_bytes =
            query_u64(&req, "max_bytes", state.max_fetch_bytes)?.min(state.max_fetch_bytes);
        let max_wait =
            Duration::from_millis(query_u64(&req, "max_wait_ms", 0)?.min(MAX_FETCH_WAIT_MS));
        state
            .service
            .fetch_wait(&topic, partition, offset, max_bytes as usize, max_wait)
            .await
    }
    .await;
    Ok(match result {
        Ok(fetched) => fetch_response(fetched),
        Err(err) => error_response(&err),
    })
}

async fn end_offsets(mut req: Request<BrokerState>) -> tide::Result {
    reply(
        async {
            let body: EndOffsetsRequest = json_body(&mut req).await?;
            let end_offsets = req.state().service.end_offsets(&body.partitions)?;
            Ok::<_, Error>(EndOffsetsResponse { end_offsets })
        }
        .await,
    )
}

async fn assignment(mut req: Request<BrokerState>) -> tide::Result {
    reply(
        async {
            let body: BrokerAssignment = json_body(&mut req).await?;
            let service = req.state().service.clone();
            // Opening or deleting logs touches the disk.
            async_std::task::spawn_blocking(move || service.apply_assignment(&body)).await?;
            Ok::<_, Error>(Ack {})
        }
        .await,
    )
}

/// Default upper bound of one fetch answer.
pub const DEFAULT_MAX_FETCH_BYTES: u64 = 8 << 20;
/// Default upper bound of one produce body.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 16 << 20;
/// Default bound of produce bodies in memory at once (waiting requests queue).
pub const DEFAULT_PRODUCE_MEMORY: u64 = 256 << 20;
/// Default upper bound of one record (key plus value).
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1 << 20;
/// How long an `acks=all` produce waits for the in-sync replicas by default.
pub const DEFAULT_ACK_TIMEOUT_MS: u64 = 5_000;
/// Longest `timeout_ms` a produce request may ask for.
pub const MAX_ACK_TIMEOUT_MS: u64 = 60_000;
/// Longest a fetch may wait for records (`max_wait_ms`).
pub const MAX_FETCH_WAIT_MS: u64 = 30_000;
