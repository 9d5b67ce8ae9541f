-- The proxies a registered contact is reached through (RFC 3327 Path), one value per line;
-- empty for a device that registered directly.
ALTER TABLE registrations ADD COLUMN path TEXT NOT NULL DEFAULT '';
