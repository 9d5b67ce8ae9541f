-- Inbound routing rules: which room (or webhook, or refusal) a call arriving through a trunk or
-- a registered device goes to. Lowest priority first; ties by id (creation order).
CREATE TABLE routing_rules (
    id              TEXT PRIMARY KEY,       -- "rule_" + ULID
    app_id          TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    priority        INTEGER NOT NULL CHECK (priority >= 0),
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    description     TEXT,
    -- Match (NULL: any). A rule limited to a trunk or an account that is deleted could never
    -- match again, so it goes with it rather than widening to every call.
    trunk_id        TEXT REFERENCES trunks(id) ON DELETE CASCADE,
    sip_account_id  TEXT REFERENCES sip_accounts(id) ON DELETE CASCADE,
    called_kind     TEXT CHECK (called_kind IN ('exact', 'prefix', 'pattern')),
    called_value    TEXT,
    caller_kind     TEXT CHECK (caller_kind IN ('exact', 'prefix', 'pattern')),
    caller_value    TEXT,
    -- Action: one type and the columns it uses; the others stay NULL.
    action          TEXT NOT NULL CHECK (action IN
                        ('fixed_room', 'room_per_caller', 'room_by_called_number', 'webhook', 'reject')),
    room            TEXT,                   -- fixed_room
    pin_sealed      TEXT,                   -- fixed_room: the PIN, sealed like every secret
    room_prefix     TEXT,                   -- room_per_caller, room_by_called_number
    webhook_url     TEXT,                   -- webhook
    timeout_ms      INTEGER,                -- webhook
    fallback_room   TEXT,                   -- webhook
    sip_code        INTEGER,                -- reject
    reason          TEXT,                   -- reject
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    CHECK ((called_kind IS NULL) = (called_value IS NULL)),
    CHECK ((caller_kind IS NULL) = (caller_value IS NULL))
) STRICT;

-- The list order (and the SIP service's match order) within an application.
CREATE INDEX routing_rules_by_app ON routing_rules (app_id, priority, id);
