-- Applications (tenants). The secret is sealed under the master key (see sipx-secrets::sealed).
CREATE TABLE apps (
    id                TEXT PRIMARY KEY,     -- "app_" + ULID: sorts by creation time
    name              TEXT NOT NULL,
    api_key           TEXT NOT NULL UNIQUE,
    api_secret_sealed TEXT NOT NULL,
    disabled          INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at_ms     INTEGER NOT NULL,
    updated_at_ms     INTEGER NOT NULL
) STRICT;

-- SIP accounts that gateways and phones REGISTER with. Usernames are global: a REGISTER names no
-- application, so the username alone must find the account.
CREATE TABLE sip_accounts (
    id              TEXT PRIMARY KEY,       -- "sipacct_" + ULID
    app_id          TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    username        TEXT NOT NULL UNIQUE,
    password_sealed TEXT NOT NULL,
    allowed_cidrs   TEXT NOT NULL DEFAULT '', -- space-separated CIDRs; empty = any source
    max_bindings    INTEGER NOT NULL,
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    description     TEXT,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
) STRICT;

CREATE INDEX sip_accounts_by_app ON sip_accounts (app_id, id);
