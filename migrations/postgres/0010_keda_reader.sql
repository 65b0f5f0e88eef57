-- KEDA's scaler reads the queue's demand through a login role of its own,
-- `nas_keda` (deploy/kubernetes/keda-reader.sql creates it): where the role
-- exists, it may read the nas_trial_demand view and nothing else. Granted
-- here too so that a role created before nas first starts needs nothing
-- more.
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nas_keda') THEN
    GRANT SELECT ON nas_trial_demand TO nas_keda;
  END IF;
END
$$;
