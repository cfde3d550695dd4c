-- 0007: what keeps the dashboards' queries short (docs/dashboards.md, "Query speed").
--
-- No JIT compilation in this database. PostgreSQL compiles a query to machine code when its
-- estimated cost passes jit_above_cost (100,000); a dashboard panel over a week of 2,000 devices
-- passes it and pays 40-60 ms of compilation to save a few: more than the panel's whole budget
-- (100 ms p95). Nothing else placewatch runs gains from it either (ingest's inserts, the rules'
-- lookups and sweeps are short; the roll-up refresh works a day per transaction). A setting of
-- the database rather than of the placewatch_grafana role: a role's settings apply to sessions
-- that log in as it, and Grafana logs in as a member (`grafana`), which does not inherit them.
-- It takes effect for new sessions. Only the database's owner (or a superuser) may set it: a
-- migrating user that is neither skips it with a notice, and the operator runs
--   ALTER DATABASE <name> SET jit = off;    -- or ALTER ROLE grafana SET jit = off;
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'jit left on: % may not alter database %', current_user, current_database();
END
$$;
