-- Compute spent on epochs a trial does not keep: trained after its last
-- checkpoint by an attempt that then failed (lost), or trained again by an
-- attempt that could not resume from its checkpoint (retrained). Both are
-- charged to the search's compute budget (`epochs_committed`) and counted
-- in `epochs_wasted`.
ALTER TABLE trials ADD COLUMN resumed_from BIGINT NOT NULL DEFAULT 0;    -- epochs_done when this attempt was claimed
ALTER TABLE searches ADD COLUMN epochs_wasted BIGINT NOT NULL DEFAULT 0; -- epochs trained and not kept, over all attempts
