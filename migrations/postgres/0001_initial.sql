-- Searches, their trials (the queue), per-epoch metrics, workers, artifacts.
-- Times are Unix milliseconds (BIGINT), the same on both backends.

CREATE TABLE searches (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT    NOT NULL,
    spec          TEXT    NOT NULL,          -- the submitted spec, JSON
    status        TEXT    NOT NULL,          -- running | succeeded | cancelled
    seed          BIGINT  NOT NULL,
    max_trials    BIGINT  NOT NULL,
    parallelism   BIGINT  NOT NULL,
    max_seconds   DOUBLE PRECISION,
    labels        TEXT    NOT NULL DEFAULT '',  -- required worker labels, comma-separated, sorted
    proposed      BIGINT  NOT NULL DEFAULT 0,   -- trials created so far
    created_at    BIGINT  NOT NULL,
    finished_at   BIGINT
);
CREATE INDEX searches_status ON searches (status, created_at);

CREATE TABLE trials (
    id            BIGSERIAL PRIMARY KEY,
    search_id     BIGINT  NOT NULL REFERENCES searches (id) ON DELETE CASCADE,
    idx           BIGINT  NOT NULL,          -- 0-based position in the search
    architecture  TEXT    NOT NULL,          -- JSON
    arch_hash     TEXT    NOT NULL,
    parent_idx    BIGINT,                    -- evolution lineage
    mutation      TEXT,
    state         TEXT    NOT NULL,          -- pending | running | succeeded | failed | cancelled | rejected
    attempt       BIGINT  NOT NULL DEFAULT 0,
    max_attempts  BIGINT  NOT NULL,
    worker_id     TEXT,
    lease_expires_at BIGINT,
    heartbeat_at  BIGINT,
    progress      TEXT,                      -- JSON
    result        TEXT,                      -- JSON
    reward        DOUBLE PRECISION,
    errors        TEXT    NOT NULL DEFAULT '[]',  -- JSON array of every attempt's error
    labels        TEXT    NOT NULL DEFAULT '',
    run_at        BIGINT  NOT NULL,          -- not claimable before (backoff)
    created_at    BIGINT  NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT,
    UNIQUE (search_id, idx)
);
-- The claim path: due pending trials, oldest first.
CREATE INDEX trials_claim ON trials (run_at, id) WHERE state = 'pending';
-- The rescuer: expired leases.
CREATE INDEX trials_leases ON trials (lease_expires_at) WHERE state = 'running';
-- Leaderboards and counts per search.
CREATE INDEX trials_search_state ON trials (search_id, state);
CREATE INDEX trials_search_reward ON trials (search_id, reward DESC);

CREATE TABLE trial_metrics (
    trial_id      BIGINT  NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    attempt       BIGINT  NOT NULL,
    epoch         BIGINT  NOT NULL,
    train_loss    DOUBLE PRECISION NOT NULL,
    train_accuracy DOUBLE PRECISION NOT NULL,
    val_accuracy  DOUBLE PRECISION,
    seconds       DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (trial_id, attempt, epoch)
);

CREATE TABLE workers (
    id            TEXT    PRIMARY KEY,
    host          TEXT    NOT NULL,
    labels        TEXT    NOT NULL DEFAULT '',
    threads       BIGINT  NOT NULL,
    device        TEXT    NOT NULL,
    started_at    BIGINT  NOT NULL,
    last_seen     BIGINT  NOT NULL,
    current_trial BIGINT
);

CREATE TABLE artifacts (
    trial_id      BIGINT  NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    kind          TEXT    NOT NULL,          -- weights
    bytes         BYTEA   NOT NULL,
    created_at    BIGINT  NOT NULL,
    PRIMARY KEY (trial_id, kind)
);
