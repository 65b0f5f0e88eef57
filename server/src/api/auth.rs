//! Bearer-token authentication. With a write token, every request that
//! changes something needs it; with a read token too, every read needs one
//! of the two. Probes and the OpenAPI document stay open. Tokens are compared
//! as SHA-256 digests in constant time, so neither their content nor their
//! length leaks through timing.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};

/// Paths any client may read without a token.
const OPEN_PATHS: [&str; 3] = ["/api/v1/healthz", "/api/v1/readyz", "/api/v1/openapi.json"];

/// The configured tokens (as digests).
#[derive(Debug, Clone, Default)]
pub struct Auth {
    write: Option<[u8; 32]>,
    read: Option<[u8; 32]>,
}

/// A read token without a write token would leave writes open while reads
/// are closed: refused.
#[derive(Debug, thiserror::Error)]
#[error("NAS_READ_TOKEN is set without NAS_API_TOKEN: set NAS_API_TOKEN too, or writes would be open while reads are closed")]
pub struct ReadWithoutWrite;

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    /// No tokens: everything open (loopback use).
    pub fn open() -> Self {
        Self::default()
    }

    /// From the tokens (empty strings count as unset).
    pub fn new(write: Option<&str>, read: Option<&str>) -> Result<Self, ReadWithoutWrite> {
        let write = write.filter(|t| !t.is_empty()).map(digest);
        let read = read.filter(|t| !t.is_empty()).map(digest);
        if read.is_some() && write.is_none() {
            return Err(ReadWithoutWrite);
        }
        Ok(Self { write, read })
    }

    /// Whether writes need a token.
    pub fn protects_writes(&self) -> bool {
        self.write.is_some()
    }

    /// Whether a request with `token` may do a read (`write == false`) or a write.
    pub fn allows(&self, write: bool, token: Option<&str>) -> Result<(), ApiError> {
        let required: Vec<&[u8; 32]> = if write {
            self.write.iter().collect()
        } else if self.read.is_some() {
            self.read.iter().chain(self.write.iter()).collect()
        } else {
            Vec::new()
        };
        if required.is_empty() {
            return Ok(());
        }
        let Some(token) = token else {
            return Err(ApiError::unauthorized(
                "this server needs `Authorization: Bearer <token>`",
            ));
        };
        let given = digest(token);
        // Check every accepted token, so timing does not say which matched.
        let ok = required
            .iter()
            .fold(false, |ok, expected| ok | same(expected, &given));
        if ok {
            Ok(())
        } else if write {
            Err(ApiError::unauthorized(
                "wrong token (writes need NAS_API_TOKEN)",
            ))
        } else {
            Err(ApiError::unauthorized("wrong token"))
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Middleware: refuses requests without the token their method needs.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if !path.starts_with("/api/") || OPEN_PATHS.contains(&path) {
        return next.run(request).await;
    }
    let write = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    match state.auth.allows(write, bearer(request.headers())) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_need_the_write_token_and_reads_either_when_closed() {
        let open = Auth::open();
        assert!(open.allows(true, None).is_ok());
        let writes = Auth::new(Some("w"), None).expect("auth");
        assert!(writes.allows(false, None).is_ok());
        assert!(writes.allows(true, None).is_err());
        assert!(writes.allows(true, Some("x")).is_err());
        assert!(writes.allows(true, Some("w")).is_ok());
        let both = Auth::new(Some("w"), Some("r")).expect("auth");
        assert!(both.allows(false, None).is_err());
        assert!(both.allows(false, Some("r")).is_ok());
        assert!(both.allows(false, Some("w")).is_ok());
        assert!(both.allows(true, Some("r")).is_err());
        assert!(Auth::new(None, Some("r")).is_err());
        assert!(!Auth::new(Some(""), None).expect("auth").protects_writes());
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively_by_scheme() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "bearer abc".parse().expect("header"));
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().expect("header"));
        assert_eq!(bearer(&headers), None);
    }
}
