-- Searches, their trials (the queue), per-epoch metrics, workers, artifacts.
-- Times are Unix milliseconds (INTEGER), the same on both backends.

CREATE TABLE searches (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL,
    spec          TEXT    NOT NULL,          -- the submitted spec, JSON
    status        TEXT    NOT NULL,          -- running | succeeded | cancelled
    seed          INTEGER  NOT NULL,
    max_trials    INTEGER  NOT NULL,
    parallelism   INTEGER  NOT NULL,
    max_seconds   REAL,
    labels        TEXT    NOT NULL DEFAULT '',  -- required worker labels, comma-separated, sorted
    proposed      INTEGER  NOT NULL DEFAULT 0,   -- trials created so far
    created_at    INTEGER  NOT NULL,
    finished_at   INTEGER
);
CREATE INDEX searches_status ON searches (status, created_at);

CREATE TABLE trials (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    search_id     INTEGER  NOT NULL REFERENCES searches (id) ON DELETE CASCADE,
    idx           INTEGER  NOT NULL,          -- 0-based position in the search
    architecture  TEXT    NOT NULL,          -- JSON
    arch_hash     TEXT    NOT NULL,
    parent_idx    INTEGER,                    -- evolution lineage
    mutation      TEXT,
    state         TEXT    NOT NULL,          -- pending | running | succeeded | failed | cancelled | rejected
    attempt       INTEGER  NOT NULL DEFAULT 0,
    max_attempts  INTEGER  NOT NULL,
    worker_id     TEXT,
    lease_expires_at INTEGER,
    heartbeat_at  INTEGER,
    progress      TEXT,                      -- JSON
    result        TEXT,                      -- JSON
    reward        REAL,
    errors        TEXT    NOT NULL DEFAULT '[]',  -- JSON array of every attempt's error
    labels        TEXT    NOT NULL DEFAULT '',
    run_at        INTEGER  NOT NULL,          -- not claimable before (backoff)
    created_at    INTEGER  NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
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
    trial_id      INTEGER  NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    attempt       INTEGER  NOT NULL,
    epoch         INTEGER  NOT NULL,
    train_loss    REAL NOT NULL,
    train_accuracy REAL NOT NULL,
    val_accuracy  REAL,
    seconds       REAL NOT NULL,
    PRIMARY KEY (trial_id, attempt, epoch)
);

CREATE TABLE workers (
    id            TEXT    PRIMARY KEY,
    host          TEXT    NOT NULL,
    labels        TEXT    NOT NULL DEFAULT '',
    threads       INTEGER  NOT NULL,
    device        TEXT    NOT NULL,
    started_at    INTEGER  NOT NULL,
    last_seen     INTEGER  NOT NULL,
    current_trial INTEGER
);

CREATE TABLE artifacts (
    trial_id      INTEGER  NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    kind          TEXT    NOT NULL,          -- weights
    bytes         BLOB   NOT NULL,
    created_at    INTEGER  NOT NULL,
    PRIMARY KEY (trial_id, kind)
);
