-- PostgreSQL only (KEDA's read-only role); kept so that both dialects have
-- the same numbered migrations.
SELECT 1;
