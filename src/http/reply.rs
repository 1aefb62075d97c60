//! Reading requests and writing answers for the tide routes of leader and broker.

use std::str::FromStr;

use async_std::io::ReadExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tide::{Request, Response, StatusCode};

use crate::error::Error;
use crate::http::{request_target, REQUEST_ECHO_HEADER};

/// Largest JSON control body accepted.
pub const MAX_JSON_BODY: u64 = 1 << 20;

/// A JSON answer with status 200.
pub fn ok_json<T: Serialize>(value: &T) -> tide::Result {
    let body = serde_json::to_vec(value).map_err(|e| tide::Error::from_str(500, e.to_string()))?;
    let mut res = Response::new(StatusCode::Ok);
    res.set_body(body);
    res.set_content_type(tide::http::mime::JSON);
    Ok(res)
}

/// The answer for a failed request: the error's status and its JSON body.
pub fn error_response(err: &Error) -> Response {
    let status = StatusCode::try_from(err.status()).unwrap_or(StatusCode::InternalServerError);
    let mut res = Response::new(status);
    res.set_body(err.to_json_body().to_string());
    res.set_content_type(tide::http::mime::JSON);
    res
}

/// Renders a handler's outcome.
pub fn reply<T: Serialize>(result: Result<T, Error>) -> tide::Result {
    match result {
        Ok(value) => ok_json(&value),
        Err(err) => Ok(error_response(&err)),
    }
}

/// Reads the whole body, refusing more than `limit` bytes before reading them when
/// the length is declared, and while reading when it is not.
pub async fn body_bytes<S>(req: &mut Request<S>, limit: u64) -> Result<Vec<u8>, Error> {
    if let Some(len) = req.len() {
        if len as u64 > limit {
            return Err(Error::TooLarge {
                size: len as u64,
                limit,
            });
        }
    }
    let mut buf = Vec::with_capacity(req.len().unwrap_or(0));
    let body = req.take_body();
    body.take(limit + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| Error::invalid(format!("cannot read the request body: {e}")))?;
    if buf.len() as u64 > limit {
        return Err(Error::TooLarge {
            size: buf.len() as u64,
            limit,
        });
    }
    Ok(buf)
}

/// Reads and parses a JSON body.
pub async fn json_body<T: DeserializeOwned, S>(req: &mut Request<S>) -> Result<T, Error> {
    let bytes = body_bytes(req, MAX_JSON_BODY).await?;
    serde_json::from_slice(&bytes).map_err(|e| match e.classify() {
        // Names are validated while deserialising: keep that error's own kind.
        serde_json::error::Category::Data if e.to_string().starts_with("invalid ") => {
            name_error_from(&e).unwrap_or_else(|| Error::invalid(format!("bad JSON body: {e}")))
        }
        _ => Error::invalid(format!("bad JSON body: {e}")),
    })
}

fn name_error_from(e: &serde_json::Error) -> Option<Error> {
    // serde keeps only the Display of a `try_from` error; rebuild the InvalidName.
    let text = e.to_string();
    let rest = text.strip_prefix("invalid ")?;
    let (what, rest) = rest.split_once(" name '")?;
    let (name, rest) = rest.split_once("': ")?;
    let reason = rest.split(" at line ").next()?;
    Some(Error::InvalidName {
        what: what.to_string(),
        name: name.to_string(),
        reason: reason.to_string(),
    })
}

fn raw_param<'a, S>(req: &'a Request<S>, name: &str) -> Result<&'a str, Error> {
    req.param(name)
        .map_err(|_| Error::invalid(format!("missing path parameter '{name}'")))
}

/// A name from the path (topic, group), validated by its `FromStr`.
pub fn name_param<T, S>(req: &Request<S>, name: &str) -> Result<T, Error>
where
    T: FromStr<Err = Error>,
{
    raw_param(req, name)?.parse()
}

/// A number from the path.
pub fn number_param<S>(req: &Request<S>, name: &str) -> Result<u32, Error> {
    let raw = raw_param(req, name)?;
    raw.parse().map_err(|_| {
        Error::invalid(format!(
            "path parameter '{name}' must be a non-negative integer, got '{raw}'"
        ))
    })
}

/// A query string parameter, or `default` when absent.
pub fn query_u64<S>(req: &Request<S>, name: &str, default: u64) -> Result<u64, Error> {
    for pair in req.url().query_pairs() {
        if pair.0 == name {
            return pair.1.parse().map_err(|_| {
                Error::invalid(format!(
                    "query parameter '{name}' must be a non-negative integer, got '{}'",
                    pair.1
                ))
            });
        }
    }
    Ok(default)
}

/// Middleware: answers that carry no body (tide's own 404 for an unknown path, 405
/// for a wrong method) get a JSON error body like every other failure, and every
/// answer echoes its request's target (path and query) for the client to check.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonErrors;

#[tide::utils::async_trait]
impl<S: Clone + Send + Sync + 'static> tide::Middleware<S> for JsonErrors {
    async fn handle(&self, req: Request<S>, next: tide::Next<'_, S>) -> tide::Result {
        let method = req.method();
        let path = req.url().path().to_string();
        let target = request_target(req.url());
        let mut res = next.run(req).await;
        // Lets the client check the answer belongs to its request (see
        // `http::client`): a pooled connection must never hand one request another's
        // answer.
        res.insert_header(REQUEST_ECHO_HEADER, target);
        let message = match res.take_error() {
            Some(err) => Some(err.to_string()),
            None if !res.status().is_success() && res.len().unwrap_or(0) == 0 => {
                Some(format!("no endpoint {method} {path}"))
            }
            None => None,
        };
        if let Some(message) = message {
            let kind = if res.status() == StatusCode::NotFound {
                "not_found"
            } else {
                "invalid_request"
            };
            res.set_body(serde_json::json!({"error": kind, "message": message}).to_string());
            res.set_content_type(tide::http::mime::JSON);
        }
        Ok(res)
    }
}
