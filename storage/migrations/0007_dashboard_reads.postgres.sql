-- 0007 on plain PostgreSQL: the real-time part of home_activity_hourly (0006: the raw readings
-- from the watermark on, normally the current hour) had no index to find them by time alone:
-- home_activity's indexes lead with device or resident, so every query of the view over several
-- residents read the whole table (85 ms over 30 days x 300 home sensors). A BRIN index on time
-- finds the last pages instead: readings arrive in about time order, so each range of 32 pages
-- spans a short time. It is small (tens of kB per million rows) and cheap to keep: an insert
-- into a page range already summarised widens the summary only if its time falls outside it,
-- and ranges filled since the last VACUUM are not summarised at all (a scan reads them whole,
-- which is what the recent part wants). The other reading tables have (council_id, time).
CREATE INDEX home_activity_time_brin ON home_activity USING brin (time)
    WITH (pages_per_range = 32);

