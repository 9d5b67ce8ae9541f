-- A delivery made to the application's webhook URL (not to a call's own URL) goes wherever
-- that URL points at the time of each attempt: changing it moves what is still pending, and
-- removing it ends that. Rows from before keep the URL they were made with.
ALTER TABLE webhook_deliveries ADD COLUMN to_app_url INTEGER NOT NULL DEFAULT 0 CHECK (to_app_url IN (0, 1));
