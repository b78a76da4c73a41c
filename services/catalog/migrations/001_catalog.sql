-- The catalog: fields, agencies, procedures (current version + full history), life events.
-- Search folds case and Vietnamese diacritics with unaccent (đ/Đ -> d) in an IMMUTABLE
-- wrapper so folded text can be indexed: a tsvector over name and document texts for
-- word-order-free keyword matches (name_tsv tells name matches apart for ranking), and a
-- trigram index on the folded name for the typo-tolerant fallback.

CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

CREATE OR REPLACE FUNCTION fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, $1)) $$;

CREATE TABLE fields (
    code text PRIMARY KEY,
    name text NOT NULL,
    sort_order int NOT NULL DEFAULT 0
);

CREATE TABLE agencies (
    code           text PRIMARY KEY,
    name           text NOT NULL,
    level          text NOT NULL CHECK (level IN ('central', 'province', 'district', 'commune')),
    kind           text NOT NULL,
    parent_code    text REFERENCES agencies (code),
    province_code  int,
    province_name  text,
    ward_code      int,
    ward_name      text,
    address        text,
    phone          text,
    email          text,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'dissolved')),
    successor_code text REFERENCES agencies (code),
    dissolved_on   date,
    version        int NOT NULL DEFAULT 1,
    search_name    text GENERATED ALWAYS AS (fold(name)) STORED,
    CHECK (status = 'active' OR successor_code IS NOT NULL)
);
CREATE INDEX agencies_kind_place ON agencies (kind, province_code, ward_code);
CREATE INDEX agencies_province ON agencies (province_code, level);
CREATE INDEX agencies_name_trgm ON agencies USING gin (search_name gin_trgm_ops) WITH (fastupdate = off);

-- The current version of each procedure, the columns search needs; the full document of
-- every version lives in procedure_versions.
CREATE TABLE procedures (
    code            text PRIMARY KEY,
    version         int NOT NULL,
    name            text NOT NULL,
    field_code      text NOT NULL REFERENCES fields (code),
    target          text NOT NULL CHECK (target IN ('citizen', 'business', 'both')),
    levels          text[] NOT NULL,
    agency_kinds    text[] NOT NULL,
    online_level    text NOT NULL CHECK (online_level IN ('full', 'partial', 'none')),
    processing_days int NOT NULL,
    status          text NOT NULL CHECK (status IN ('draft', 'published', 'withdrawn')),
    search_name     text GENERATED ALWAYS AS (fold(name)) STORED,
    name_tsv        tsvector GENERATED ALWAYS AS (to_tsvector('simple', fold(name))) STORED,
    -- name (weight A) and document texts (weight B), folded; written by the repository
    tsv             tsvector NOT NULL
);
-- Search only ever looks at published procedures: the text indexes leave the rest out.
-- fastupdate off: writes are rare, and a GIN pending list left by a bulk load would make
-- every search scan it (and the planner fall back to a sequential scan).
CREATE INDEX procedures_tsv ON procedures USING gin (tsv) WITH (fastupdate = off)
    WHERE status = 'published';
CREATE INDEX procedures_name_trgm ON procedures USING gin (search_name gin_trgm_ops)
    WITH (fastupdate = off) WHERE status = 'published';
CREATE INDEX procedures_filters ON procedures (field_code, online_level);
CREATE INDEX procedures_kinds ON procedures USING gin (agency_kinds);

-- Every version ever published, so a dossier filed under version n can still read it.
CREATE TABLE procedure_versions (
    code        text NOT NULL REFERENCES procedures (code),
    version     int NOT NULL,
    status      text NOT NULL,
    document    jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (code, version)
);

CREATE TABLE life_events (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    target      text NOT NULL CHECK (target IN ('citizen', 'business')),
    description text NOT NULL DEFAULT ''
);

CREATE TABLE life_event_procedures (
    life_event_id  text NOT NULL REFERENCES life_events (id),
    position       int NOT NULL,
    procedure_code text NOT NULL REFERENCES procedures (code),
    PRIMARY KEY (life_event_id, position)
);
CREATE INDEX life_event_procedures_code ON life_event_procedures (procedure_code);
