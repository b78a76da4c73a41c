-- Drafts (streams draft-<uuid>): the owner's list of drafts is a projection; documents
-- attached to a draft are stored like any other, marked with the draft they belong to.

CREATE TABLE IF NOT EXISTS owner_drafts (
    draft_id       uuid        PRIMARY KEY,
    owner_id       text        NOT NULL,
    status         text        NOT NULL,
    procedure_code text,
    agency_code    text,
    dossier_code   text,
    documents      integer     NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        integer     NOT NULL
);
CREATE INDEX IF NOT EXISTS owner_drafts_owner_idx ON owner_drafts (owner_id, status, updated_at DESC);

ALTER TABLE documents ADD COLUMN IF NOT EXISTS draft_id uuid;
CREATE INDEX IF NOT EXISTS documents_draft_idx ON documents (draft_id) WHERE draft_id IS NOT NULL;
