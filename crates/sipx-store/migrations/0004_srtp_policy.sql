-- The SRTP policy of calls through a trunk or from a SIP account's registered devices:
-- 'disabled', 'allowed' or 'required'. NULL follows the server's media.srtp.
ALTER TABLE trunks ADD COLUMN srtp TEXT CHECK (srtp IN ('disabled', 'allowed', 'required'));
ALTER TABLE sip_accounts ADD COLUMN srtp TEXT CHECK (srtp IN ('disabled', 'allowed', 'required'));
