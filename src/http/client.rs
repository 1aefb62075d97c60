//! The HTTP client every logbrook client uses: surf on logbrook's own keep-alive
//! connection pool ([`Connections`]); failures come back as [`Error`].
//!
//! A pooled connection must never carry one request's answer to another: a
//! connection goes back to the pool only after its exchange completed, so one
//! given up half-way (a timeout, a dropped future) is closed. As a second line,
//! servers echo each request's target ([`REQUEST_ECHO_HEADER`]) and an answer for
//! another target is refused.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::deadline;
use crate::error::Error;
use crate::http::connections::Connections;
use crate::http::{request_target, REQUEST_ECHO_HEADER};
use crate::names::ServerId;

/// How long a request may take before it counts as `Unavailable`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes reserved up front for an answer of declared length (a bigger one
/// grows as it arrives).
const PREALLOCATED_MAX: usize = 64 << 20;

/// A pooled HTTP client. Cheap to clone: clones share connections.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: surf::Client,
    timeout: Duration,
    /// The cluster's shared secret, sent as `Authorization: Bearer <token>`.
    auth_token: Option<Arc<str>>,
}

/// The body and the headers logbrook reads from a binary answer.
#[derive(Debug)]
pub struct BytesResponse {
    /// The body.
    pub body: Vec<u8>,
    /// The `logbrook-end-offset` header, when present.
    pub end_offset: Option<u64>,
    /// The `logbrook-high-watermark` header, when present.
    pub high_watermark: Option<u64>,
}

/// A whole answer: status, the headers logbrook reads, the body.
struct Answer {
    status: u16,
    end_offset: Option<u64>,
    high_watermark: Option<u64>,
    body: Vec<u8>,
}

/// The header carrying a partition's end in fetch answers (for consumers, the high
/// watermark: the end of what they may read).
pub const END_OFFSET_HEADER: &str = "logbrook-end-offset";
/// The header carrying the leader's high watermark in fetch answers.
pub const HIGH_WATERMARK_HEADER: &str = "logbrook-high-watermark";

impl HttpClient {
    /// A client whose requests time out after `timeout`.
    pub fn new(timeout: Duration) -> HttpClient {
        HttpClient {
            client: surf::Client::with_http_client(Connections::new()),
            timeout,
            auth_token: None,
        }
    }

    /// The same client (sharing its connections) with another request timeout.
    pub fn with_timeout(&self, timeout: Duration) -> HttpClient {
        HttpClient {
            timeout,
            ..self.clone()
        }
    }

    /// The same client sending `token` (if any) with every request.
    pub fn with_auth_token(mut self, token: Option<&str>) -> HttpClient {
        self.auth_token = token.map(Arc::from);
        self
    }

    /// A request to `path` on `addr`. surf panics on a URL it cannot parse (a bad
    /// port, say), so addresses are parsed here and refused with a typed error.
    fn request(
        method: surf::http::Method,
        addr: &ServerId,
        path: &str,
    ) -> Result<surf::RequestBuilder, Error> {
        let url =
            surf::Url::parse(&format!("http://{addr}{path}")).map_err(|e| Error::InvalidName {
                what: "server address".into(),
                name: addr.to_string(),
                reason: format!("not a host:port address ({e})"),
            })?;
        Ok(surf::RequestBuilder::new(method, url))
    }

    /// Sends the request and reads the whole answer within the timeout. Non-2xx
    /// answers become the error their JSON body names.
    async fn exchange(&self, addr: &ServerId, req: surf::RequestBuilder) -> Result<Answer, Error> {
        let unavailable = |reason: String| Error::Unavailable {
            addr: addr.to_string(),
            reason,
        };
        let req = match &self.auth_token {
            Some(token) => req.header("authorization", format!("Bearer {token}")),
            None => req,
        };
        let req = req.build();
        let target = request_target(req.url());
        let exchange = async {
            let mut res = self
                .client
                .send(req)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            // Read in place when the length is known (fetch answers run to MiBs). The
            // transport fails a body that ends before its declared length: a server
            // that died mid-answer lost the answer, it did not send a short one.
            let mut body = Vec::with_capacity(res.len().unwrap_or(0).min(PREALLOCATED_MAX));
            futures_lite::AsyncReadExt::read_to_end(&mut res.take_body(), &mut body)
                .await
                .map_err(|e| unavailable(format!("answer cut short: {e}")))?;
            let header = |name: &str| res.header(name).map(|v| v.last().as_str().to_string());
            if header(REQUEST_ECHO_HEADER).as_deref() != Some(target.as_str()) {
                return Err(unavailable(format!(
                    "the answer is for another request ({:?}, not {target:?}): connection out of step",
                    header(REQUEST_ECHO_HEADER)
                )));
            }
            let number = |name: &str| header(name).and_then(|v| v.parse::<u64>().ok());
            Ok(Answer {
                status: res.status().into(),
                end_offset: number(END_OFFSET_HEADER),
                high_watermark: number(HIGH_WATERMARK_HEADER),
                body,
            })
        };
        let answer = deadline::within(self.timeout, exchange)
            .await
            .ok_or_else(|| unavailable(format!("no answer within {:?}", self.timeout)))??;
        if (200..300).contains(&answer.status) {
            return Ok(answer);
        }
        Err(Error::from_json_body(answer.status, &answer.body))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        addr: &ServerId,
        req: surf::RequestBuilder,
    ) -> Result<T, Error> {
        let answer = self.exchange(addr, req).await?;
        serde_json::from_slice(&answer.body).map_err(|e| Error::Protocol {
            reason: format!("unexpected answer from {addr}: {e}"),
        })
    }

    fn json_request<B: Serialize>(
        req: surf::RequestBuilder,
        body: &B,
    ) -> Result<surf::RequestBuilder, Error> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Protocol {
            reason: e.to_string(),
        })?;
        Ok(req.body(bytes).content_type(surf::http::mime::JSON))
    }

    /// `GET path`, JSON answer.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        addr: &ServerId,
        path: &str,
    ) -> Result<T, Error> {
        self.json(addr, Self::request(surf::http::Method::Get, addr, path)?)
            .await
    }

    /// `POST path` with a JSON body, JSON answer.
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        addr: &ServerId,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        let req = Self::json_request(Self::request(surf::http::Method::Post, addr, path)?, body)?;
        self.json(addr, req).await
    }

    /// `DELETE path`, JSON answer.
    pub async fn delete_json<T: DeserializeOwned>(
        &self,
        addr: &ServerId,
        path: &str,
    ) -> Result<T, Error> {
        self.json(addr, Self::request(surf::http::Method::Delete, addr, path)?)
            .await
    }

    /// `POST path` with a binary body, JSON answer.
    pub async fn post_bytes<T: DeserializeOwned>(
        &self,
        addr: &ServerId,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, Error> {
        let req = Self::request(surf::http::Method::Post, addr, path)?
            .body(body)
            .content_type(surf::http::mime::BYTE_STREAM);
        self.json(addr, req).await
    }

    /// `POST path` with a shared binary body (not copied, so a caller can retry with
    /// the same bytes), JSON answer.
    pub async fn post_shared<T: DeserializeOwned>(
        &self,
        addr: &ServerId,
        path: &str,
        body: Arc<Vec<u8>>,
    ) -> Result<T, Error> {
        let len = body.len();
        let reader = async_std::io::Cursor::new(SharedBytes(body));
        let req = Self::request(surf::http::Method::Post, addr, path)?
            .body(surf::Body::from_reader(reader, Some(len)))
            .content_type(surf::http::mime::BYTE_STREAM);
        self.json(addr, req).await
    }

    /// `GET path`, binary answer.
    pub async fn get_bytes(&self, addr: &ServerId, path: &str) -> Result<BytesResponse, Error> {
        let answer = self
            .exchange(addr, Self::request(surf::http::Method::Get, addr, path)?)
            .await?;
        Ok(BytesResponse {
            body: answer.body,
            end_offset: answer.end_offset,
            high_watermark: answer.high_watermark,
        })
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new(DEFAULT_TIMEOUT)
    }
}

/// Bytes shared between a pending request and its possible retry.
struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::reply::JsonErrors;
    use crate::http::server::{serve, shutdown_pair};
    use async_std::net::TcpListener;
    use async_std::task;

    /// A keep-alive server answering `GET /slow` after 300 ms and `GET /fast` at once.
    async fn slow_and_fast_server() -> (ServerId, crate::http::server::ShutdownTrigger) {
        let mut app = tide::new();
        app.with(JsonErrors);
        app.at("/slow").get(|_| async {
            task::sleep(Duration::from_millis(300)).await;
            Ok("slow")
        });
        app.at("/fast").get(|_| async { Ok("fast") });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = ServerId::new(listener.local_addr().expect("addr").to_string()).expect("id");
        let (trigger, signal) = shutdown_pair();
        task::spawn(serve(listener, app, signal));
        (addr, trigger)
    }

    /// The regression of docs/faults.md's bug 1: after a request is given up with its
    /// answer still to come, the next request on the same client must get its own
    /// answer (surf's own pool handed it the stale one, or, once its recycle check
    /// ate the stale answer's first bytes, failed with "invalid HTTP version"
    /// forever).
    #[test]
    fn an_abandoned_request_never_answers_the_next_one() {
        task::block_on(async {
            let (addr, _server) = slow_and_fast_server().await;
            let client = HttpClient::new(Duration::from_millis(100));
            let patient = client.with_timeout(Duration::from_secs(10));
            // Warm the pool so the abandoned request reuses a pooled connection.
            assert_eq!(
                patient.get_bytes(&addr, "/fast").await.expect("fast").body,
                b"fast"
            );

            let given_up = client.get_bytes(&addr, "/slow").await;
            assert!(
                matches!(given_up, Err(Error::Unavailable { .. })),
                "{given_up:?}"
            );
            let next = patient.get_bytes(&addr, "/fast").await.expect("fast");
            assert_eq!(next.body, b"fast", "answered with another request's answer");

            // Again, and this time the stale answer has arrived before the next request.
            let given_up = client.get_bytes(&addr, "/slow").await;
            assert!(given_up.is_err(), "{given_up:?}");
            task::sleep(Duration::from_millis(500)).await;
            for _ in 0..3 {
                let next = patient.get_bytes(&addr, "/fast").await.expect("fast");
                assert_eq!(next.body, b"fast");
            }
        });
    }

    /// A server that dies mid-answer: the client reports the answer as lost
    /// (`Unavailable`, which callers retry), not as a malformed one.
    #[test]
    fn an_answer_cut_short_is_unavailable_not_malformed() {
        use async_std::io::{ReadExt, WriteExt};
        task::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = ServerId::new(listener.local_addr().expect("addr").to_string()).expect("id");
            task::spawn(async move {
                let (mut stream, _) = listener.accept().await.expect("accept");
                let mut head = [0u8; 1024];
                let _ = stream.read(&mut head).await;
                let answer = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\
                              logbrook-request: /metadata\r\n\r\n{\"brokers\":";
                let _ = stream.write_all(answer.as_bytes()).await;
                // Dropped here: the connection closes 90 bytes early.
            });
            let client = HttpClient::new(Duration::from_secs(10));
            let got = client
                .get_json::<serde_json::Value>(&addr, "/metadata")
                .await;
            assert!(
                matches!(&got, Err(Error::Unavailable { reason, .. }) if reason.contains("cut short")),
                "{got:?}"
            );
        });
    }
}
