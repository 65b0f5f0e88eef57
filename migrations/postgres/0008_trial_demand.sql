-- What "waiting" means, in one place, for the queue and for autoscalers.
-- Every trial of a running search that needs a worker now:
-- - 'waiting': pending and due, or running with an expired lease (a worker
--   must run to rescue it: with none alive it would wait forever);
-- - 'running': running under a live lease.
-- `labels` are the trial's required labels, sorted and comma-joined: a worker
-- can take the trial if they are one of the subsets of its own labels.
-- `nas queue depth` counts 'waiting' rows; the KEDA query (`nas queue depth
-- --demand --sql`) counts both, so running trials keep their workers.
CREATE VIEW nas_trial_demand AS
SELECT t.id, t.search_id, t.labels,
       CASE WHEN t.state = 'running' AND t.lease_expires_at >= n.now THEN 'running' ELSE 'waiting' END AS need
FROM trials t
JOIN searches s ON s.id = t.search_id
CROSS JOIN (SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) AS now) n
WHERE s.status = 'running'
  AND ((t.state = 'pending' AND t.run_at <= n.now) OR t.state = 'running');
