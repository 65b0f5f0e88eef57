-- Why a search failed (status `failed`): e.g. its strategy could not propose.
ALTER TABLE searches ADD COLUMN error TEXT;
