-- Leaderboard columns: the figures a leaderboard sorts by, as real columns
-- (params and MACs when a trial is proposed, accuracy and latency when it
-- ends), each with a keyset index over succeeded trials. Descending figures
-- are indexed negated so every sort is one ascending row comparison.
ALTER TABLE trials ADD COLUMN params BIGINT;
ALTER TABLE trials ADD COLUMN macs BIGINT;
ALTER TABLE trials ADD COLUMN accuracy DOUBLE PRECISION;
ALTER TABLE trials ADD COLUMN latency_ms DOUBLE PRECISION;

UPDATE trials SET
    params = CAST(result::jsonb ->> 'params' AS BIGINT),
    macs = CAST(result::jsonb ->> 'macs' AS BIGINT),
    accuracy = CAST(result::jsonb ->> 'val_accuracy' AS DOUBLE PRECISION),
    latency_ms = CAST(result::jsonb -> 'latency_ms' ->> 'p50' AS DOUBLE PRECISION)
WHERE result IS NOT NULL AND result LIKE '{%';

DROP INDEX trials_search_reward;
CREATE INDEX trials_rank_reward ON trials (search_id, (-reward), id) WHERE state = 'succeeded';
CREATE INDEX trials_rank_accuracy ON trials (search_id, (-accuracy), (-reward), id) WHERE state = 'succeeded';
CREATE INDEX trials_rank_latency ON trials (search_id, latency_ms, (-reward), id) WHERE state = 'succeeded';
CREATE INDEX trials_rank_params ON trials (search_id, params, (-reward), id) WHERE state = 'succeeded';
CREATE INDEX trials_rank_macs ON trials (search_id, macs, (-reward), id) WHERE state = 'succeeded';
