-- What "waiting" means, in one place, for the queue and for autoscalers
-- (see the PostgreSQL migration of the same number; only the clock differs).
CREATE VIEW nas_trial_demand AS
SELECT t.id, t.search_id, t.labels,
       CASE WHEN t.state = 'running' AND t.lease_expires_at >= n.now THEN 'running' ELSE 'waiting' END AS need
FROM trials t
JOIN searches s ON s.id = t.search_id
CROSS JOIN (SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) AS now) n
WHERE s.status = 'running'
  AND ((t.state = 'pending' AND t.run_at <= n.now) OR t.state = 'running');
