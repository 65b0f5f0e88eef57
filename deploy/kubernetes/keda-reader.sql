-- The role KEDA's PostgreSQL scaler logs in as: it may read the
-- nas_trial_demand view (the queue's demand, `nas queue depth --demand`)
-- and nothing else: no table, no write. Run it as the database's owner
-- (or a role with CREATEROLE), then give the role a password and put its
-- URL in the nas-keda secret:
--
--   psql "$ADMIN_URL" -f deploy/kubernetes/keda-reader.sql
--   psql "$ADMIN_URL" -c '\password nas_keda'
--   kubectl -n nas create secret generic nas-keda \
--     --from-literal=url='postgres://nas_keda:PASSWORD@HOST:5432/nas?sslmode=require'
--
-- Safe to run again. Run before or after nas first starts: nas grants the
-- role SELECT on the view whenever it migrates its schema and the role
-- exists (migration 0010), and so does the last line here once it does.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nas_keda') THEN
    CREATE ROLE nas_keda LOGIN NOINHERIT;
  END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO nas_keda;
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_views WHERE viewname = 'nas_trial_demand') THEN
    GRANT SELECT ON nas_trial_demand TO nas_keda;
  END IF;
END
$$;
