-- Exact daily rollups for the stats API's unfiltered dashboard cards (collector/rollups.py builds them,
-- reports/rollup.py reads them; reports/METRICS.md "Daily rollups" has the algebra).
-- One row per (site, local day in the site's zone, dimension, value); dim '' = totals, value NULL = no value.
-- Columns marked "next" only count when the previous day is in the queried range; "cont" only on the
-- range's first day (visits that began the day before, clipped to the range).
CREATE TABLE IF NOT EXISTS rollup_days (
    site VARCHAR NOT NULL,
    day DATE NOT NULL,
    dim VARCHAR NOT NULL,
    value VARCHAR,
    visitors BIGINT NOT NULL,          -- distinct ids (events of the day, or visits begun that day for visit:*)
    carried BIGINT NOT NULL,           -- next: of those, ids that had the same value the day before
    cont_visitors BIGINT NOT NULL,     -- cont: distinct ids of visits begun the day before (visit:*)
    cont_overlap BIGINT NOT NULL,      -- cont: of those, ids also counted in visitors
    visits BIGINT NOT NULL,            -- visits begun that day (totals, visit:*) / sessions with the value (event:*)
    visits_carried BIGINT NOT NULL,    -- next: event:* sessions that had the value the day before
    cont_visits BIGINT NOT NULL,       -- cont: visits begun the day before
    pageviews BIGINT NOT NULL,
    events BIGINT NOT NULL,
    engaged BIGINT NOT NULL,           -- visits begun that day with >= 2 interactions that day
    engaged_next BIGINT NOT NULL,      -- next: visits begun the day before that reach 2 interactions this day
    cont_engaged BIGINT NOT NULL,      -- cont: visits begun the day before with >= 2 interactions this day
    duration_us BIGINT NOT NULL,       -- visits begun that day: last - first event of the day
    duration_next_us BIGINT NOT NULL,  -- next: visits begun the day before: last event today - last yesterday
    cont_duration_us BIGINT NOT NULL   -- cont: visits begun the day before: last - first event today
);
CREATE INDEX IF NOT EXISTS rollup_days_site_day ON rollup_days (site, day);

-- Which site-days are rolled up, under which zone, and the checks the reader needs.
CREATE TABLE IF NOT EXISTS rollup_status (
    site VARCHAR NOT NULL,
    day DATE NOT NULL,
    tz VARCHAR NOT NULL,
    events BIGINT NOT NULL,            -- events of the day when built
    far_ids BIGINT NOT NULL,           -- ids or visits also seen two days before (the rollups assume none)
    entry_split BIGINT NOT NULL,       -- visits begun the day before without a pageview then, with one today
    built_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (site, day)
);
