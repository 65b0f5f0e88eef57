-- Trial artifacts (weights, checkpoints) join datasets on the one chunked
-- blob layer: their bytes move to `blob_chunks` under the blob id
-- 'artifact/<trial>/<kind>'; `artifacts` keeps the index (which trial,
-- which kind, the size) that the lease-fenced writes and the prunes use.
ALTER TABLE artifacts ADD COLUMN size BIGINT NOT NULL DEFAULT 0;
INSERT INTO blob_chunks (blob_id, seq, bytes)
    SELECT 'artifact/' || trial_id || '/' || kind, 0, bytes FROM artifacts;
UPDATE artifacts SET size = LENGTH(bytes);
ALTER TABLE artifacts DROP COLUMN bytes;
