-- Multi-objective search: a rung result keeps the figures dominance is
-- judged on (validation accuracy and latency at that rung; parameters and
-- MACs are the trial's own), so multi-objective ASHA compares a trial with
-- the others that ended the same rung. NULL on rows from before.
ALTER TABLE trial_rungs ADD COLUMN accuracy DOUBLE PRECISION;
ALTER TABLE trial_rungs ADD COLUMN latency_ms DOUBLE PRECISION;
