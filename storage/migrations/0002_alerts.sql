-- 0002: the rules engine. Device tags for rule selection, the inbox ingest fills for the rules
-- workers, per-rule state, alerts with their audit trail, and the outbox for delivery.

ALTER TABLE devices ADD COLUMN tags text[] NOT NULL DEFAULT '{}';

-- One row per (device, committed batch), written by ingest in the same transaction as the
-- readings it describes. A rules worker takes devices (transaction-scoped try-locks) and deletes
-- all their rows in the transaction that stores the evaluation's outcome, so every committed
-- reading is evaluated exactly once in effect whatever the commit order of concurrent ingest
-- replicas (a sequence watermark would skip a batch that committed after a later-numbered one).
CREATE TABLE rule_inbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    council_id  text NOT NULL,
    device_id   text NOT NULL,
    kind        text NOT NULL,
    min_time    timestamptz NOT NULL,
    max_time    timestamptz NOT NULL,
    readings    integer NOT NULL,
    -- clock_timestamp() at the end of the ingest transaction: the reading commit, within the
    -- commit's own duration. Evaluation lag and alert latency are measured from it.
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Claims take every row of the devices they lock.
CREATE INDEX rule_inbox_device ON rule_inbox (council_id, device_id);
-- A queue: every row is deleted soon after it is written. Vacuum it by row count, not by a
-- fraction of a table that is nearly always small, so dead rows do not pile up under load.
ALTER TABLE rule_inbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
                            autovacuum_vacuum_cost_delay = 0);

-- Each ingest process says every few seconds that it is connected, subscribed, writing and not
-- saturated. Silence rules hold back while any ingest is not (and for a grace period after it
-- recovers): when the pipeline stalls every device looks silent, and that is one outage, not an
-- alert per device.
CREATE TABLE ingest_heartbeats (
    client_id     text PRIMARY KEY,
    healthy_since timestamptz NOT NULL,
    seen_at       timestamptz NOT NULL
);

-- What each rule remembers about each subject between evaluations. `active` is the rule's view
-- of its condition (hysteresis), independent of what people did to the alert.
CREATE TABLE rule_state (
    rule_id            text NOT NULL,
    council_id         text NOT NULL,
    subject_type       text NOT NULL,
    subject_id         text NOT NULL,
    active             boolean NOT NULL DEFAULT false,
    alert_id           bigint,
    last_transition_at timestamptz,
    evaluated_until    timestamptz,
    data               jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (council_id, subject_type, subject_id, rule_id)
) WITH (fillfactor = 70);  -- updated at every evaluation: room for HOT updates

-- When each timer rule (air-quality objectives) last ran, shared by all workers.
CREATE TABLE rule_timers (
    rule_id     text PRIMARY KEY,
    last_run_at timestamptz NOT NULL
);

CREATE TABLE alerts (
    alert_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    council_id       text NOT NULL REFERENCES councils (council_id),
    rule_id          text NOT NULL,
    rule_kind        text NOT NULL,
    subject_type     text NOT NULL CHECK (subject_type IN ('device', 'resident', 'site')),
    subject_id       text NOT NULL,
    -- Denormalised from the registry at opening, for routing and filters (issue 7).
    sensor_kind      text,
    site             text,
    resident_id      text,
    severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state            text NOT NULL DEFAULT 'open'
                     CHECK (state IN ('open', 'acknowledged', 'resolved')),
    -- Event time at which the condition was met; created_at is when the alert was written.
    opened_at        timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    resolved_at      timestamptz,
    resolved_by      text,
    resolution_note  text,
    escalations      integer NOT NULL DEFAULT 0,
    last_notified_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    summary          text NOT NULL,
    -- Observed vs threshold or expected, and whatever else explains it.
    observed         jsonb NOT NULL DEFAULT '{}'::jsonb,
    resolution       jsonb,
    -- Reading commit time (rule_inbox.enqueued_at) that led to the alert, for latency figures.
    trigger_committed_at timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- One open (or acknowledged) alert per rule and subject, whatever races between workers.
CREATE UNIQUE INDEX alerts_one_open
    ON alerts (council_id, rule_id, subject_type, subject_id) WHERE state <> 'resolved';
CREATE INDEX alerts_council_state ON alerts (council_id, state, opened_at DESC);
CREATE INDEX alerts_unacknowledged ON alerts (last_notified_at) WHERE state = 'open';

-- Every transition, by whom (a rules worker, a person, the API) and with what detail.
CREATE TABLE alert_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts (alert_id),
    council_id  text NOT NULL,
    event       text NOT NULL
                CHECK (event IN ('opened', 'acknowledged', 'escalated', 'renotified', 'resolved')),
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor       text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, id);

-- Written in the same transaction as the alert change; the webhook dispatcher consumes it.
CREATE TABLE alert_outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    council_id  text NOT NULL,
    alert_id    bigint NOT NULL REFERENCES alerts (alert_id),
    event       text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
