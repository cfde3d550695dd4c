-- 0005: what Grafana may read. Grafana connects as a login role that is a member of
-- placewatch_grafana (docker compose creates `grafana`; see docs/dashboards.md). The role reads
-- readings, the hourly roll-ups, alerts and delivery outcomes, and nothing personal or secret:
--
-- * not raw home_activity (a resident's day minute by minute): the carer view reads the hourly
--   roll-up;
-- * not devices itself (home sensors' positions are homes' addresses): dashboard_devices below;
-- * not the alerts' free text and names written by staff (resolution_note, acknowledged_by,
--   resolved_by), nor alert_events / alert_outbox (the same and more);
-- * not webhook secrets or URLs (chat services put a token in the URL), webhook bodies (they
--   carry single-use acknowledge links), API key hashes, acknowledge-link uses, the care-data
--   access audit, resident groups, rule state (the care rules' model of each resident's
--   routine), an alert's observed figures, receivers' answers, or dead letters (their payloads
--   and details hold whatever a device sent; the dashboards count rejects from Prometheus).
--
-- Nothing is granted by default: a table a later migration adds stays unreadable to Grafana
-- until that migration grants it (tests/storage/test_grafana_role.py lists every relation).

-- The registry as dashboards see it. A home sensor's position is its resident's home, so it is
-- left out; and its first/last-heard times are coarsened to 15 minutes, because door, bed and
-- chair sensors report every change: polled, exact times would give back the event stream that
-- refusing raw home_activity hides. Everything else the map and the device lists need is here.
CREATE VIEW dashboard_devices AS
SELECT council_id, device_id, kind, model, site, ward,
       CASE WHEN kind = 'home_activity' THEN NULL ELSE latitude END AS latitude,
       CASE WHEN kind = 'home_activity' THEN NULL ELSE longitude END AS longitude,
       resident_id, status, tags, properties, expected_interval_s,
       CASE WHEN kind = 'home_activity' THEN date_bin('15 minutes', first_seen, '2000-01-01')
            ELSE first_seen END AS first_seen,
       CASE WHEN kind = 'home_activity' THEN date_bin('15 minutes', last_seen, '2000-01-01')
            ELSE last_seen END AS last_seen,
       CASE WHEN kind = 'home_activity' THEN date_bin('15 minutes', last_reading_at, '2000-01-01')
            ELSE last_reading_at END AS last_reading_at
FROM devices;

-- The deliveries panels filter by council and time; without these they read every delivery
-- ever made.
CREATE INDEX webhook_deliveries_council_created ON webhook_deliveries (council_id, created_at);
CREATE INDEX webhook_deliveries_council_delivered
    ON webhook_deliveries (council_id, delivered_at) WHERE state = 'delivered';
CREATE INDEX webhook_attempts_started ON webhook_attempts (started_at);

-- Roles are cluster-wide and need CREATEROLE: a migrating user without it (a managed database's
-- application user) skips this, and the operator creates the role and re-runs the grants below.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'placewatch_grafana') THEN
        IF NOT EXISTS (SELECT FROM pg_roles
                       WHERE rolname = current_user AND (rolcreaterole OR rolsuper)) THEN
            RAISE NOTICE 'role placewatch_grafana not created: % may not create roles',
                current_user;
            RETURN;
        END IF;
        CREATE ROLE placewatch_grafana NOLOGIN;
    END IF;

    EXECUTE format('GRANT CONNECT ON DATABASE %I TO placewatch_grafana', current_database());
    GRANT USAGE ON SCHEMA public TO placewatch_grafana;
    GRANT SELECT ON councils, dashboard_devices,
                    bin_fill, air_quality, flood_level,
                    bin_fill_hourly, air_quality_hourly, flood_level_hourly, home_activity_hourly,
                    teams, team_routes
          TO placewatch_grafana;
    -- Not error: it holds the start of the receiver's answer, which may be anything.
    GRANT SELECT (id, delivery_id, attempt, started_at, latency_ms, status, worker)
          ON webhook_attempts TO placewatch_grafana;
    -- Not observed: for care alerts it carries the care model's figures of the resident's
    -- routine. The summary (the explanation in words) is for the carer view.
    GRANT SELECT (alert_id, council_id, rule_id, rule_kind, subject_type, subject_id,
                  sensor_kind, site, resident_id, severity, state, opened_at, created_at,
                  acknowledged_at, resolved_at, escalations, last_notified_at, summary,
                  trigger_committed_at, updated_at)
          ON alerts TO placewatch_grafana;
    GRANT SELECT (delivery_id, webhook_id, endpoint_id, team_id, outbox_id, alert_id, council_id,
                  event, state, attempts, next_attempt_at, give_up_at, event_committed_at,
                  created_at, delivered_at, last_status)
          ON webhook_deliveries TO placewatch_grafana;
    GRANT SELECT (endpoint_id, team_id, enabled, max_concurrency, consecutive_failures,
                  circuit_open_until, created_at, updated_at)
          ON webhook_endpoints TO placewatch_grafana;
END
$$;
