-- The dossier service's own tables (search_path = dossier). The event log (events) is
-- created by portal_common.eventstore; everything below except the counters, idempotency
-- keys and document blobs is a projection: disposable, rebuilt from the log.

-- Per-agency, per-day sequence behind dossier codes (incremented in the submit transaction).
CREATE TABLE IF NOT EXISTS code_counters (
    agency_code text    NOT NULL,
    day         date    NOT NULL,
    last_value  integer NOT NULL,
    PRIMARY KEY (agency_code, day)
);

-- (owner, Idempotency-Key) -> the dossier that key created.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    owner_id     text        NOT NULL,
    key          text        NOT NULL,
    request_hash text        NOT NULL,
    code         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, key)
);

-- Content-addressed blobs (one row per distinct content) and the documents that use them.
CREATE TABLE IF NOT EXISTS blobs (
    sha256     text        PRIMARY KEY CHECK (length(sha256) = 64),
    size       integer     NOT NULL,
    content    bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS documents (
    id           uuid        PRIMARY KEY,
    dossier_code text,
    owner_id     text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('input', 'output')),
    requirement  text,
    name         text        NOT NULL,
    content_type text        NOT NULL,
    size         integer     NOT NULL,
    sha256       text        NOT NULL REFERENCES blobs (sha256),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS documents_dossier_idx ON documents (dossier_code);

-- Projection: status by code (public lookup).
CREATE TABLE IF NOT EXISTS dossier_status (
    code             text        PRIMARY KEY,
    status           text        NOT NULL,
    procedure_code   text        NOT NULL,
    procedure_name   text        NOT NULL,
    agency_code      text        NOT NULL,
    agency_name      text,
    submitted_at     timestamptz NOT NULL,
    received_at      timestamptz,
    appointment_date date,
    overdue          boolean     NOT NULL,
    paused           boolean     NOT NULL,
    version          integer     NOT NULL,
    updated_at       timestamptz NOT NULL
);

-- Projection: each owner's dossiers.
CREATE TABLE IF NOT EXISTS owner_dossiers (
    owner_id         text        NOT NULL,
    code             text        NOT NULL,
    status           text        NOT NULL,
    procedure_code   text        NOT NULL,
    procedure_name   text        NOT NULL,
    agency_code      text        NOT NULL,
    submitted_at     timestamptz NOT NULL,
    appointment_date date,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (owner_id, code)
);
CREATE INDEX IF NOT EXISTS owner_dossiers_list_idx ON owner_dossiers (owner_id, submitted_at DESC);

-- Projection: each agency's work queue (dossiers currently at the agency), due soonest first.
CREATE TABLE IF NOT EXISTS agency_queue (
    agency_code      text        NOT NULL,
    code             text        NOT NULL,
    status           text        NOT NULL,
    procedure_code   text        NOT NULL,
    procedure_name   text        NOT NULL,
    submitted_at     timestamptz NOT NULL,
    appointment_date date,
    overdue          boolean     NOT NULL,
    paused           boolean     NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (agency_code, code)
);
CREATE INDEX IF NOT EXISTS agency_queue_due_idx ON agency_queue (agency_code, appointment_date NULLS LAST, submitted_at);

-- Projection: overdue dossiers (past their appointment date, still being handled).
CREATE TABLE IF NOT EXISTS overdue_dossiers (
    code             text        PRIMARY KEY,
    agency_code      text        NOT NULL,
    appointment_date date        NOT NULL,
    status           text        NOT NULL,
    updated_at       timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS owner_dossiers_code_idx ON owner_dossiers (code);
CREATE INDEX IF NOT EXISTS agency_queue_code_idx ON agency_queue (code);
CREATE INDEX IF NOT EXISTS overdue_dossiers_agency_idx ON overdue_dossiers (agency_code, appointment_date);
