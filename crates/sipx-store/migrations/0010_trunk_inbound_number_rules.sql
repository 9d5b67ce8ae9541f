-- Rewrites of the numbers calls in through a trunk name (called and caller), into the form the
-- application's routing rules and DIDs use: JSON like number_rules, e.g.
-- [{"prefix": "00", "replace_with": "+"}, {"prefix": "0", "replace_with": "+49"}].
ALTER TABLE trunks ADD COLUMN inbound_number_rules TEXT NOT NULL DEFAULT '[]';
