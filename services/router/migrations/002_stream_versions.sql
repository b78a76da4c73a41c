-- Catalog and dossier events arrive on one queue per event type, so two events of one
-- agency or dossier can be applied out of order: remember the stream version applied last
-- and ignore older news.
ALTER TABLE agencies ADD COLUMN IF NOT EXISTS stream_version integer NOT NULL DEFAULT 0;
ALTER TABLE dossiers ADD COLUMN IF NOT EXISTS stream_version integer NOT NULL DEFAULT 0;
