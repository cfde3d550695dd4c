"""Dashboards benchmark: every PostgreSQL panel of the committed Grafana dashboards, run as
Grafana's role over a large synthetic estate, against the target of DESIGN.md ("every dashboard
panel query ≤ 100 ms p95 over 30 days x 2,000 devices").

Run from the repository root::

    .venv/bin/python -m bench.dashboards [--devices 2000] [--days 30] [--repeat 20] [--range 7d]
        [--admin-url URL] [--timescaledb auto|on|off] [--explain [--explain-over MS]] [--keep]

1. A fresh database (``pwbench_dash_<random>``), migrated (TimescaleDB when the server has it,
   per ``--timescaledb``), is filled server-side (``INSERT … SELECT`` over ``generate_series``)
   with one council's estate: 20 wards, 100 sites, ``--devices`` devices (60 % bins every hour,
   15 % air-quality stations, 10 % flood gauges and 15 % home sensors every 15 minutes), their
   readings for ``--days`` up to now, a few thousand alerts, two teams with webhook endpoints,
   deliveries and attempts. Then ``VACUUM (ANALYZE)``; on TimescaleDB the continuous aggregates
   are refreshed over the whole range and chunks older than the 7-day late window compressed,
   as the policies would have left them; on plain PostgreSQL the materialised roll-ups
   (migration 0006) are refreshed, as the rules worker would have kept them, and the refresh's
   own cost is timed (``refresh_costs``).
2. As Grafana's role, each dashboard's variables are filled from their own queries (the bench
   council, multi-value ones on All), then every PostgreSQL target is expanded with Grafana's
   macros (``dashboards.macros.expand``) over the last ``--range`` and run once to warm up and
   ``--repeat`` times, timing execute + fetch of all rows. A repeated panel (one per gauge) is
   also timed for one value, which is what each of Grafana's copies runs.
3. For scale, from the same connection: a ``SELECT 1`` round trip, a full
   ``SELECT count(*) FROM bin_fill`` and fetching 50,000 generated rows (what a chart of that
   many rows costs before any table is read). The repeated panel's query over every value at
   once is timed too, as a reference: it is not what Grafana runs and not counted as a panel.

Results are printed (slowest p95 first) and written to ``bench/results/dashboards-<UTC>.json``.
With ``--explain``, ``EXPLAIN (ANALYZE, BUFFERS)`` of each panel over 100 ms p95 (or
``--explain-over``) goes into the results, with the plan nodes that take the most time. The
database is dropped at the end (also on Ctrl-C or SIGTERM) unless ``--keep``. Exit status: 0
when every panel ran and returned rows, 1 when one failed or returned none (``PROBLEM:``
lines), 2 when the run could not complete. Speed never changes the exit status.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from bench.drain import RESULTS, BenchError, host_info, run_bench
from dashboards.generate import JSON_DIR
from dashboards.macros import TimeRange, Variable, expand
from dashboards.panels import LOCAL_TZ, POSTGRES_UID
from dashboards.run import (
    auto_interval,
    dashboard_files,
    datasource_uid,
    duration,
    fill_variables,
    load,
    panel_interval,
    targets,
)
from storage.migrate import Flavour, migrate
from storage.rollups import ROLLUPS, refresh_sync
from tests.support.postgres import (
    create_database,
    drop_database,
    grafana_login_url,
    server_url,
)

COUNCIL = "benchc"
COUNCIL_NAME = "Bench Council"
TARGET_MS = 100.0
FETCH_50K = (
    b"SELECT now() - n * interval '1 minute' AS \"time\","
    b" 'site-' || to_char(n % 100, 'FM000') || ' aq-' || to_char(n % 300, 'FM00000') AS metric,"
    b" n / 7.0::float8 AS value FROM generate_series(1, 50000) n ORDER BY 1"
)
WARDS = 20
SITES = 100
SENSORS = ("motion", "door", "power", "bed", "chair")
# Raw chunks older than this are compressed by the TimescaleDB policy (0001_schema.timescaledb).
COMPRESS_AFTER = timedelta(days=7)
# Each panel query has the role's statement timeout in docker compose
# (deploy/postgres/10-grafana-role.sh), so one runaway panel cannot hang the run.
STATEMENT_TIMEOUT = "30s"
EXPLAIN_LINES = 25
PRINT_WIDTH = 160

Conn = psycopg.Connection[tuple[Any, ...]]
Json = dict[str, Any]


# -- the estate ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estate:
    bins: int
    air: int
    gauges: int
    residents: int

    @classmethod
    def of(cls, devices: int) -> Estate:
        """60 % bins, 15 % air quality, 10 % gauges, 15 % home sensors (5 per resident)."""
        air = round(devices * 0.15)
        gauges = round(devices * 0.10)
        residents = max(1, round(devices * 0.15 / len(SENSORS)))
        bins = devices - air - gauges - residents * len(SENSORS)
        if bins < 10 or air < 1 or gauges < 1:
            raise BenchError(f"--devices {devices} is too few to have every kind")
        return cls(bins, air, gauges, residents)

    @property
    def devices(self) -> int:
        return self.bins + self.air + self.gauges + self.residents * len(SENSORS)


# Sites, then one row per device with everything the readings are made from. Street devices
# with n % 50 = 7 stop reporting a day before now, so "silent" shows; bins with n % 25 = 0 end
# under 20 % battery. A bin's fill is a saw-tooth: it rises at its own rate and is emptied from
# 90 % to 5 % (a fall of 85 points); frac places bin 0 at ~85 % now, so today's list is never
# empty, and spreads the others over the cycle.
DEVICES_SQL = """
CREATE TEMP TABLE bench_sites AS
SELECT s, 'site-' || to_char(s + 1, 'FM000') AS site,
       'ward-' || to_char(mod(s, %(wards)s) + 1, 'FM00') AS ward,
       51.30 + (s / 10) * 0.02 AS lat, -0.35 + mod(s, 10) * 0.03 AS lon
FROM generate_series(0, %(sites)s - 1) s;

CREATE TEMP TABLE bench_devices AS
SELECT d.kind, d.n, d.device_id, d.resident_id, d.sensor, d.model, d.interval_s,
       s.site, s.ward,
       s.lat + (mod(d.n * 37, 100) - 50) * 0.00002 AS lat,
       s.lon + (mod(d.n * 53, 100) - 50) * 0.00003 AS lon,
       mod(d.n * 97 + d.sensor_i * 13, d.interval_s) AS offset_s,
       d.kind <> 'home_activity' AND mod(d.n, 50) = 7 AS silent,
       (0.4 + mod(d.n * 37, 100) / 100.0 * 1.2)::float8 AS rate,
       (0.94 + d.n * 0.618034 - floor(0.94 + d.n * 0.618034))::float8 AS frac,
       CASE WHEN mod(d.n, 25) = 0 THEN 10 + mod(d.n, 7) ELSE 35 + mod(d.n * 7, 60) END
           AS battery_end,
       (0.3 + mod(d.n, 5) * 0.05)::float8 AS low_m,
       (0.3 + mod(d.n, 5) * 0.05 + 0.9 + mod(d.n, 3) * 0.1)::float8 AS high_m
FROM (
    SELECT 'bin_fill' AS kind, n, 'bin-' || to_char(n, 'FM00000') AS device_id,
           NULL::text AS resident_id, NULL::text AS sensor, 0 AS sensor_i,
           'bench/bin' AS model, 3600 AS interval_s, mod(n, %(sites)s) AS site_n
    FROM generate_series(0, %(bins)s - 1) n
    UNION ALL
    SELECT 'air_quality', n, 'aq-' || to_char(n, 'FM00000'), NULL, NULL, 0,
           'bench/air', 900, mod(n * 7 + 3, %(sites)s)
    FROM generate_series(0, %(air)s - 1) n
    UNION ALL
    SELECT 'flood_level', n, 'gauge-' || to_char(n, 'FM00000'), NULL, NULL, 0,
           'bench/gauge', 900, mod(n * 13 + 5, %(sites)s)
    FROM generate_series(0, %(gauges)s - 1) n
    UNION ALL
    SELECT 'home_activity', r, 'home-' || to_char(r, 'FM0000') || '-' || s.sensor,
           'res-' || to_char(r, 'FM0000'), s.sensor, s.i::int,
           'bench/home-' || s.sensor, 900, mod(r * 11 + 7, %(sites)s)
    FROM generate_series(0, %(residents)s - 1) r,
         unnest(%(sensors)s::text[]) WITH ORDINALITY s(sensor, i)
) d
JOIN bench_sites s ON s.s = d.site_n;

INSERT INTO councils (council_id, name) VALUES (%(council)s, %(council_name)s);

INSERT INTO devices (council_id, device_id, kind, model, site, ward, latitude, longitude,
                     resident_id, properties, expected_interval_s, created_at)
SELECT %(council)s, device_id, kind, model, site, ward, lat, lon, resident_id,
       CASE kind
         WHEN 'bin_fill' THEN jsonb_build_object('depth_mm', 1200)
         WHEN 'flood_level' THEN jsonb_build_object(
             'typical_low_m', low_m, 'typical_high_m', high_m, 'alert_level_m', high_m + 0.4)
         WHEN 'home_activity' THEN jsonb_build_object(
             'room', CASE sensor WHEN 'bed' THEN 'bedroom' WHEN 'chair' THEN 'lounge'
                                 WHEN 'door' THEN 'hall' ELSE 'kitchen' END,
             'sensor', sensor)
         ELSE '{}'::jsonb
       END,
       interval_s, %(now)s - %(days)s * interval '1 day' - interval '1 day'
FROM bench_devices
"""

# Each reading table: one row per device and step back from now (k steps of its interval).
BIN_FILL_SQL = """
INSERT INTO bin_fill (time, council_id, device_id, fill_pct, distance_mm, temperature_c, tilt,
                      fire, battery_pct, received_at)
SELECT t, %(council)s, device_id, fill, 1200 * (100 - fill) / 100,
       10 + 6 * sin(2 * pi() * (extract(epoch FROM t)::float8 / 86400 - 0.375)) + random(),
       false, false, battery, t + interval '4 seconds'
FROM (
    SELECT device_id, t, battery,
           least(100, greatest(0, 5 + pos - 85 * floor(pos / 85) + 2 * random() - 1))::real
               AS fill
    FROM (
        SELECT d.device_id,
               %(now)s - (k * d.interval_s + d.offset_s) * interval '1 second' AS t,
               d.frac * 85 - d.rate * k AS pos,
               least(100, d.battery_end + 0.01 * k) AS battery
        FROM bench_devices d, generate_series(0, %(days)s * 24 - 1) k
        WHERE d.kind = 'bin_fill' AND (NOT d.silent OR k >= 24)
    ) s
) r
"""

# NO2 with morning and evening rush hours (roadside stations, n % 4 = 0, pass the 200 µg/m³
# hourly objective most mornings); PM on a 5-day wave whose 24-hour mean reaches DAQI High and
# beyond at the stations with the largest swing; O3 peaking in the afternoon.
AIR_QUALITY_SQL = """
INSERT INTO air_quality (time, council_id, device_id, no2_ugm3, pm25_ugm3, pm10_ugm3, o3_ugm3,
                         so2_ugm3, temperature_c, humidity_pct, battery_pct, received_at)
SELECT t, %(council)s, device_id,
       (25 + mod(n, 10) * 2 + CASE WHEN mod(n, 4) = 0 THEN 210 ELSE 80 END
           * (exp(-((h - 8) ^ 2) / 2) + 0.8 * exp(-((h - 18) ^ 2) / 2))
           * (0.8 + 0.4 * random()))::real,
       (0.6 * pm10)::real, pm10::real,
       greatest(0, 45 + 35 * sin(2 * pi() * (h - 9) / 24) + 10 * random())::real,
       (4 + 3 * random())::real,
       (9 + 5 * sin(2 * pi() * (h - 9) / 24))::real,
       (65 + 20 * sin(2 * pi() * (h + 3) / 24))::real,
       85 + mod(n, 10), t + interval '4 seconds'
FROM (
    SELECT n, device_id, t, h,
           12 + (30 + mod(n * 17, 70)) * (1 + sin(2 * pi() * e / 432000 + n)) / 2
              * (0.85 + 0.3 * random()) AS pm10
    FROM (
        SELECT n, device_id, t, extract(epoch FROM t)::float8 AS e,
               (extract(hour FROM t) + extract(minute FROM t) / 60)::float8 AS h
        FROM (
            SELECT d.n, d.device_id,
                   %(now)s - (k * d.interval_s + d.offset_s) * interval '1 second' AS t
            FROM bench_devices d, generate_series(0, %(days)s * 96 - 1) k
            WHERE d.kind = 'air_quality' AND (NOT d.silent OR k >= 96)
        ) s
    ) e
) r
"""

# A slow wave within the typical range and, every 10 days per gauge, a 16-hour flood peaking
# 0.2 m above the alert level.
FLOOD_LEVEL_SQL = """
INSERT INTO flood_level (time, council_id, device_id, level_m, battery_pct, received_at)
SELECT t, %(council)s, device_id,
       low_m + (high_m - low_m)
           * (0.2 + 0.6 * (1 + sin(2 * pi() * eh / (60 + mod(n, 24)) + n)) / 2)
       + greatest(0, 1 - abs(b - 240 * floor(b / 240) - 120) / 8) * (high_m + 0.6 - low_m)
       + 0.01 * random(),
       70 + mod(n, 30), t + interval '4 seconds'
FROM (
    SELECT n, device_id, t, low_m, high_m, extract(epoch FROM t)::float8 / 3600 AS eh,
           extract(epoch FROM t)::float8 / 3600 + mod(n * 29, 240) AS b
    FROM (
        SELECT d.n, d.device_id, d.low_m, d.high_m,
               %(now)s - (k * d.interval_s + d.offset_s) * interval '1 second' AS t
        FROM bench_devices d, generate_series(0, %(days)s * 96 - 1) k
        WHERE d.kind = 'flood_level' AND (NOT d.silent OR k >= 96)
    ) s
) r
"""

# Awake from 7 or 8 to 22 local time: motion counts follow the day, the door opens now and
# then, the kettle draws power, the bed is occupied at night and the chair in the afternoon.
HOME_ACTIVITY_SQL = f"""
INSERT INTO home_activity (time, council_id, device_id, resident_id, sensor, motion_count,
                           door_open, power_w, occupied, battery_pct, received_at)
SELECT t, %(council)s, device_id, resident_id, sensor,
       CASE WHEN sensor = 'motion' THEN
           CASE WHEN awake THEN floor(random() * (3 + 5 * sin(pi() * (lh - 6) / 17)))::int
                ELSE (random() < 0.03)::int END
       END,
       CASE WHEN sensor = 'door' THEN awake AND random() < 0.08 END,
       CASE WHEN sensor = 'power' THEN
           CASE WHEN awake AND random() < 0.15 THEN 500 + 1500 * random() ELSE 1.5 END
       END,
       CASE WHEN sensor = 'bed' THEN NOT awake
            WHEN sensor = 'chair' THEN awake AND lh >= 13 AND random() < 0.6 END,
       80 + mod(n, 20), t + interval '4 seconds'
FROM (
    SELECT n, device_id, resident_id, sensor, t, lh, lh BETWEEN 7 + mod(n, 2) AND 21 AS awake
    FROM (
        SELECT n, device_id, resident_id, sensor, t,
               extract(hour FROM t AT TIME ZONE '{LOCAL_TZ}')::int AS lh
        FROM (
            SELECT d.n, d.device_id, d.resident_id, d.sensor,
                   %(now)s - (k * d.interval_s + d.offset_s) * interval '1 second' AS t
            FROM bench_devices d, generate_series(0, %(days)s * 96 - 1) k
            WHERE d.kind = 'home_activity'
        ) s
    ) l
) r
"""

# Alerts over the period: a bin to collect every 12 days per bin, a river above its alert level
# every 10 days per gauge, a DAQI High every 7 days per station, a care inactivity alert every 6
# days per resident (an hour or more apart, so at most one per rule and subject is unresolved,
# as alerts_one_open requires), and open ones: low batteries, silent devices, activity decline.
# Every other alert is acknowledged 12 minutes after it opened.
ALERTS_SQL = """
WITH residents AS (
    SELECT n AS r, resident_id, site FROM bench_devices
    WHERE kind = 'home_activity' AND sensor = 'motion'
), c AS (
    SELECT 'bin-needs-collection' AS rule_id, 'bin_time_to_full' AS rule_kind,
           'device' AS subject_type, d.device_id AS subject_id, d.kind AS sensor_kind, d.site,
           NULL::text AS resident_id, 'warning' AS severity,
           %(now)s - j * interval '1 day' - mod(d.n * 53, 1440) * interval '1 minute'
               AS opened_at,
           (2 + mod(d.n, 10)) * interval '1 hour' AS lasts,
           'Bin ' || d.device_id || ' at the collection threshold or full within 12 h'
               AS summary
    FROM bench_devices d, generate_series(0, %(days)s - 1) j
    WHERE d.kind = 'bin_fill' AND mod(d.n + j, 12) = 0
    UNION ALL
    SELECT 'battery-low', 'low_battery', 'device', d.device_id, d.kind, d.site, NULL, 'info',
           %(now)s - (mod(d.n, 5) + 1) * interval '1 day', NULL,
           'Battery of ' || d.device_id || ' below 20 %%'
    FROM bench_devices d WHERE d.kind = 'bin_fill' AND mod(d.n, 25) = 0
    UNION ALL
    SELECT 'device-silent', 'silence', 'device', d.device_id, d.kind, d.site, NULL, 'warning',
           %(now)s - interval '1 day' + 3 * d.interval_s * interval '1 second', NULL,
           d.device_id || ' not heard for three of its expected intervals'
    FROM bench_devices d WHERE d.silent
    UNION ALL
    SELECT 'river-above-alert-level', 'threshold', 'device', d.device_id, d.kind, d.site, NULL,
           'critical',
           %(now)s - j * interval '1 day' - mod(d.n * 71, 1440) * interval '1 minute',
           interval '6 hours', 'Level at ' || d.device_id || ' above its alert level'
    FROM bench_devices d, generate_series(0, %(days)s - 1) j
    WHERE d.kind = 'flood_level' AND mod(d.n + j, 10) = 0
    UNION ALL
    SELECT 'air-quality-daqi-high', 'daqi', 'device', d.device_id, d.kind, d.site, NULL,
           'warning',
           %(now)s - j * interval '1 day' - mod(d.n * 31, 1440) * interval '1 minute',
           interval '5 hours', 'DAQI 7 (High) at ' || d.device_id || ' from PM10'
    FROM bench_devices d, generate_series(0, %(days)s - 1) j
    WHERE d.kind = 'air_quality' AND mod(d.n + j, 7) = 0
    UNION ALL
    SELECT 'care-inactivity', 'inactivity', 'resident', r.resident_id, 'home_activity', r.site,
           r.resident_id, 'critical',
           %(now)s - j * interval '1 day' - mod(r.r * 89, 1440) * interval '1 minute',
           interval '1 hour',
           'No activity for 3 h 10 min; usually active within 45 min at this time of day'
    FROM residents r, generate_series(0, %(days)s - 1) j
    WHERE mod(r.r + j, 6) = 0
    UNION ALL
    SELECT 'care-activity-decline', 'activity_decline', 'resident', r.resident_id,
           'home_activity', r.site, r.resident_id, 'warning',
           %(now)s - interval '2 days', NULL,
           'Active 6 h a day over the last 7 days against a usual 11 h'
    FROM residents r WHERE mod(r.r, 3) = 0
), timed AS (
    SELECT c.*,
           CASE WHEN c.opened_at + c.lasts <= %(now)s THEN c.opened_at + c.lasts END
               AS resolved_at,
           CASE WHEN mod(row_number() OVER (), 2) = 0
                     AND c.opened_at + interval '12 minutes' <= %(now)s
                THEN c.opened_at + interval '12 minutes' END AS acknowledged_at
    FROM c
)
INSERT INTO alerts (council_id, rule_id, rule_kind, subject_type, subject_id, sensor_kind, site,
                    resident_id, severity, state, opened_at, created_at, acknowledged_at,
                    acknowledged_by, resolved_at, resolved_by, last_notified_at, summary,
                    trigger_committed_at, updated_at)
SELECT %(council)s, rule_id, rule_kind, subject_type, subject_id, sensor_kind, site,
       resident_id, severity,
       CASE WHEN resolved_at IS NOT NULL THEN 'resolved'
            WHEN acknowledged_at IS NOT NULL THEN 'acknowledged' ELSE 'open' END,
       opened_at, opened_at + interval '2 seconds', acknowledged_at,
       CASE WHEN acknowledged_at IS NOT NULL THEN 'bench-operator' END,
       resolved_at, CASE WHEN resolved_at IS NOT NULL THEN 'rules' END,
       opened_at + interval '2 seconds', summary, opened_at + interval '1 second',
       coalesce(resolved_at, acknowledged_at, opened_at + interval '2 seconds')
FROM timed
"""

TEAMS_SQL = """
INSERT INTO teams (team_id, council_id, name) VALUES
    ('benchc-ops', %(council)s, 'Bench operations'),
    ('benchc-care', %(council)s, 'Bench telecare');
INSERT INTO team_routes (team_id, resident_group) VALUES
    ('benchc-ops', NULL), ('benchc-care', '*');
INSERT INTO webhook_endpoints (endpoint_id, team_id, url, secret) VALUES
    ('benchc-ops-main', 'benchc-ops', 'https://hooks.example.org/benchc/ops', 'whsec_ZHVtbXk='),
    ('benchc-ops-pager', 'benchc-ops', 'https://pager.example.org/benchc', 'whsec_ZHVtbXk='),
    ('benchc-care-main', 'benchc-care', 'https://care.example.org/benchc', 'whsec_ZHVtbXk=')
"""

# An "opened" delivery per alert and a "resolved" one per resolved alert, to the team of the
# alert (street: operations, care: telecare); the operations pager also gets critical openings.
# One in 83 is dead after 8 attempts; one in 19 is delivered at the third attempt.
DELIVERIES_SQL = """
INSERT INTO webhook_deliveries (webhook_id, endpoint_id, team_id, outbox_id, alert_id, council_id,
                                event, body, state, attempts, next_attempt_at, give_up_at,
                                event_committed_at, created_at, delivered_at, last_status,
                                last_error)
SELECT 'msg_' || outbox_id || '_' || endpoint_id, endpoint_id, team_id, outbox_id, alert_id,
       %(council)s, event, '{"bench": true}', state, attempts, created + backoff,
       created + interval '1 day', committed, created,
       CASE WHEN state = 'delivered'
            THEN created + backoff + (60 + 400 * random()) * interval '1 millisecond' END,
       CASE state WHEN 'delivered' THEN 200 WHEN 'dead' THEN 503 END,
       CASE WHEN state = 'dead' THEN 'HTTP 503' END
FROM (
    SELECT e.*, p.endpoint_id, p.team_id, state, attempts,
           e.committed + interval '20 milliseconds' AS created,
           (2 ^ (attempts - 1) - 1) * interval '30 seconds' AS backoff
    FROM (
        SELECT a.alert_id, a.severity, a.resident_id IS NULL AS street, ev.event,
               ev.at AS committed, a.alert_id * 2 + ev.seq AS outbox_id
        FROM alerts a
        CROSS JOIN LATERAL (VALUES ('alert.opened', a.created_at, 0),
                                   ('alert.resolved', a.resolved_at + interval '1 second', 1))
            ev(event, at, seq)
        WHERE a.council_id = %(council)s AND ev.at IS NOT NULL
    ) e
    JOIN (VALUES ('benchc-ops-main', 'benchc-ops', true, false, 0),
                 ('benchc-ops-pager', 'benchc-ops', true, true, 1),
                 ('benchc-care-main', 'benchc-care', false, false, 2))
        p(endpoint_id, team_id, street, critical_only, k)
      ON p.street = e.street
     AND (NOT p.critical_only OR (e.severity = 'critical' AND e.event = 'alert.opened'))
    CROSS JOIN LATERAL (
        SELECT CASE WHEN mod(e.outbox_id + p.k, 83) = 0 THEN 'dead' ELSE 'delivered' END
                   AS state,
               CASE WHEN mod(e.outbox_id + p.k, 83) = 0 THEN 8
                    WHEN mod(e.outbox_id, 19) = 0 THEN 3 ELSE 1 END AS attempts
    ) s
) d
"""

# Every attempt of every delivery: refused (503) until the last one of a delivered delivery;
# a dead one's attempts alternate between refused and unanswered (timeout).
ATTEMPTS_SQL = """
INSERT INTO webhook_attempts (delivery_id, attempt, started_at, latency_ms, status, error, worker)
SELECT w.delivery_id, a, w.created_at + (2 ^ (a - 1) - 1) * interval '30 seconds',
       CASE WHEN w.state = 'dead' AND mod(a, 2) = 0 THEN 10000 ELSE 60 + 400 * random() END,
       CASE WHEN w.state = 'delivered' AND a = w.attempts THEN 200
            WHEN w.state = 'dead' AND mod(a, 2) = 0 THEN NULL ELSE 503 END,
       CASE WHEN w.state = 'dead' AND mod(a, 2) = 0 THEN 'timeout' END,
       'bench-dispatcher-' || mod(w.delivery_id, 2)
FROM webhook_deliveries w, generate_series(1, w.attempts) a
WHERE w.council_id = %(council)s
"""

READING_TABLES = ("bin_fill", "air_quality", "flood_level", "home_activity")

# first_seen, last_seen and last_reading_at as ingest would have left them.
DEVICES_SEEN_SQL = (
    "UPDATE devices d SET first_seen = r.first_time, last_seen = r.last_received,"
    " last_reading_at = r.last_time FROM ("
    + " UNION ALL ".join(
        f"SELECT device_id, min(time) AS first_time, max(time) AS last_time,"
        f" max(received_at) AS last_received FROM {t} WHERE council_id = %(council)s"
        " GROUP BY device_id"
        for t in READING_TABLES
    )
    + ") r WHERE d.council_id = %(council)s AND d.device_id = r.device_id"
)

STEPS: tuple[tuple[str, str], ...] = (
    ("devices", DEVICES_SQL),
    ("bin_fill", BIN_FILL_SQL),
    ("air_quality", AIR_QUALITY_SQL),
    ("flood_level", FLOOD_LEVEL_SQL),
    ("home_activity", HOME_ACTIVITY_SQL),
    ("devices seen", DEVICES_SEEN_SQL),
    ("alerts", ALERTS_SQL),
    ("teams", TEAMS_SQL),
    ("webhook_deliveries", DELIVERIES_SQL),
    ("webhook_attempts", ATTEMPTS_SQL),
)
COUNTED = (
    "councils",
    "devices",
    *READING_TABLES,
    "alerts",
    "teams",
    "team_routes",
    "webhook_endpoints",
    "webhook_deliveries",
    "webhook_attempts",
)


def generate(url: str, estate: Estate, days: int, now: datetime) -> Json:
    """Fill the database with the estate; returns rows per table and seconds per step."""
    params: Json = {
        "council": COUNCIL,
        "council_name": COUNCIL_NAME,
        "now": now,
        "days": days,
        "wards": WARDS,
        "sites": SITES,
        "bins": estate.bins,
        "air": estate.air,
        "gauges": estate.gauges,
        "residents": estate.residents,
        "sensors": list(SENSORS),
    }
    seconds: dict[str, float] = {}
    # One session: the steps share its temp tables. Nothing here needs to survive a crash.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        for label, text in STEPS:
            started = time.perf_counter()
            with conn.transaction():
                # One statement per execute: server-side binding takes no more.
                for statement in re.split(r";\s*$", text, flags=re.M):
                    if statement.strip():
                        conn.execute(statement.encode(), params)
            seconds[label] = round(time.perf_counter() - started, 2)
            print(f"  generated {label} in {seconds[label]:.1f} s", file=sys.stderr)
        rows = {
            t: int(_scalar(conn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))))
            for t in COUNTED
        }
    return {"rows": rows, "step_seconds": seconds}


def finish_storage(url: str, flavour: Flavour, now: datetime, days: int) -> Json:
    """Leave the tables as a running system would: on TimescaleDB the aggregates refreshed over
    the whole range and chunks past the late window compressed (otherwise the policies' jobs
    could do either in the middle of the measurements); then VACUUM (ANALYZE), which sets the
    visibility map as autovacuum would have (index-only scans) and keeps autovacuum from
    starting on the fresh rows during the measurements."""
    done: Json = {}
    with psycopg.connect(url, autocommit=True) as conn:
        if flavour is Flavour.TIMESCALEDB:
            start = now - timedelta(days=days + 1)
            end = now.replace(minute=0, second=0, microsecond=0)
            refreshed = []
            for table in READING_TABLES:
                started = time.perf_counter()
                # CALL cannot run in a transaction block: autocommit.
                conn.execute(
                    sql.SQL("CALL refresh_continuous_aggregate({}, {}, {})").format(
                        sql.Literal(f"{table}_hourly"), sql.Literal(start), sql.Literal(end)
                    )
                )
                refreshed.append(
                    {
                        "aggregate": f"{table}_hourly",
                        "window": [start.isoformat(), end.isoformat()],
                        "seconds": round(time.perf_counter() - started, 2),
                    }
                )
            done["refreshed_continuous_aggregates"] = refreshed
            started = time.perf_counter()
            compressed = 0
            for table in READING_TABLES:
                row = conn.execute(
                    "SELECT count(compress_chunk(c, if_not_compressed => true))"
                    " FROM show_chunks(%s::regclass, older_than => %s::interval) c",
                    (table, COMPRESS_AFTER),
                ).fetchone()
                compressed += int(row[0]) if row else 0
            done["compressed_chunks"] = compressed
            done["compress_seconds"] = round(time.perf_counter() - started, 2)
        else:
            # The rules worker would have materialised the roll-ups as the readings came; the
            # first refresh does the whole history at once, a day per transaction.
            started = time.perf_counter()
            results = refresh_sync(url, wait=True)
            done["rollups_first_refresh"] = {
                "seconds": round(time.perf_counter() - started, 2),
                "rows": {r.relation: r.buckets for r in results},
                "steps": {r.relation: r.steps for r in results},
            }
        started = time.perf_counter()
        conn.execute("VACUUM (ANALYZE)")
        done["vacuum_analyze_seconds"] = round(time.perf_counter() - started, 2)
    if flavour is Flavour.POSTGRES:
        done["rollups_refresh"] = refresh_costs(url)
    return done


ROLLUP_RUNS = 5
LATE_DEVICES = 200


def refresh_costs(url: str) -> Json:
    """What the rules worker's roll-up refresh costs over this estate, all four roll-ups
    together, median of ``ROLLUP_RUNS`` runs each:

    * ``idle``: nothing changed since the last refresh (most refreshes: every 2 minutes);
    * ``hour``: a new hour to materialise (once an hour): the watermark is set back an hour
      and its rows removed, so the refresh aggregates that hour of every device again;
    * ``late``: ``LATE_DEVICES`` devices each sent readings of a day ago (invalidation log
      entries spanning that day, as the triggers write them), recomputed per device."""
    out: Json = {"runs": ROLLUP_RUNS, "late_devices": LATE_DEVICES}
    with psycopg.connect(url, autocommit=True) as conn:

        def timed(prepare: str | None) -> float:
            runs = []
            for _ in range(ROLLUP_RUNS):
                if prepare:
                    with conn.transaction():
                        for statement in prepare.split(";"):
                            if statement.strip():
                                conn.execute(statement.encode())
                started = time.perf_counter()
                refresh_sync(url, wait=True)
                runs.append((time.perf_counter() - started) * 1000)
            return round(sorted(runs)[len(runs) // 2], 1)

        set_back = ";".join(
            f"DELETE FROM {r.table} WHERE bucket >= (SELECT watermark - interval '1 hour'"
            f" FROM rollup_watermarks WHERE relation = '{r.relation}');"
            f"UPDATE rollup_watermarks SET watermark = watermark - interval '1 hour'"
            f" WHERE relation = '{r.relation}'"
            for r in ROLLUPS
        )
        late = ";".join(
            f"INSERT INTO rollup_invalidations (relation, council_id, device_id, lowest, highest)"
            f" SELECT '{r.relation}', council_id, device_id, now() - interval '2 days',"
            f" now() - interval '1 day' FROM devices WHERE kind = '{r.source}'"
            f" ORDER BY device_id LIMIT {LATE_DEVICES // len(ROLLUPS)}"
            for r in ROLLUPS
        )
        out["idle_ms"] = timed(None)
        out["hour_ms"] = timed(set_back)
        out["late_ms"] = timed(late)
    return out


def _scalar(conn: Conn, query: sql.Composed | sql.SQL | bytes) -> Any:
    row = conn.execute(query).fetchone()
    return row[0] if row else None


# -- the dashboards --------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    path: Path
    board: Json
    panel: Json
    target: Json

    @property
    def label(self) -> str:
        return f"{self.panel['title']} [{self.panel['type']} {self.target['refId']}]"


def sql_targets(json_dir: Path = JSON_DIR) -> list[Target]:
    """Every PostgreSQL target of every committed dashboard (Prometheus ones are left out)."""
    found = []
    for path in dashboard_files(json_dir):
        board = load(path)
        for panel, target in targets(board):
            if datasource_uid(target, panel) == POSTGRES_UID:
                found.append(Target(path, board, panel, target))
    return found


def short(interval: timedelta) -> str:
    """A duration as Grafana writes it (1h, 15m), in its largest whole unit."""
    seconds = int(interval.total_seconds())
    unit, size = next(
        (u, n) for u, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)) if seconds % n == 0
    )
    return f"{seconds // size}{unit}"


def timed_runs(conn: Conn, query: bytes, repeat: int) -> tuple[list[float], int]:
    """One warm-up run, then ``repeat`` timed ones (execute and fetch every row), in ms."""
    times: list[float] = []
    rows = 0
    for i in range(repeat + 1):
        with conn.cursor() as cur:
            started = time.perf_counter()
            cur.execute(query)
            rows = len(cur.fetchall())
            elapsed = (time.perf_counter() - started) * 1000
        if i:
            times.append(elapsed)
    return times, rows


def nearest_rank(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def summary(times: Sequence[float]) -> Json:
    return {
        "p50_ms": round(nearest_rank(times, 0.5), 2),
        "p95_ms": round(nearest_rank(times, 0.95), 2),
        "max_ms": round(max(times), 2),
        "times_ms": [round(t, 2) for t in times],
    }


def _node_label(node: Json) -> str:
    label = str(node.get("Node Type", "?"))
    if node.get("Strategy") and label == "Aggregate":
        label = f"{node['Strategy']} {label}"
    for key, how in (
        ("Relation Name", " on "),
        ("CTE Name", " on CTE "),
        ("Function Name", " on "),
        ("Index Name", " using "),
    ):
        if key in node:
            label += f"{how}{node[key]}"
    keys = node.get("Sort Key") or node.get("Group Key")
    if keys:
        label += f" by {', '.join(map(str, keys))}"[:100]
    return label


def _is_cte(node: Json) -> bool:
    return str(node.get("Subplan Name", "")).startswith("CTE ")


def hot_nodes(plan: Json, top: int = 6) -> list[Json]:
    """The plan nodes with the most time of their own: their time less their children's, in
    wall-clock terms (below a Gather, a node's loops are shared by the processes that ran it).
    A CTE's work is counted in the CTE, not in the scans that read it. Approximate, as every
    reading of EXPLAIN ANALYZE times is."""

    def inclusive(node: Json, processes: int) -> float:
        loops = float(node.get("Actual Loops", 1))
        return float(node.get("Actual Total Time", 0.0)) * loops / processes

    def inner_processes(node: Json, processes: int) -> int:
        if node.get("Node Type") in ("Gather", "Gather Merge"):
            return int(node.get("Workers Launched", 0)) + 1  # the leader takes part too
        return processes

    cte_ms: dict[str, float] = {}

    def find_ctes(node: Json, processes: int) -> None:
        if _is_cte(node):
            cte_ms[str(node["Subplan Name"]).removeprefix("CTE ")] = inclusive(node, processes)
        for child in node.get("Plans", []):
            find_ctes(child, inner_processes(node, processes))

    nodes: list[Json] = []

    def walk(node: Json, processes: int) -> None:
        total = inclusive(node, processes)
        inner = inner_processes(node, processes)
        own = total - sum(
            inclusive(child, inner) for child in node.get("Plans", []) if not _is_cte(child)
        )
        if node.get("Node Type") == "CTE Scan":
            own -= cte_ms.get(str(node.get("CTE Name")), 0.0)
        nodes.append(
            {
                "node": _node_label(node),
                "self_ms": round(max(0.0, own), 2),
                "total_ms": round(total, 2),
                "rows": node.get("Actual Rows"),
                "loops": node.get("Actual Loops"),
                "shared_hit_blocks": node.get("Shared Hit Blocks"),
                "shared_read_blocks": node.get("Shared Read Blocks"),
            }
        )
        for child in node.get("Plans", []):
            walk(child, inner)

    find_ctes(plan["Plan"], 1)
    walk(plan["Plan"], 1)
    return sorted(nodes, key=lambda n: -float(n["self_ms"]))[:top]


def explain(conn: Conn, query: bytes) -> Json:
    with conn.cursor() as cur:
        cur.execute(b"EXPLAIN (ANALYZE, BUFFERS) " + query)
        text = [str(r[0]) for r in cur.fetchall()]
        cur.execute(b"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query)
        row = cur.fetchone()
    plan: Json = row[0][0] if row else {}
    jit = plan.get("JIT", {}).get("Timing", {}).get("Total")
    return {
        "planning_ms": plan.get("Planning Time"),
        "execution_ms": plan.get("Execution Time"),
        "jit_ms": jit,
        "hot_nodes": hot_nodes(plan) if plan else [],
        "plan": text,
    }


# -- the run ---------------------------------------------------------------------------------


class DashboardsBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.url: str | None = None
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.problems: list[str] = []

    def cleanup(self) -> None:
        if self.url is None:
            return
        if self.args.keep:
            print(f"database kept: {self.url}", file=sys.stderr)
            return
        try:
            drop_database(self.url, self.args.admin_url)
        except psycopg.Error as exc:
            print(f"could not drop the benchmark database: {exc}", file=sys.stderr)

    def run(self, command: str) -> int:
        args = self.args
        estate = Estate.of(args.devices)
        span_length = duration(args.range)
        self.url = create_database("pwbench_dash", args.admin_url)
        dbname = str(conninfo_to_dict(self.url)["dbname"])
        flavour = migrate(self.url, args.timescaledb).flavour
        timescaledb = flavour is Flavour.TIMESCALEDB
        print(f"database {dbname} ({flavour.value}); generating {estate}", file=sys.stderr)

        now = datetime.now(UTC).replace(microsecond=0)
        started = time.perf_counter()
        generated = generate(self.url, estate, args.days, now)
        generated["storage"] = finish_storage(self.url, flavour, now, args.days)
        generated["seconds"] = round(time.perf_counter() - started, 1)
        generated["estate"] = {
            "devices": estate.devices,
            "bins": estate.bins,
            "air_quality": estate.air,
            "flood_gauges": estate.gauges,
            "residents": estate.residents,
            "home_sensors": estate.residents * len(SENSORS),
            "wards": WARDS,
            "sites": SITES,
            "days": args.days,
            "readings_end": now.isoformat(),
        }
        server = self.server_info()

        grafana = grafana_login_url(self.url, args.admin_url)
        # No automatic prepared statements: Grafana sends every refresh as a new query, parsed
        # and planned each time.
        with psycopg.connect(grafana, autocommit=True, prepare_threshold=None) as conn:
            conn.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'".encode())
            references = self.references(conn)
            end = datetime.now(UTC)
            span = TimeRange(end - span_length, end)
            auto = auto_interval(span_length)
            panels, variables = self.measure(conn, span, auto, timescaledb)

        result = {
            "benchmark": "dashboards",
            "command": command,
            "started_at": self.stamp,
            "finished_at": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
            "target_ms": TARGET_MS,
            "flavour": flavour.value,
            "timescaledb_option": timescaledb,
            "database": dbname,
            "kept": bool(args.keep),
            "council": COUNCIL,
            "range": args.range,
            "time_range": [span.start.isoformat(), span.end.isoformat()],
            "auto_interval": short(auto),
            "repeat": args.repeat,
            "host": host_info(),
            "server": server,
            "generation": generated,
            "references": references,
            "variables": variables,
            "panels": panels,
            "problems": self.problems,
        }
        out = Path(args.output) if args.output else RESULTS / f"dashboards-{self.stamp}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        self.report(result)
        print(f"\nresults: {out}")
        return 1 if self.problems else 0

    def server_info(self) -> Json:
        assert self.url is not None
        names = (
            "shared_buffers",
            "work_mem",
            "effective_cache_size",
            "random_page_cost",
            "jit",
            "max_parallel_workers_per_gather",
        )
        with psycopg.connect(self.url, autocommit=True) as conn:
            return {
                "version": str(_scalar(conn, b"SELECT version()")),
                "settings": {
                    n: str(_scalar(conn, sql.SQL("SHOW {}").format(sql.Identifier(n))))
                    for n in names
                },
                "database_size": str(
                    _scalar(conn, b"SELECT pg_size_pretty(pg_database_size(current_database()))")
                ),
            }

    def references(self, conn: Conn) -> Json:
        out: Json = {}
        for name, query in (
            ("select_1", b"SELECT 1"),
            ("count_bin_fill", b"SELECT count(*) FROM bin_fill"),
            # What a chart's rows alone cost this client: 50,000 rows of (time, series, value),
            # as many as an air-quality chart returns, made by the server from nothing.
            ("fetch_50k_rows", FETCH_50K),
        ):
            times, _ = timed_runs(conn, query, self.args.repeat)
            out[name] = {"sql": query.decode(), **summary(times)}
            print(f"  reference {name}: p50 {out[name]['p50_ms']} ms", file=sys.stderr)
        return out

    def measure(
        self, conn: Conn, span: TimeRange, auto: timedelta, timescaledb: bool
    ) -> tuple[list[Json], list[Json]]:
        panels: list[Json] = []
        variables: list[Json] = []
        filled: dict[Path, list[Variable]] = {}
        for t in sql_targets():
            if t.path not in filled:
                try:
                    done = fill_variables(
                        conn, t.board, span, auto, council=COUNCIL, timescaledb=timescaledb
                    )
                except ValueError as exc:
                    raise BenchError(str(exc)) from exc
                filled[t.path] = [f.variable for f in done]
                timings = [
                    {"name": f.variable.name, "options": f.options, "ms": round(f.ms, 2)}
                    for f in done
                ]
                variables.append({"dashboard": t.board["title"], "variables": timings})
            found = filled[t.path]
            interval = panel_interval(t.panel, auto)
            variants: list[tuple[str, list[Variable], Json]] = [("all", found, {})]
            repeat_var = t.panel.get("repeat")
            if repeat_var:
                # Every value in one query is not what Grafana runs: it is timed as a reference
                # (how the query scales), not counted as a panel.
                variants[0] = ("all", found, {"reference": True, "repeat_var": repeat_var})
                # Grafana draws one copy of the panel per selected value, each querying that
                # value alone; time one copy too.
                options = next(v for v in found if v.name == repeat_var).values
                one = [
                    Variable(v.name, options[:1], multi=True) if v.name == repeat_var else v
                    for v in found
                ]
                variants.append(
                    (
                        "one repeat",
                        one,
                        {
                            "repeat_var": repeat_var,
                            "repeat_value": options[0],
                            "repeats_on_load": len(options),
                        },
                    )
                )
            for variant, variables_used, extra in variants:
                panels.append(
                    self.measure_one(
                        conn, t, span, interval, timescaledb, variables_used, variant, extra
                    )
                )
        return panels, variables

    def measure_one(
        self,
        conn: Conn,
        t: Target,
        span: TimeRange,
        interval: timedelta,
        timescaledb: bool,
        variables: list[Variable],
        variant: str,
        extra: Json,
    ) -> Json:
        query = expand(
            t.target["rawSql"], span, interval, timescaledb=timescaledb, variables=variables
        ).encode()
        entry: Json = {
            "dashboard": t.board["title"],
            "file": str(t.path.relative_to(JSON_DIR)),
            "panel": t.panel["title"],
            "panel_id": t.panel["id"],
            "panel_type": t.panel["type"],
            "ref_id": t.target["refId"],
            "format": t.target["format"],
            "variant": variant,
            **extra,
            "interval": short(interval),
            "sql_bytes": len(query),
        }
        name = f"{t.board['title']} / {t.label}" + (f" ({variant})" if variant != "all" else "")
        if extra.get("reference"):
            name += " (every value in one query: a reference, not a panel)"
        try:
            times, rows = timed_runs(conn, query, self.args.repeat)
        except psycopg.Error as exc:
            self.problems.append(f"{name}: {exc}")
            print(f"PROBLEM: {name}: {exc}", file=sys.stderr)
            return {**entry, "error": str(exc), "rows": 0}
        entry.update(rows=rows, **summary(times))
        if not extra.get("reference"):
            entry["within_target"] = entry["p95_ms"] <= TARGET_MS
        if rows == 0:
            self.problems.append(f"{name}: no rows")
        print(
            f"  {name}: p50 {entry['p50_ms']} ms, p95 {entry['p95_ms']} ms, {rows} rows",
            file=sys.stderr,
        )
        if self.args.explain and entry["p95_ms"] > self.args.explain_over:
            entry["explain"] = explain(conn, query)
        return entry

    def report(self, result: Json) -> None:
        gen = result["generation"]
        host = result["host"]
        print(f"\nflavour: {result['flavour']}  ({result['server']['version']})")
        print(
            f"machine: {host['nproc']} CPUs, {host['cpu_model']}, {host['ram_gib']} GiB, "
            f"load at start {host['loadavg_at_start']}, commit {host['git_commit']}"
        )
        print(f"server settings: {result['server']['settings']}")
        print(
            f"\ngenerated in {gen['seconds']} s ({result['server']['database_size']}): "
            + ", ".join(f"{t} {n:,}" for t, n in gen["rows"].items())
        )
        print("  steps (s): " + ", ".join(f"{k} {v}" for k, v in gen["step_seconds"].items()))
        storage = gen["storage"]
        if "refreshed_continuous_aggregates" in storage:
            print(
                "  TimescaleDB: refreshed "
                + ", ".join(r["aggregate"] for r in storage["refreshed_continuous_aggregates"])
                + f" over the whole range; compressed {storage['compressed_chunks']} chunks"
            )
        if "rollups_first_refresh" in storage:
            first = storage["rollups_first_refresh"]
            print(
                f"  roll-ups materialised in {first['seconds']} s: "
                + ", ".join(f"{k} {v:,} rows" for k, v in first["rows"].items())
            )
        print(f"  VACUUM (ANALYZE): {storage['vacuum_analyze_seconds']} s")
        if "rollups_refresh" in storage:
            cost = storage["rollups_refresh"]
            print(
                f"  roll-up refresh, all four (median of {cost['runs']}): nothing new "
                f"{cost['idle_ms']} ms; a new hour {cost['hour_ms']} ms; late readings of "
                f"{cost['late_devices']} devices over a day {cost['late_ms']} ms"
            )
        refs = result["references"]
        print(
            f"\nreferences: SELECT 1 p50 {refs['select_1']['p50_ms']} ms; "
            f"SELECT count(*) FROM bin_fill ({gen['rows']['bin_fill']:,} rows) "
            f"p50 {refs['count_bin_fill']['p50_ms']} ms, p95 {refs['count_bin_fill']['p95_ms']} ms"
        )
        if "fetch_50k_rows" in refs:
            fetch = refs["fetch_50k_rows"]
            print(
                f"  fetching 50,000 generated rows (time, text, float8): p50 {fetch['p50_ms']} ms,"
                f" p95 {fetch['p95_ms']} ms"
            )
        print(
            f"\nrange {result['range']}, auto interval {result['auto_interval']}, "
            f"{result['repeat']} runs each, target p95 ≤ {TARGET_MS:g} ms"
        )
        header = f"{'dashboard':<22} {'panel':<58} {'p50 ms':>9} {'p95 ms':>9} {'rows':>8}  ok"
        print(header)
        print("-" * len(header))
        timed = [p for p in result["panels"] if "p95_ms" in p]
        measured = [p for p in timed if not p.get("reference")]
        for p in sorted(measured, key=lambda p: -float(p["p95_ms"])):
            label = f"{p['panel']} [{p['panel_type']} {p['ref_id']}]"
            if p["variant"] != "all":
                label += f" (1 of {p['repeats_on_load']})"
            print(
                f"{p['dashboard'][:22]:<22} {label[:58]:<58} {p['p50_ms']:>9.1f} "
                f"{p['p95_ms']:>9.1f} {p['rows']:>8}  {'yes' if p['within_target'] else 'NO'}"
            )
        over = [p for p in measured if not p["within_target"]]
        print(f"\n{len(measured) - len(over)} of {len(measured)} within {TARGET_MS:g} ms p95")
        for p in timed:
            if p.get("reference"):
                print(
                    f"reference, not a panel: {p['dashboard']} / {p['panel']} [{p['ref_id']}] "
                    f"with every {p['repeat_var']} in one query (Grafana runs one per copy): "
                    f"p50 {p['p50_ms']:.1f} ms, p95 {p['p95_ms']:.1f} ms, {p['rows']} rows"
                )
        for p in sorted(timed, key=lambda p: -float(p["p95_ms"])):
            if "explain" not in p:
                continue
            e = p["explain"]
            print(
                f"\n== {p['dashboard']} / {p['panel']} [{p['ref_id']}] ({p['variant']}): "
                f"planning {e['planning_ms']} ms, execution {e['execution_ms']} ms, "
                f"JIT {e['jit_ms']} ms"
            )
            for n in e["hot_nodes"]:
                print(f"  self {n['self_ms']:>9.1f} ms  rows {n['rows']}x{n['loops']}  {n['node']}")
            for line in e["plan"][:EXPLAIN_LINES]:
                # IN lists of every site and device make lines of kilobytes: the file has them.
                print(f"  | {line[:PRINT_WIDTH]}{'…' if len(line) > PRINT_WIDTH else ''}")
        for problem in self.problems:
            print(f"PROBLEM: {problem}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.dashboards",
        description="Time every PostgreSQL panel of the dashboards, as Grafana's role, over a "
        "synthetic estate.",
    )
    p.add_argument("--devices", type=int, default=2000, help="devices in the estate (2000)")
    p.add_argument("--days", type=int, default=30, help="days of readings up to now (30)")
    p.add_argument("--repeat", type=int, default=20, help="timed runs per panel (20)")
    p.add_argument("--range", default="7d", help="dashboard time range, like 7d, 24h or 90m (7d)")
    p.add_argument(
        "--admin-url",
        default=None,
        help="server to use (default: the test server, tests/support/postgres.py)",
    )
    p.add_argument("--timescaledb", choices=("auto", "on", "off"), default="auto")
    p.add_argument(
        "--explain",
        action="store_true",
        help="EXPLAIN (ANALYZE, BUFFERS) the panels over --explain-over p95 into the results",
    )
    p.add_argument(
        "--explain-over",
        type=float,
        default=TARGET_MS,
        metavar="MS",
        help=f"p95 above which --explain explains a panel (default {TARGET_MS:g})",
    )
    p.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    p.add_argument(
        "--output", default=None, help="results file (default bench/results/dashboards-<UTC>.json)"
    )
    args = p.parse_args(argv)
    args.admin_url = args.admin_url or server_url()  # resolved here, not on import
    if args.days < 1 or args.repeat < 1:
        p.error("--days and --repeat must be at least 1")
    try:
        Estate.of(args.devices)
        duration(args.range)
    except (BenchError, ValueError) as exc:
        p.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench("bench.dashboards", DashboardsBench(parse_args(argv)), argv)


if __name__ == "__main__":
    sys.exit(main())
