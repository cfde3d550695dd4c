-- 0001: tenancy, device registry, typed readings, dead letters.
-- Runs on plain PostgreSQL and on TimescaleDB alike; flavour-specific steps follow in
-- 0001_schema.postgres.sql or 0001_schema.timescaledb.sql, in the same transaction.

CREATE TABLE councils (
    council_id  text PRIMARY KEY CHECK (council_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    council_id          text NOT NULL REFERENCES councils (council_id),
    device_id           text NOT NULL CHECK (device_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
    kind                text NOT NULL
                        CHECK (kind IN ('bin_fill', 'air_quality', 'flood_level', 'home_activity')),
    model               text,
    site                text,
    ward                text,
    latitude            double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude           double precision CHECK (longitude BETWEEN -180 AND 180),
    -- Pseudonymous resident id for in-home sensors; never a name.
    resident_id         text,
    -- Per-device settings: bin depth_mm, gauge typical range and alert levels, etc.
    properties          jsonb NOT NULL DEFAULT '{}'::jsonb,
    expected_interval_s integer CHECK (expected_interval_s > 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    -- Updated by ingest in every batch: when we last heard the device (receive time) and the
    -- newest event time it reported.
    first_seen          timestamptz,
    last_seen           timestamptz,
    last_reading_at     timestamptz,
    PRIMARY KEY (council_id, device_id)
) WITH (fillfactor = 70);  -- room for HOT updates of last_seen

-- Readings: one table per kind. (council_id, device_id, time) is the dedupe key: a re-delivered
-- message carries the same device and event time and so never makes a second row.

CREATE TABLE bin_fill (
    time          timestamptz NOT NULL,
    council_id    text NOT NULL,
    device_id     text NOT NULL,
    fill_pct      real CHECK (fill_pct BETWEEN 0 AND 100),
    distance_mm   real CHECK (distance_mm >= 0),
    temperature_c real,
    tilt          boolean,
    fire          boolean,
    battery_pct   real CHECK (battery_pct BETWEEN 0 AND 100),
    received_at   timestamptz NOT NULL,
    PRIMARY KEY (council_id, device_id, time)
);

CREATE TABLE air_quality (
    time          timestamptz NOT NULL,
    council_id    text NOT NULL,
    device_id     text NOT NULL,
    no2_ugm3      real CHECK (no2_ugm3 >= 0),
    pm25_ugm3     real CHECK (pm25_ugm3 >= 0),
    pm10_ugm3     real CHECK (pm10_ugm3 >= 0),
    o3_ugm3       real CHECK (o3_ugm3 >= 0),
    so2_ugm3      real CHECK (so2_ugm3 >= 0),
    co2_ppm       real CHECK (co2_ppm >= 0),
    temperature_c real,
    humidity_pct  real CHECK (humidity_pct BETWEEN 0 AND 100),
    battery_pct   real CHECK (battery_pct BETWEEN 0 AND 100),
    received_at   timestamptz NOT NULL,
    PRIMARY KEY (council_id, device_id, time)
);

CREATE TABLE flood_level (
    time          timestamptz NOT NULL,
    council_id    text NOT NULL,
    device_id     text NOT NULL,
    level_m       double precision NOT NULL,
    battery_pct   real CHECK (battery_pct BETWEEN 0 AND 100),
    received_at   timestamptz NOT NULL,
    PRIMARY KEY (council_id, device_id, time)
);

CREATE TABLE home_activity (
    time          timestamptz NOT NULL,
    council_id    text NOT NULL,
    device_id     text NOT NULL,
    resident_id   text,
    sensor        text NOT NULL CHECK (sensor IN ('motion', 'door', 'power', 'bed', 'chair')),
    motion_count  integer CHECK (motion_count >= 0),
    door_open     boolean,
    power_w       real CHECK (power_w >= 0),
    occupied      boolean,
    battery_pct   real CHECK (battery_pct BETWEEN 0 AND 100),
    received_at   timestamptz NOT NULL,
    PRIMARY KEY (council_id, device_id, time)
);

-- Council-wide time range scans (dashboards) without walking every device.
CREATE INDEX bin_fill_council_time ON bin_fill (council_id, time DESC);
CREATE INDEX air_quality_council_time ON air_quality (council_id, time DESC);
CREATE INDEX flood_level_council_time ON flood_level (council_id, time DESC);
CREATE INDEX home_activity_resident_time ON home_activity (council_id, resident_id, time DESC);

-- Everything that could not be decoded, validated or mapped, kept byte for byte with a reason.
-- message_sha256 = sha256(topic, NUL, payload) is unique so a re-delivered bad message does not
-- make a second row (a hash, not the topic itself: topics can be longer than a btree key);
-- occurrences counts distinct receipts (redeliveries flagged DUP are not counted).
CREATE TABLE dead_letters (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    council_id       text,
    topic            text NOT NULL,
    payload          bytea NOT NULL,
    message_sha256   bytea NOT NULL UNIQUE,
    reason           text NOT NULL,
    detail           text NOT NULL,
    received_at      timestamptz NOT NULL,
    last_received_at timestamptz NOT NULL,
    occurrences      integer NOT NULL DEFAULT 1,
    replayed_at      timestamptz,
    replay_result    text
);
CREATE INDEX dead_letters_reason ON dead_letters (reason, received_at DESC);
CREATE INDEX dead_letters_pending ON dead_letters (received_at) WHERE replayed_at IS NULL;
