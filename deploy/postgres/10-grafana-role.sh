#!/usr/bin/env bash
# docker compose: the login role Grafana's PostgreSQL data source uses (user `grafana`), with the
# password from GRAFANA_DB_PASSWORD. Mounted into /docker-entrypoint-initdb.d, so the image runs
# it once, when the timescaledb volume is first initialised, after its own TimescaleDB setup.
# What `grafana` may read comes from its group role placewatch_grafana, to which migration 0005
# grants read access to the dashboard tables only. The migrations run later (the migrate
# service), so the group role is created here first if missing; 0005 also creates it if missing.
#
# To change the password of an existing volume:
#   docker compose exec timescaledb psql -U placewatch -c "\password grafana"
# (and the same value as GRAFANA_DB_PASSWORD in .env, which Grafana's data source reads).
set -euo pipefail

: "${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD in .env}"

# psql does not interpolate variables inside a DO body, hence \gexec for the CREATE ROLE and a
# plain statement, where :'grafana_password' becomes a quoted literal, for the password.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=grafana_password="$GRAFANA_DB_PASSWORD" <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'placewatch_grafana') THEN
    CREATE ROLE placewatch_grafana NOLOGIN;
  END IF;
END
$$;

SELECT 'CREATE ROLE grafana LOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grafana') \gexec

-- Grafana opens at most maxOpenConns (10) per data source; leave room for a second instance.
ALTER ROLE grafana WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT 20
  PASSWORD :'grafana_password';
-- Dashboards read; a runaway panel query must not hold a connection (or locks) for long.
ALTER ROLE grafana SET default_transaction_read_only = on;
ALTER ROLE grafana SET statement_timeout = '30s';
GRANT placewatch_grafana TO grafana;
SQL
echo "10-grafana-role.sh: login role grafana (member of placewatch_grafana) is ready"
