-- When a worker last claimed a trial of the search: claims go to the
-- search that waited longest, so one search's queue cannot starve another.
ALTER TABLE searches ADD COLUMN last_claimed_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX searches_fair_claims ON searches (status, last_claimed_at, id);
