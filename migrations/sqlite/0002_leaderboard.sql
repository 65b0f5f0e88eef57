-- Leaderboard columns: the figures a leaderboard sorts by, as real columns
-- (params and MACs when a trial is proposed, accuracy and latency when it
-- ends), each with a keyset index over succeeded trials. Descending figures
-- are indexed negated so every sort is one ascending row comparison.
ALTER TABLE trials ADD COLUMN params INTEGER;
ALTER TABLE trials ADD COLUMN macs INTEGER;
ALTER TABLE trials ADD COLUMN accuracy REAL;
ALTER TABLE trials ADD COLUMN latency_ms REAL;

UPDATE trials SET
    params = json_extract(result, '$.params'),
    macs = json_extract(result, '$.macs'),
    accuracy = json_extract(result, '$.val_accuracy'),
    latency_ms = json_extract(result, '$.latency_ms.p50')
WHERE result IS NOT NULL AND result LIKE '{%';

DROP INDEX trials_search_reward;
CREATE INDEX trials_rank_reward ON trials (search_id, (-reward), id) WHERE state = 'succeeded';
CREATE INDEX trials_rank_accuracy ON trials (search_id, (-accuracy), (-reward), id) WHERE state = 'succeeded';
CREATE INDEX trials_rank_latency ON trials (search_id, latency_ms, (-reward), id) WHERE state = 'succeeded';
CREATE INDEX trials_rank_params ON trials (search_id, params, (-reward), id) WHERE state = 'succeeded';
CREATE INDEX trials_rank_macs ON trials (search_id, macs, (-reward), id) WHERE state = 'succeeded';
