-- Daily random salts for visitor ids. Only today's and yesterday's exist;
-- the rotation job deletes older ones so old ids cannot be recomputed.
CREATE TABLE IF NOT EXISTS salts (
    day DATE PRIMARY KEY,
    salt BLOB NOT NULL
);
