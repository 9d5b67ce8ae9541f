-- Registered contacts (RFC 3261 §10). Soft state that phones refresh, persisted so a restart
-- does not make every gateway unreachable until its next REGISTER.
CREATE TABLE registrations (
    username      TEXT NOT NULL,      -- the SIP account username, or an application api_key
    app_id        TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    contact       TEXT NOT NULL,      -- Contact URI as registered
    expires_at    INTEGER NOT NULL,   -- Unix seconds
    q             REAL,
    call_id       TEXT NOT NULL,
    cseq          INTEGER NOT NULL,
    source        TEXT NOT NULL,      -- ip:port the REGISTER came from (NAT traversal)
    transport     TEXT NOT NULL,      -- UDP, TCP, TLS, WS, WSS
    user_agent    TEXT,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (username, contact)
) STRICT;

CREATE INDEX registrations_by_app ON registrations (app_id, username, contact);
CREATE INDEX registrations_by_expiry ON registrations (expires_at);
