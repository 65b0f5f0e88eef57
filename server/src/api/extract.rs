//! Extractors that turn a bad path or query into the API's own JSON error,
//! so handlers take typed values and never parse or map rejections
//! themselves.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
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
