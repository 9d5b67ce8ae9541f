-- Where an application's events are POSTed (NULL: nowhere; the server-sent-events stream
-- still carries them). A call may name its own URL instead.
ALTER TABLE apps ADD COLUMN webhook_url TEXT;

-- One event on its way to one URL. `body` is the envelope exactly as POSTed: the signature is
-- computed over these bytes at each attempt, so a retry sends the same body.
CREATE TABLE webhook_deliveries (
    id                 TEXT PRIMARY KEY,   -- "dlv_" + ULID: sorts by creation time
    app_id             TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    event_id           TEXT NOT NULL,      -- "evt_" + ULID, the envelope's id
    event_type         TEXT NOT NULL,
    call_id            TEXT,
    url                TEXT NOT NULL,
    body               TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempt_count      INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER,            -- pending only
    created_at_ms      INTEGER NOT NULL,
    updated_at_ms      INTEGER NOT NULL
) STRICT;

CREATE INDEX webhook_deliveries_by_app ON webhook_deliveries (app_id, id);
CREATE INDEX webhook_deliveries_by_call ON webhook_deliveries (app_id, call_id, id);
-- What the dispatcher reloads at start: small, since finished deliveries leave it.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (id) WHERE status = 'pending';

-- Every attempt of a delivery, in order.
CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    n           INTEGER NOT NULL,          -- 1, 2, …
    at_ms       INTEGER NOT NULL,          -- when the request started
    duration_ms INTEGER NOT NULL,
    http_status INTEGER,                   -- the answer's status, when there was one
    error       TEXT,                      -- why there was none (connect refused, timeout…)
    PRIMARY KEY (delivery_id, n)
) STRICT;
