-- Visit rollups in per-event form (collector/enhancers/put_session.py sets them at ingest), so the
-- stats API counts visits, bounces and visit durations without grouping events by session_id.
-- Appended after engagement_ms, as in collector/events.py FIELDS; tests/test_migrations.py checks.
ALTER TABLE events ADD COLUMN visit_seq UINTEGER;
ALTER TABLE events ADD COLUMN interaction_seq UINTEGER;
ALTER TABLE events ADD COLUMN duration_delta UINTEGER;

-- Backfill rows stored before this migration, as put_session would have set them had it seen each
-- session's events in timestamp order (ties in storage order).
UPDATE events SET visit_seq = b.visit_seq, interaction_seq = b.interaction_seq, duration_delta = b.duration_delta
FROM (
    SELECT rid,
           row_number() OVER w AS visit_seq,
           CASE WHEN counted THEN sum(counted::INTEGER) OVER w END AS interaction_seq,
           coalesce(epoch_us("timestamp") - epoch_us(lag("timestamp") OVER w), 0) AS duration_delta
    FROM (SELECT rowid AS rid, session_id, "timestamp", interactive AND name <> 'engagement' AS counted
          FROM events WHERE session_id IS NOT NULL)
    WINDOW w AS (PARTITION BY session_id ORDER BY "timestamp", rid ROWS UNBOUNDED PRECEDING)
) b
WHERE events.rowid = b.rid;
