-- 0006 on plain PostgreSQL: the *_hourly roll-ups become what TimescaleDB's real-time continuous
-- aggregates are. Until now they were views aggregating every raw reading at query time, and a
-- filter on their bucket could use no index, so a chart over a week read a device's whole
-- history. Now each has:
--
-- * <name>_materialized: complete hourly buckets, one row per group, up to a watermark;
-- * the *_hourly view (same name, columns and types as before, so every query is unchanged):
--   the materialised buckets before the watermark UNION ALL the raw readings from the watermark
--   on, aggregated at query time (the real-time part, normally the current hour);
-- * an invalidation log: a change to raw rows older than the invalidation threshold (a late
--   reading, a deletion) records the device and time span, and the next refresh recomputes those
--   hours of that device. Statement triggers with transition tables write it: one query per
--   statement, and nothing at all when every row is recent.
--
-- storage/rollups.py refreshes them (the rules worker every few minutes; `placewatch storage
-- refresh-rollups` by hand). A refresh first raises the invalidation threshold to the new
-- watermark in a short transaction that waits for writers already past their trigger (a shared
-- advisory lock each holds until commit), then, in a second transaction, recomputes the logged
-- hours and aggregates [old watermark, new watermark) and advances the watermark. So a write is
-- either seen by the refresh or logged for the next one. Until the first refresh the watermark is
-- -infinity and the views aggregate everything at query time, as before.

CREATE TABLE rollup_watermarks (
    relation               text PRIMARY KEY,
    -- Buckets before it are read from <relation>_materialized; from it on, from raw readings.
    watermark              timestamptz NOT NULL DEFAULT '-infinity',
    -- Writes of raw rows older than this are logged in rollup_invalidations. Never below the
    -- watermark: raised before it, in a transaction of its own.
    invalidation_threshold timestamptz NOT NULL DEFAULT '-infinity',
    refreshed_at           timestamptz,
    CHECK (invalidation_threshold >= watermark)
);
INSERT INTO rollup_watermarks (relation)
VALUES ('bin_fill_hourly'), ('air_quality_hourly'), ('flood_level_hourly'),
       ('home_activity_hourly');

CREATE TABLE rollup_invalidations (
    relation   text NOT NULL REFERENCES rollup_watermarks (relation),
    council_id text NOT NULL,
    device_id  text NOT NULL,
    lowest     timestamptz NOT NULL,
    highest    timestamptz NOT NULL,
    logged_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rollup_invalidations_relation ON rollup_invalidations (relation);

-- The materialised parts: the same columns and types as the views. (council_id, device_id,
-- bucket) serves a device selection over a time range, (council_id, bucket) a council's range;
-- that one carries the reading count, so a council's readings per hour (Operations / Readings
-- stored) are read from the index alone.
CREATE TABLE bin_fill_hourly_materialized (
    bucket          timestamptz NOT NULL,
    council_id      text NOT NULL,
    device_id       text NOT NULL,
    fill_pct_avg    real,
    fill_pct_max    real,
    battery_pct_min real,
    fire            boolean,
    readings        bigint NOT NULL,
    PRIMARY KEY (council_id, device_id, bucket)
);
CREATE INDEX bin_fill_hourly_materialized_council
    ON bin_fill_hourly_materialized (council_id, bucket) INCLUDE (readings);

CREATE TABLE air_quality_hourly_materialized (
    bucket       timestamptz NOT NULL,
    council_id   text NOT NULL,
    device_id    text NOT NULL,
    no2_ugm3_avg real,
    no2_ugm3_max real,
    pm25_ugm3_avg real,
    pm10_ugm3_avg real,
    o3_ugm3_avg  real,
    so2_ugm3_avg real,
    readings     bigint NOT NULL,
    PRIMARY KEY (council_id, device_id, bucket)
);
CREATE INDEX air_quality_hourly_materialized_council
    ON air_quality_hourly_materialized (council_id, bucket) INCLUDE (readings);

CREATE TABLE flood_level_hourly_materialized (
    bucket      timestamptz NOT NULL,
    council_id  text NOT NULL,
    device_id   text NOT NULL,
    level_m_avg double precision,
    level_m_min double precision,
    level_m_max double precision,
    readings    bigint NOT NULL,
    PRIMARY KEY (council_id, device_id, bucket)
);
CREATE INDEX flood_level_hourly_materialized_council
    ON flood_level_hourly_materialized (council_id, bucket) INCLUDE (readings);

-- One row per device, resident, sensor and hour (resident_id may be NULL, hence no primary key).
CREATE TABLE home_activity_hourly_materialized (
    bucket            timestamptz NOT NULL,
    council_id        text NOT NULL,
    device_id         text NOT NULL,
    resident_id       text,
    sensor            text NOT NULL,
    motion_count      bigint,
    door_opens        bigint NOT NULL,
    power_on_readings bigint NOT NULL,
    occupied_readings bigint NOT NULL,
    readings          bigint NOT NULL
);
CREATE UNIQUE INDEX home_activity_hourly_materialized_key
    ON home_activity_hourly_materialized (council_id, device_id, bucket, sensor,
                                          coalesce(resident_id, ''));
CREATE INDEX home_activity_hourly_materialized_resident
    ON home_activity_hourly_materialized (council_id, resident_id, bucket);
CREATE INDEX home_activity_hourly_materialized_council
    ON home_activity_hourly_materialized (council_id, bucket) INCLUDE (readings);

-- The views: same names, columns and types as 0001's, so CREATE OR REPLACE keeps their grants.
-- The raw part's aggregates are 0001's, word for word (storage/rollups.py runs the same ones).
-- The materialised part needs no filter: a refresh writes only buckets before the watermark it
-- sets in the same transaction (and the planner estimates a comparison with a subquery's value
-- badly). In the raw part, `time <= 'infinity'` (always true) makes the planner take the two
-- conditions on time as a range, which it estimates as narrow: without it, `time >= (subquery)`
-- is taken to keep a third of the rows and the council's readings are read in full instead of
-- the few after the watermark through the (council_id, time) index.
CREATE OR REPLACE VIEW bin_fill_hourly AS
SELECT bucket, council_id, device_id, fill_pct_avg, fill_pct_max, battery_pct_min, fire, readings
FROM bin_fill_hourly_materialized
UNION ALL
SELECT date_bin('1 hour', time, '2000-01-01 00:00+00') AS bucket,
       council_id, device_id,
       avg(fill_pct)::real     AS fill_pct_avg,
       max(fill_pct)           AS fill_pct_max,
       min(battery_pct)        AS battery_pct_min,
       bool_or(fire)           AS fire,
       count(*)                AS readings
FROM bin_fill
WHERE time >= coalesce((SELECT watermark FROM rollup_watermarks
                        WHERE relation = 'bin_fill_hourly'), '-infinity')
  AND time <= 'infinity'
GROUP BY 1, 2, 3;

CREATE OR REPLACE VIEW air_quality_hourly AS
SELECT bucket, council_id, device_id, no2_ugm3_avg, no2_ugm3_max, pm25_ugm3_avg, pm10_ugm3_avg,
       o3_ugm3_avg, so2_ugm3_avg, readings
FROM air_quality_hourly_materialized
UNION ALL
SELECT date_bin('1 hour', time, '2000-01-01 00:00+00') AS bucket,
       council_id, device_id,
       avg(no2_ugm3)::real     AS no2_ugm3_avg,
       max(no2_ugm3)           AS no2_ugm3_max,
       avg(pm25_ugm3)::real    AS pm25_ugm3_avg,
       avg(pm10_ugm3)::real    AS pm10_ugm3_avg,
       avg(o3_ugm3)::real      AS o3_ugm3_avg,
       avg(so2_ugm3)::real     AS so2_ugm3_avg,
       count(*)                AS readings
FROM air_quality
WHERE time >= coalesce((SELECT watermark FROM rollup_watermarks
                        WHERE relation = 'air_quality_hourly'), '-infinity')
  AND time <= 'infinity'
GROUP BY 1, 2, 3;

CREATE OR REPLACE VIEW flood_level_hourly AS
SELECT bucket, council_id, device_id, level_m_avg, level_m_min, level_m_max, readings
FROM flood_level_hourly_materialized
UNION ALL
SELECT date_bin('1 hour', time, '2000-01-01 00:00+00') AS bucket,
       council_id, device_id,
       avg(level_m)            AS level_m_avg,
       min(level_m)            AS level_m_min,
       max(level_m)            AS level_m_max,
       count(*)                AS readings
FROM flood_level
WHERE time >= coalesce((SELECT watermark FROM rollup_watermarks
                        WHERE relation = 'flood_level_hourly'), '-infinity')
  AND time <= 'infinity'
GROUP BY 1, 2, 3;

CREATE OR REPLACE VIEW home_activity_hourly AS
SELECT bucket, council_id, device_id, resident_id, sensor, motion_count, door_opens,
       power_on_readings, occupied_readings, readings
FROM home_activity_hourly_materialized
UNION ALL
SELECT date_bin('1 hour', time, '2000-01-01 00:00+00') AS bucket,
       council_id, device_id, resident_id, sensor,
       sum(motion_count)                        AS motion_count,
       count(*) FILTER (WHERE door_open)        AS door_opens,
       count(*) FILTER (WHERE power_w > 0)      AS power_on_readings,
       count(*) FILTER (WHERE occupied)         AS occupied_readings,
       count(*)                                 AS readings
FROM home_activity
WHERE time >= coalesce((SELECT watermark FROM rollup_watermarks
                        WHERE relation = 'home_activity_hourly'), '-infinity')
  AND time <= 'infinity'
GROUP BY 1, 2, 3, 4, 5;

-- Invalidation: after each INSERT, UPDATE or DELETE statement on a reading table, the span of
-- rows older than the threshold, per device. The shared advisory lock (held to commit) is what
-- a refresh waits on after raising the threshold; the threshold is read after taking it, so a
-- writer either committed before the refresh's snapshot or saw the new threshold. The key is
-- (0x706c726f "plro", hashtext(relation)); storage/rollups.py takes the same one.
CREATE FUNCTION rollup_log_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    threshold timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1886155375, hashtext(TG_ARGV[0]));
    SELECT invalidation_threshold INTO threshold
    FROM rollup_watermarks WHERE relation = TG_ARGV[0];
    IF threshold IS NULL OR threshold = '-infinity' THEN
        RETURN NULL;
    END IF;
    INSERT INTO rollup_invalidations (relation, council_id, device_id, lowest, highest)
    SELECT TG_ARGV[0], council_id, device_id, min(time), max(time)
    FROM changed WHERE time < threshold
    GROUP BY council_id, device_id;
    RETURN NULL;
END
$$;

-- TRUNCATE empties the roll-up too, and the view goes back to aggregating raw rows until the
-- next refresh.
CREATE FUNCTION rollup_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('TRUNCATE %I', TG_ARGV[0] || '_materialized');
    DELETE FROM rollup_invalidations WHERE relation = TG_ARGV[0];
    UPDATE rollup_watermarks
    SET watermark = '-infinity', invalidation_threshold = '-infinity', refreshed_at = NULL
    WHERE relation = TG_ARGV[0];
    RETURN NULL;
END
$$;

DO $$
DECLARE
    kind text;
BEGIN
    FOREACH kind IN ARRAY ARRAY['bin_fill', 'air_quality', 'flood_level', 'home_activity'] LOOP
        EXECUTE format('CREATE TRIGGER rollup_inserted AFTER INSERT ON %I'
                       ' REFERENCING NEW TABLE AS changed FOR EACH STATEMENT'
                       ' EXECUTE FUNCTION rollup_log_changes(%L)', kind, kind || '_hourly');
        EXECUTE format('CREATE TRIGGER rollup_deleted AFTER DELETE ON %I'
                       ' REFERENCING OLD TABLE AS changed FOR EACH STATEMENT'
                       ' EXECUTE FUNCTION rollup_log_changes(%L)', kind, kind || '_hourly');
        EXECUTE format('CREATE TRIGGER rollup_updated_old AFTER UPDATE ON %I'
                       ' REFERENCING OLD TABLE AS changed FOR EACH STATEMENT'
                       ' EXECUTE FUNCTION rollup_log_changes(%L)', kind, kind || '_hourly');
        EXECUTE format('CREATE TRIGGER rollup_updated_new AFTER UPDATE ON %I'
                       ' REFERENCING NEW TABLE AS changed FOR EACH STATEMENT'
                       ' EXECUTE FUNCTION rollup_log_changes(%L)', kind, kind || '_hourly');
        EXECUTE format('CREATE TRIGGER rollup_truncated AFTER TRUNCATE ON %I'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION rollup_truncated(%L)',
                       kind, kind || '_hourly');
    END LOOP;
END
$$;

-- Grafana reads the *_hourly views as before (CREATE OR REPLACE kept 0005's grants); the
-- materialised parts hold the same rows, so it may read them too. The watermarks and the
-- invalidation log are internal. Where 0005 could not create the role, the operator runs these
-- grants with 0005's.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'placewatch_grafana') THEN
        GRANT SELECT ON bin_fill_hourly_materialized, air_quality_hourly_materialized,
                        flood_level_hourly_materialized, home_activity_hourly_materialized
              TO placewatch_grafana;
    END IF;
END
$$;
