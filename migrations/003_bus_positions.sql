-- Where a worker got to on the bus, stored in the same transaction as the
-- rows it wrote, so a crash never stores an event twice or drops one.
CREATE TABLE IF NOT EXISTS bus_positions (
    stream VARCHAR NOT NULL,
    part INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (stream, part)
);
