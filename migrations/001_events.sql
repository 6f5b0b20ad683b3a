-- The event table. Its columns follow collector/events.py FIELDS, in order;
-- tests/test_migrations.py fails if the two disagree.
CREATE TABLE IF NOT EXISTS events (
    event_id UUID NOT NULL,
    site VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    "timestamp" TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    via VARCHAR NOT NULL,
    hostname VARCHAR,
    pathname VARCHAR,
    query VARCHAR,
    referrer VARCHAR,
    referrer_host VARCHAR,
    source VARCHAR,
    channel VARCHAR,
    utm_source VARCHAR,
    utm_medium VARCHAR,
    utm_campaign VARCHAR,
    utm_term VARCHAR,
    utm_content VARCHAR,
    click_id VARCHAR,
    country VARCHAR,
    region VARCHAR,
    city VARCHAR,
    browser VARCHAR,
    browser_version VARCHAR,
    os VARCHAR,
    os_version VARCHAR,
    device VARCHAR,
    visitor_id UBIGINT,
    session_id UBIGINT,
    interactive BOOLEAN,
    props MAP(VARCHAR, VARCHAR),
    revenue_amount DOUBLE,
    revenue_currency VARCHAR,
    scroll_depth UTINYINT,
    engagement_ms UINTEGER
);

-- Hits the enhancers dropped, counted per site, day (UTC) and reason, so the
-- dashboard can show what was filtered and why. Append-only (one row per group
-- commit and key; an upsert costs more than the commit it rides on): read it
-- with sum(n) ... GROUP BY site, day, reason.
CREATE TABLE IF NOT EXISTS drops (
    site VARCHAR NOT NULL,
    day DATE NOT NULL,
    reason VARCHAR NOT NULL,
    n UBIGINT NOT NULL
);
