//! Extractors that turn a bad path or query into the API's own JSON error,
//! so handlers take typed values and never parse or map rejections
//! themselves.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use super::ApiError;

/// A positive id from the path; anything else is a 404 naming `what`.
async fn path_id<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    what: &str,
) -> Result<i64, ApiError> {
    let Path(raw) = Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::not_found(what.to_owned()))?;
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found(format!("{what} `{raw}`")))
}

/// Declares a path-id extractor: a positive `{id}`, else a 404 naming
/// the resource, documented as the route's `id` parameter.
macro_rules! path_id_extractor {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, IntoParams)]
        #[into_params(names("id"), parameter_in = Path)]
        pub struct $name(
            #[doc = concat!("The ", $what, "'s id.")]
            #[param(minimum = 1)]
            pub i64,
        );

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
                path_id(parts, state, $what).await.map(Self)
            }
        }
    };
}

path_id_extractor!(
    /// The search id of a `/searches/{id}/...` route.
    SearchId,
    "search"
);
path_id_extractor!(
    /// The trial id of a `/trials/{id}/...` route.
    TrialId,
    "trial"
);

/// A query string as `T`; a bad one is a 400 naming the parameter.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(query) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(query))
    }
}

/// A JSON request body as `T`. A number written with a zero fraction
/// (`347.0`) is the integer it equals, as JSON Schema has it; a body that
/// is not JSON is a 400 (`malformed_json`), one that does not fit `T` a 422
/// (`invalid_spec`) whose `field` is the path of the offending value.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// Like [`ApiJson`], but an empty body (whatever its `Content-Type`) or
/// `null` is `T::default()`: for writes whose every setting has a default.
#[derive(Debug, Clone)]
pub struct ApiJsonOrDefault<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<serde_json::Value>::from_request(request, state).await?;
        fitted(value).map(Self)
    }
}

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for ApiJsonOrDefault<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = super::guard::is_json(request.headers());
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| {
                let status = e.status();
                let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "body_too_large"
                } else {
                    "bad_request"
                };
                ApiError::new(status, code, e.body_text())
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        if !json_type {
            return Err(super::guard::not_json());
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not JSON: {e}"),
            )
        })?;
        if value.is_null() {
            return Ok(Self(T::default()));
        }
        fitted(value).map(Self)
    }
}

/// `value` as `T`, with integral floats read as integers.
fn fitted<T: DeserializeOwned>(mut value: serde_json::Value) -> Result<T, ApiError> {
    integral_floats_as_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        let message = match &field {
            Some(path) => format!("{path}: {}", e.inner()),
            None => e.inner().to_string(),
        };
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_spec",
            message,
            field,
        }
    })
}

/// Rewrites every number with no fractional part that fits an integer
/// (`15.0`, `-3.0`) as that integer, in place.
fn integral_floats_as_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            let Some(f) = n.as_f64() else { return };
            if f.fract() != 0.0 || !f.is_finite() {
                return;
            }
            if f >= 0.0 && f <= u64::MAX as f64 {
                *value = serde_json::Value::from(f as u64);
            } else if f < 0.0 && f >= i64::MIN as f64 {
                *value = serde_json::Value::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        serde_json::Value::Object(fields) => {
            fields.values_mut().for_each(integral_floats_as_integers)
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_floats_are_integers_and_others_stay() {
        let mut v =
            serde_json::json!({"epochs": 347.0, "lr": 0.5, "xs": [-3.0, 2, 1e300], "n": null});
        integral_floats_as_integers(&mut v);
        assert_eq!(v["epochs"], serde_json::json!(347));
        assert!(v["epochs"].is_u64());
        assert_eq!(v["lr"], serde_json::json!(0.5));
        assert!(v["xs"][0].is_i64());
        assert!(v["xs"][2].is_f64(), "beyond any integer: left as it is");
        let fitted: Result<search::FinalTraining, _> =
            fitted(serde_json::json!({"top_k": 15.0, "epochs": 477.0}));
        assert_eq!(fitted.expect("fits").top_k, 15);
        let err = super::fitted::<search::FinalTraining>(serde_json::json!({"top_k": 1.5}))
            .expect_err("not an integer");
        assert_eq!(err.field.as_deref(), Some("top_k"), "{}", err.message);
    }
}
