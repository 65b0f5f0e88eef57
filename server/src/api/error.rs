//! The one error type of the API: every failure is JSON
//! `{"error": {"code", "message", "field"}}` with a fitting status, and
//! nothing internal (SQL, paths) ever reaches the client.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use store::StoreError;

use super::dto::{ErrorBody, ErrorDetail};

/// An API failure.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `invalid_spec`.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The offending field, if one.
    pub field: Option<String>,
}

impl ApiError {
    /// An error with no field.
    pub fn new(status: StatusCode, code: &'static str, message: String) -> Self {
        Self {
            status,
            code,
            message,
            field: None,
        }
    }

    /// A 404 for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("{} not found", what.into()),
            field: None,
        }
    }
}

impl ApiError {
    /// A 500 whose cause is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error; see the server log".into(),
            field: None,
        }
    }
}

impl ApiError {
    /// A 400 for a query string that does not parse.
    pub fn bad_query(message: impl Into<String>, field: Option<&str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_query",
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    /// A 401: the bearer token is missing or wrong.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.into(),
            field: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if unauthorized {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Spec(spec) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_spec",
                message: spec.to_string(),
                field: Some(spec.field),
            },
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::BadCursor(message) => Self {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_cursor",
                message: format!(
                    "invalid cursor: {message}; pass the next_cursor of the previous page"
                ),
                field: Some("cursor".into()),
            },
            StoreError::Conflict(message) => Self {
                status: StatusCode::CONFLICT,
                code: "conflict",
                message,
                field: None,
            },
            other => Self::internal(other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let (status, code) = match &rejection {
            JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_spec"),
            JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            JsonRejection::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
            }
            _ => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        Self {
            status,
            code,
            message: rejection.body_text(),
            field: None,
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_query(rejection.body_text(), None)
    }
}
