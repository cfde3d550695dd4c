-- 0008: least privilege for the services, and retention on a schedule (docs/storage.md,
-- "Database roles" and "Retention").
--
-- Each service logs in as a role that is a member of its NOLOGIN group role and may do what its
-- SQL does and nothing else: placewatch_ingest, placewatch_rules, placewatch_notify,
-- placewatch_api (placewatch_grafana is 0005's). Migrations and the admin commands (placewatch
-- migrate, teams, devices, keys, replay, storage, rules backtest) run as the owner, as before.
-- No service role may create, alter, drop or truncate anything, or read what its work does not
-- need: webhook secrets and URLs are the dispatcher's, API key hashes and the access audit the
-- API's, raw home activity the care rules' (ingest writes it, and reads it only because its
-- staging tables are LIKE the reading tables), and nobody may UPDATE or DELETE
-- the access audit (retention deletes it, through a function that runs as the owner).

-- Retention ----------------------------------------------------------------------------------
-- How long each class of data is kept. The owner sets the periods (placewatch storage retention
-- writes the PLACEWATCH_RETENTION_* settings here); the rules worker only calls the functions
-- below, which delete what the owner's periods say has expired, in bounded batches. On
-- TimescaleDB the hypertables' own retention policies (0001) keep the readings and roll-ups, so
-- only the plain tables are listed; on plain PostgreSQL the flavour file adds the readings and
-- the materialised roll-ups.
CREATE TABLE retention_policies (
    data_class text PRIMARY KEY,
    keep       interval NOT NULL CHECK (keep >= interval '1 day'),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO retention_policies (data_class, keep) VALUES
    -- Payloads hold whatever a device sent (home sensors' included): long enough to fix a
    -- mapping and replay, no longer.
    ('dead_letters', interval '30 days'),
    -- Finished deliveries (delivered or dead) and their attempts: the bodies carry alert
    -- details and single-use acknowledge links.
    ('webhook_deliveries', interval '90 days'),
    -- Who read care data: kept longer than what it records access to (raw home activity 90
    -- days, its roll-up 400 days), for complaints and investigations.
    ('access_audit', interval '2 years');

-- The time before which a class's rows have expired. Raw readings on plain PostgreSQL: whole
-- hours only, and never at or after their roll-up's watermark, so that only hours already
-- materialised lose raw rows (and their roll-up rows stay as they were).
CREATE FUNCTION placewatch_retention_cutoff(p_class text) RETURNS timestamptz
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    kept interval;
    cutoff timestamptz;
    wm timestamptz;
BEGIN
    SELECT keep INTO kept FROM retention_policies WHERE data_class = p_class;
    IF kept IS NULL THEN
        RAISE EXCEPTION 'no retention policy for %', p_class USING ERRCODE = 'undefined_object';
    END IF;
    cutoff := now() - kept;
    IF p_class IN ('bin_fill', 'air_quality', 'flood_level', 'home_activity') THEN
        SELECT watermark INTO wm FROM rollup_watermarks WHERE relation = p_class || '_hourly';
        cutoff := least(date_bin('1 hour', cutoff, '2000-01-01 00:00+00'),
                        coalesce(wm, '-infinity'));
    END IF;
    RETURN cutoff;
END
$$;

-- Deletes at most p_batch expired rows of one class and returns how many it deleted. Runs as
-- the owner: the rules worker may call it, but may not delete anything itself. Deletes of raw
-- readings say so (placewatch.retention, for this statement only) so the roll-ups' triggers do
-- not log them as late changes: their hours are materialised and stay as they were.
CREATE FUNCTION placewatch_retention_purge(p_class text, p_batch integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    cutoff timestamptz := placewatch_retention_cutoff(p_class);
    n bigint;
BEGIN
    IF p_batch IS NULL OR p_batch < 1 OR p_batch > 100000 THEN
        RAISE EXCEPTION 'batch must be 1..100000, not %', p_batch
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The rows are found by index, so that a run with nothing (or little) to delete does not
    -- read whole tables: council by council on (council_id, time) for the street readings and
    -- (council_id, bucket) for the roll-ups; by the BRIN index on time (0007) for home_activity.
    CASE
    WHEN p_class IN ('bin_fill', 'air_quality', 'flood_level') THEN
        PERFORM set_config('placewatch.retention', 'on', true);
        EXECUTE format(
            'DELETE FROM %1$I WHERE ctid = ANY (ARRAY('
            ' SELECT x.ctid FROM councils c CROSS JOIN LATERAL ('
            '  SELECT r.ctid FROM %1$I r WHERE r.council_id = c.council_id AND r.time < $1'
            '  LIMIT $2) x LIMIT $2)) AND time < $1', p_class)
            USING cutoff, p_batch;
        GET DIAGNOSTICS n = ROW_COUNT;
        PERFORM set_config('placewatch.retention', '', true);
    WHEN p_class = 'home_activity' THEN
        PERFORM set_config('placewatch.retention', 'on', true);
        DELETE FROM home_activity WHERE ctid = ANY (ARRAY(
            SELECT ctid FROM home_activity WHERE time < cutoff LIMIT p_batch))
          AND time < cutoff;
        GET DIAGNOSTICS n = ROW_COUNT;
        PERFORM set_config('placewatch.retention', '', true);
    WHEN p_class IN ('bin_fill_hourly', 'air_quality_hourly', 'flood_level_hourly',
                     'home_activity_hourly') THEN
        EXECUTE format(
            'DELETE FROM %1$I WHERE ctid = ANY (ARRAY('
            ' SELECT x.ctid FROM councils c CROSS JOIN LATERAL ('
            '  SELECT m.ctid FROM %1$I m WHERE m.council_id = c.council_id AND m.bucket < $1'
            '  LIMIT $2) x LIMIT $2)) AND bucket < $1', p_class || '_materialized')
            USING cutoff, p_batch;
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN p_class = 'dead_letters' THEN
        DELETE FROM dead_letters WHERE id = ANY (ARRAY(
            SELECT id FROM dead_letters WHERE last_received_at < cutoff LIMIT p_batch))
          AND last_received_at < cutoff;
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN p_class = 'webhook_deliveries' THEN
        -- Their attempts go with them (ON DELETE CASCADE).
        DELETE FROM webhook_deliveries WHERE delivery_id = ANY (ARRAY(
            SELECT delivery_id FROM webhook_deliveries
            WHERE state <> 'pending' AND created_at < cutoff LIMIT p_batch))
          AND state <> 'pending' AND created_at < cutoff;
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN p_class = 'access_audit' THEN
        DELETE FROM access_audit WHERE id = ANY (ARRAY(
            SELECT id FROM access_audit WHERE at < cutoff ORDER BY at LIMIT p_batch))
          AND at < cutoff;
        GET DIAGNOSTICS n = ROW_COUNT;
    ELSE
        RAISE EXCEPTION 'no retention rule for %', p_class USING ERRCODE = 'undefined_object';
    END CASE;
    RETURN n;
END
$$;

-- So that finding what expired reads an index, not the whole table (a run with nothing to do
-- reads a few pages).
CREATE INDEX dead_letters_last_received ON dead_letters (last_received_at);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (created_at)
    WHERE state <> 'pending';

-- Functions are executable by PUBLIC unless revoked.
REVOKE ALL ON FUNCTION placewatch_retention_cutoff(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION placewatch_retention_purge(text, integer) FROM PUBLIC;

-- The grants -------------------------------------------------------------------------------
-- In a function, so that an operator whose migrating user may not create roles creates them
-- (deploy/postgres/20-service-roles.sh does in docker compose) and then runs
--   SELECT placewatch_grant_service_roles();
-- as the owner. Re-runnable: it grants to the group roles that exist and skips the others with a
-- notice. Only the owner may run it.
CREATE FUNCTION placewatch_grant_service_roles() RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    r text;
    missing text[] := '{}';
    postgres boolean := to_regclass('rollup_watermarks') IS NOT NULL;
BEGIN
    FOREACH r IN ARRAY ARRAY['placewatch_ingest', 'placewatch_rules', 'placewatch_notify',
                             'placewatch_api'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            missing := missing || r;
            CONTINUE;
        END IF;
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), r);
        EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', r);
        EXECUTE format('GRANT SELECT ON councils TO %I', r);
    END LOOP;
    IF cardinality(missing) > 0 THEN
        RAISE NOTICE 'no grants to % (roles missing): create them and run '
                     'SELECT placewatch_grant_service_roles()', missing;
    END IF;

    -- ingest: stores readings, dead letters and last-heard times; registers unknown devices of
    -- an auto-registering network application as quarantined; announces to the rules workers.
    IF 'placewatch_ingest' <> ALL (missing) THEN
        -- Its staging tables (CREATE TEMP TABLE ... LIKE <reading table>, which needs SELECT).
        EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO placewatch_ingest', current_database());
        GRANT SELECT, INSERT ON bin_fill, air_quality, flood_level, home_activity
              TO placewatch_ingest;
        -- Not positions, site or ward: a home sensor's position is the home's address.
        GRANT SELECT (council_id, device_id, kind, model, dev_eui, status, properties,
                      resident_id, first_seen, last_seen, last_reading_at)
              ON devices TO placewatch_ingest;
        GRANT INSERT (council_id, device_id, kind, model, dev_eui, status, properties)
              ON devices TO placewatch_ingest;
        GRANT UPDATE (first_seen, last_seen, last_reading_at) ON devices TO placewatch_ingest;
        -- Network server and SenML uplinks are mapped by the device models (stored ones too).
        GRANT SELECT ON network_applications, device_models TO placewatch_ingest;
        GRANT SELECT, INSERT, UPDATE ON device_counters TO placewatch_ingest;
        -- Adds and counts dead letters; never reads another message's payload.
        GRANT INSERT ON dead_letters TO placewatch_ingest;
        GRANT SELECT (message_sha256, occurrences, last_received_at),
              UPDATE (occurrences, last_received_at) ON dead_letters TO placewatch_ingest;
        GRANT INSERT ON rule_inbox TO placewatch_ingest;
        GRANT SELECT, INSERT, UPDATE ON ingest_heartbeats TO placewatch_ingest;
    END IF;

    -- rules: evaluates readings (care rules: raw home activity) into alerts, their audit events
    -- and outbox rows; keeps rule state; refreshes the roll-ups (plain PostgreSQL) and runs
    -- retention through the functions above.
    IF 'placewatch_rules' <> ALL (missing) THEN
        GRANT SELECT ON bin_fill, air_quality, flood_level, home_activity,
                        bin_fill_hourly, air_quality_hourly, flood_level_hourly,
                        home_activity_hourly, ingest_heartbeats, schema_migrations,
                        retention_policies
              TO placewatch_rules;
        -- Not positions: a home sensor's position is the home's address.
        GRANT SELECT (council_id, device_id, kind, model, site, ward, resident_id, properties,
                      expected_interval_s, tags, dev_eui, status, created_at, first_seen,
                      last_seen, last_reading_at)
              ON devices TO placewatch_rules;
        GRANT SELECT, DELETE ON rule_inbox TO placewatch_rules;
        GRANT SELECT, INSERT, UPDATE ON rule_state, rule_timers, alerts TO placewatch_rules;
        GRANT INSERT ON alert_events, alert_outbox TO placewatch_rules;
        GRANT EXECUTE ON FUNCTION placewatch_retention_cutoff(text),
                                  placewatch_retention_purge(text, integer)
              TO placewatch_rules;
        IF postgres THEN
            GRANT SELECT, UPDATE ON rollup_watermarks TO placewatch_rules;
            GRANT SELECT, DELETE ON rollup_invalidations TO placewatch_rules;
            GRANT SELECT, INSERT, DELETE
                  ON bin_fill_hourly_materialized, air_quality_hourly_materialized,
                     flood_level_hourly_materialized, home_activity_hourly_materialized
                  TO placewatch_rules;
        END IF;
    END IF;

    -- notify: fans the outbox out to the routed teams' endpoints and delivers. The only service
    -- that reads webhook secrets and URLs; reads no readings and no devices.
    IF 'placewatch_notify' <> ALL (missing) THEN
        GRANT SELECT ON teams, team_routes, resident_groups, webhook_endpoints
              TO placewatch_notify;
        -- What routing needs (the body comes from the outbox): not the findings, the notes or
        -- who acted.
        GRANT SELECT (alert_id, council_id, rule_id, site, sensor_kind, severity, resident_id,
                      state)
              ON alerts TO placewatch_notify;
        -- Taken FOR UPDATE (which needs UPDATE on a column) and deleted once fanned out.
        GRANT SELECT, DELETE, UPDATE (id) ON alert_outbox TO placewatch_notify;
        GRANT UPDATE (consecutive_failures, circuit_open_until, updated_at)
              ON webhook_endpoints TO placewatch_notify;
        GRANT SELECT, INSERT, UPDATE ON webhook_deliveries TO placewatch_notify;
        GRANT INSERT ON webhook_attempts TO placewatch_notify;
    END IF;

    -- api: lists, acknowledges and resolves alerts for the caller's team; lists devices;
    -- checks API keys; records acknowledge-link uses; writes the access audit (only it does, and
    -- it may not read, change or delete it).
    IF 'placewatch_api' <> ALL (missing) THEN
        GRANT SELECT ON alerts, alert_events, devices, teams, team_routes, resident_groups,
                        ack_link_uses
              TO placewatch_api;
        -- A person's acknowledgement or resolution; not severity, escalations or the rule's
        -- findings.
        GRANT UPDATE (state, acknowledged_at, acknowledged_by, resolved_at, resolved_by,
                      resolution, resolution_note, updated_at)
              ON alerts TO placewatch_api;
        GRANT INSERT ON alert_events, alert_outbox, ack_link_uses, access_audit
              TO placewatch_api;
        GRANT SELECT, UPDATE (last_used_at) ON api_keys TO placewatch_api;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION placewatch_grant_service_roles() FROM PUBLIC;

-- Roles are cluster-wide and need CREATEROLE: a migrating user without it (a managed database's
-- application user) skips this with a notice; the operator creates the roles and runs the
-- grants (above).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['placewatch_ingest', 'placewatch_rules', 'placewatch_notify',
                             'placewatch_api'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            IF NOT EXISTS (SELECT FROM pg_roles
                           WHERE rolname = current_user AND (rolcreaterole OR rolsuper)) THEN
                RAISE NOTICE 'role % not created: % may not create roles', r, current_user;
                CONTINUE;
            END IF;
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$$;

-- Temporary tables only for those that make them (ingest's staging tables): PUBLIC has the
-- right by default. Only the database's owner (or a superuser) may revoke it: anyone else skips
-- it with a notice, and the operator runs REVOKE TEMPORARY ON DATABASE <name> FROM PUBLIC.
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'TEMPORARY left to PUBLIC: % may not alter database %', current_user,
        current_database();
END
$$;

SELECT placewatch_grant_service_roles();
