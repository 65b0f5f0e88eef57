-- Multi-fidelity search (ASHA) with resumable trials, and final training.
--
-- A trial trains in units of work, each to a rung's epoch count; at a
-- rung's end it either goes on (pending again, from its checkpoint, kept in
-- `artifacts` as kind 'checkpoint') or ends 'stopped' (early). Final models
-- are trials of phase 'final': a search trial's architecture trained from
-- scratch on training + validation data and tested once.
ALTER TABLE trials ADD COLUMN rung BIGINT;                        -- highest rung with a recorded result (0-based)
ALTER TABLE trials ADD COLUMN target_epochs BIGINT NOT NULL DEFAULT 0; -- the epoch this unit of work trains to (0: the spec's epochs)
ALTER TABLE trials ADD COLUMN epochs_done BIGINT NOT NULL DEFAULT 0;   -- epochs trained and kept (result or checkpoint)
ALTER TABLE trials ADD COLUMN attempt_base BIGINT NOT NULL DEFAULT 0;  -- attempts before this unit of work: retries count from here
ALTER TABLE trials ADD COLUMN phase TEXT NOT NULL DEFAULT 'search';    -- search | final
ALTER TABLE trials ADD COLUMN source_idx BIGINT;                       -- a final model's search trial
ALTER TABLE trials ADD COLUMN test_accuracy DOUBLE PRECISION;          -- final models only

-- Trials that ended before rungs existed had one rung.
UPDATE trials SET rung = 0 WHERE state = 'succeeded';

-- Every rung result, once: ASHA compares a trial with the others that
-- ended the same rung.
CREATE TABLE trial_rungs (
    trial_id      BIGINT  NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    search_id     BIGINT  NOT NULL,
    rung          BIGINT  NOT NULL,
    epochs        BIGINT  NOT NULL,
    reward        DOUBLE PRECISION NOT NULL,
    goes_on       BIGINT  NOT NULL,          -- 1: promoted to the next rung
    recorded_at   BIGINT  NOT NULL,
    PRIMARY KEY (trial_id, rung)
);
CREATE INDEX trial_rungs_search ON trial_rungs (search_id, rung);

-- Compute committed to units of work so far, epochs (budget.max_epochs_total).
ALTER TABLE searches ADD COLUMN epochs_committed BIGINT NOT NULL DEFAULT 0;
-- Final training: the settings used (JSON), set when it was queued.
ALTER TABLE searches ADD COLUMN final_spec TEXT;

-- Leaderboards rank every search trial with a rung result: finished,
-- stopped early, or training towards a higher rung.
DROP INDEX trials_rank_reward;
DROP INDEX trials_rank_accuracy;
DROP INDEX trials_rank_latency;
DROP INDEX trials_rank_params;
DROP INDEX trials_rank_macs;
CREATE INDEX trials_rank_reward ON trials (search_id, (-reward), id) WHERE rung IS NOT NULL AND phase = 'search';
CREATE INDEX trials_rank_accuracy ON trials (search_id, (-accuracy), (-reward), id) WHERE rung IS NOT NULL AND phase = 'search';
CREATE INDEX trials_rank_latency ON trials (search_id, latency_ms, (-reward), id) WHERE rung IS NOT NULL AND phase = 'search';
CREATE INDEX trials_rank_params ON trials (search_id, params, (-reward), id) WHERE rung IS NOT NULL AND phase = 'search';
CREATE INDEX trials_rank_macs ON trials (search_id, macs, (-reward), id) WHERE rung IS NOT NULL AND phase = 'search';
