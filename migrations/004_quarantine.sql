-- Events that arrived but could not be stored as they were: props that fail the
-- site's schema, webhook deliveries the mapping could not read. Kept, not lost,
-- so they can be replayed (`strana quarantine replay`) after the schema or the
-- mapping is fixed. `id` is stable (the event id the item becomes, or one made
-- from the hook's delivery id), so a resent item is kept once and a replay
-- stores it once; `replayed_at` is set in the same transaction as the rows.
-- `payload` is the event body only (JSON), without the page URL, the referrer,
-- the visitor's address, user agent or user key; `context` holds what the edge
-- derived from those (the anonymous stored fields), or a hook's mapped headers.
CREATE TABLE IF NOT EXISTS quarantine (
    id UUID PRIMARY KEY,
    site VARCHAR NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    source VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    detail VARCHAR NOT NULL,
    payload VARCHAR NOT NULL,
    context VARCHAR,
    replayed_at TIMESTAMPTZ
);
