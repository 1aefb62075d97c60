//! The broker's HTTP endpoints (documented in `docs/protocol.md`). Record batches
//! travel as raw bytes; everything else is JSON.

use std::time::Duration;

use tide::{Request, Response, StatusCode};

use crate::error::Error;
use crate::http::auth::RequireToken;
use crate::http::client::END_OFFSET_HEADER;
use crate::http::reply::{
    body_bytes, error_response, json_body, name_param, number_param, query_u64, reply, JsonErrors,
};
use crate::names::Topic;
use crate::protocol::control::{Ack, BrokerAssignment, EndOffsetsRequest, EndOffsetsResponse};

use super::log::FsyncPolicy;
use super::service::BrokerService;

/// State of the broker's routes.
#[derive(Clone)]
pub struct BrokerState {
    /// The partitions.
    pub service: BrokerService,
    /// Largest produce body accepted.
    pub max_request_bytes: u64,
    /// Largest fetch answer (a single larger batch is still sent whole).
    pub max_fetch_bytes: u64,
    /// The shared secret every request must carry, if any.
    pub auth_token: Option<String>,
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
    app.at("/end-offsets").post(end_offsets);
    app.at("/assignment").post(assignment);
    app.at("/health")
        .get(|_| async { Ok(Response::new(StatusCode::Ok)) });
    app
}

async fn produce(mut req: Request<BrokerState>) -> tide::Result {
    reply(
        async {
            let topic: Topic = name_param(&req, "topic")?;
            let partition = number_param(&req, "partition")?;
            let limit = req.state().max_request_bytes;
            let mut batch = body_bytes(&mut req, limit).await?;
            let service = req.state().service.clone();
            if service.fsync_policy() == FsyncPolicy::Always {
                // The fsync would stall an executor thread for up to milliseconds.
                async_std::task::spawn_blocking(move || {
                    service.produce(&topic, partition, &mut batch)
                })
                .await
            } else {
                service.produce(&topic, partition, &mut batch)
            }
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
        Ok(fetched) => {
            let mut res = Response::new(StatusCode::Ok);
            res.insert_header(END_OFFSET_HEADER, fetched.end_offset.to_string());
            res.set_body(fetched.batches);
            res.set_content_type(tide::http::mime::BYTE_STREAM);
            res
        }
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
/// Longest a fetch may wait for records (`max_wait_ms`).
pub const MAX_FETCH_WAIT_MS: u64 = 30_000;
