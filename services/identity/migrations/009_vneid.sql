-- Sign-in with VNeID (OpenID Connect).

-- The level (1 or 2, Decree 69/2024) of the account's last sign-in with VNeID; null when it never
-- signed in that way.
ALTER TABLE accounts ADD COLUMN assurance_level smallint CHECK (assurance_level IN (1, 2));

-- The level of the sign-in that began a session (null: not VNeID); its access tokens carry it
-- as ``acr``, refreshed ones too.
ALTER TABLE refresh_tokens ADD COLUMN assurance_level smallint CHECK (assurance_level IN (1, 2));

-- A started sign-in: what the callback must match. Only a hash of ``state`` is kept; a row is
-- deleted when used (single use) and is worthless after ``expires_at``.
CREATE TABLE vneid_states (
    state_hash    bytea PRIMARY KEY,
    nonce         text NOT NULL,
    code_verifier text NOT NULL,
    redirect_uri  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX vneid_states_expires_idx ON vneid_states (expires_at);

-- Which account a provider subject signs in as (one each way).
CREATE TABLE vneid_links (
    subject     text PRIMARY KEY,
    account_id  uuid NOT NULL UNIQUE REFERENCES accounts (id),
    proof       text NOT NULL CHECK (proof IN ('created', 'otp', 'password')),
    linked_at   timestamptz NOT NULL DEFAULT now()
);

-- A VNeID sign-in that found an existing account with the same CCCD: the link waits for proof
-- that the account is the caller's (a code to its phone, or its password).
CREATE TABLE vneid_pending_links (
    token_hash     bytea PRIMARY KEY,
    account_id     uuid NOT NULL REFERENCES accounts (id),
    subject        text NOT NULL,
    level          smallint NOT NULL CHECK (level IN (1, 2)),
    otp_hash       bytea,
    otp_expires_at timestamptz,
    attempts       integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz
);

-- Logout tokens already acted on (their ``jti``): a replayed one is refused.
CREATE TABLE vneid_logout_tokens (
    jti          text PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now()
);
