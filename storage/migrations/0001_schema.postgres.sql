-- 0001 on plain PostgreSQL: hourly roll-ups are plain views computed with date_bin, with the same
-- names and columns as the TimescaleDB continuous aggregates, so every query runs on both.
-- (Retention on plain PostgreSQL is not enforced by a scheduler yet; see docs/storage.md.)

CREATE VIEW bin_fill_hourly AS
SELECT date_bin('1 hour', time, '2000-01-01 00:00+00') AS bucket,
       council_id, device_id,
       avg(fill_pct)::real     AS fill_pct_avg,
       max(fill_pct)           AS fill_pct_max,
       min(battery_pct)        AS battery_pct_min,
       bool_or(fire)           AS fire,
       count(*)                AS readings
FROM bin_fill
GROUP BY 1, 2, 3;

CREATE VIEW air_quality_hourly AS
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
GROUP BY 1, 2, 3;

CREATE VIEW flood_level_hourly AS
SELECT date_bin('1 hour', time, '2000-01-01 00:00+00') AS bucket,
       council_id, device_id,
       avg(level_m)            AS level_m_avg,
       min(level_m)            AS level_m_min,
       max(level_m)            AS level_m_max,
       count(*)                AS readings
FROM flood_level
GROUP BY 1, 2, 3;

CREATE VIEW home_activity_hourly AS
SELECT date_bin('1 hour', time, '2000-01-01 00:00+00') AS bucket,
       council_id, device_id, resident_id, sensor,
       sum(motion_count)                        AS motion_count,
       count(*) FILTER (WHERE door_open)        AS door_opens,
       count(*) FILTER (WHERE power_w > 0)      AS power_on_readings,
       count(*) FILTER (WHERE occupied)         AS occupied_readings,
       count(*)                                 AS readings
FROM home_activity
GROUP BY 1, 2, 3, 4, 5;
