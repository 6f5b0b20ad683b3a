-- The rollups of days not finished yet (today; yesterday until the hourly job has built it), kept a few
-- seconds behind the store by the today_rollups job (collector/rollups_today.py): the same rows as
-- rollup_days, over the events stored below a row id; the reader adds what was stored since
-- (reports/rollup.py, reports/METRICS.md "Today so far").
CREATE TABLE IF NOT EXISTS rollup_partial_days AS SELECT * FROM rollup_days WITH NO DATA;
CREATE INDEX IF NOT EXISTS rollup_partial_days_site_day ON rollup_partial_days (site, day);

CREATE TABLE IF NOT EXISTS rollup_partial_status (
    site VARCHAR NOT NULL,
    day DATE NOT NULL,
    tz VARCHAR NOT NULL,
    below BIGINT NOT NULL,             -- the rows hold the events stored below this row id of events
    checked BIGINT NOT NULL,           -- events of the window the rows read (the day, two days before) below it
    events BIGINT NOT NULL,
    far_ids BIGINT NOT NULL,
    entry_split BIGINT NOT NULL,
    built_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    version INTEGER NOT NULL,
    PRIMARY KEY (site, day)
);
