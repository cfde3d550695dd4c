#!/usr/bin/env bash
# docker compose: the login roles the placewatch services connect as, one per service, each a
# member of its group role (migration 0008 grants each group what its service's SQL needs, and
# nothing else; docs/storage.md, "Database roles"):
#
#   login    group role           password from
#   ingest   placewatch_ingest    INGEST_DB_PASSWORD
#   rules    placewatch_rules     RULES_DB_PASSWORD
#   notify   placewatch_notify    NOTIFY_DB_PASSWORD
#   api      placewatch_api       API_DB_PASSWORD
#
# Mounted into /docker-entrypoint-initdb.d, so the image runs it once, when the timescaledb
# volume is first initialised. The migrations run later (the migrate service, as the owner
# `placewatch`), so the group roles are created here first if missing; 0008 also creates them
# if missing and grants to them. Migrations and the admin commands (setup, the simulator's
# registration) keep running as the owner.
#
# A volume initialised before 0008: run this script's SQL by hand, as `placewatch`:
#   docker compose exec timescaledb psql -U placewatch -c "CREATE ROLE ingest LOGIN IN ROLE placewatch_ingest"
#   docker compose exec timescaledb psql -U placewatch -c "\password ingest"
# (and the same for rules, notify, api), with the passwords you put in .env.
set -euo pipefail

: "${INGEST_DB_PASSWORD:?set INGEST_DB_PASSWORD in .env}"
: "${RULES_DB_PASSWORD:?set RULES_DB_PASSWORD in .env}"
: "${NOTIFY_DB_PASSWORD:?set NOTIFY_DB_PASSWORD in .env}"
: "${API_DB_PASSWORD:?set API_DB_PASSWORD in .env}"

# psql does not interpolate variables inside a DO body, hence \gexec for the CREATE ROLEs and
# plain statements, where :'ingest_password' becomes a quoted literal, for the passwords.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=ingest_password="$INGEST_DB_PASSWORD" \
  --set=rules_password="$RULES_DB_PASSWORD" \
  --set=notify_password="$NOTIFY_DB_PASSWORD" \
  --set=api_password="$API_DB_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I NOLOGIN', g)
FROM unnest(ARRAY['placewatch_ingest', 'placewatch_rules', 'placewatch_notify',
                  'placewatch_api']) AS g
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = g) \gexec

SELECT format('CREATE ROLE %I LOGIN', l)
FROM unnest(ARRAY['ingest', 'rules', 'notify', 'api']) AS l
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = l) \gexec

-- Logins only: no superuser, no role or database creation; privileges come from the group role
-- (INHERIT). Connection limits leave room for a second replica of each.
ALTER ROLE ingest WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT 20
  PASSWORD :'ingest_password';
ALTER ROLE rules WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT 20
  PASSWORD :'rules_password';
ALTER ROLE notify WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT 20
  PASSWORD :'notify_password';
ALTER ROLE api WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT 40
  PASSWORD :'api_password';
GRANT placewatch_ingest TO ingest;
GRANT placewatch_rules TO rules;
GRANT placewatch_notify TO notify;
GRANT placewatch_api TO api;
SQL
echo "20-service-roles.sh: login roles ingest, rules, notify, api are ready"
