-- What the router knows of each dossier to filter subscriptions (procedure, field, place,
-- status now) and the last dossier version it put in the agency feed (per-dossier order).
ALTER TABLE dossiers ADD COLUMN IF NOT EXISTS procedure_code text;
ALTER TABLE dossiers ADD COLUMN IF NOT EXISTS field text;
ALTER TABLE dossiers ADD COLUMN IF NOT EXISTS province_code text;
ALTER TABLE dossiers ADD COLUMN IF NOT EXISTS status text;
ALTER TABLE dossiers ADD COLUMN IF NOT EXISTS fed_version integer NOT NULL DEFAULT 0;

-- The agency feed: every event of every dossier routed to an agency, once per agency, in the
-- order the router accepted them. Positions come from a sequence drawn under a transaction
-- advisory lock (see feed_repository.append), so they become visible in order: a reader
-- following "position > last seen" never passes over a row that commits late.
CREATE SEQUENCE IF NOT EXISTS agency_feed_position_seq;
CREATE TABLE IF NOT EXISTS agency_feed (
    position             bigint      PRIMARY KEY,
    agency_code          text        NOT NULL,
    event_id             uuid        NOT NULL,
    event_type           text        NOT NULL,
    channels             text[]      NOT NULL,
    dossier_code         text        NOT NULL,
    stream_version       integer,
    procedure_code       text,
    field                text,
    province_code        text,
    status               text,
    national_status_code integer,
    cloudevent           jsonb       NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agency_feed_event_key UNIQUE (agency_code, event_id)
);
CREATE INDEX IF NOT EXISTS agency_feed_agency ON agency_feed (agency_code, position);

-- Events that arrived ahead of an earlier event of the same dossier (each event type has its
-- own queue): held until the earlier one comes, or for at most FEED_HOLD seconds.
CREATE TABLE IF NOT EXISTS feed_held (
    event_id       uuid        PRIMARY KEY,
    dossier_code   text        NOT NULL,
    stream_version integer     NOT NULL,
    envelope       jsonb       NOT NULL,
    held_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS feed_held_dossier ON feed_held (dossier_code, stream_version);

-- Subscriptions agency systems make: a callback, channels and filters; delivered in feed
-- order from "position" (the last feed position handled), one event at a time.
CREATE TABLE IF NOT EXISTS subscriptions (
    id               uuid        PRIMARY KEY,
    agency_code      text        NOT NULL,
    callback_url     text        NOT NULL,
    channels         text[]      NOT NULL,
    filters          jsonb       NOT NULL DEFAULT '{}',
    auth_header      text,
    state            text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused', 'ended')),
    position         bigint      NOT NULL DEFAULT 0,
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    last_error       text,
    failing_since    timestamptz,
    last_success_at  timestamptz,
    delivered        bigint      NOT NULL DEFAULT 0,
    dead_lettered    bigint      NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    ended_at         timestamptz
);
CREATE INDEX IF NOT EXISTS subscriptions_agency ON subscriptions (agency_code) WHERE state <> 'ended';

-- Events a subscription gave up on after its last allowed attempt.
CREATE TABLE IF NOT EXISTS subscription_dead_letters (
    subscription_id uuid        NOT NULL REFERENCES subscriptions (id),
    position        bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    attempts        integer     NOT NULL,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, position)
);
