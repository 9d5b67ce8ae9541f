-- SIP trunks: a provider SIPx sends calls to (outbound) and/or accepts calls from (inbound).
CREATE TABLE trunks (
    id                    TEXT PRIMARY KEY,   -- "trunk_" + ULID
    app_id                TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name                  TEXT NOT NULL,
    enabled               INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    -- outbound (NULL host: inbound only)
    host                  TEXT,
    port                  INTEGER,
    transport             TEXT NOT NULL DEFAULT 'udp',
    username              TEXT,
    auth_username         TEXT,
    password_sealed       TEXT,
    from_domain           TEXT,
    register              INTEGER NOT NULL DEFAULT 0 CHECK (register IN (0, 1)),
    register_expires      INTEGER NOT NULL DEFAULT 3600,
    caller_id             TEXT,
    number_rules          TEXT NOT NULL DEFAULT '[]',  -- JSON: [{"prefix": "0", "replace_with": "+49"}]
    max_concurrent_calls  INTEGER,
    -- inbound
    inbound_cidrs         TEXT NOT NULL DEFAULT '',    -- space-separated
    inbound_username      TEXT,
    inbound_password_sealed TEXT,
    inbound_numbers       TEXT NOT NULL DEFAULT '',    -- space-separated
    created_at_ms         INTEGER NOT NULL,
    updated_at_ms         INTEGER NOT NULL
) STRICT;

CREATE INDEX trunks_by_app ON trunks (app_id, id);
