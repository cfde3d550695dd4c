-- 0001 on TimescaleDB (2.13 or later, Community licence): runs after 0001_schema.sql in the same
-- transaction, so every statement here must be allowed in a transaction block. That is why the
-- continuous aggregates are created WITH NO DATA and nothing calls refresh_continuous_aggregate:
-- the refresh policies below fill them in the background.
--
-- One window governs late data: readings may arrive a few days after their event time, so
-- LATE WINDOW = 7 days. Chunks are compressed only after it, and the aggregate refresh window
-- reaches past it. See docs/storage.md.

-- Hypertables ------------------------------------------------------------------------------------
-- by_range() is the API from 2.13 on (the positional create_hypertable(table, 'time', ...) form is
-- deprecated). The primary keys (council_id, device_id, time) already include the partitioning
-- column, as a hypertable requires. The default time index stays (create_default_indexes): the
-- aggregates' real-time part and refreshes scan a recent time range across all councils and
-- devices, which the (council_id, ...) indexes cannot serve.
--
-- Chunk intervals: recent chunks and their indexes should fit comfortably in memory, and
-- retention drops whole chunks only.
--   Street sensors, 7 days: modest row rates (readings every few minutes to hourly), and raw data
--   is kept 3 years, so weekly chunks keep the chunk count near 160 per table.
--   home_activity, 1 day: event-driven and busier per device, and retention is 90 days of personal
--   data, so daily chunks mean that nothing is kept more than one day past the 90.
SELECT create_hypertable('bin_fill',      by_range('time', INTERVAL '7 days'));
SELECT create_hypertable('air_quality',   by_range('time', INTERVAL '7 days'));
SELECT create_hypertable('flood_level',   by_range('time', INTERVAL '7 days'));
SELECT create_hypertable('home_activity', by_range('time', INTERVAL '1 day'));
-- dead_letters stays a plain table: its keys (identity id, unique message_sha256) carry no
-- time column, which a hypertable's unique constraints would need, and it is small.

-- Compression ------------------------------------------------------------------------------------
-- Segment by the device so one device's readings compress together and the dedupe key
-- (council_id, device_id, time) is entirely segmentby + orderby: a late duplicate landing on a
-- compressed chunk is checked against only the batches of that device covering that time, instead
-- of decompressing the chunk. home_activity also segments by resident_id (a device belongs to one
-- resident, so it adds no segments): a query or an erasure by resident filters whole batches
-- without decompressing them. The timescaledb.compress* option names are accepted by every version
-- from 2.13 on (2.18 added the columnstore aliases).
ALTER TABLE bin_fill SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'council_id, device_id',
    timescaledb.compress_orderby = 'time DESC');
ALTER TABLE air_quality SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'council_id, device_id',
    timescaledb.compress_orderby = 'time DESC');
ALTER TABLE flood_level SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'council_id, device_id',
    timescaledb.compress_orderby = 'time DESC');
ALTER TABLE home_activity SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'council_id, device_id, resident_id',
    timescaledb.compress_orderby = 'time DESC');

-- Compress a chunk once all of it is older than the late window, so late readings (and
-- re-deliveries deduplicated by ON CONFLICT DO NOTHING) normally land on uncompressed chunks.
SELECT add_compression_policy('bin_fill',      compress_after => INTERVAL '7 days');
SELECT add_compression_policy('air_quality',   compress_after => INTERVAL '7 days');
SELECT add_compression_policy('flood_level',   compress_after => INTERVAL '7 days');
SELECT add_compression_policy('home_activity', compress_after => INTERVAL '7 days');

-- Raw retention ----------------------------------------------------------------------------------
-- A chunk is dropped once all of it is older than drop_after.
-- Street sensors: 3 years. Air quality objectives are counted per calendar year, so a full past
-- year must always be there, with room to re-check the previous ones.
SELECT add_retention_policy('bin_fill',    drop_after => INTERVAL '3 years');
SELECT add_retention_policy('air_quality', drop_after => INTERVAL '3 years');
SELECT add_retention_policy('flood_level', drop_after => INTERVAL '3 years');
-- home_activity is personal data about a resident's daily life (UK GDPR special category, health
-- inferences): raw readings kept 90 days only.
SELECT add_retention_policy('home_activity', drop_after => INTERVAL '90 days');

-- Hourly continuous aggregates -------------------------------------------------------------------
-- Same names, columns, column order and types as the plain views in 0001_schema.postgres.sql, so
-- every query runs on both flavours. time_bucket('1 hour', time) starts buckets on whole UTC
-- hours; so does date_bin('1 hour', time, '2000-01-01 00:00+00') there (an explicit UTC origin,
-- whatever the session time zone). materialized_only = false
-- (real-time aggregation; the default became true in 2.13): buckets newer than the last refresh
-- are computed from the raw table at query time, so results match the plain views.
CREATE MATERIALIZED VIEW bin_fill_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket('1 hour', time) AS bucket,
       council_id, device_id,
       avg(fill_pct)::real     AS fill_pct_avg,
       max(fill_pct)           AS fill_pct_max,
       min(battery_pct)        AS battery_pct_min,
       bool_or(fire)           AS fire,
       count(*)                AS readings
FROM bin_fill
GROUP BY bucket, council_id, device_id
WITH NO DATA;

CREATE MATERIALIZED VIEW air_quality_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket('1 hour', time) AS bucket,
       council_id, device_id,
       avg(no2_ugm3)::real     AS no2_ugm3_avg,
       max(no2_ugm3)           AS no2_ugm3_max,
       avg(pm25_ugm3)::real    AS pm25_ugm3_avg,
       avg(pm10_ugm3)::real    AS pm10_ugm3_avg,
       avg(o3_ugm3)::real      AS o3_ugm3_avg,
       avg(so2_ugm3)::real     AS so2_ugm3_avg,
       count(*)                AS readings
FROM air_quality
GROUP BY bucket, council_id, device_id
WITH NO DATA;

CREATE MATERIALIZED VIEW flood_level_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket('1 hour', time) AS bucket,
       council_id, device_id,
       avg(level_m)            AS level_m_avg,
       min(level_m)            AS level_m_min,
       max(level_m)            AS level_m_max,
       count(*)                AS readings
FROM flood_level
GROUP BY bucket, council_id, device_id
WITH NO DATA;

CREATE MATERIALIZED VIEW home_activity_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket('1 hour', time) AS bucket,
       council_id, device_id, resident_id, sensor,
       sum(motion_count)                        AS motion_count,
       count(*) FILTER (WHERE door_open)        AS door_opens,
       count(*) FILTER (WHERE power_w > 0)      AS power_on_readings,
       count(*) FILTER (WHERE occupied)         AS occupied_readings,
       count(*)                                 AS readings
FROM home_activity
GROUP BY bucket, council_id, device_id, resident_id, sensor
WITH NO DATA;

-- Refresh: every 30 minutes, over [now - 10 days, now - 1 hour).
--   start_offset 10 days = the 7-day late window plus 3 days of slack for a refresh job that
--     failed or a database that was down: late rows invalidate their buckets, and a refresh only
--     recomputes invalidated buckets, so the wide window is cheap. It is far inside every raw
--     retention, so dropping raw chunks never erases aggregated hours.
--   end_offset 1 hour leaves the open hour to real-time aggregation instead of materializing it
--     again and again while it fills.
SELECT add_continuous_aggregate_policy('bin_fill_hourly',
    start_offset => INTERVAL '10 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '30 minutes');
SELECT add_continuous_aggregate_policy('air_quality_hourly',
    start_offset => INTERVAL '10 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '30 minutes');
SELECT add_continuous_aggregate_policy('flood_level_hourly',
    start_offset => INTERVAL '10 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '30 minutes');
SELECT add_continuous_aggregate_policy('home_activity_hourly',
    start_offset => INTERVAL '10 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '30 minutes');

-- Aggregate retention: hourly rows outlive the raw readings.
-- Street sensors: 10 years, for long-term trends (air quality, flood levels) at a small fraction of
-- the raw size.
SELECT add_retention_policy('bin_fill_hourly',    drop_after => INTERVAL '10 years');
SELECT add_retention_policy('air_quality_hourly', drop_after => INTERVAL '10 years');
SELECT add_retention_policy('flood_level_hourly', drop_after => INTERVAL '10 years');
-- home_activity_hourly is still personal data (per resident and hour): 400 days, enough to compare
-- a resident's routine with the same season a year before, and no longer.
SELECT add_retention_policy('home_activity_hourly', drop_after => INTERVAL '400 days');
