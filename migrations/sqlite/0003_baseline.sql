-- Zoo baselines get their own column: the zoo entry a trial was built from,
-- instead of a `baseline:NAME` prefix in `mutation`.
ALTER TABLE trials ADD COLUMN baseline TEXT;

UPDATE trials SET baseline = substr(mutation, 10), mutation = NULL
WHERE mutation LIKE 'baseline:%';
