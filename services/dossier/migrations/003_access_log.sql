-- Who of the agencies' staff read a dossier (its full view or one of its documents), for the
-- applicant to see and an operator to trace (Decree 13/2023: access to personal data is
-- traceable). One row per successful read; no personal data of the applicant, only codes
-- and ids. Kept apart from the event log: reads are not lifecycle events, and putting them on
-- the dossier's stream would flood its timeline, the outbox and the agencies' subscriptions.

CREATE TABLE IF NOT EXISTS access_log (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    accessed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    dossier_code text        NOT NULL,
    actor_kind   text        NOT NULL CHECK (actor_kind IN ('officer', 'agency_system', 'operator')),
    account_id   text        NOT NULL,
    agency_code  text,
    access       text        NOT NULL CHECK (access IN ('view', 'document')),
    document_id  uuid,
    as_of        timestamptz,
    request_id   text,
    CONSTRAINT access_log_document_named CHECK ((access = 'document') = (document_id IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS access_log_dossier_idx ON access_log (dossier_code, accessed_at DESC, id DESC);

-- Append-only, enforced by the database itself, like the event log: any UPDATE, DELETE or
-- TRUNCATE fails whoever sends it (same SQLSTATE, EV403, as the log's guard).
CREATE OR REPLACE FUNCTION refuse_access_log_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the access log %.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'EV403';
END
$$;

CREATE OR REPLACE TRIGGER access_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_access_log_change();
