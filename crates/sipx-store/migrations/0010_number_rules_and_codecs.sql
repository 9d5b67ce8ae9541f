-- Rewrites of the numbers a call in names (called and caller), into the form the application's
-- routing rules and DIDs use, for calls through a trunk and from a SIP account's devices: JSON
-- like trunks.number_rules, e.g.
-- [{"prefix": "00", "replace_with": "+"}, {"prefix": "0", "replace_with": "+49"}].
ALTER TABLE trunks ADD COLUMN inbound_number_rules TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sip_accounts ADD COLUMN number_rules TEXT NOT NULL DEFAULT '[]';
-- The codecs of calls through a trunk or from an account's devices, in order of preference
-- (space-separated names: opus G722 PCMU PCMA G729). NULL follows the server's media.codecs.
ALTER TABLE trunks ADD COLUMN codecs TEXT;
ALTER TABLE sip_accounts ADD COLUMN codecs TEXT;
