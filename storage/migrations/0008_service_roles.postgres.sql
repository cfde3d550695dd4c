-- 0008 on plain PostgreSQL: retention of the readings and the materialised roll-ups, with the
-- periods TimescaleDB's policies have (0001_schema.timescaledb.sql).
INSERT INTO retention_policies (data_class, keep) VALUES
    ('bin_fill', interval '3 years'),
    ('air_quality', interval '3 years'),
    ('flood_level', interval '3 years'),
    ('home_activity', interval '90 days'),
    ('bin_fill_hourly', interval '10 years'),
    ('air_quality_hourly', interval '10 years'),
    ('flood_level_hourly', interval '10 years'),
    ('home_activity_hourly', interval '400 days');

-- The roll-ups' statement trigger (0006), now run as its owner: the writers (ingest, the rules
-- worker, an erasure) need no privilege on the invalidation log or the watermarks. And a
-- retention delete (placewatch_retention_purge, which sets placewatch.retention for its
-- statement) is not logged: it deletes only hours before the watermark, whose materialised rows
-- must stay as they were; recomputing them from the raw rows left would empty them.
CREATE OR REPLACE FUNCTION rollup_log_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    threshold timestamptz;
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('placewatch.retention', true) = 'on' THEN
        RETURN NULL;
    END IF;
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
