//! The optional shared secret: with `--auth-token`, every endpoint of leader and
//! brokers requires `Authorization: Bearer <token>`; anything else gets 401 and
//! changes nothing.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tide::Request;

use crate::error::Error;

use super::reply::error_response;

/// Middleware enforcing the token (a no-op without one).
#[derive(Debug, Clone, Default)]
pub struct RequireToken {
    token: Option<Arc<[u8]>>,
}

impl RequireToken {
    /// Requires `token` when it is `Some`.
    pub fn new(token: Option<&str>) -> RequireToken {
        RequireToken {
            token: token.map(|t| Arc::from(t.as_bytes())),
        }
    }

    /// Whether an `Authorization` header value carries the token. Compared in
    /// constant time, so the time taken tells nothing about how much of it matched.
    fn accepts(&self, header: Option<&str>) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let given = header.and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("");
        given.as_bytes().ct_eq(expected).into()
    }
}

#[tide::utils::async_trait]
impl<S: Clone + Send + Sync + 'static> tide::Middleware<S> for RequireToken {
    async fn handle(&self, req: Request<S>, next: tide::Next<'_, S>) -> tide::Result {
        let header = req
            .header("authorization")
            .map(|v| v.last().as_str().to_string());
        if self.accepts(header.as_deref()) {
            return Ok(next.run(req).await);
        }
        let reason = match header {
            None => "this cluster requires an auth token (--auth-token or LOGBROOK_AUTH_TOKEN)",
            Some(_) => "wrong auth token",
        };
        Ok(error_response(&Error::Unauthorized {
            reason: reason.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let open = RequireToken::new(None);
        assert!(open.accepts(None));
        let guarded = RequireToken::new(Some("s3cret"));
        assert!(guarded.accepts(Some("Bearer s3cret")));
        for bad in [
            None,
            Some(""),
            Some("s3cret"),
            Some("Bearer s3cre"),
            Some("Bearer s3cret "),
            Some("bearer s3cret"),
        ] {
            assert!(!guarded.accepts(bad), "{bad:?}");
        }
    }
}
