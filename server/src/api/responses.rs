//! The error responses routes share, for the OpenAPI document: a route lists
//! its success response and one of these sets.

use utoipa::IntoResponses;

use super::dto::ErrorBody;

/// What a read of one resource may answer besides success.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ReadErrors {
    /// Missing or wrong token.
    #[response(status = 401, description = "Missing or wrong token")]
    Unauthorized(ErrorBody),
    /// No such resource.
    #[response(status = 404, description = "No such resource")]
    NotFound(ErrorBody),
}

/// What a read of one resource with query parameters may answer besides success.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum QueryErrors {
    /// A query parameter is malformed or out of range; `field` names it.
    #[response(status = 400, description = "Bad query; `field` names the parameter")]
    BadQuery(ErrorBody),
    /// Missing or wrong token.
    #[response(status = 401, description = "Missing or wrong token")]
    Unauthorized(ErrorBody),
    /// No such resource.
    #[response(status = 404, description = "No such resource")]
    NotFound(ErrorBody),
}
