-- The event log of one service, created inside that service's schema ({schema}).
-- Rendered by portal_common.eventstore.ddl(); every statement is idempotent.

CREATE SCHEMA IF NOT EXISTS {schema};

CREATE SEQUENCE IF NOT EXISTS {schema}.event_position_seq;

CREATE TABLE IF NOT EXISTS {schema}.events (
    position        bigint      PRIMARY KEY,
    stream_id       text        NOT NULL,
    stream_type     text        NOT NULL,
    version         integer     NOT NULL CHECK (version > 0),
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    schema_version  smallint    NOT NULL CHECK (schema_version > 0),
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{{}}',
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    prev_hash       bytea       NOT NULL,
    hash            bytea       NOT NULL,
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
);

-- Which formula an event's hash follows (see event_hash / event_hash_v2 below). Logs written
-- before version 2 keep version 1 on their rows and still verify.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = '{schema}'
                   AND table_name = 'events' AND column_name = 'hash_version') THEN
        ALTER TABLE {schema}.events ADD COLUMN hash_version smallint NOT NULL DEFAULT 1;
    END IF;
END
$$;

-- Append-only, enforced by the database itself: any UPDATE, DELETE or TRUNCATE statement on
-- the log fails, whoever sends it. (A superuser can still disable the trigger; the hash chain
-- is what makes such tampering visible.)
CREATE OR REPLACE FUNCTION {schema}.refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log %.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'EV403';
END
$$;

CREATE OR REPLACE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON {schema}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_event_change();

-- The hash of one event chains it to the previous event of its stream (version 1, the rows
-- appended before version 2 below):
--   sha256(prev_hash || utf8(stream_id US version US event_id US event_type US schema_version
--                             US occurred_at_microseconds US payload::text US metadata::text))
-- with US the unit separator (U+001F) and jsonb's own canonical text for the documents.
CREATE OR REPLACE FUNCTION {schema}.event_hash(
    prev bytea, p_stream_id text, p_version integer, p_event_id uuid, p_event_type text,
    p_schema_version integer, p_occurred_at timestamptz, p_payload jsonb, p_metadata jsonb
) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(prev || convert_to(concat_ws(chr(31),
        p_stream_id, p_version::text, p_event_id::text, p_event_type, p_schema_version::text,
        ((extract(epoch FROM p_occurred_at) * 1000000)::bigint)::text,
        p_payload::text, p_metadata::text), 'UTF8'))
$$;

-- Version 2 (every event appended since): the chain also covers where and when the event was
-- recorded, so neither its global position, its stream type nor its recorded-at time can be
-- changed unseen:
--   sha256(prev_hash || utf8('v2' US position US stream_id US stream_type US version US event_id
--          US event_type US schema_version US occurred_at_us US recorded_at_us US payload::text
--          US metadata::text))
CREATE OR REPLACE FUNCTION {schema}.event_hash_v2(
    prev bytea, p_position bigint, p_stream_id text, p_stream_type text, p_version integer,
    p_event_id uuid, p_event_type text, p_schema_version integer, p_occurred_at timestamptz,
    p_recorded_at timestamptz, p_payload jsonb, p_metadata jsonb
) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(prev || convert_to(concat_ws(chr(31),
        'v2', p_position::text, p_stream_id, p_stream_type, p_version::text, p_event_id::text,
        p_event_type, p_schema_version::text,
        ((extract(epoch FROM p_occurred_at) * 1000000)::bigint)::text,
        ((extract(epoch FROM p_recorded_at) * 1000000)::bigint)::text,
        p_payload::text, p_metadata::text), 'UTF8'))
$$;

-- Append events to one stream in the caller's transaction.
--
-- p_expected: the version the caller believes the stream is at (0: it must not exist yet;
-- NULL: no check). The function first takes a transaction-scoped advisory lock that every
-- append of this log takes, so appends commit in the order their positions were drawn and a
-- reader following positions can never pass an event that commits later (see store.py).
CREATE OR REPLACE FUNCTION {schema}.append_events(
    p_stream_id text, p_stream_type text, p_expected integer, p_events jsonb
) RETURNS TABLE (out_position bigint, out_version integer)
LANGUAGE plpgsql AS $$
DECLARE
    current_version integer;
    prev bytea;
    ev record;
    recorded timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock({lock_key});
    SELECT e.version, e.hash INTO current_version, prev
      FROM {schema}.events e WHERE e.stream_id = p_stream_id
     ORDER BY e.version DESC LIMIT 1;
    IF NOT FOUND THEN
        current_version := 0;
        prev := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    END IF;
    IF p_expected IS NOT NULL AND p_expected <> current_version THEN
        RAISE EXCEPTION 'stream % is at version %, expected %', p_stream_id, current_version, p_expected
            USING ERRCODE = 'EV409', DETAIL = current_version::text;
    END IF;
    out_version := current_version;
    -- The hash is computed inline (the formula of event_hash_v2 above, which ad-hoc SQL can
    -- use): calling the SQL function per row costs a function-executor start-up.
    FOR ev IN SELECT (x->>'event_id')::uuid AS event_id, x->>'event_type' AS event_type,
                     (x->>'schema_version')::smallint AS schema_version,
                     (x->>'occurred_at')::timestamptz AS occurred_at,
                     x->'payload' AS payload, x->'metadata' AS metadata
                FROM jsonb_array_elements(p_events) AS x LOOP
        out_version := out_version + 1;
        out_position := nextval('{schema}.event_position_seq');
        recorded := clock_timestamp();
        INSERT INTO {schema}.events (position, stream_id, stream_type, version, event_id,
                event_type, schema_version, payload, metadata, occurred_at, recorded_at,
                prev_hash, hash_version, hash)
        VALUES (out_position, p_stream_id, p_stream_type, out_version,
                ev.event_id, ev.event_type, ev.schema_version, ev.payload, ev.metadata,
                ev.occurred_at, recorded, prev, 2,
                sha256(prev || convert_to(concat_ws(chr(31),
                    'v2', out_position::text, p_stream_id, p_stream_type, out_version::text,
                    ev.event_id::text, ev.event_type, ev.schema_version::text,
                    ((extract(epoch FROM ev.occurred_at) * 1000000)::bigint)::text,
                    ((extract(epoch FROM recorded) * 1000000)::bigint)::text,
                    ev.payload::text, ev.metadata::text), 'UTF8')))
        RETURNING hash INTO prev;
        RETURN NEXT;
    END LOOP;
    PERFORM pg_notify('{schema}_events', '');
END
$$;

-- Where each outbox relay has published up to (the log itself is the outbox).
CREATE TABLE IF NOT EXISTS {schema}.outbox_checkpoints (
    relay       text        PRIMARY KEY,
    position    bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Ids of events a consumer of this service has already applied (exactly-once effect).
CREATE TABLE IF NOT EXISTS {schema}.processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
