//! The HTTP client every logbrook client uses: one pooled surf client with
//! TCP_NODELAY and keep-alive; failures come back as [`Error`].

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::names::ServerId;

/// How long a request may take before it counts as `Unavailable`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The header carrying a partition's end in fetch answers (for consumers, the high
/// watermark: the end of what they may read).
pub const END_OFFSET_HEADER: &str = "logbrook-end-offset";
/// The header carrying the leader's high watermark in fetch answers.
pub const HIGH_WATERMARK_HEADER: &str = "logbrook-high-watermark";

impl HttpClient {
    /// A client whose requests time out after `timeout`.
    pub fn new(timeout: Duration) -> HttpClient {
        let config = surf::Config::new()
            .set_tcp_no_delay(true)
            .set_http_keep_alive(true)
            // Timeouts are applied per request in `send`, so long polls can differ.
            .set_timeout(None);
        let client = match surf::Client::try_from(config) {
            Ok(client) => client,
            Err(never) => match never {},
        };
        HttpClient {
            client,
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

    async fn send(
        &self,
        addr: &ServerId,
        req: surf::RequestBuilder,
    ) -> Result<surf::Response, Error> {
        let unavailable = |reason: String| Error::Unavailable {
            addr: addr.to_string(),
            reason,
        };
        let req = match &self.auth_token {
            Some(token) => req.header("authorization", format!("Bearer {token}")),
            None => req,
        };
        let fut = self.client.send(req);
        let mut res = async_std::future::timeout(self.timeout, fut)
            .await
            .map_err(|_| unavailable(format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| unavailable(e.to_string()))?;
        let status: u16 = res.status().into();
        if (200..300).contains(&status) {
            return Ok(res);
        }
        let body = res.body_bytes().await.unwrap_or_default();
        Err(Error::from_json_body(status, &body))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        addr: &ServerId,
        req: surf::RequestBuilder,
    ) -> Result<T, Error> {
        let mut res = self.send(addr, req).await?;
        let bytes = res.body_bytes().await.map_err(|e| Error::Unavailable {
            addr: addr.to_string(),
            reason: format!("answer cut short: {e}"),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
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
        let mut res = self
            .send(addr, Self::request(surf::http::Method::Get, addr, path)?)
            .await?;
        let header = |name: &str| {
            res.header(name)
                .and_then(|v| v.last().as_str().parse::<u64>().ok())
        };
        let end_offset = header(END_OFFSET_HEADER);
        let high_watermark = header(HIGH_WATERMARK_HEADER);
        let body = res.body_bytes().await.map_err(|e| Error::Unavailable {
            addr: addr.to_string(),
            reason: format!("answer cut short: {e}"),
        })?;
        Ok(BytesResponse {
            body,
            end_offset,
            high_watermark,
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
