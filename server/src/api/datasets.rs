//! Uploaded datasets: `POST /datasets` streams an upload to a spool file
//! (never held whole in memory), decodes it once into the canonical form
//! (`worker::data::import`) and stores it; `GET /datasets/{name}` and
//! `DELETE /datasets/{name}`. The catalogue's list (`GET /datasets`) shows
//! them beside the built-in datasets.

use std::io::Write;
use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use store::datasets::DatasetRow;
use utoipa::{IntoParams, ToSchema};
use worker::data::import::{import, sample_grid, ImportError, ImportOptions};

use super::extract::ApiQuery;
use super::{ApiError, ApiResult, AppState};

/// Options of an upload, in the query string.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The name searches will use: letters, digits, `-`, `_`, `.`.
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub name: String,
    /// Bring every image to `HxW`, e.g. `32x32` (otherwise all images must
    /// share one size).
    #[param(pattern = r"^[1-9][0-9]{0,3}x[1-9][0-9]{0,3}$")]
    pub resize: Option<String>,
    /// 1 (grayscale) or 3 (RGB); default: the first image's.
    #[param(minimum = 1, maximum = 3)]
    pub channels: Option<usize>,
    /// The CSV column holding labels (default `label`).
    pub label_column: Option<String>,
    /// For data without a test split: the fraction of each class held out
    /// (default 0.15).
    #[param(exclusive_minimum = 0, exclusive_maximum = 0.9)]
    pub test_fraction: Option<f64>,
}

/// What an upload stored.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Uploaded {
    /// The dataset under its name.
    pub dataset: DatasetRow,
    /// Whether its content was new (else the same content was stored
    /// already, and only the name was set).
    pub new_content: bool,
}

/// A spool file removed when dropped (an upload cut off mid-stream, or
/// done with, leaves nothing behind).
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn spool_path() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("nas-upload-{}-{n}", std::process::id()))
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        let field = match &e {
            ImportError::Entry { entry, .. } => Some(entry.clone()),
            ImportError::MixedSizes { entry, .. } => Some(entry.clone()),
            ImportError::Row { row, column, .. } => Some(match column {
                Some(c) => format!("row {row}, column {c}"),
                None => format!("row {row}"),
            }),
            ImportError::Field { field, .. } => Some(field.clone()),
            _ => None,
        };
        let (status, code) = match &e {
            ImportError::Bound { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "upload_too_large"),
            ImportError::Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            _ => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_dataset"),
        };
        if status.is_server_error() {
            return ApiError::internal(e);
        }
        ApiError {
            status,
            code,
            message: e.to_string(),
            field,
        }
    }
}

fn options(q: &UploadQuery) -> ApiResult<ImportOptions> {
    let resize = q
        .resize
        .as_deref()
        .map(|r| {
            r.split_once('x')
                .and_then(|(h, w)| Some((h.parse().ok()?, w.parse().ok()?)))
                .ok_or_else(|| {
                    ApiError::bad_query(
                        format!("resize `{r}`: use HxW, e.g. 32x32"),
                        Some("resize"),
                    )
                })
        })
        .transpose()?;
    let defaults = ImportOptions::default();
    Ok(ImportOptions {
        resize,
        channels: q.channels,
        label_column: q.label_column.clone().unwrap_or(defaults.label_column),
        test_fraction: q.test_fraction.unwrap_or(defaults.test_fraction),
        ..defaults
    })
}

/// `POST /datasets?name=...`: uploads a dataset (the body is the file, sent
/// as `application/octet-stream`): an image folder as `.zip`, `.tar` or
/// `.tar.gz`, an `.npz`, a `.csv`, or IDX files in an archive.
#[utoipa::path(post, path = "/api/v1/datasets", tag = "catalogue",
    params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The upload"),
    responses(
        (status = 201, description = "Stored", body = Uploaded),
        (status = 400, description = "Bad query; `field` names the parameter", body = super::dto::ErrorBody),
        (status = 401, description = "Missing or wrong token", body = super::dto::ErrorBody),
        (status = 413, description = "Over the upload size or a bound (entries, unpacked bytes, classes, images)", body = super::dto::ErrorBody),
        (status = 415, description = "Not application/octet-stream", body = super::dto::ErrorBody),
        (status = 422, description = "Not a dataset; `field` names the entry, row or option at fault", body = super::dto::ErrorBody),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Uploaded>)> {
    store::datasets::check_name(&q.name).map_err(|e| ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_dataset",
        message: e.to_string(),
        field: Some("name".into()),
    })?;
    let options = options(&q)?;
    let spool = Spool(spool_path());
    let mut file = std::fs::File::create(&spool.0).map_err(ApiError::internal)?;
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "upload_interrupted",
                format!("the upload was cut off after {received} bytes: {e}"),
            )
        })?;
        received += chunk.len() as u64;
        if received > state.max_upload_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "upload_too_large",
                format!(
                    "the upload is over the server's limit of {} MiB (--max-dataset-mib)",
                    state.max_upload_bytes >> 20
                ),
            ));
        }
        file.write_all(&chunk).map_err(ApiError::internal)?;
    }
    file.flush().map_err(ApiError::internal)?;
    drop(file);
    let path = spool.0.clone();
    let imported = tokio::task::spawn_blocking(move || import(&path, &options))
        .await
        .map_err(ApiError::internal)??;
    drop(spool);
    let summary = imported.summary();
    let (canonical, samples) = tokio::task::spawn_blocking(move || {
        let samples = sample_grid(&imported.dataset);
        (imported.dataset.to_bytes(), samples)
    })
    .await
    .map_err(ApiError::internal)?;
    let stored = state
        .store
        .put_dataset(&q.name, &summary, &canonical)
        .await?;
    match samples {
        Ok(png) => {
            state
                .store
                .put_dataset_samples(&stored.dataset.id, &png)
                .await?
        }
        Err(e) => tracing::warn!(error = %e, "the sample grid could not be drawn"),
    }
    tracing::info!(
        name = %q.name,
        id = %stored.dataset.id,
        bytes = received,
        canonical_bytes = canonical.len(),
        new_content = stored.new_content,
        "dataset uploaded"
    );
    Ok((
        StatusCode::CREATED,
        Json(Uploaded {
            dataset: stored.dataset,
            new_content: stored.new_content,
        }),
    ))
}

/// `GET /datasets/{name}`: an uploaded dataset by name or id.
#[utoipa::path(get, path = "/api/v1/datasets/{name}", tag = "catalogue",
    params(("name" = String, Path, description = "The dataset's name or id")),
    responses((status = 200, body = DatasetRow), (status = 401, body = super::dto::ErrorBody),
        (status = 404, body = super::dto::ErrorBody)))]
pub async fn dataset(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<DatasetRow>> {
    Ok(Json(state.store.dataset(&name).await?))
}

/// `GET /datasets/{name}/samples.png`: an uploaded dataset's sample
/// images, one row per class in label order (the first training images of
/// each), drawn at upload.
#[utoipa::path(get, path = "/api/v1/datasets/{name}/samples.png", tag = "catalogue",
    params(("name" = String, Path, description = "The dataset's name or id")),
    responses(
        (status = 200, description = "PNG grid: a row per class, in label order", content_type = "image/png", body = Vec<u8>),
        (status = 401, body = super::dto::ErrorBody),
        (status = 404, body = super::dto::ErrorBody)))]
pub async fn samples(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let id = if search::dataset::is_content_id(&name) {
        name
    } else {
        state.store.dataset(&name).await?.id
    };
    let png = state.store.dataset_samples(&id).await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "image/png"),
            (axum::http::header::CACHE_CONTROL, "private, max-age=60"),
        ],
        png,
    )
        .into_response())
}

/// `DELETE /datasets/{name}`: removes the name (and the content once
/// nothing names or records it); 409 while a running search uses it.
#[utoipa::path(delete, path = "/api/v1/datasets/{name}", tag = "catalogue",
    params(("name" = String, Path, description = "The dataset's name")),
    responses((status = 204, description = "Removed"), (status = 401, body = super::dto::ErrorBody),
        (status = 404, body = super::dto::ErrorBody), (status = 409, body = super::dto::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.remove_dataset(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
