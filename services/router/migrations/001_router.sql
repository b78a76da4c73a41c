-- Local copy of the catalog's agencies (fed by catalog events): routing follows successors.
CREATE TABLE IF NOT EXISTS agencies (
    code        text        PRIMARY KEY,
    name        text,
    status      text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'dissolved')),
    successor   text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The routing table operators change at run time; an agency without a row gets AMQP.
CREATE TABLE IF NOT EXISTS routes (
    agency_code text        PRIMARY KEY,
    channel     text        NOT NULL CHECK (channel IN ('amqp', 'http')),
    endpoint    text,
    secret_ref  text,
    active      boolean     NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Which agency holds each dossier now (follow-up events go there).
CREATE TABLE IF NOT EXISTS dossiers (
    code        text        PRIMARY KEY,
    agency_code text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Deliveries: the projection operators read and the persisted retry schedule.
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id     uuid        PRIMARY KEY,
    dossier_code    text        NOT NULL,
    agency_code     text        NOT NULL,
    addressed_to    text        NOT NULL,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    channel         text        NOT NULL,
    body            jsonb       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'acknowledged', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_dossier ON deliveries (dossier_code, created_at);
CREATE INDEX IF NOT EXISTS deliveries_dead ON deliveries (updated_at) WHERE status = 'dead';
