-- Identity: accounts, pending registrations and sign-ins, challenges, refresh tokens,
-- failure counters for lockout, the token-signing keys, and the tables of the local
-- stand-ins of the outside parties (carrier registry, social-insurance registry, SMS).
-- No password, one-time code or refresh token is stored in clear: only hashes.

CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    algorithm    text NOT NULL,
    private_pem  text NOT NULL,
    public_jwk   jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    retired_at   timestamptz
);

CREATE TABLE accounts (
    id             uuid PRIMARY KEY,
    role           text NOT NULL CHECK (role IN ('citizen', 'business', 'officer', 'agency_system',
                                                  'editor', 'operator')),
    identifier     text NOT NULL UNIQUE,         -- CCCD, tax code, or staff:<role>:<agency>
    legacy_id      text UNIQUE,                  -- old 9-digit CMT mapped to this account
    full_name      text NOT NULL,
    date_of_birth  date,
    gender         text,
    phone          text,
    bhxh_code      text UNIQUE,
    agency_code    text,
    representative_cccd text,
    password_hash  text,
    certificate_fingerprint text UNIQUE,
    methods        text[] NOT NULL DEFAULT '{}',
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_phone_idx ON accounts (phone);

-- A registration waiting for its one-time code (the password is already hashed).
CREATE TABLE registrations (
    id            uuid PRIMARY KEY,
    method        text NOT NULL,
    identifier    text NOT NULL,
    phone         text NOT NULL,
    data          jsonb NOT NULL,
    otp_hash      bytea NOT NULL,
    otp_expires_at timestamptz NOT NULL,
    attempts      int NOT NULL DEFAULT 0,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX registrations_created_idx ON registrations (created_at);

-- A sign-in whose password was right, waiting for its one-time code.
CREATE TABLE logins (
    id            uuid PRIMARY KEY,
    account_id    uuid NOT NULL REFERENCES accounts (id),
    method        text NOT NULL,
    otp_hash      bytea NOT NULL,
    otp_expires_at timestamptz NOT NULL,
    attempts      int NOT NULL DEFAULT 0,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    client        text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- A fresh server challenge for certificate (SIM / USB token) registration and sign-in.
CREATE TABLE challenges (
    id          uuid PRIMARY KEY,
    nonce       text NOT NULL,
    purpose     text NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Refresh tokens: only a hash of the secret part; rotation keeps one family per sign-in.
CREATE TABLE refresh_tokens (
    id           uuid PRIMARY KEY,
    family       uuid NOT NULL,
    account_id   uuid NOT NULL REFERENCES accounts (id),
    token_hash   bytea NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    revoked_reason text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family);
CREATE INDEX refresh_tokens_account_idx ON refresh_tokens (account_id);

-- Failed sign-ins per key (an account / identifier, or a source address), for lockout.
CREATE TABLE signin_failures (
    scope         text NOT NULL CHECK (scope IN ('account', 'source')),
    key           text NOT NULL,
    failures      int NOT NULL DEFAULT 0,
    lockouts      int NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    last_failure_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- Certificate authorities trusted for SIM / USB token certificates (besides TRUSTED_CA_FILE).
CREATE TABLE trusted_cas (
    fingerprint  text PRIMARY KEY,
    subject      text NOT NULL,
    pem          text NOT NULL,
    added_at     timestamptz NOT NULL DEFAULT now()
);

-- Local stand-ins of the outside parties (used only when the local adapters are chosen).
CREATE TABLE local_carrier_records (
    phone       text PRIMARY KEY,
    cccd        text NOT NULL,
    carrier     text NOT NULL DEFAULT 'local',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE local_bhxh_records (
    bhxh_code     text PRIMARY KEY,
    cccd          text NOT NULL,
    full_name     text NOT NULL,
    date_of_birth date NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE local_sms_outbox (
    id        bigserial PRIMARY KEY,
    phone     text NOT NULL,
    body      text NOT NULL,
    sent_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX local_sms_outbox_phone_idx ON local_sms_outbox (phone, id);
