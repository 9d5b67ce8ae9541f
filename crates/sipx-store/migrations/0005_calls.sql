-- Calls, dialled out through the API or routed in, with their state history. A call that has
-- ended (ended_at_ms set) is its own call detail record.
CREATE TABLE calls (
    id             TEXT PRIMARY KEY,        -- "call_" + ULID: sorts by creation time
    app_id         TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    direction      TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    from_uri       TEXT,
    to_uri         TEXT NOT NULL,
    route          TEXT,                    -- "trunk:<id>", "sip_account:<id>", "rule:<id>"
    room           TEXT,
    identity       TEXT,                    -- the phone's participant identity in the room
    sip_call_id    TEXT,
    state          TEXT NOT NULL,
    history        TEXT NOT NULL,           -- JSON array of {state, at, code, reason, cause}
    codec          TEXT,
    stats          TEXT,                    -- JSON media statistics, last known
    end_code       INTEGER,
    end_reason     TEXT,
    end_cause      TEXT,
    webhook_url    TEXT,
    created_at_ms  INTEGER NOT NULL,
    answered_at_ms INTEGER,
    ended_at_ms    INTEGER,
    updated_at_ms  INTEGER NOT NULL
) STRICT;

CREATE INDEX calls_by_app ON calls (app_id, id);
-- Live calls, for the cleanup after an unclean stop and for "active" listings.
CREATE INDEX calls_live ON calls (app_id, id) WHERE ended_at_ms IS NULL;

-- How calls dialled out through an account's registered device address it: 'number' puts the
-- dialled number in the Request-URI's user part (what SIM gateways read), 'contact' sends to
-- the registered contact unchanged with the number in To (RFC 3261 retargeting, for phones).
ALTER TABLE sip_accounts ADD COLUMN dial_request_uri TEXT NOT NULL DEFAULT 'number'
    CHECK (dial_request_uri IN ('number', 'contact'));
