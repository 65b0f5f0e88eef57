//! Uploaded datasets: their canonical content stored once by its SHA-256
//! (in chunks, [`crate::blobs`]), their summaries, and the names that point
//! at them. A search records the content's id, so moving a name to new
//! content never changes what a search trained on.

use search::dataset::is_content_id;
use search::{DatasetFacts, DatasetSummary, SearchSpec, SpecError};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::blobs::{content_id, delete_blob, write_blob};
use crate::sql_states::SEARCH_RUNNING;
use crate::{Store, StoreError};

/// Longest dataset name, characters.
pub const MAX_NAME_CHARS: usize = 64;

/// An uploaded dataset under one of its names.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatasetRow {
    /// The name it is known by.
    pub name: String,
    /// Its content's SHA-256 (hex): the id searches record.
    pub id: String,
    /// Shape, classes and images per split and class.
    pub summary: DatasetSummary,
    /// Size of its canonical content, bytes.
    pub bytes: i64,
    /// Chunks the content is stored in.
    pub chunks: i64,
    /// When the name was last pointed at it, Unix ms.
    pub created_at: i64,
}

/// What storing a dataset did.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDataset {
    /// The dataset under the name given.
    pub dataset: DatasetRow,
    /// Whether its content was new (else it was stored already and only
    /// the name was set).
    pub new_content: bool,
}

/// A dataset name as users may give it: letters, digits, `-`, `_`, `.`,
/// starting with a letter or digit, and not a catalogue dataset's name.
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let invalid = |why: &str| StoreError::Invalid(format!("dataset name `{name}`: {why}"));
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(&format!(
            "must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(
            "use letters, digits, `-`, `_` and `.`, starting with a letter or digit",
        ));
    }
    if search::dataset::names().contains(&name) {
        return Err(invalid("is a built-in dataset's name"));
    }
    Ok(())
}

const COLUMNS: &str =
    "n.name, d.id, d.summary, d.bytes, d.chunks, n.created_at FROM dataset_names n JOIN datasets d ON d.id = n.dataset_id";

fn dataset_row(row: &AnyRow) -> Result<DatasetRow, StoreError> {
    let id: String = row.try_get("id")?;
    let summary: String = row.try_get("summary")?;
    Ok(DatasetRow {
        name: row.try_get("name")?,
        summary: parse_summary(&id, &summary)?,
        id,
        bytes: row.try_get("bytes")?,
        chunks: row.try_get("chunks")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The blob holding content `id`'s sample grid.
fn samples_blob(id: &str) -> String {
    format!("{id}.samples.png")
}

fn parse_summary(id: &str, json: &str) -> Result<DatasetSummary, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("dataset {id} summary: {e}")))
}

/// The summary of the uploaded content `id`, if it is stored.
pub(crate) async fn summary_of(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    lock: &str,
) -> Result<Option<DatasetSummary>, StoreError> {
    let row = sqlx::query(&format!("SELECT summary FROM datasets WHERE id = $1{lock}"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| parse_summary(id, &r.try_get::<String, _>("summary")?))
        .transpose()
}

impl Store {
    /// Within `tx`: what `spec`'s dataset is. A spec with a `dataset_id`
    /// is that content; else a catalogue name is the catalogue's entry, and
    /// any other name or id is an uploaded dataset, whose content id this
    /// writes into the spec. The row stays locked (PostgreSQL) until `tx`
    /// ends, so a removal cannot free content a new search is recording.
    /// An unknown dataset is a spec error listing the known ones.
    pub(crate) async fn resolve_dataset(
        &self,
        tx: &mut Transaction<'static, Any>,
        spec: &mut SearchSpec,
    ) -> Result<DatasetFacts, StoreError> {
        let lock = self.for_update();
        if let Some(id) = spec.dataset_id.clone() {
            if !is_content_id(&id) {
                return Err(SpecError::field(
                    "dataset_id",
                    "must be a content id: 64 lowercase hex digits",
                )
                .into());
            }
            let summary = summary_of(tx, &id, lock).await?.ok_or_else(|| {
                SpecError::field(
                    "dataset_id",
                    format!("no uploaded dataset has content {id} (it was removed, or never uploaded here)"),
                )
            })?;
            return Ok(summary.facts(&spec.dataset, &id));
        }
        if let Ok(info) = search::dataset::dataset(&spec.dataset) {
            return Ok(info.facts());
        }
        // An id names its content whatever names point at it now.
        let id = if is_content_id(&spec.dataset) {
            Some(spec.dataset.clone())
        } else {
            sqlx::query("SELECT dataset_id FROM dataset_names WHERE name = $1")
                .bind(&spec.dataset)
                .fetch_optional(&mut **tx)
                .await?
                .map(|row| row.try_get::<String, _>("dataset_id"))
                .transpose()?
        };
        let found = match id {
            Some(id) => summary_of(tx, &id, lock).await?.map(|s| (id, s)),
            None => None,
        };
        let Some((id, summary)) = found else {
            let mut known: Vec<String> = search::dataset::names()
                .iter()
                .map(|&n| n.to_owned())
                .collect();
            known.extend(
                sqlx::query("SELECT name FROM dataset_names ORDER BY name LIMIT 100")
                    .fetch_all(&mut **tx)
                    .await?
                    .iter()
                    .map(|r| r.try_get::<String, _>("name"))
                    .collect::<Result<Vec<_>, _>>()?,
            );
            return Err(SpecError::field(
                "dataset",
                format!(
                    "unknown dataset `{}`; known: {} (upload your own with POST /api/v1/datasets or `nas dataset add`)",
                    spec.dataset,
                    known.join(", ")
                ),
            )
            .into());
        };
        spec.dataset_id = Some(id.clone());
        Ok(summary.facts(&spec.dataset, &id))
    }

    /// Within `tx`: what a stored search's dataset is (as resolved at
    /// submission), for proposing its candidates.
    pub(crate) async fn recorded_dataset(
        &self,
        tx: &mut Transaction<'static, Any>,
        spec: &SearchSpec,
    ) -> Result<DatasetFacts, StoreError> {
        match &spec.dataset_id {
            None => Ok(spec.dataset_info()?.facts()),
            Some(id) => summary_of(tx, id, "")
                .await?
                .map(|s| s.facts(&spec.dataset, id))
                .ok_or_else(|| StoreError::NotFound(format!("dataset {id}"))),
        }
    }

    /// The uploaded content `id`: its summary, size in bytes and number of
    /// chunks, whatever names point at it (a worker fetching what a search
    /// recorded).
    pub async fn dataset_content_info(
        &self,
        id: &str,
    ) -> Result<(DatasetSummary, i64, i64), StoreError> {
        let row = sqlx::query("SELECT summary, bytes, chunks FROM datasets WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("dataset {id}")))?;
        Ok((
            parse_summary(id, &row.try_get::<String, _>("summary")?)?,
            row.try_get("bytes")?,
            row.try_get("chunks")?,
        ))
    }

    /// Stores `canonical` (a dataset's canonical bytes, described by
    /// `summary`) under `name`: the content once however often it is
    /// uploaded, the name moved to it if it pointed elsewhere.
    pub async fn put_dataset(
        &self,
        name: &str,
        summary: &DatasetSummary,
        canonical: &[u8],
    ) -> Result<StoredDataset, StoreError> {
        check_name(name)?;
        let id = content_id(canonical);
        let summary_json = serde_json::to_string(summary)
            .map_err(|e| StoreError::Invalid(format!("dataset summary: {e}")))?;
        let now = self.db_now_ms().await?;
        let mut tx = self.write_tx().await?;
        let known = sqlx::query("SELECT id FROM datasets WHERE id = $1")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !known {
            let chunks = write_blob(&mut tx, &id, canonical).await?;
            sqlx::query(
                "INSERT INTO datasets (id, summary, bytes, chunks, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&id)
            .bind(&summary_json)
            .bind(canonical.len() as i64)
            .bind(chunks)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO dataset_names (name, dataset_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET dataset_id = $2, created_at = $3",
        )
        .bind(name)
        .bind(&id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(StoredDataset {
            dataset: self.dataset(name).await?,
            new_content: !known,
        })
    }

    /// Stores (or replaces) the sample-image grid of content `id`, a PNG.
    pub async fn put_dataset_samples(&self, id: &str, png: &[u8]) -> Result<(), StoreError> {
        let blob = samples_blob(id);
        let mut tx = self.write_tx().await?;
        if summary_of(&mut tx, id, self.for_update()).await?.is_none() {
            return Err(StoreError::NotFound(format!("dataset {id}")));
        }
        delete_blob(&mut tx, &blob).await?;
        write_blob(&mut tx, &blob, png).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The sample-image grid (PNG) of content `id`.
    pub async fn dataset_samples(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        self.read_blob(&samples_blob(id))
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("sample images of dataset {id}")))
    }

    /// Every uploaded dataset under each of its names, by name.
    pub async fn datasets(&self) -> Result<Vec<DatasetRow>, StoreError> {
        sqlx::query(&format!("SELECT {COLUMNS} ORDER BY n.name"))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(dataset_row)
            .collect()
    }

    /// An uploaded dataset by name, or by id (under its first name).
    pub async fn dataset(&self, name_or_id: &str) -> Result<DatasetRow, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} WHERE n.name = $1 OR n.dataset_id = $1 \
             ORDER BY CASE WHEN n.name = $1 THEN 0 ELSE 1 END, n.name LIMIT 1"
        ))
        .bind(name_or_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("dataset `{name_or_id}`")))?;
        dataset_row(&row)
    }

    /// The canonical bytes of dataset `id`, read chunk by chunk and checked
    /// against the id.
    pub async fn dataset_content(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        let chunks: i64 = sqlx::query("SELECT chunks FROM datasets WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("dataset {id}")))?
            .try_get("chunks")?;
        let mut bytes = Vec::new();
        for seq in 0..chunks {
            bytes.extend(self.blob_chunk(id, seq).await?);
        }
        if content_id(&bytes) != id {
            return Err(StoreError::Corrupt(format!(
                "dataset {id}: its stored chunks do not hash to its id"
            )));
        }
        Ok(bytes)
    }

    /// Removes the name `name`; its content goes too once no name and no
    /// search records it. Refused (`Conflict`) while a running search uses
    /// it.
    pub async fn remove_dataset(&self, name: &str) -> Result<(), StoreError> {
        let dataset = self.dataset(name).await?;
        if dataset.name != name {
            return Err(StoreError::NotFound(format!("dataset name `{name}`")));
        }
        let mut tx = self.write_tx().await?;
        // Serialises with a submission recording this content.
        summary_of(&mut tx, &dataset.id, self.for_update()).await?;
        let running = sqlx::query(&format!(
            "SELECT id, spec FROM searches WHERE status = {SEARCH_RUNNING}"
        ))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| self.spec_from_text(r.try_get("id")?, &r.try_get::<String, _>("spec")?))
        .collect::<Result<Vec<_>, StoreError>>()?;
        let uses = |spec: &std::sync::Arc<SearchSpec>| {
            spec.dataset == name
                || spec.dataset == dataset.id
                || spec.dataset_id.as_deref() == Some(dataset.id.as_str())
        };
        if running.iter().any(uses) {
            return Err(StoreError::Conflict(format!(
                "dataset `{name}` is used by a running search; cancel it or wait for it to finish"
            )));
        }
        sqlx::query("DELETE FROM dataset_names WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let named = sqlx::query("SELECT name FROM dataset_names WHERE dataset_id = $1 LIMIT 1")
            .bind(&dataset.id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        // A search that recorded the content may still want it (final
        // training on request): the content stays while one does.
        let recorded =
            sqlx::query("SELECT id FROM searches WHERE spec LIKE '%' || $1 || '%' LIMIT 1")
                .bind(&dataset.id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
        if !named && !recorded {
            delete_blob(&mut tx, &dataset.id).await?;
            delete_blob(&mut tx, &samples_blob(&dataset.id)).await?;
            sqlx::query("DELETE FROM datasets WHERE id = $1")
                .bind(&dataset.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
