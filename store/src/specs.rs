//! The store's boundary for search specs: the one place their stored JSON
//! is decoded. A spec never changes once its search is created, so each is
//! decoded once per process and shared (`Arc`) by every row, claim and
//! top-up that needs it.

use std::sync::Arc;

use search::SearchSpec;

use crate::{Store, StoreError};

/// Most decoded search specs a store keeps.
const MAX_CACHED_SPECS: usize = 1024;

/// The decoded specs of one process's searches, by search id.
pub(crate) type SpecCache = crate::cache::BoundedCache<i64, Arc<SearchSpec>>;

/// An empty spec cache (a new process's).
pub(crate) fn spec_cache() -> Arc<SpecCache> {
    Arc::new(SpecCache::new("search specs", MAX_CACHED_SPECS))
}

impl Store {
    /// The spec of search `search_id`, decoded from its stored `text` (the
    /// `spec` column its caller read) unless this process already has it.
    pub(crate) fn spec_from_text(
        &self,
        search_id: i64,
        text: &str,
    ) -> Result<Arc<SearchSpec>, StoreError> {
        if let Some(spec) = self.specs.get_cloned(&search_id)? {
            return Ok(spec);
        }
        let spec: SearchSpec = serde_json::from_str(text)
            .map_err(|e| StoreError::Corrupt(format!("search {search_id} spec: {e}")))?;
        let spec = Arc::new(spec);
        self.specs.insert(search_id, spec.clone())?;
        Ok(spec)
    }

    /// The spec of search `search_id`, read from the database unless this
    /// process already has it.
    pub(crate) async fn spec_of(&self, search_id: i64) -> Result<Arc<SearchSpec>, StoreError> {
        if let Some(spec) = self.specs.get_cloned(&search_id)? {
            return Ok(spec);
        }
        let text: String = sqlx::Row::try_get(
            &sqlx::query("SELECT spec FROM searches WHERE id = $1")
                .bind(search_id)
                .fetch_one(self.pool())
                .await?,
            "spec",
        )?;
        self.spec_from_text(search_id, &text)
    }
}

/// A search trial's rung target, epochs: its stored `target_epochs`, where
/// 0 (queued before its rung was known) means the spec's first rung.
pub(crate) fn rung_target(spec: &SearchSpec, stored: i64) -> u32 {
    match u32::try_from(stored) {
        Ok(0) | Err(_) => spec.first_rung_epochs(),
        Ok(epochs) => epochs,
    }
}
