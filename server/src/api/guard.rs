//! Browser-facing protections on every request: only known `Host` names on
//! a loopback server (DNS rebinding), no cross-site writes (CSRF: a write
//! must be `application/json`, which a cross-site form cannot send, and
//! must not come from another origin), and security headers on every
//! response.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// The dashboard's Content-Security-Policy: its own script, styles and
/// API, nothing else, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Which `Host` names a server answers.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// `None`: any host (a server bound to a public address, behind its
    /// own proxy). `Some`: only these names (any port).
    allowed: Option<Vec<String>>,
}

impl HostPolicy {
    /// Any `Host`.
    pub fn any() -> Self {
        Self { allowed: None }
    }

    /// Only the loopback names (`localhost`, `127.0.0.1`, `[::1]`) and `extra`.
    pub fn loopback(extra: &[String]) -> Self {
        let mut allowed: Vec<String> = ["localhost", "127.0.0.1", "[::1]", "::1"]
            .iter()
            .map(|h| (*h).to_owned())
            .collect();
        allowed.extend(extra.iter().map(|h| h.to_ascii_lowercase()));
        Self {
            allowed: Some(allowed),
        }
    }

    /// Whether a `Host` header value (with or without a port) is served.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(allowed) = &self.allowed else {
            return true;
        };
        let Some(host) = host else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let name = if host.starts_with('[') {
            host.split_once(']').map_or(host.as_str(), |(n, _)| n)
        } else {
            host.rsplit_once(':').map_or(host.as_str(), |(n, _)| n)
        };
        let name = name.trim_start_matches('[');
        allowed
            .iter()
            .any(|a| a.trim_start_matches('[').trim_end_matches(']') == name)
    }
}

fn forbidden(code: &'static str, message: String) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, code, message).into_response()
}

/// Why a write is refused as cross-site, if it is.
fn cross_site(headers: &HeaderMap) -> Option<String> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return Some(format!("a {site} write is refused"));
        }
    }
    let origin = text(header::ORIGIN)?;
    if origin == "null" {
        return Some("a write from an opaque origin is refused".into());
    }
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    match text(header::HOST) {
        Some(host) if host.eq_ignore_ascii_case(origin_host) => None,
        _ => Some(format!("a write from origin {origin} is refused")),
    }
}

/// Whether the request says its body is JSON.
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The middleware: host check, write checks, security headers.
pub async fn protect(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let mut response = if !state.hosts.allows(host) {
        forbidden(
            "host_not_allowed",
            format!(
                "this server does not answer for host {}; start it with --allowed-host to add a name",
                host.unwrap_or("(none)")
            ),
        )
    } else if is_write(request.method()) && request.uri().path().starts_with("/api/") {
        match cross_site(headers) {
            Some(reason) => forbidden("cross_site_write", reason),
            None => next.run(request).await,
        }
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// Whether the request carries a body (or says it may).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Route middleware of the API's writes (it runs once a route and method
/// matched, so a method a path does not have is a 405 first): a write's
/// body must be JSON. A write without a body (`POST .../cancel`) may omit
/// `Content-Type`, but one that names another type is refused whatever its
/// length: an HTML form always names one, and no form may write.
pub async fn json_writes(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let named = headers.contains_key(header::CONTENT_TYPE);
    // A dataset upload is a file: octet-stream, which no HTML form can send.
    let upload = request.uri().path().ends_with("/datasets")
        && headers.get(header::CONTENT_TYPE).is_some_and(|v| {
            v.as_bytes()
                .eq_ignore_ascii_case(b"application/octet-stream")
        });
    if is_write(request.method()) && !is_json(headers) && !upload && (named || has_body(headers)) {
        return not_json().into_response();
    }
    next.run(request).await
}

/// The 415 of a write whose body is not JSON.
pub(crate) fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "a write with a body must be sent as Content-Type: application/json".into(),
    )
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_servers_answer_loopback_names_only() {
        let policy = HostPolicy::loopback(&["nas.internal".to_owned()]);
        for ok in [
            "localhost",
            "127.0.0.1:8080",
            "[::1]:8080",
            "LOCALHOST:1",
            "nas.internal:8080",
        ] {
            assert!(policy.allows(Some(ok)), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "",
        ] {
            assert!(!policy.allows(Some(bad)), "{bad}");
        }
        assert!(!policy.allows(None));
        assert!(HostPolicy::any().allows(Some("evil.example")));
    }

    #[test]
    fn cross_site_writes_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert_eq!(cross_site(&h), None, "no Origin: a CLI or script");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert_eq!(cross_site(&h), None, "the dashboard itself");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(cross_site(&h).is_some());
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h).is_some());
    }
}
