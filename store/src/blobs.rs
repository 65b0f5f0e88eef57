//! Content stored in chunks (`blob_chunks`): a blob is written in pieces of
//! [`CHUNK_BYTES`] inside the caller's transaction and read back a chunk at
//! a time, so that neither a statement nor a read ever carries the whole of
//! a large blob, and a reader (a worker fetching a dataset) can check and
//! cache it as it arrives. Blobs are named by their content's SHA-256.

use sha2::{Digest, Sha256};
use sqlx::{Any, Row, Transaction};

use crate::{Store, StoreError};

/// Bytes per chunk.
pub const CHUNK_BYTES: usize = 4 << 20;

/// The SHA-256 of `bytes`, in lowercase hex: a blob's name.
pub fn content_id(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Within `tx`: stores `bytes` as blob `id` in chunks; returns the number
/// of chunks. The caller has checked that it is not stored yet.
pub(crate) async fn write_blob(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    bytes: &[u8],
) -> Result<i64, StoreError> {
    let mut chunks = 0;
    for (seq, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
        sqlx::query("INSERT INTO blob_chunks (blob_id, seq, bytes) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(seq as i64)
            .bind(chunk)
            .execute(&mut **tx)
            .await?;
        chunks += 1;
    }
    Ok(chunks)
}

/// Within `tx`: deletes blob `id`.
pub(crate) async fn delete_blob(
    tx: &mut Transaction<'static, Any>,
    id: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM blob_chunks WHERE blob_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// The whole of blob `id`, read a chunk at a time (`None`: no such
    /// blob).
    pub async fn read_blob(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut bytes = Vec::new();
        for seq in 0.. {
            match self.blob_chunk(id, seq).await {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StoreError::NotFound(_)) if seq == 0 => return Ok(None),
                Err(StoreError::NotFound(_)) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(Some(bytes))
    }

    /// Chunk `seq` of blob `id` (`NotFound` past its end).
    pub async fn blob_chunk(&self, id: &str, seq: i64) -> Result<Vec<u8>, StoreError> {
        let row = sqlx::query("SELECT bytes FROM blob_chunks WHERE blob_id = $1 AND seq = $2")
            .bind(id)
            .bind(seq)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("chunk {seq} of {id}")))?;
        Ok(row.try_get("bytes")?)
    }
}
