-- 0003: alert delivery and the alerts API. Teams and what they may see (routes), webhook
-- endpoints, the deliveries the dispatcher makes from the alert outbox and every attempt, API
-- keys (hashed), single-use acknowledge links, and the audit of access to care data.

-- A team: a carer or telecare team, or an operations team. Receives alerts at its webhook
-- endpoints and reads them through the API, both limited by its routes.
CREATE TABLE teams (
    team_id     text PRIMARY KEY CHECK (team_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    council_id  text NOT NULL REFERENCES councils (council_id),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Residents (pseudonymous ids, as on devices) grouped for routing: a carer team's caseload.
CREATE TABLE resident_groups (
    council_id  text NOT NULL REFERENCES councils (council_id),
    group_id    text NOT NULL,
    resident_id text NOT NULL,
    PRIMARY KEY (council_id, group_id, resident_id)
);

-- A team sees an alert (and is sent it) when any of its routes matches. NULL means any, except
-- resident_group: NULL matches only alerts about no resident (street sensors), '*' every
-- resident's, otherwise the group's residents only. Care data is never reached by accident.
CREATE TABLE team_routes (
    route_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id        text NOT NULL REFERENCES teams (team_id) ON DELETE CASCADE,
    sites          text[],
    sensor_kinds   text[],
    rule_ids       text[],
    min_severity   text CHECK (min_severity IN ('info', 'warning', 'critical')),
    resident_group text
);
CREATE INDEX team_routes_team ON team_routes (team_id);

-- The one definition of visibility, used by the dispatcher (routing) and the API (filtering).
-- What a route covers of a subject (an alert's or a device's site, kind and resident):
CREATE FUNCTION placewatch_route_covers(
    r team_routes, p_council text, p_site text, p_kind text, p_resident text
) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT (r.sites IS NULL OR p_site = ANY (r.sites))
       AND (r.sensor_kinds IS NULL OR p_kind = ANY (r.sensor_kinds))
       AND CASE
             WHEN r.resident_group IS NULL THEN p_resident IS NULL
             WHEN r.resident_group = '*' THEN p_resident IS NOT NULL
             ELSE EXISTS (SELECT 1 FROM resident_groups g
                          WHERE g.council_id = p_council AND g.group_id = r.resident_group
                            AND g.resident_id = p_resident)
           END
$$;

-- Devices: any route of the team, in the device's council, covers it.
CREATE FUNCTION placewatch_team_sees_device(
    p_team text, p_council text, p_site text, p_kind text, p_resident text
) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1
        FROM team_routes r JOIN teams t USING (team_id)
        WHERE r.team_id = p_team AND t.council_id = p_council
          AND placewatch_route_covers(r, p_council, p_site, p_kind, p_resident)
    )
$$;

-- Alerts: the same, and the route's rule and minimum severity conditions hold too.
CREATE FUNCTION placewatch_team_sees_alert(
    p_team text, p_council text, p_site text, p_kind text, p_severity text, p_rule text,
    p_resident text
) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1
        FROM team_routes r JOIN teams t USING (team_id)
        WHERE r.team_id = p_team AND t.council_id = p_council
          AND placewatch_route_covers(r, p_council, p_site, p_kind, p_resident)
          AND (r.rule_ids IS NULL OR p_rule = ANY (r.rule_ids))
          AND (r.min_severity IS NULL
               OR array_position(ARRAY['info', 'warning', 'critical'], p_severity)
                  >= array_position(ARRAY['info', 'warning', 'critical'], r.min_severity))
    )
$$;

-- A team's webhook endpoints. The secret (Standard Webhooks, "whsec_" + base64) is needed in
-- clear to sign; the circuit-breaker state is here so that every dispatcher replica shares it.
CREATE TABLE webhook_endpoints (
    endpoint_id          text PRIMARY KEY CHECK (endpoint_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    team_id              text NOT NULL REFERENCES teams (team_id) ON DELETE CASCADE,
    url                  text NOT NULL CHECK (url ~ '^https?://'),
    secret               text NOT NULL,
    enabled              boolean NOT NULL DEFAULT true,
    max_concurrency      integer NOT NULL DEFAULT 4 CHECK (max_concurrency BETWEEN 1 AND 64),
    consecutive_failures integer NOT NULL DEFAULT 0,
    circuit_open_until   timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_team ON webhook_endpoints (team_id);

-- One row per alert event and endpoint. The body is fixed when the row is made, so every retry
-- sends the same bytes under the same webhook-id. A worker leases a row for one attempt; a
-- worker that dies leaves a lease that expires, and another worker tries again.
CREATE TABLE webhook_deliveries (
    delivery_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id         text NOT NULL,
    endpoint_id        text NOT NULL REFERENCES webhook_endpoints (endpoint_id) ON DELETE CASCADE,
    team_id            text NOT NULL,
    outbox_id          bigint NOT NULL,
    alert_id           bigint NOT NULL REFERENCES alerts (alert_id),
    council_id         text NOT NULL,
    event              text NOT NULL,
    body               text NOT NULL,
    state              text NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    lease_until        timestamptz,
    give_up_at         timestamptz NOT NULL,
    -- When the alert change committed (the outbox row), for commit-to-delivery latency.
    event_committed_at timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    delivered_at       timestamptz,
    last_status        integer,
    last_error         text,
    UNIQUE (outbox_id, endpoint_id)
) WITH (fillfactor = 80);
CREATE INDEX webhook_deliveries_due
    ON webhook_deliveries (endpoint_id, next_attempt_at, delivery_id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_alert ON webhook_deliveries (alert_id);
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (endpoint_id) WHERE state = 'dead';
-- Attempts in flight per endpoint, counted at every claim (leases are cleared when recorded).
CREATE INDEX webhook_deliveries_leased
    ON webhook_deliveries (endpoint_id) WHERE state = 'pending' AND lease_until IS NOT NULL;
-- A claim checks that no earlier event of the alert is still in the outbox (being fanned out).
CREATE INDEX alert_outbox_alert ON alert_outbox (alert_id, id);

CREATE TABLE webhook_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries (delivery_id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    started_at  timestamptz NOT NULL,
    latency_ms  double precision NOT NULL,
    status      integer,
    error       text,
    worker      text NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- API keys: "pw_<key_id>_<secret>". Only a SHA-256 of the secret is kept (the secret is 256
-- random bits, so a slow password hash would add nothing).
CREATE TABLE api_keys (
    key_id       text PRIMARY KEY,
    team_id      text NOT NULL REFERENCES teams (team_id) ON DELETE CASCADE,
    secret_hash  bytea NOT NULL,
    scopes       text[] NOT NULL,
    label        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

-- Acknowledge links are signed and expire; this makes each one single-use.
CREATE TABLE ack_link_uses (
    link_id  text PRIMARY KEY,
    alert_id bigint NOT NULL REFERENCES alerts (alert_id),
    team_id  text NOT NULL,
    used_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    outcome  text NOT NULL
);

-- Every read or change of care data (anything about a resident) through the API or a link.
CREATE TABLE access_audit (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    team_id      text,
    principal    text NOT NULL,
    action       text NOT NULL,
    resident_ids text[] NOT NULL,
    alert_ids    bigint[] NOT NULL DEFAULT '{}',
    remote_addr  text,
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX access_audit_at ON access_audit (at);
