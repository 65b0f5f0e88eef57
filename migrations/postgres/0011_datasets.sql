-- Uploaded datasets. A dataset is its canonical content (worker::data::
-- import): `id` is the SHA-256 of the canonical bytes, stored once however
-- often it is uploaded, in chunks (`blob_chunks`) so that no statement
-- carries the whole of it. Names point at contents; uploading a name again
-- moves the name, never what a search recorded (searches keep the id).
CREATE TABLE datasets (
    id          TEXT    PRIMARY KEY,      -- sha256 of the canonical bytes, hex
    summary     TEXT    NOT NULL,         -- JSON: shape, class names, images per split and class
    bytes       BIGINT  NOT NULL,         -- size of the canonical bytes
    chunks      BIGINT  NOT NULL,         -- number of blob_chunks rows
    created_at  BIGINT  NOT NULL
);
CREATE TABLE dataset_names (
    name        TEXT    PRIMARY KEY,
    dataset_id  TEXT    NOT NULL REFERENCES datasets (id),
    created_at  BIGINT  NOT NULL
);
CREATE TABLE blob_chunks (
    blob_id     TEXT    NOT NULL,         -- the content's id (a dataset's sha256)
    seq         BIGINT  NOT NULL,         -- 0, 1, ...
    bytes       BYTEA   NOT NULL,
    PRIMARY KEY (blob_id, seq)
);
